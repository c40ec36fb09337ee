import { copyFileSync, linkSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { checkpointOffsets, daemonWorkspace, problems, startDaemon, stoppedCounters } from "./daemon.js";
import type { DataFile } from "./data.js";
import type { Measured, StopResult } from "./measured.js";
import { type MachineLoad, machineWindow } from "./proc.js";
import type { Receiver } from "./receiver-client.js";

/**
 * One catch-up run: a shipper starts on a fresh state with the whole file already written, and the
 * clock runs from spawn until every event is acknowledged — the receiver has all N, and (for our
 * daemon) the durable checkpoint covers the whole file — then SIGTERM and reap. That is the
 * perf-peers.md method ("start → the sink has everything → shipper exited") plus the checkpoint.
 */
export interface RunResult {
  readonly shipper: string;
  /** spawn → receiver has all N events. */
  readonly wallReceived: number;
  /** spawn → all received and (daemon) checkpoint at the end of the file. The headline wall time. */
  readonly wallAcked: number;
  /** spawn → process exited after SIGTERM (perf-peers' definition). */
  readonly wallExit: number;
  /** Whole-process CPU, start-up and shutdown included (/usr/bin/time, else /proc just before SIGTERM). */
  readonly cpu: number;
  /** The system (kernel) part of cpu, when /usr/bin/time measured it. */
  readonly sys?: number;
  /** CPU until everything was acknowledged (/proc just before SIGTERM). */
  readonly cpuAtAcked: number;
  readonly peakRssMiB: number;
  readonly received: number;
  /** Request body bytes the receiver got (the shipper's event JSON plus framing). */
  readonly bodyBytes: number;
  readonly receiverCpu: number;
  readonly load: MachineLoad;
  readonly counters?: Record<string, number>;
  readonly warnings: readonly string[];
  readonly dir: string;
}

export interface RunHooks {
  /** Called once when half the events have arrived (the profiler's heap snapshot). */
  readonly onHalf?: (m: Measured) => void;
  readonly nodeArgs?: readonly string[];
  readonly timeoutMs?: number;
}

/** Hard-links the data file into the live directory (same file system), or copies it. */
export function placeFile(source: string, target: string): void {
  try {
    linkSync(source, target);
  } catch {
    copyFileSync(source, target);
  }
}

async function untilDone<T>(p: Promise<T>, m: Measured, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${m.name}: ${what} not reached in ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
  });
  const died = m.done.then(([code, signal]) => {
    throw new Error(
      `${m.name} exited early (code ${code}, signal ${signal}) before ${what}:\n${m.logs().slice(-3000)}`,
    );
  });
  try {
    return await Promise.race([p, timeout, died]);
  } finally {
    clearTimeout(timer);
  }
}

export async function finish(
  shipper: string,
  m: Measured,
  rx: Receiver,
  rxCpu0: number,
  window: ReturnType<typeof machineWindow>,
  wallReceived: number,
  wallAcked: number,
  records: number,
): Promise<RunResult> {
  const stop: StopResult = await m.stop();
  const rxStats = await rx.stats();
  const cpuAtAcked = stop.atStop?.cpuSeconds ?? Number.NaN;
  const cpu = stop.time?.cpuSeconds ?? cpuAtAcked;
  const receiverCpu = rxStats.cpuSeconds - rxCpu0;
  const logs = m.logs();
  const counters = stoppedCounters(logs);
  return {
    shipper,
    wallReceived,
    wallAcked,
    wallExit: stop.wallExitSeconds,
    cpu,
    ...(stop.time === undefined ? {} : { sys: stop.time.sysSeconds }),
    cpuAtAcked,
    peakRssMiB: Math.max(stop.time?.maxRssMiB ?? 0, stop.atStop?.hwmMiB ?? 0),
    received: rxStats.events,
    bodyBytes: rxStats.bodyBytes,
    receiverCpu,
    load: window.end(cpu + receiverCpu),
    ...(counters === undefined ? {} : { counters }),
    warnings: problems(logs).concat(
      rxStats.events === records ? [] : [`receiver counted ${rxStats.events} events for ${records} records`],
    ),
    dir: m.dir,
  };
}

/** Our daemon on the catch-up file. */
export async function runDaemonCatchUp(
  data: DataFile,
  rx: Receiver,
  workRoot: string,
  name: string,
  hooks: RunHooks = {},
): Promise<RunResult> {
  const dir = join(workRoot, name);
  mkdirSync(dir, { recursive: true });
  const ws = daemonWorkspace(dir, rx.url("/events"));
  const file = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
  placeFile(data.path, file);
  rx.reset(false);
  const rxCpu0 = (await rx.stats()).cpuSeconds;
  const timeoutMs = hooks.timeoutMs ?? 600_000;
  const window = machineWindow();
  const m = await startDaemon(ws, name, hooks.nodeArgs ?? []);
  if (hooks.onHalf !== undefined) {
    const onHalf = hooks.onHalf;
    void rx.waitFor(Math.floor(data.records / 2)).then(() => {
      if (m.running) onHalf(m);
    });
  }
  await untilDone(rx.waitFor(data.records), m, timeoutMs, "all events received");
  const wallReceived = (performance.now() - m.startedAt) / 1000;
  await untilDone(
    (async () => {
      while (((await checkpointOffsets(ws.stateDir)).get(file) ?? 0) < data.bytes) await sleep(10);
    })(),
    m,
    30_000,
    "checkpoint at the end of the file",
  );
  const wallAcked = (performance.now() - m.startedAt) / 1000;
  return finish("pmta-ingest", m, rx, rxCpu0, window, wallReceived, wallAcked, data.records);
}
