import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchOptions } from "./args.js";
import { daemonWorkspace, startDaemon } from "./daemon.js";
import { LiveWriter } from "./live-writer.js";
import { machineWindow } from "./proc.js";
import type { Receiver } from "./receiver-client.js";
import { fixed } from "./stats.js";

export interface IdleResult {
  readonly seconds: number;
  /** CPU of the daemon over the window, % of one core: empty directory. */
  readonly emptyDirPercent: number;
  /** The same with one caught-up file that nobody writes to. */
  readonly quietFilePercent: number;
  readonly rssMiB: number;
  readonly otherLoadCores: number;
}

/**
 * Idle cost: the daemon on an empty directory, 5 s warm-up, then CPU over the window; then one file of
 * 1,000 records, delivered, and the same window with no writes (the case of a quiet night).
 */
export async function idleMode(opts: BenchOptions, rx: Receiver, work: string): Promise<IdleResult> {
  console.log(`\n## Idle: daemon CPU over ${opts.idleSeconds} s with no writes\n`);
  const dir = join(work, "idle");
  mkdirSync(dir, { recursive: true });
  const ws = daemonWorkspace(dir, rx.url("/events"));
  rx.reset(true);
  const m = await startDaemon(ws, "idle");
  const measure = async (): Promise<{ percent: number; other: number }> => {
    await sleep(5000);
    const a = m.sample()?.cpuSeconds ?? Number.NaN;
    const window = machineWindow();
    const t0 = performance.now();
    await sleep(opts.idleSeconds * 1000);
    const b = m.sample()?.cpuSeconds ?? Number.NaN;
    const s = (performance.now() - t0) / 1000;
    return { percent: ((b - a) / s) * 100, other: window.end(b - a).otherCores };
  };
  const empty = await measure();
  console.log(
    `empty directory:            ${fixed(empty.percent, 3)} % of a core (target < 0.5 %: ${empty.percent < 0.5 ? "met" : "NOT met"})`,
  );
  const writer = new LiveWriter(ws.liveDir, ws.archiveDir, opts.seed + 200);
  writer.append(1000);
  await rx.waitFor(1000);
  const quiet = await measure();
  writer.close();
  console.log(
    `one caught-up quiet file:   ${fixed(quiet.percent, 3)} % of a core (target < 0.5 %: ${quiet.percent < 0.5 ? "met" : "NOT met"})`,
  );
  const rss = m.sample()?.rssMiB ?? Number.NaN;
  await m.stop();
  console.log(
    `RSS while idle ${fixed(rss, 1)} MiB (CPU ticks are 10 ms: ±${fixed((0.01 / opts.idleSeconds) * 100, 3)} %)`,
  );
  return {
    seconds: opts.idleSeconds,
    emptyDirPercent: empty.percent,
    quietFilePercent: quiet.percent,
    rssMiB: rss,
    otherLoadCores: Math.max(empty.other, quiet.other),
  };
}
