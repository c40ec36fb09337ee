import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchOptions } from "./args.js";
import { daemonWorkspace, problems, startDaemon, stoppedCounters } from "./daemon.js";
import { appendAtRate, LiveWriter } from "./live-writer.js";
import { machineWindow } from "./proc.js";
import type { Receiver } from "./receiver-client.js";
import type { LatencySummary } from "./receiver-protocol.js";
import { fixed, int, median, minMax } from "./stats.js";

/**
 * A live file appended at a steady rate while the real daemon follows it: append → acknowledgement
 * latency (the acknowledgement is the receiver's 200: the moment it has the whole request body) and,
 * for long runs, RSS sampled every 5 s with a rotation every minute.
 */
export interface LiveResult {
  readonly seconds: number;
  readonly rate: number;
  readonly written: number;
  readonly delivered: number;
  readonly latencyMs: LatencySummary | undefined;
  readonly cpuPercentOfCore: number;
  readonly peakRssMiB: number;
  readonly rssSamplesMiB: readonly number[];
  readonly rotations: number;
  readonly otherLoadCores: number;
  readonly warnings: readonly string[];
}

async function runLive(
  opts: BenchOptions,
  rx: Receiver,
  work: string,
  name: string,
  seconds: number,
  rotateEverySeconds: number,
): Promise<LiveResult> {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const ws = daemonWorkspace(dir, rx.url("/events"));
  rx.reset(true);
  const m = await startDaemon(ws, name);
  // Let it start and list the empty directory: start-up is not what this mode measures.
  await sleep(2000);
  const writer = new LiveWriter(ws.liveDir, ws.archiveDir, opts.seed + 100);
  const cpu0 = m.sample()?.cpuSeconds ?? 0;
  const window = machineWindow();
  const rss: number[] = [];
  let nextSample = 0;
  let nextRotation = rotateEverySeconds > 0 ? rotateEverySeconds : Number.POSITIVE_INFINITY;
  let rotations = 0;
  const written = await appendAtRate(writer, opts.rate, seconds, (t) => {
    if (t >= nextSample) {
      rss.push(m.sample()?.rssMiB ?? Number.NaN);
      nextSample += 5;
    }
    if (t >= nextRotation) {
      writer.rotate();
      rotations++;
      nextRotation += rotateEverySeconds;
    }
  });
  const cpu1 = m.sample()?.cpuSeconds ?? Number.NaN;
  // Everything written must arrive; give the last batch its maxWait and a checkpoint period.
  const deadline = performance.now() + 30_000;
  let stats = await rx.stats();
  while (stats.distinct < written && performance.now() < deadline) {
    await sleep(50);
    stats = await rx.stats();
  }
  writer.close();
  const stop = await m.stop();
  const logs = m.logs();
  const counters = stoppedCounters(logs);
  const warnings = problems(logs);
  if (stats.distinct < written)
    warnings.push(`only ${stats.distinct} of ${written} records arrived within 30 s`);
  if (counters !== undefined && counters.deadLetters !== 0)
    warnings.push(`dead letters: ${counters.deadLetters}`);
  return {
    seconds,
    rate: opts.rate,
    written,
    delivered: stats.distinct,
    latencyMs: stats.latency,
    cpuPercentOfCore: ((cpu1 - cpu0) / seconds) * 100,
    peakRssMiB: Math.max(stop.time?.maxRssMiB ?? 0, stop.atStop?.hwmMiB ?? 0),
    rssSamplesMiB: rss,
    rotations,
    otherLoadCores: window.end(cpu1 - cpu0).otherCores,
    warnings,
  };
}

function latencyLine(l: LatencySummary | undefined): string {
  if (l === undefined) return "no samples";
  return `p50 ${fixed(l.p50, 1)} ms, p90 ${fixed(l.p90, 1)} ms, p99 ${fixed(l.p99, 1)} ms, max ${fixed(l.max, 1)} ms (${int(l.samples)} records)`;
}

export async function latencyMode(opts: BenchOptions, rx: Receiver, work: string): Promise<LiveResult> {
  console.log(
    `\n## Latency: ${int(opts.rate)} records/s appended to a live file for ${opts.seconds} s (default daemon settings)\n`,
  );
  const r = await runLive(opts, rx, work, "latency", opts.seconds, 0);
  console.log(`append → acknowledgement (receiver's 200): ${latencyLine(r.latencyMs)}`);
  console.log(
    `  target p99 ≤ 1000 ms: ${r.latencyMs !== undefined && r.latencyMs.p99 <= 1000 ? "met" : "NOT met"}; delivered ${int(r.delivered)} of ${int(r.written)}; daemon CPU ${fixed(r.cpuPercentOfCore, 1)} % of a core; peak RSS ${fixed(r.peakRssMiB, 1)} MiB; other load ${fixed(r.otherLoadCores, 2)} cores`,
  );
  for (const w of r.warnings) console.log(`  ! ${w}`);
  return r;
}

export async function steadyMode(opts: BenchOptions, rx: Receiver, work: string): Promise<LiveResult> {
  console.log(
    `\n## Steady: ${int(opts.rate)} records/s for ${opts.steady} min, rotation every minute, RSS every 5 s\n`,
  );
  const r = await runLive(opts, rx, work, "steady", opts.steady * 60, 60);
  // The first minute is warm-up (JIT, pools, first rotation); flatness is judged on the rest.
  const settled = r.rssSamplesMiB.slice(Math.min(12, Math.floor(r.rssSamplesMiB.length / 2)));
  const med = median(settled);
  const { min, max } = minMax(settled);
  const dev = Math.max(max - med, med - min) / med;
  console.log(
    `RSS after the first minute: min ${fixed(min, 1)} MiB, median ${fixed(med, 1)}, max ${fixed(max, 1)} → ±${fixed(dev * 100, 1)} % around the median; target ±10 %: ${dev <= 0.1 ? "met" : "NOT met"}`,
  );
  // A sawtooth (garbage collected in cycles) and a leak both miss ±10 %; the per-minute lows tell them apart.
  const lows: string[] = [];
  const highs: string[] = [];
  for (let i = 0; i < r.rssSamplesMiB.length; i += 12) {
    const minute = minMax(r.rssSamplesMiB.slice(i, i + 12));
    lows.push(minute.min.toFixed(0));
    highs.push(minute.max.toFixed(0));
  }
  console.log(`RSS per minute, low: ${lows.join(" ")}  high: ${highs.join(" ")} (MiB)`);
  console.log(`RSS samples (MiB, every 5 s): ${r.rssSamplesMiB.map((x) => x.toFixed(0)).join(" ")}`);
  console.log(
    `rotations ${r.rotations}; delivered ${int(r.delivered)} of ${int(r.written)}; latency ${latencyLine(r.latencyMs)}; daemon CPU ${fixed(r.cpuPercentOfCore, 1)} % of a core; peak RSS ${fixed(r.peakRssMiB, 1)} MiB`,
  );
  for (const w of r.warnings) console.log(`  ! ${w}`);
  return r;
}
