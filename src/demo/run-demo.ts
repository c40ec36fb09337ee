import { existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Classifier } from "../classify/classifier.js";
import { log } from "../cli/log.js";
import { loadRunConfig } from "../config/run-config.js";
import type { PmtaEvent } from "../event/event.js";
import { runDaemon } from "../run/daemon.js";
import { PmtaSimulator } from "../simulate/pmta-simulator.js";

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
  const output = options.output ?? join(dir, "events.ndjson");
  // The real daemon, configured the way a user would, with timings shortened for a demo.
  const config = await loadRunConfig({
    flags: {
      inputs: [
        { name: "bounces", path: join(liveDir, "bounces-*.csv"), archive: sim.archiveDir("bounces") },
        { name: "fbl", path: join(liveDir, "fbl-*.csv"), archive: sim.archiveDir("fbl") },
      ],
      stateDir: join(dir, "state"),
      output: { file: { path: output } },
      rescanInterval: "250ms",
      sealAfter: "1s",
      batch: { maxWait: "100ms" },
      metrics: { listen: "off" },
    },
    env: {},
  });

  const stats = new Stats();
  const quiet: typeof log = (level, msg, fields) => {
    if (level === "warn" || level === "error") log(level, msg, fields);
  };
  const abort = new AbortController();
  const daemon = runDaemon(config, classifier, {
    signal: abort.signal,
    onEvent: (e) => stats.add(e),
    log: quiet,
    handleSignals: false,
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
      const now = performance.now();
      if (now - lastPrint >= 1000) {
        const rate = ((stats.events - lastEvents) * 1000) / (now - lastPrint);
        out.write(
          summaryLine((now - started) / 1000, stats, rate, sim.rotations.bounces + sim.rotations.fbl),
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
    // PowerMTA has stopped writing: give the daemon time to read the last bytes, then stop it.
    const deadline = performance.now() + 30_000;
    while (stats.events < written() && performance.now() < deadline) await sleep(POLL_MS);
    abort.abort();
    await daemon;
  }

  const deadLetters = existsSync(config.deadLetterPath)
    ? readFileSync(config.deadLetterPath, "utf8")
        .split("\n")
        .filter((l) => l !== "").length
    : 0;
  stats.errors = deadLetters;
  const total = written();
  // Judge by what reached the output file, not by what was handed to it.
  const delivered = existsSync(output)
    ? readFileSync(output, "utf8")
        .split("\n")
        .filter((l) => l !== "").length
    : 0;
  const complete = delivered === total && stats.events === total && deadLetters === 0;
  out.write(finalReport(stats, total, delivered, output, complete));
  return { complete, written: total, events: delivered, errors: deadLetters, output };
}

function summaryLine(seconds: number, s: Stats, rate: number, rotations: number): string {
  const kinds = [...s.kinds].map(([k, n]) => `${k} ${n}`).join(" ");
  const top = s
    .top(3)
    .map(([r, n]) => `${r} ${n}`)
    .join(", ");
  return `[${seconds.toFixed(1).padStart(6)}s] events ${s.events} (${Math.round(rate)}/s) | ${kinds} | hard ${s.hard} | top: ${top} | rotations ${rotations}\n`;
}

function finalReport(
  s: Stats,
  written: number,
  delivered: number,
  output: string,
  complete: boolean,
): string {
  const lines = [
    "",
    `records written by the simulator: ${written}`,
    `events in the output file:        ${delivered}  (${[...s.kinds].map(([k, n]) => `${k} ${n}`).join(", ")})`,
    `hard bounces:                     ${s.hard}`,
    `records set aside:                ${s.errors}`,
    "reasons:",
    ...s.top(40).map(([r, n]) => `  ${r.padEnd(24)} ${n}`),
    complete
      ? `OK: every simulated record arrived as an event (${output})`
      : `MISMATCH: ${written - delivered} record(s) missing, ${s.errors} set aside (${output})`,
    "",
  ];
  return lines.join("\n");
}
