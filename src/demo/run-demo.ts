import { mkdirSync, mkdtempSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Classifier } from "../classify/classifier.js";
import { log } from "../cli/log.js";
import type { DecodedItem } from "../decode/accounting-decoder.js";
import { buildEvent } from "../event/build-event.js";
import type { PmtaEvent } from "../event/event.js";
import { PmtaSimulator } from "../simulate/pmta-simulator.js";
import { NdjsonFileSink } from "../sink/ndjson-file-sink.js";
import { DirectoryFollower } from "./directory-follower.js";

export interface DemoOptions {
  readonly rate: number;
  readonly rotateEverySeconds: number;
  readonly seed: number;
  readonly durationSeconds?: number;
  readonly records?: number;
  readonly dir?: string;
  readonly output?: string;
  /** Where the live summary goes (stdout by default). */
  readonly out?: NodeJS.WritableStream;
}

export interface DemoResult {
  /** Every record the simulator wrote arrived as an event, and nothing was set aside. */
  readonly complete: boolean;
  readonly written: number;
  readonly events: number;
  readonly errors: number;
  readonly output: string;
}

const POLL_MS = 200;

/** Tallies for the live summary. */
class Stats {
  events = 0;
  errors = 0;
  hard = 0;
  readonly kinds = new Map<string, number>();
  readonly reasons = new Map<string, number>();

  add(e: PmtaEvent): void {
    this.events++;
    this.kinds.set(e.kind, (this.kinds.get(e.kind) ?? 0) + 1);
    const reason = e.bounce?.reason ?? (e.kind === "complaint" ? "complaint" : undefined);
    if (reason !== undefined) this.reasons.set(reason, (this.reasons.get(reason) ?? 0) + 1);
    if (e.bounce?.hard === true) this.hard++;
  }

  top(n: number): Array<[string, number]> {
    return [...this.reasons].sort((a, b) => b[1] - a[1]).slice(0, n);
  }
}

/**
 * The main job on embedded defaults: a PowerMTA simulator writes and rotates accounting files in a
 * temp directory while the pipeline decodes, classifies and writes events to a local NDJSON file.
 * At the end it checks the simulator's count against the events written: nothing may be missing.
 */
export async function runDemo(classifier: Classifier, options: DemoOptions): Promise<DemoResult> {
  const out = options.out ?? process.stdout;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "pmta-ingest-demo-"));
  const liveDir = join(dir, "pmta");
  mkdirSync(liveDir, { recursive: true });
  const sim = new PmtaSimulator({
    liveDir,
    seed: options.seed,
    recordsPerSecond: options.rate,
    rotateEveryMs: Math.round(options.rotateEverySeconds * 1000),
    keepRecords: false,
  });
  const archiveDirs = [sim.archiveDir("bounces"), sim.archiveDir("fbl")];
  for (const d of archiveDirs) mkdirSync(d, { recursive: true });
  const output = options.output ?? join(dir, "events.ndjson");
  const sink = new NdjsonFileSink({ path: output });
  await sink.open();

  const stats = new Stats();
  const host = hostname();
  const follower = new DirectoryFollower({
    dirs: [liveDir, ...archiveDirs],
    archiveDirs,
    match: (name) => /^(bounces|fbl)-.*\.csv$/.test(name),
    onItems: async (path: string, items: DecodedItem[]) => {
      const lines: string[] = [];
      for (const item of items) {
        if (item.kind === "record") {
          const e = buildEvent(item, { host, file: path, classifier });
          stats.add(e);
          lines.push(JSON.stringify(e));
        } else if (item.kind === "error") {
          stats.errors++;
          log("warn", "record set aside", {
            file: path,
            offset: item.offset,
            end: item.end,
            reason: item.reason,
          });
        }
      }
      await sink.writeLines(lines);
    },
  });

  out.write(
    `pmta-ingest demo: simulated PowerMTA writing ${options.rate} records/s into ${liveDir}, rotating every ${options.rotateEverySeconds}s into accounting/\n` +
      `events → ${output}\n`,
  );

  let stopping = false;
  const onSignal = () => {
    stopping = true;
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const started = performance.now();
  let lastPrint = started;
  let lastEvents = 0;
  const written = () => sim.written.bounces + sim.written.fbl;
  sim.start();
  try {
    while (!stopping) {
      await sleep(POLL_MS);
      await follower.poll();
      const now = performance.now();
      if (now - lastPrint >= 1000) {
        const rate = ((stats.events - lastEvents) * 1000) / (now - lastPrint);
        out.write(
          summaryLine(
            (now - started) / 1000,
            stats,
            rate,
            follower.openFiles,
            sim.rotations.bounces + sim.rotations.fbl,
          ),
        );
        lastPrint = now;
        lastEvents = stats.events;
      }
      if (options.durationSeconds !== undefined && now - started >= options.durationSeconds * 1000)
        stopping = true;
      if (options.records !== undefined && written() >= options.records) stopping = true;
    }
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    await sim.stop();
    // The simulator has stopped writing: read every file to its end, then finish them.
    while ((await follower.poll()) > 0) {}
    await follower.close();
    await sink.close();
  }

  const total = written();
  const complete = stats.events === total && stats.errors === 0;
  out.write(finalReport(stats, total, output, complete));
  return { complete, written: total, events: stats.events, errors: stats.errors, output };
}

function summaryLine(seconds: number, s: Stats, rate: number, open: number, rotations: number): string {
  const kinds = [...s.kinds].map(([k, n]) => `${k} ${n}`).join(" ");
  const top = s
    .top(3)
    .map(([r, n]) => `${r} ${n}`)
    .join(", ");
  return `[${seconds.toFixed(1).padStart(6)}s] events ${s.events} (${Math.round(rate)}/s) | ${kinds} | hard ${s.hard} | top: ${top} | files open ${open}, rotations ${rotations}\n`;
}

function finalReport(s: Stats, written: number, output: string, complete: boolean): string {
  const lines = [
    "",
    `records written by the simulator: ${written}`,
    `events written:                   ${s.events}  (${[...s.kinds].map(([k, n]) => `${k} ${n}`).join(", ")})`,
    `hard bounces:                     ${s.hard}`,
    `records set aside:                ${s.errors}`,
    "reasons:",
    ...s.top(40).map(([r, n]) => `  ${r.padEnd(24)} ${n}`),
    complete
      ? `OK: every simulated record arrived as an event (${output})`
      : `MISMATCH: ${written - s.events} record(s) missing, ${s.errors} set aside (${output})`,
    "",
  ];
  return lines.join("\n");
}
