import { existsSync, readdirSync, readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchOptions } from "./args.js";
import { runDaemonCatchUp } from "./catch-up.js";
import { ensureBouncesFile } from "./data.js";
import type { Receiver } from "./receiver-client.js";
import { fixed, int, table } from "./stats.js";

/**
 * Where the daemon spends its time and what holds its memory, for whoever optimises it: one catch-up
 * run under `node --cpu-prof` (top self-time functions, and the same by source file), and one with a
 * heap snapshot taken (SIGUSR2, `--heapsnapshot-signal`) when half the events have arrived — the
 * steady middle of the catch-up — summarised by constructor / node type.
 */

interface CpuNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}
interface CpuProfile {
  readonly nodes: readonly CpuNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface CpuRow {
  readonly name: string;
  readonly ms: number;
  readonly percent: number;
}

function shortUrl(url: string): string {
  if (url === "") return "";
  const dist = url.indexOf("/dist/");
  if (dist >= 0) return url.slice(dist + 6).replace(/\.js$/, ".ts");
  const nm = url.indexOf("/node_modules/");
  if (nm >= 0) return url.slice(nm + 14);
  return url;
}

const maps = new Map<string, SourceMap | undefined>();

/** `src/x.ts:<line>` for a compiled dist/ position (tsc writes .js.map files), else the url as given. */
function sourcePosition(url: string, line: number, column: number): string {
  const where = shortUrl(url);
  if (!url.startsWith("file:") || !url.includes("/dist/")) return where === "" ? "" : `${where}:${line + 1}`;
  let map = maps.get(url);
  if (!maps.has(url)) {
    const path = `${fileURLToPath(url)}.map`;
    map = existsSync(path) ? new SourceMap(JSON.parse(readFileSync(path, "utf8"))) : undefined;
    maps.set(url, map);
  }
  const entry = map?.findEntry(line, Math.max(0, column)) as { originalLine?: number } | undefined;
  return entry?.originalLine === undefined ? `${where}:js${line + 1}` : `${where}:${entry.originalLine + 1}`;
}

export function summariseCpuProfile(p: CpuProfile): { total: number; functions: CpuRow[]; files: CpuRow[] } {
  const byNode = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attributing it to sample i is V8's own convention.
  p.samples.forEach((id, i) => {
    byNode.set(id, (byNode.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  });
  const fn = new Map<string, number>();
  const file = new Map<string, number>();
  let total = 0;
  for (const n of p.nodes) {
    const us = byNode.get(n.id) ?? 0;
    if (us === 0) continue;
    total += us;
    const f = n.callFrame;
    const where = shortUrl(f.url);
    const pos = sourcePosition(f.url, f.lineNumber, f.columnNumber);
    const name = `${f.functionName || "(anonymous)"}${pos === "" ? "" : ` ${pos}`}`;
    fn.set(name, (fn.get(name) ?? 0) + us);
    const fileKey = where === "" ? f.functionName || "(native)" : where;
    file.set(fileKey, (file.get(fileKey) ?? 0) + us);
  }
  const rows = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, ms: us / 1000, percent: (us / total) * 100 }));
  return { total: total / 1000, functions: rows(fn), files: rows(file) };
}

export interface GcSummary {
  readonly scavenges: number;
  readonly markCompacts: number;
  /** Sum of the pauses V8 reports, ms. */
  readonly pauseMs: number;
  /** Largest heap in use before a collection, MB (V8's MB: 10^6 bytes). */
  readonly maxUsedMB: number;
  /** Largest heap committed, MB: the JS heap's share of RSS. */
  readonly maxCommittedMB: number;
  /** Largest heap in use right after a mark-compact: what is really live. */
  readonly maxLiveAfterMarkCompactMB: number;
}

