import { rmSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { PmtaSimulator } from "../../src/simulate/pmta-simulator.js";
import { createRng } from "../../src/simulate/rng.js";
import {
  makeWorkspace,
  offBoundaryCheckpoints,
  readDelivered,
  startRun,
  tally,
  waitUntil,
} from "./run-harness.js";

/**
 * The crash test: the real CLI is SIGKILLed again and again — at random moments and at named crash
 * points — while the simulator keeps writing and rotating, then restarted; at the end every record
 * the simulator wrote must have been delivered, duplicates may only come from the window that was in
 * flight (or acknowledged but not yet checkpointed) at each crash, and every checkpoint offset must
 * lie on a record boundary.
 */
export const CRASH_POINTS = [
  "after-read",
  "after-send",
  "after-ack-before-ckpt",
  "ckpt-after-temp-write",
  "ckpt-after-fsync",
  "ckpt-after-rename",
] as const;

export interface ChaosOptions {
  readonly trials: number;
  readonly seed: number;
  /** Events in flight at most (config inFlight.maxEvents); bounds the events a crash re-sends. */
  readonly window: number;
  readonly progress?: (line: string) => void;
}

export interface ChaosReport {
  readonly trials: number;
  readonly randomKills: number;
  readonly pointKills: Record<string, number>;
  /** Named-point trials where the point was not reached in time (killed by the driver instead). */
  readonly pointMisses: Record<string, number>;
  readonly records: number;
  readonly delivered: number;
  readonly lost: number;
  readonly duplicates: number;
  /**
   * The most duplicates that showed up in one run. A crash leaves at most `window` events to send
   * again, but when the next run is killed before it has re-read them (busy with other files), the
   * run after re-sends both crashes' events (and so on for more short runs in a row): one run can
   * show more than the window (seen: 300 with a window of 200) while each crash stayed within it.
   */
  readonly maxDuplicatesInOneRun: number;
  readonly rotations: number;
  readonly offBoundaryCheckpoints: number;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const ws = makeWorkspace("pmta-chaos-", {
    inFlight: { maxEvents: options.window },
    batch: { maxEvents: Math.max(1, Math.floor(options.window / 4)), maxWait: "20ms" },
  });
  const rng = createRng(options.seed);
  const sim = new PmtaSimulator({
    liveDir: ws.liveDir,
    seed: options.seed,
    splitWrites: true,
    lateWritesAfterMove: 1,
  });
  const pointKills: Record<string, number> = {};
  const pointMisses: Record<string, number> = {};
  let randomKills = 0;
  let maxDupPerRun = 0;
  let lastDup = 0;
  try {
    for (let trial = 0; trial < options.trials; trial++) {
      // Every other trial dies at a named point, taking the points in turn so each is covered.
      const point = trial % 2 === 1 ? CRASH_POINTS[((trial - 1) / 2) % CRASH_POINTS.length] : undefined;
      const env: Record<string, string> =
        point === undefined ? {} : { PMTA_INGEST_CRASH_AT: `${point}:${rng.int(1, 3)}` };
      const run = startRun(ws, env);
      // Named points get time to be reached; random kills land anywhere in start-up or steady state.
      const killAfter = point === undefined ? rng.int(30, 600) : 10_000;
      const started = performance.now();
      let died = false;
      void run.exited.then(() => {
        died = true;
      });
      // Keep PowerMTA busy while the daemon runs: writes, and a rotation now and then.
      while (!died && performance.now() - started < killAfter) {
        // About 1,000 records/s with a rotation every second or so: "hourly" compressed.
        await sim.writeRecords(rng.int(1, 30));
        if (rng.chance(0.03)) await sim.rotate();
        await sleep(rng.int(5, 25));
      }
      if (!died) run.child.kill("SIGKILL");
      const exit = await run.exited;
      if (exit.signal !== "SIGKILL" && exit.code !== 0) {
        throw new Error(
          `trial ${trial}: run exited with ${exit.code}/${exit.signal}\n${run.stderr().slice(-3000)}`,
        );
      }
      if (
        point !== undefined &&
        exit.signal === "SIGKILL" &&
        died &&
        performance.now() - started < killAfter
      ) {
        pointKills[point] = (pointKills[point] ?? 0) + 1;
      } else {
        randomKills++;
      }
      const t = tally(sim.records(), readDelivered(ws));
      const dupThisRun = t.duplicates - lastDup;
      maxDupPerRun = Math.max(maxDupPerRun, dupThisRun);
      lastDup = t.duplicates;
      if (process.env.CHAOS_DEBUG) {
        const mism = (run.stderr().match(/does not match/g) ?? []).length;
        const srcs = /"checkpoint":\{[^}]*\}/.exec(run.stderr())?.[0];
        options.progress?.(
          `trial ${trial}: point ${point ?? "-"} ${exit.signal ?? exit.code} dup+${dupThisRun} mismatches ${mism} ${srcs}`,
        );
      }
      if ((trial + 1) % 10 === 0) {
        options.progress?.(
          `trial ${trial + 1}/${options.trials}: written ${sim.records().length}, dup so far ${t.duplicates}`,
        );
      }
    }
    // Final run without faults: everything must arrive.
    const last = startRun(ws);
    await sim.writeRecords(10);
    await waitUntil(
      () => tally(sim.records(), readDelivered(ws)).lost.length === 0,
      60_000,
      () =>
        `still lost: ${JSON.stringify(tally(sim.records(), readDelivered(ws)).lost.slice(0, 10))}\n${last.stderr().slice(-3000)}`,
    );
    last.child.kill("SIGTERM");
    await last.exited;
    await sim.stop();
    const delivered = readDelivered(ws);
    const t = tally(sim.records(), delivered);
    maxDupPerRun = Math.max(maxDupPerRun, t.duplicates - lastDup);

    const { off } = await offBoundaryCheckpoints(ws, sim.records());
    return {
      trials: options.trials,
      randomKills,
      pointKills,
      pointMisses,
      records: sim.records().length,
      delivered: delivered.length,
      lost: t.lost.length,
      duplicates: t.duplicates,
      maxDuplicatesInOneRun: maxDupPerRun,
      rotations: sim.rotations.bounces + sim.rotations.fbl,
      offBoundaryCheckpoints: off.length,
    };
  } finally {
    await sim.stop().catch(() => undefined);
    rmSync(ws.root, { recursive: true, force: true });
  }
}
