/**
 * `npm run bench:rotations [-- --rotations N --latency-samples M]`: runs the real daemon with the
 * default timing settings while the simulator rotates the bounces file N times, and prints
 * rotation-to-delivery latency (a record written as the first of a freshly rotated file → its
 * event in the output) and the daemon's open descriptors before and after. Prints numbers only.
 */
import { openSync, readdirSync, readSync, rmSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { PmtaSimulator } from "../src/simulate/pmta-simulator.js";
import { makeWorkspace, startRun } from "../test/support/run-harness.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const ROTATIONS = arg("rotations", 1000);
const SAMPLES = arg("latency-samples", 100);

// Default timings (rescanInterval 500ms, sealAfter 60s, checkpointInterval 1s) except the batch wait:
// a lone record would otherwise sit out batch.maxWait (1s), which is a batching choice, not discovery.
const ws = makeWorkspace("pmta-rot-", {
  rescanInterval: "500ms",
  sealAfter: "60s",
  checkpointInterval: "1s",
  batch: { maxEvents: 500, maxWait: "50ms" },
});
const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 99, streams: ["bounces"] });
const run = startRun(ws);
const pid = run.child.pid as number;
const fds = (): number => readdirSync(`/proc/${pid}/fd`).length;

// Follow the output incrementally: count events and remember the X-FBLId sequence numbers seen.
const seen = new Set<number>();
let fd = -1;
let pos = 0;
let carry = "";
const buf = Buffer.alloc(1 << 20);
function poll(): void {
  if (fd < 0) {
    try {
      fd = openSync(ws.output, "r");
    } catch {
      return;
    }
  }
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) return;
    pos += n;
    const lines = (carry + buf.subarray(0, n).toString("utf8")).split("\n");
    carry = lines.pop() ?? "";
    for (const l of lines) {
      const m = /"X-FBLId":"(\d+)-/.exec(l);
      if (m !== null) seen.add(Number(m[1]));
    }
  }
}
async function waitSeq(seq: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!seen.has(seq)) {
    if (performance.now() > deadline)
      throw new Error(`record ${seq} not delivered in ${timeoutMs} ms\n${run.stderr().slice(-2000)}`);
    await sleep(2);
    poll();
  }
}

await sim.writeRecords(10);
await waitSeq(10, 30_000);
const fdsBefore = fds();
const latencies: number[] = [];
for (let i = 0; i < ROTATIONS; i++) {
  await sim.rotate();
  const t0 = performance.now();
  await sim.writeRecords(1);
  if (i < SAMPLES) {
    const seq = sim.records().length;
    await waitSeq(seq, 30_000);
    latencies.push(performance.now() - t0);
  }
}
await sim.writeRecords(1);
await waitSeq(sim.records().length, 60_000);
for (let s = 1; s <= sim.records().length; s++) if (!seen.has(s)) throw new Error(`record ${s} missing`);
await sleep(1500); // one rescan and checkpoint period: descriptors of drained files are returned
const fdsAfter = fds();
run.child.kill("SIGTERM");
await run.exited;
await sim.stop();
rmSync(ws.root, { recursive: true, force: true });

latencies.sort((a, b) => a - b);
const q = (p: number) =>
  (latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] as number).toFixed(0);
console.log(
  JSON.stringify(
    {
      rotations: ROTATIONS,
      recordsDelivered: seen.size,
      rotationToDeliveryMs: {
        samples: latencies.length,
        p50: Number(q(0.5)),
        p99: Number(q(0.99)),
        max: Number(q(1)),
      },
      openDescriptors: { before: fdsBefore, afterRotations: fdsAfter },
    },
    null,
    2,
  ),
);
