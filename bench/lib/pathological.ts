import { closeSync, mkdirSync, openSync, statSync, utimesSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { formatCsvRow } from "../../src/simulate/csv-row.js";
import { BOUNCES_HEADER, generateBounce } from "../../src/simulate/record-generator.js";
import { Rng } from "../../src/simulate/rng.js";
import type { BenchOptions } from "./args.js";
import {
  checkpointOffsets,
  type DaemonWorkspace,
  daemonWorkspace,
  problems,
  startDaemon,
  stoppedCounters,
} from "./daemon.js";
import { LiveWriter } from "./live-writer.js";
import type { ProcSample } from "./proc.js";
import type { Receiver } from "./receiver-client.js";
import type { LatencySummary } from "./receiver-protocol.js";
import { fixed, int, table } from "./stats.js";

/**
 * Bad input must neither blow memory nor stall other files. Each case puts the bad input next to a
 * normal live file that gets 20 records/s (stamped, so the receiver measures append → ack for them),
 * runs the daemon (default settings: maxRecordBytes 1 MiB) and reports its peak RSS, CPU, whether the
 * bad input was got through, and the normal records' latency while it was being processed.
 */
interface Case {
  readonly name: string;
  /** Writes the bad input; returns what "got through it" means for this case. */
  readonly setup: (ws: DaemonWorkspace) => Setup;
}

interface Setup {
  readonly describe: string;
  /** Called at a third of the time limit: completes the bad input, if the case has such a step. */
  readonly finish?: () => void;
  /** Whether the daemon got through the bad input (checkpoint past it / its records delivered). */
  readonly done: (ws: DaemonWorkspace, otherEvents: number) => Promise<boolean>;
}

async function checkpointedToEnd(ws: DaemonWorkspace, path: string): Promise<boolean> {
  return ((await checkpointOffsets(ws.stateDir)).get(path) ?? 0) >= statSync(path).size;
}

const MiB = 1024 * 1024;
const HEADER = formatCsvRow(BOUNCES_HEADER, "\r\n");

/** `head`, then whole copies of `line` up to about `totalBytes` (an even number of them). */
function writeBig(path: string, head: string, line: string, totalBytes: number): void {
  const fd = openSync(path, "w");
  try {
    writeSync(fd, head);
    const perBlock = 2 * Math.max(1, Math.floor(MiB / line.length / 2));
    const block = Buffer.from(line.repeat(perBlock));
    let lines = 2 * Math.floor(totalBytes / line.length / 2);
    while (lines > 0) {
      const n = Math.min(lines, perBlock);
      writeSync(fd, block, 0, n * line.length);
      lines -= n;
    }
  } finally {
    closeSync(fd);
  }
}

const CASES: readonly Case[] = [
  {
    name: "one 64 MiB unterminated record (a quote opened and not closed, lines inside, no end)",
    setup: (ws) => {
      const path = join(ws.liveDir, "bounces-2025-01-15-0001.csv");
      const filler = `${"x".repeat(120)} stray text inside an open quote, CRLF follows\r\n`;
      writeBig(path, `${HEADER}b,2025-01-15 08:00:00+0000,2025-01-15 08:00:00+0000,"`, filler, 64 * MiB);
      return {
        describe: `${(statSync(path).size / MiB).toFixed(0)} MiB; closed (quote, CRLF, one good record) at a third of the limit`,
        finish: () => {
          const values = generateBounce(new Rng(77), 9_000_001, new Date(Date.UTC(2025, 0, 15)));
          // No time stamp: the receiver must count it as "other", not as a normal-file record.
          values[BOUNCES_HEADER.indexOf("header_X-FBLId")] = "good-record-after-the-bad-one";
          writeFileSync(path, `"\r\n${formatCsvRow(values, "\r\n")}`, { flag: "a" });
        },
        done: async (w, other) => other >= 1 && (await checkpointedToEnd(w, path)),
      };
    },
  },
  {
    name: "100,000 tiny files in the archive (header + 1 record each, last written an hour ago)",
    setup: (ws) => {
      const rng = new Rng(4242);
      // As after an outage: PowerMTA wrote them earlier. (Files written just now are finished as
      // soon as read too, but stat'ed until quiet for sealAfter: a minute of listings after the
      // catch-up, which hid what the daemon costs once it is through.)
      const hourAgo = new Date(Date.now() - 3600_000);
      for (let i = 0; i < 100_000; i++) {
        const values = generateBounce(rng, 1_000_000 + i, new Date(Date.UTC(2025, 0, 14)));
        values[BOUNCES_HEADER.indexOf("header_X-FBLId")] = `archived-${i}`;
        const path = join(ws.archiveDir, `bounces-2025-01-14-${String(i).padStart(6, "0")}.csv`);
        writeFileSync(path, HEADER + formatCsvRow(values, "\r\n"));
        utimesSync(path, hourAgo, hourAgo);
      }
      return {
        describe: "100,000 archived files, 100,000 records",
        done: async (_w, other) => other >= 100_000,
      };
    },
  },
  {
    name: '64 MiB of lines of only quotes (341 " each: every two lines make one quoted field)',
    setup: (ws) => {
      const path = join(ws.liveDir, "bounces-2025-01-15-0002.csv");
      writeBig(path, HEADER, `${'"'.repeat(341)}\r\n`, 64 * MiB);
      const size = statSync(path).size;
      return {
        describe: `${(size / MiB).toFixed(0)} MiB, ${int((size - HEADER.length) / 343)} lines`,
        done: (w) => checkpointedToEnd(w, path),
      };
    },
  },
];

export interface PathoResult {
  readonly name: string;
  readonly input: string;
  readonly seconds: number;
  readonly through: string;
  readonly peakRssMiB: number;
  readonly cpuSeconds: number;
  readonly normalWritten: number;
  readonly normalDelivered: number;
  readonly normalLatencyMs: LatencySummary | undefined;
  readonly deadLetters: number | undefined;
  /** Events the receiver got that were not the normal file's. */
  readonly otherEvents: number;
  /** Once through (5–15 s after): share of a core and MB/s written to storage by the daemon. */
  readonly settled: { readonly cpuShare: number; readonly writeMBps: number } | undefined;
  readonly warnings: readonly string[];
}

export async function pathologicalMode(
  opts: BenchOptions,
  rx: Receiver,
  work: string,
): Promise<PathoResult[]> {
  console.log(
    `\n## Pathological input, each next to a normal live file at 20 records/s (limit ${opts.pathoSeconds} s per case)\n`,
  );
  const out: PathoResult[] = [];
  for (const [i, c] of CASES.entries()) {
    if (opts.pathoCase !== 0 && opts.pathoCase !== i + 1) continue;
    const dir = join(work, `patho-${i + 1}`);
    mkdirSync(dir, { recursive: true });
    const ws = daemonWorkspace(dir, rx.url("/events"));
    const t = performance.now();
    const setup = c.setup(ws);
    console.log(
      `case ${i + 1}: ${c.name}: ${setup.describe} (written in ${fixed((performance.now() - t) / 1000, 1)} s)`,
    );
    const writer = new LiveWriter(ws.liveDir, ws.archiveDir, opts.seed + 300 + i);
    rx.reset(true);
    const m = await startDaemon(ws, `patho-${i + 1}`);
    let finished = setup.finish === undefined;
    let through = "not through";
    let doneAt = Number.NaN;
    const t0 = performance.now();
    let lastWrite = 0;
    // The daemon once caught up: from 5 s after "through" to 15 s after (checkpoints, writes).
    let settledFrom: { at: number; sample: ProcSample } | undefined;
    let settled: { cpuShare: number; writeMBps: number } | undefined;
    for (;;) {
      const el = (performance.now() - t0) / 1000;
      const due = Math.floor(el * 20) - lastWrite;
      if (due > 0) {
        writer.append(due);
        lastWrite += due;
      }
      if (!finished && el >= opts.pathoSeconds / 3) {
        setup.finish?.();
        finished = true;
      }
      if (Number.isNaN(doneAt) && finished) {
        const stats = await rx.stats();
        if (await setup.done(ws, stats.events - stats.distinct)) {
          doneAt = el;
          through = `through in ${fixed(el, 1)} s`;
        }
      }
      if (!Number.isNaN(doneAt) && settledFrom === undefined && el >= doneAt + 5) {
        const sample = m.sample();
        if (sample !== undefined) settledFrom = { at: el, sample };
      }
      if (settledFrom !== undefined && settled === undefined && el >= doneAt + 15) {
        const now = m.sample();
        if (now !== undefined) {
          const dt = el - settledFrom.at;
          settled = {
            cpuShare: (now.cpuSeconds - settledFrom.sample.cpuSeconds) / dt,
            writeMBps: (now.writeBytes - settledFrom.sample.writeBytes) / dt / 1e6,
          };
        }
      }
      // Keep the normal file going 15 s past "through" (or the whole limit): it must not be stalled,
      // and the daemon's cost once caught up is measured over the last 10 s.
      const isThrough = !Number.isNaN(doneAt);
      if (
        (!isThrough && el >= opts.pathoSeconds) ||
        settled !== undefined ||
        (isThrough && el >= doneAt + 16)
      )
        break;
      if (!m.running) break;
      await sleep(50);
    }
    const seconds = (performance.now() - t0) / 1000;
    // The last normal records: their batch may wait maxWait (1 s) before it is sent.
    const deadline = performance.now() + 5000;
    let stats = await rx.stats();
    while (stats.distinct < writer.seq && performance.now() < deadline && m.running) {
      await sleep(50);
      stats = await rx.stats();
    }
    writer.close();
    const otherEvents = stats.events - stats.distinct;
    const stop = await m.stop();
    const logs = m.logs();
    const counters = stoppedCounters(logs);
    const r: PathoResult = {
      name: c.name,
      input: setup.describe,
      seconds,
      through,
      peakRssMiB: Math.max(stop.time?.maxRssMiB ?? 0, stop.atStop?.hwmMiB ?? 0),
      cpuSeconds: stop.time?.cpuSeconds ?? stop.atStop?.cpuSeconds ?? Number.NaN,
      normalWritten: writer.seq,
      normalDelivered: stats.distinct,
      normalLatencyMs: stats.latency,
      deadLetters: counters?.deadLetters,
      otherEvents,
      warnings: problems(logs, 3).map((l) => l.slice(0, 300)),
      settled,
    };
    out.push(r);
    console.log(
      `  ${r.through}; peak RSS ${fixed(r.peakRssMiB, 1)} MiB; CPU ${fixed(r.cpuSeconds, 1)} s over ${fixed(seconds, 1)} s; normal file: ${int(r.normalDelivered)} of ${int(r.normalWritten)} delivered, latency p50 ${fixed(r.normalLatencyMs?.p50 ?? Number.NaN, 0)} ms / p99 ${fixed(r.normalLatencyMs?.p99 ?? Number.NaN, 0)} ms / max ${fixed(r.normalLatencyMs?.max ?? Number.NaN, 0)} ms; other events ${int(r.otherEvents)}; dead letters ${r.deadLetters ?? "? (no stopped line)"}; exit ${stop.signal ?? stop.code}`,
    );
    if (r.settled !== undefined) {
      console.log(
        `  once through (5–15 s after, normal file still at 20 records/s): ${fixed(100 * r.settled.cpuShare, 1)} % of a core, ${fixed(r.settled.writeMBps, 2)} MB/s written`,
      );
    }
    for (const w of r.warnings) console.log(`    log: ${w}`);
  }
  console.log(
    `\n${table(
      [
        "case",
        "bad input",
        "other events",
        "peak RSS MiB",
        "normal p99 ms",
        "normal max ms",
        "normal delivered",
      ],
      out.map((r) => [
        r.name.split(" (")[0] as string,
        r.through,
        int(r.otherEvents),
        fixed(r.peakRssMiB, 1),
        fixed(r.normalLatencyMs?.p99 ?? Number.NaN, 0),
        fixed(r.normalLatencyMs?.max ?? Number.NaN, 0),
        `${int(r.normalDelivered)}/${int(r.normalWritten)}`,
      ]),
    )}`,
  );
  return out;
}
