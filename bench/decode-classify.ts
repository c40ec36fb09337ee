/**
 * Decode + classify throughput on one core: `npm run bench:decode [-- --records N --runs R]`.
 *
 * Generates a realistic bounces file (seeded; ~340 bytes a record, 20 % rb, about half with quoted
 * fields) under bench/data/, then measures, each as the median of several runs:
 *   - csv-parse (sync, info: true): the library the design names, parse only — for the decision;
 *   - our decoder alone (bytes → records with offsets, type and columns; fields split when read);
 *   - the classifier alone, with and without its cache;
 *   - decode + classify + event as the daemon writes it (encodeEvent, bytes into EventWriter's slabs):
 *     everything but I/O;
 *   - the same through buildEvent + JSON.stringify, the readable definition encodeEvent must equal.
 * Prints numbers; asserts nothing. The full pipeline benchmark (tail → HTTP) is issue 7's.
 */

import { once } from "node:events";
import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "csv-parse/sync";
import { Classifier, type ClassifyInput } from "../src/classify/classifier.js";
import { AccountingDecoder, type DecodedRecord } from "../src/decode/accounting-decoder.js";
import { domainOf } from "../src/decode/field-values.js";
import { buildEvent } from "../src/event/build-event.js";
import { encodeEvent } from "../src/event/encode-event.js";
import { EventWriter } from "../src/event/event-writer.js";
import { generateBouncesFile } from "../src/simulate/record-generator.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const RECORDS = arg("records", 300_000);
const RUNS = arg("runs", 5);
const CHUNK = 256 * 1024;
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dataDir = join(root, "bench", "data");
const file = join(dataDir, `bounces-seed1-${RECORDS}.csv`);

async function ensureFile(): Promise<void> {
  if (existsSync(file)) return;
  mkdirSync(dataDir, { recursive: true });
  const out = createWriteStream(file);
  for (const chunk of generateBouncesFile(1, RECORDS, "\r\n")) {
    if (!out.write(chunk)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function time(fn: () => number): { seconds: number; count: number } {
  const t0 = process.hrtime.bigint();
  const count = fn();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, count };
}

function measure(name: string, fn: () => number): void {
  const runs: number[] = [];
  let count = 0;
  fn(); // warm-up: JIT and caches
  for (let i = 0; i < RUNS; i++) {
    const r = time(fn);
    runs.push(r.seconds);
    count = r.count;
  }
  const s = median(runs);
  const rate = count / s;
  console.log(
    `${name.padEnd(44)} ${Math.round(rate).toLocaleString("en-US").padStart(12)} records/s   ${(s * 1000).toFixed(0).padStart(6)} ms for ${count.toLocaleString("en-US")}   ${((s / count) * 1e6).toFixed(2).padStart(6)} s per 1M records`,
  );
}

function decodeAll(bytes: Buffer, onRecord: (r: DecodedRecord) => void): number {
  const d = new AccountingDecoder();
  let n = 0;
  for (let i = 0; i < bytes.length; i += CHUNK) {
    for (const item of d.push(bytes.subarray(i, i + CHUNK))) {
      if (item.kind === "record") {
        n++;
        onRecord(item);
      }
    }
  }
  for (const item of d.end(false)) if (item.kind === "record") onRecord(item);
  return n;
}

async function main(): Promise<void> {
  await ensureFile();
  const bytes = readFileSync(file);
  console.log(
    `file: ${file}\n  ${RECORDS.toLocaleString("en-US")} records, ${(statSync(file).size / 1e6).toFixed(1)} MB, ${(bytes.length / RECORDS).toFixed(0)} bytes/record; median of ${RUNS} runs, one core, Node ${process.version}\n`,
  );

  measure("csv-parse 7 sync (parse only, info:true)", () => {
    const rows = parse(bytes, {
      relax_column_count: true,
      relax_quotes: true,
      info: true,
      from_line: 2,
    }) as unknown[];
    return rows.length;
  });
  measure("decoder: bytes → records (fields split when read)", () => decodeAll(bytes, () => {}));

  // End to end first: the classifier-only runs below keep a million inputs alive, which slows GC.
  measure("decode + classify + encodeEvent → EventWriter slab (the daemon's path)", () => {
    const classifier = new Classifier();
    const ctx = { host: "bench", file, classifier };
    const writer = new EventWriter();
    let bytesOut = 0;
    const n = decodeAll(bytes, (r) => {
      bytesOut += encodeEvent(r, ctx, writer).data.length;
    });
    return bytesOut > 0 ? n : 0;
  });
  measure("decode + classify + buildEvent + JSON.stringify → UTF-8", () => {
    const classifier = new Classifier();
    const ctx = { host: "bench", file, classifier };
    let bytesOut = 0;
    const n = decodeAll(bytes, (r) => {
      bytesOut += Buffer.from(JSON.stringify(buildEvent(r, ctx))).length;
    });
    return bytesOut > 0 ? n : 0;
  });
  const inputs: ClassifyInput[] = [];
  decodeAll(bytes, (r) => {
    const get = (n: string) => r.header.get(r.values, n);
    inputs.push({
      type: r.type,
      dsnStatus: get("dsnStatus"),
      dsnDiag: get("dsnDiag"),
      bounceCat: get("bounceCat"),
      dsnAction: get("dsnAction"),
      dsnMta: get("dsnMta"),
      recipientDomain: domainOf(get("rcpt")),
    });
  });
  measure("classifier, cache on (default)", () => {
    const c = new Classifier();
    for (const i of inputs) c.classify(i);
    return inputs.length;
  });
  measure("classifier, cache off", () => {
    const c = new Classifier({ cacheSize: 0 });
    for (const i of inputs) c.classify(i);
    return inputs.length;
  });
  const c = new Classifier();
  for (const i of inputs) c.classify(i);
  console.log(
    `\nclassifier cache: ${c.hits} hits, ${c.misses} misses (${((c.hits / (c.hits + c.misses)) * 100).toFixed(1)} % hit rate)`,
  );
  console.log(
    `peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB (whole file held in memory for the benchmark)`,
  );
}

await main();
