/**
 * `npm run bench`: the end-to-end benchmark of issue 7. Generates the realistic bounces file (seeded,
 * reproducible, git-ignored), starts a receiver in its own process on 127.0.0.1, and runs the real
 * `pmta-ingest run` — tail, decode, classify, batch, HTTP, checkpoint — from spawn until every event is
 * acknowledged and checkpointed; prints records/s, CPU seconds per million records and peak RSS (from
 * the OS), median of several runs. With syslog-ng (+ its http module) installed, it runs the
 * perf-peers.md config on the same file and receiver, alternating with ours, and prints the ratios.
 * Other modes: --latency, --idle, --steady MINUTES, --pathological, --profile (see --help).
 * Prints numbers and whether each target of the issue is met; never fails on a missed target.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { HELP, parseArgs, UsageError } from "./lib/args.js";
import { type RunResult, runDaemonCatchUp } from "./lib/catch-up.js";
import { CLI, unitEnvironment, unitNodeFlags } from "./lib/daemon.js";
import { DATA_DIR, ensureBouncesFile, warmPageCache } from "./lib/data.js";
import { idleMode } from "./lib/idle.js";
import { latencyMode, steadyMode } from "./lib/live.js";
import { pathologicalMode } from "./lib/pathological.js";
import { profileMode } from "./lib/profile.js";
import { Receiver } from "./lib/receiver-client.js";
import { catchUpTable, ratios, summarise, TARGETS, verdict } from "./lib/report.js";
import { fixed } from "./lib/stats.js";
import { runSyslogNgCatchUp, syslogNgStatus } from "./syslog-ng.js";

const parsed = (() => {
  try {
    return parseArgs(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
})();
if (parsed === "help") {
  console.log(HELP);
  process.exit(0);
}
const opts = parsed;
const results: Record<string, unknown> = { options: opts };

function machineLine(): string {
  const la = loadavg().map((x) => x.toFixed(2));
  return `${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, load average ${la.join(" ")}`;
}

async function catchUp(rx: Receiver, work: string): Promise<void> {
  const data = await ensureBouncesFile(opts.seed, opts.records);
  const bpr = data.bytes / data.records;
  console.log(
    `\n## Catch-up: ${data.records.toLocaleString("en-US")} records already written, fresh state, until all acknowledged\n\nfile: ${data.path}\n  ${(data.bytes / 1e6).toFixed(1)} MB, ${bpr.toFixed(1)} bytes a record, ${(data.rbShare * 100).toFixed(1)} % rb, ${(data.quotedShare * 100).toFixed(1)} % with quoted fields (seed ${opts.seed})`,
  );
  const status = opts.syslogNg ? syslogNgStatus(join(work, "syslog-ng-check")) : undefined;
  if (status?.ok === true)
    console.log(`syslog-ng ${status.version} found: running it side by side, alternating`);
  else if (status !== undefined) console.log(`${status.why}, reference numbers from perf-peers.md shown`);
  else console.log("syslog-ng skipped (--no-syslog-ng), reference numbers from perf-peers.md shown");
  warmPageCache(data.path);

  const ours: RunResult[] = [];
  const peer: RunResult[] = [];
  const line = (i: number, r: RunResult) =>
    console.log(
      `  run ${i + 1} ${r.shipper.padEnd(11)} acked ${fixed(r.wallAcked, 3)} s (received ${fixed(r.wallReceived, 3)}, exit ${fixed(r.wallExit, 3)})  CPU ${fixed(r.cpu, 2)} s${r.sys === undefined ? "" : ` (sys ${fixed(r.sys, 2)})`}  peak ${fixed(r.peakRssMiB, 1)} MiB  events ${r.received} (${fixed(r.bodyBytes / Math.max(1, r.received), 0)} B each)  receiver ${fixed(r.receiverCpu, 2)} s  machine busy ${fixed(r.load.busyCores, 2)} cores (others ${fixed(r.load.otherCores, 2)})${r.warnings.length > 0 ? `\n    ${r.warnings.join("\n    ")}` : ""}`,
    );
  for (let i = 0; i < opts.runs; i++) {
    const o = await runDaemonCatchUp(data, rx, work, `ours-${i + 1}`);
    ours.push(o);
    line(i, o);
    if (status?.ok === true) {
      const p = await runSyslogNgCatchUp(status.bin, data, rx, work, `syslog-ng-${i + 1}`);
      peer.push(p);
      line(i, p);
    }
  }
  const sums = [summarise(ours, data.records, data.bytes)];
  if (peer.length > 0) sums.push(summarise(peer, data.records, data.bytes));
  console.log(`\n${catchUpTable(sums, bpr, data.records)}\n`);
  const r = ratios(ours, peer.length > 0 ? peer : undefined, data.records);
  const ourSum = sums[0] as (typeof sums)[number];
  const vs = r.measured
    ? `syslog-ng measured side by side (pair by pair, ${peer.length} pairs)`
    : "syslog-ng's reference figures (perf-peers.md, not measured here)";
  console.log(`ratios vs ${vs}:`);
  console.log(
    `  wall (to all acked)  ${fixed(r.wall, 3)}×${r.measured ? ` (${fixed(r.wallMin, 3)}–${fixed(r.wallMax, 3)})` : ""}   target ≤ ${TARGETS.wallVsSyslogNg}× : ${verdict(r.wall <= TARGETS.wallVsSyslogNg)}`,
  );
  console.log(
    `  CPU                  ${fixed(r.cpu, 3)}×${r.measured ? ` (${fixed(r.cpuMin, 3)}–${fixed(r.cpuMax, 3)})` : ""}   target ≤ ${TARGETS.cpuVsSyslogNg}× : ${verdict(r.cpu <= TARGETS.cpuVsSyslogNg)}`,
  );
  console.log(`  wall (to exit)       ${fixed(r.wallExit, 3)}×`);
  console.log(
    `  peak RSS             ${fixed(ourSum.peakRssMiB, 1)} MiB   target ≤ ${TARGETS.peakRssMiB} MiB : ${verdict(ourSum.peakRssMiB <= TARGETS.peakRssMiB)}`,
  );
  console.log(
    `machine while measuring: load average ${fixed(ourSum.loadavg1, 2)}, other processes used ${fixed(ourSum.otherLoadCores, 2)} of ${cpus().length} cores during our runs (median)`,
  );
  results.catchUp = { file: data, ours, syslogNg: peer, summaries: sums, ratios: r };
}

function stages(): void {
  console.log(
    `\n## Stages alone (bench/decode-classify.js, ${opts.stageRecords.toLocaleString("en-US")} records, one core, in-process)\n`,
  );
  const r = spawnSync(
    process.execPath,
    [join(import.meta.dirname, "decode-classify.js"), "--records", String(opts.stageRecords), "--runs", "3"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  );
  process.stdout.write(r.stdout);
  results.stages = r.stdout;
}

/** How the daemon is started: the unit's environment and Node flags, and the script. */
function daemonLine(): string {
  const env = Object.entries(unitEnvironment()).map(([k, v]) => `${k}=${v}`);
  return [...env, "node", ...unitNodeFlags(), CLI.replace(`${process.cwd()}/`, ""), "run"].join(" ");
}

async function main(): Promise<void> {
  console.log(`# pmta-ingest pipeline benchmark\n\nmachine: ${machineLine()}`);
  console.log(`daemon: ${daemonLine()}`);
  mkdirSync(DATA_DIR, { recursive: true });
  // Under bench/data/ so the data file can be hard-linked into each run's live directory.
  const work = mkdtempSync(join(DATA_DIR, ".work-"));
  const rx = await Receiver.start();
  try {
    if (opts.catchUp) await catchUp(rx, work);
    if (opts.stages) stages();
    if (opts.profile) results.profile = await profileMode(opts, rx, work);
    if (opts.latency) results.latency = await latencyMode(opts, rx, work);
    if (opts.idle) results.idle = await idleMode(opts, rx, work);
    if (opts.steady > 0) results.steady = await steadyMode(opts, rx, work);
    if (opts.pathological) results.pathological = await pathologicalMode(opts, rx, work);
  } finally {
    await rx.close();
    if (opts.keep) console.log(`\nwork directories kept: ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
  console.log(`\nmachine at the end: ${machineLine()}`);
  if (opts.json !== undefined) writeFileSync(opts.json, `${JSON.stringify(results, null, 2)}\n`);
}

await main();
