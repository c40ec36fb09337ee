import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, it } from "node:test";
import { decodeCheckpointFile } from "../src/checkpoint/checkpoint-store.js";
import { PmtaSimulator } from "../src/simulate/pmta-simulator.js";
import { makeWorkspace, readDelivered, startRun, tally, waitUntil } from "./support/run-harness.js";

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

// The state directory stops taking checkpoints mid-run (a directory where the store's temp file
// goes makes every save fail with EISDIR, even for root). Reading must pause once the window holds
// `inFlight.maxEvents` events a crash would re-send, the failure is retried at the checkpoint
// interval (not in a tight loop), and once saves work again everything is delivered exactly once.
it("pauses reading at the window while checkpoints fail, and delivers everything once they work again", async () => {
  const window = 100;
  const ws = makeWorkspace("pmta-ckfail-", {
    inFlight: { maxEvents: window },
    batch: { maxEvents: 25, maxWait: "20ms" },
    checkpointInterval: "1s",
  });
  roots.push(ws.root);
  const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 43 });
  const run = startRun(ws);
  await sim.writeRecords(40);
  const delivered = () => tally(sim.records(), readDelivered(ws));
  await waitUntil(
    () => delivered().lost.length === 0,
    20_000,
    () => run.stderr().slice(-2000),
  );
  const current = join(ws.stateDir, "checkpoints.json");
  await waitUntil(
    () => existsSync(current),
    20_000,
    () => run.stderr().slice(-2000),
  );
  const blocker = join(ws.stateDir, "checkpoints.json.tmp");
  mkdirSync(blocker);
  const brokenAt = performance.now();
  await sim.writeRecords(1_000);
  const failures = () => (run.stderr().match(/checkpoint write failed/g) ?? []).length;
  await waitUntil(
    () => failures() >= 3,
    20_000,
    () => run.stderr().slice(-2000),
  );

  // What was delivered beyond the last checkpoint that made it to disk is what a crash now would
  // send again: never more than the window.
  // (The live file itself: a load would refuse the state directory as it is now, naming the culprit.)
  const snapshot = decodeCheckpointFile(readFileSync(current));
  assert.ok(typeof snapshot !== "string", String(snapshot));
  const saved = new Map(snapshot.files.map((f) => [f.ino, f.offset]));
  const bySeq = new Map(sim.records().map((r) => [`${r.stream}:${r.seq}`, r]));
  const beyond = readDelivered(ws).filter((d) => {
    const r = bySeq.get(`${d.stream}:${d.seq}`);
    return r !== undefined && r.offset >= (saved.get(r.ino) ?? 0);
  });
  assert.ok(beyond.length <= window, `${beyond.length} delivered events not covered by a checkpoint`);
  assert.ok(delivered().lost.length > 0, "reading paused while nothing could be saved");
  const seconds = (performance.now() - brokenAt) / 1000;
  assert.ok(failures() <= seconds + 3, `${failures()} failed saves in ${seconds.toFixed(1)} s`);

  rmSync(blocker, { recursive: true });
  await waitUntil(
    () => delivered().lost.length === 0,
    20_000,
    () => run.stderr().slice(-2000),
  );
  run.child.kill("SIGTERM");
  assert.equal((await run.exited).code, 0, run.stderr().slice(-2000));
  const t = delivered();
  assert.equal(t.duplicates, 0);
  assert.equal(t.unexpected, 0);
  await sim.stop();
});
