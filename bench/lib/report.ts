import type { RunResult } from "./catch-up.js";
import { fixed, int, median, minMax, table } from "./stats.js";

/**
 * Reference figures from /work/shared/reference/perf-peers.md (same 2-core machine class, Node 20,
 * 1,000,000 records, 341.3 MB; medians). Shown next to ours; the ratios that count are the ones
 * measured side by side in the same run.
 */
export const PEERS = [
  { name: "syslog-ng 3.38 (perf-peers.md)", wall: 6.207, spread: "5.864–6.333", cpuPerM: 9.55, rss: 38.5 },
  {
    name: "Node streamlined, own splitter (perf-peers.md)",
    wall: 2.958,
    spread: "2.887–2.981",
    cpuPerM: 3.22,
    rss: 183.2,
  },
  {
    name: "rsyslog imfile → omfile, tail only (perf-peers.md)",
    wall: 2.06,
    spread: "2.059–2.132",
    cpuPerM: 2.05,
    rss: 11.3,
  },
] as const;

export const TARGETS = { wallVsSyslogNg: 0.6, cpuVsSyslogNg: 0.5, peakRssMiB: 96 } as const;

export interface Summary {
  readonly shipper: string;
  readonly runs: number;
  readonly wallAcked: number;
  readonly wallMin: number;
  readonly wallMax: number;
  readonly wallReceived: number;
  readonly wallExit: number;
  readonly recordsPerSecond: number;
  readonly mbPerSecond: number;
  readonly cpuPerMillion: number;
  readonly cpuAtAckedPerMillion: number;
  readonly peakRssMiB: number;
  readonly receiverCpu: number;
  readonly otherLoadCores: number;
  readonly loadavg1: number;
}

export function summarise(runs: readonly RunResult[], records: number, bytes: number): Summary {
  const walls = runs.map((r) => r.wallAcked);
  const { min, max } = minMax(walls);
  const wall = median(walls);
  return {
    shipper: runs[0]?.shipper ?? "?",
    runs: runs.length,
    wallAcked: wall,
    wallMin: min,
    wallMax: max,
    wallReceived: median(runs.map((r) => r.wallReceived)),
    wallExit: median(runs.map((r) => r.wallExit)),
    recordsPerSecond: records / wall,
    mbPerSecond: bytes / 1e6 / wall,
    cpuPerMillion: (median(runs.map((r) => r.cpu)) / records) * 1e6,
    cpuAtAckedPerMillion: (median(runs.map((r) => r.cpuAtAcked)) / records) * 1e6,
    peakRssMiB: median(runs.map((r) => r.peakRssMiB)),
    receiverCpu: median(runs.map((r) => r.receiverCpu)),
    otherLoadCores: median(runs.map((r) => r.load.otherCores)),
    loadavg1: median(runs.map((r) => r.load.loadavg1)),
  };
}

export function catchUpTable(ours: readonly Summary[], bytesPerRecord: number, records: number): string {
  const rows: string[][] = ours.map((s) => [
    `**${s.shipper}** (this run, ${s.runs} runs)`,
    `${fixed(s.wallAcked, 3)} (${fixed(s.wallMin, 3)}–${fixed(s.wallMax, 3)})`,
    fixed(s.wallExit, 3),
    int(s.recordsPerSecond),
    fixed(s.mbPerSecond, 1),
    fixed(s.cpuPerMillion, 2),
    fixed(s.peakRssMiB, 1),
    fixed(s.receiverCpu, 2),
  ]);
  for (const p of PEERS) {
    rows.push([
      p.name,
      `${fixed(p.wall, 3)} (${p.spread})`,
      "",
      int(1e6 / p.wall),
      fixed((341.26 * 1e6) / 1e6 / p.wall, 1),
      fixed(p.cpuPerM, 2),
      fixed(p.rss, 1),
      "",
    ]);
  }
  return `${table(
    [
      `shipper (catch-up, ${records.toLocaleString("en-US")} records; peers: 1M)`,
      "wall s to all acked (min–max)",
      "wall s to exit",
      "records/s",
      "MB/s",
      "CPU s per 1M",
      "peak RSS MiB",
      "receiver CPU s",
    ],
    rows,
  )}\n(this run's file: ${fixed(bytesPerRecord, 1)} bytes a record; perf-peers' file: 341.3)`;
}

export interface Ratios {
  readonly wall: number;
  readonly wallMin: number;
  readonly wallMax: number;
  readonly cpu: number;
  readonly cpuMin: number;
  readonly cpuMax: number;
  readonly wallExit: number;
  readonly measured: boolean;
}

/** Ours / syslog-ng pair by pair (runs alternate), or against the reference figures. */
export function ratios(
  ours: readonly RunResult[],
  peer: readonly RunResult[] | undefined,
  records: number,
): Ratios {
  if (peer === undefined || peer.length === 0) {
    const ref = PEERS[0];
    // The reference is for 1M records; a smaller file is compared at the same rate.
    const refWall = (ref.wall * records) / 1e6;
    const wall = median(ours.map((r) => r.wallAcked)) / refWall;
    const cpu = ((median(ours.map((r) => r.cpu)) / records) * 1e6) / ref.cpuPerM;
    return {
      wall,
      wallMin: wall,
      wallMax: wall,
      cpu,
      cpuMin: cpu,
      cpuMax: cpu,
      wallExit: median(ours.map((r) => r.wallExit)) / refWall,
      measured: false,
    };
  }
  const pairs = ours.slice(0, peer.length).map((o, i) => [o, peer[i] as RunResult] as const);
  const w = pairs.map(([o, p]) => o.wallAcked / p.wallAcked);
  const c = pairs.map(([o, p]) => o.cpu / p.cpu);
  const e = pairs.map(([o, p]) => o.wallExit / p.wallExit);
  return {
    wall: median(w),
    wallMin: minMax(w).min,
    wallMax: minMax(w).max,
    cpu: median(c),
    cpuMin: minMax(c).min,
    cpuMax: minMax(c).max,
    wallExit: median(e),
    measured: true,
  };
}

export function verdict(ok: boolean): string {
  return ok ? "met" : "NOT met";
}
