import { once } from "node:events";
import {
  closeSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateBouncesFile } from "../../src/simulate/record-generator.js";

/**
 * The catch-up file: generated from a seed by the project's record generator (never committed), kept
 * under bench/data/ (git-ignored) and reused while the seed and size stay the same. The same name and
 * line ending as bench/decode-classify.ts, so the two benchmarks share the file.
 */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const DATA_DIR = join(ROOT, "bench", "data");

export interface DataFile {
  readonly path: string;
  readonly records: number;
  readonly bytes: number;
  readonly rbShare: number;
  readonly quotedShare: number;
}

interface Sidecar {
  readonly records: number;
  readonly bytes: number;
  readonly rb: number;
  readonly quoted: number;
}

export async function ensureBouncesFile(seed: number, records: number): Promise<DataFile> {
  mkdirSync(DATA_DIR, { recursive: true });
  const path = join(DATA_DIR, `bounces-seed${seed}-${records}.csv`);
  const sidecarPath = `${path}.stats.json`;
  let side: Sidecar | undefined;
  if (existsSync(path) && existsSync(sidecarPath)) {
    const s = JSON.parse(readFileSync(sidecarPath, "utf8")) as Sidecar;
    if (s.bytes === statSync(path).size) side = s;
  }
  if (side === undefined) {
    const t0 = performance.now();
    process.stdout.write(
      `generating ${path} (${records.toLocaleString("en-US")} records, seed ${seed}) ... `,
    );
    const tmp = `${path}.tmp`;
    const out = createWriteStream(tmp);
    let rb = 0;
    let quoted = 0;
    let carry = "";
    let first = true;
    for (const chunk of generateBouncesFile(seed, records, "\r\n")) {
      const lines = (carry + chunk).split("\r\n");
      carry = lines.pop() ?? "";
      for (const l of lines) {
        if (first) {
          first = false; // the header
          continue;
        }
        if (l.startsWith("rb,")) rb++;
        if (l.includes('"')) quoted++;
      }
      if (!out.write(chunk)) await once(out, "drain");
    }
    out.end();
    await once(out, "finish");
    renameSync(tmp, path);
    side = { records, bytes: statSync(path).size, rb, quoted };
    writeFileSync(sidecarPath, JSON.stringify(side));
    console.log(`${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return {
    path,
    records: side.records,
    bytes: side.bytes,
    rbShare: side.rb / side.records,
    quotedShare: side.quoted / side.records,
  };
}

/** Reads the whole file once so every shipper starts on a warm page cache (as in perf-peers.md). */
export function warmPageCache(path: string): void {
  const fd = openSync(path, "r");
  const buf = Buffer.allocUnsafe(1 << 20);
  try {
    while (readSync(fd, buf, 0, buf.length, null) > 0) {
      // reading is the point
    }
  } finally {
    closeSync(fd);
  }
}