/** Summary of `node --trace-gc` lines ("Scavenge 45.2 (60.1) -> 40.3 (62.1) MB, 1.2 / 0.0 ms …"). */
export function summariseTraceGc(text: string): GcSummary | undefined {
  const re =
    /(Scavenge|Mark-Compact|Mark-sweep|Minor Mark-Compact|Mark-Compact \(reduce\))[^\n]*?([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB, (?:pooled: [\d.]+ MB, )?([\d.]+) \/ ([\d.]+) ms/g;
  let scavenges = 0;
  let markCompacts = 0;
  let pauseMs = 0;
  let maxUsedMB = 0;
  let maxCommittedMB = 0;
  let maxLive = 0;
  for (const m of text.matchAll(re)) {
    const kind = m[1] as string;
    const before = Number(m[2]);
    const after = Number(m[4]);
    const committed = Math.max(Number(m[3]), Number(m[5]));
    if (kind === "Scavenge" || kind.startsWith("Minor")) scavenges++;
    else {
      markCompacts++;
      maxLive = Math.max(maxLive, after);
    }
    pauseMs += Number(m[6]);
    maxUsedMB = Math.max(maxUsedMB, before);
    maxCommittedMB = Math.max(maxCommittedMB, committed);
  }
  if (scavenges + markCompacts === 0) return undefined;
  return { scavenges, markCompacts, pauseMs, maxUsedMB, maxCommittedMB, maxLiveAfterMarkCompactMB: maxLive };
}

export interface HeapRow {
  readonly name: string;
  readonly count: number;
  readonly mib: number;
  readonly percent: number;
}

/** Self sizes in a V8 .heapsnapshot, grouped by node type and (for objects) constructor name. */
export function summariseHeapSnapshot(path: string): { totalMiB: number; nodes: number; rows: HeapRow[] } {
  const snap = JSON.parse(readFileSync(path, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf("type");
  const iName = fields.indexOf("name");
  const iSize = fields.indexOf("self_size");
  const groups = new Map<string, { count: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType] as number] ?? "?";
    const size = snap.nodes[i + iSize] as number;
    total += size;
    let key: string;
    if (type === "object" || type === "closure" || type === "native" || type === "hidden") {
      key = `${type}: ${(snap.strings[snap.nodes[i + iName] as number] ?? "?").slice(0, 60)}`;
    } else if (type === "array" || type === "code") {
      key = `${type}: ${(snap.strings[snap.nodes[i + iName] as number] ?? "?").slice(0, 40)}`;
    } else {
      key = type; // string, concatenated string, sliced string, number, …
    }
    const g = groups.get(key) ?? { count: 0, bytes: 0 };
    g.count++;
    g.bytes += size;
    groups.set(key, g);
  }
  const rows = [...groups.entries()]
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .map(([name, g]) => ({ name, count: g.count, mib: g.bytes / 2 ** 20, percent: (g.bytes / total) * 100 }));
  return { totalMiB: total / 2 ** 20, nodes: snap.nodes.length / width, rows };
}

export interface ProfileResult {
  readonly cpu: { total: number; functions: CpuRow[]; files: CpuRow[] } | undefined;
  readonly gc: GcSummary | undefined;
  readonly heap:
    | { totalMiB: number; nodes: number; rows: HeapRow[]; rssAtSnapshotMiB: number; peakRssMiB: number }
    | undefined;
}

export async function profileMode(opts: BenchOptions, rx: Receiver, work: string): Promise<ProfileResult> {
  const data = await ensureBouncesFile(opts.seed, opts.records);
  console.log(
    `\n## Profile: one catch-up of ${int(data.records)} records under --cpu-prof, one with a heap snapshot at half-way\n`,
  );
  const cpuRun = await runDaemonCatchUp(data, rx, work, "profile-cpu", {
    nodeArgs: ["--cpu-prof", "--cpu-prof-dir=cpu-prof", "--trace-gc"],
  });
  const gc = summariseTraceGc(readFileSync(join(cpuRun.dir, "profile-cpu.stdout.log"), "utf8"));
  if (gc !== undefined) {
    console.log(
      `GC (--trace-gc, same run): ${int(gc.scavenges)} scavenges, ${int(gc.markCompacts)} mark-compacts, ${fixed(gc.pauseMs / 1000, 2)} s of pauses; JS heap in use before a GC up to ${fixed(gc.maxUsedMB, 0)} MB, committed up to ${fixed(gc.maxCommittedMB, 0)} MB, live after a mark-compact at most ${fixed(gc.maxLiveAfterMarkCompactMB, 0)} MB; peak RSS of the run ${fixed(cpuRun.peakRssMiB, 0)} MiB\n`,
    );
  }
  let cpu: ProfileResult["cpu"];
  try {
    const dir = join(cpuRun.dir, "cpu-prof");
    const f = readdirSync(dir).find((n) => n.endsWith(".cpuprofile"));
    if (f === undefined) throw new Error(`no .cpuprofile in ${dir}`);
    cpu = summariseCpuProfile(JSON.parse(readFileSync(join(dir, f), "utf8")) as CpuProfile);
    console.log(
      `CPU profile: ${fixed(cpu.total / 1000, 2)} s sampled (run: ${fixed(cpuRun.wallAcked, 2)} s wall, ${fixed(cpuRun.cpu, 2)} s CPU incl. the profiler)\n\nTop self time by function:\n`,
    );
    console.log(
      table(
        ["function (file:line)", "self ms", "%"],
        cpu.functions.slice(0, 30).map((r) => [r.name, fixed(r.ms, 0), fixed(r.percent, 1)]),
      ),
    );
    console.log("\nSelf time by source file:\n");
    console.log(
      table(
        ["file", "self ms", "%"],
        cpu.files.slice(0, 15).map((r) => [r.name, fixed(r.ms, 0), fixed(r.percent, 1)]),
      ),
    );
  } catch (err) {
    console.log(`CPU profile not available: ${String(err)}`);
  }

  let rssAtSnapshot = Number.NaN;
  const heapRun = await runDaemonCatchUp(data, rx, work, "profile-heap", {
    nodeArgs: ["--heapsnapshot-signal=SIGUSR2"],
    onHalf: (m) => {
      rssAtSnapshot = m.sample()?.rssMiB ?? Number.NaN;
      m.signal("SIGUSR2");
    },
  });
  let heap: ProfileResult["heap"];
  try {
    const f = readdirSync(heapRun.dir).find((n) => n.endsWith(".heapsnapshot"));
    if (f === undefined) throw new Error(`no .heapsnapshot in ${heapRun.dir}`);
    const h = summariseHeapSnapshot(join(heapRun.dir, f));
    heap = { ...h, rssAtSnapshotMiB: rssAtSnapshot, peakRssMiB: heapRun.peakRssMiB };
    console.log(
      `\nHeap snapshot at half-way: ${fixed(h.totalMiB, 1)} MiB of live JS objects (${int(h.nodes)} nodes); RSS then ${fixed(rssAtSnapshot, 1)} MiB, so ~${fixed(rssAtSnapshot - h.totalMiB, 1)} MiB outside the JS heap objects (code, buffers' backing stores, V8 free space, native). Peak RSS of that run ${fixed(heapRun.peakRssMiB, 1)} MiB (the snapshot itself adds to it).\n`,
    );
    console.log(
      table(
        ["what (type: constructor)", "count", "MiB", "%"],
        h.rows.slice(0, 25).map((r) => [r.name, int(r.count), fixed(r.mib, 2), fixed(r.percent, 1)]),
      ),
    );
  } catch (err) {
    console.log(`heap snapshot not available: ${String(err)}`);
  }
  return {
    gc,
    cpu:
      cpu === undefined
        ? undefined
        : { ...cpu, functions: cpu.functions.slice(0, 60), files: cpu.files.slice(0, 30) },
    heap: heap === undefined ? undefined : { ...heap, rows: heap.rows.slice(0, 60) },
  };
}
