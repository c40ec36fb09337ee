import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { after, describe, it } from "node:test";
import { CheckpointStore } from "../src/checkpoint/checkpoint-store.js";
import { PmtaSimulator } from "../src/simulate/pmta-simulator.js";
import {
  makeWorkspace,
  readDelivered,
  startRun,
  tally,
  type Workspace,
  waitUntil,
} from "./support/run-harness.js";

const workspaces: Workspace[] = [];
after(() => {
  for (const ws of workspaces) rmSync(ws.root, { recursive: true, force: true });
});

function workspace(extra: Record<string, unknown> = {}): Workspace {
  const ws = makeWorkspace("pmta-tail-", extra);
  workspaces.push(ws);
  return ws;
}

/** Waits until every record the simulator wrote has been delivered at least once. */
async function allDelivered(ws: Workspace, sim: PmtaSimulator, stderr: () => string): Promise<void> {
  await waitUntil(
    () => tally(sim.records(), readDelivered(ws)).lost.length === 0,
    20_000,
    () =>
      `lost ${JSON.stringify(tally(sim.records(), readDelivered(ws)).lost.slice(0, 5))}\n${stderr().slice(-2000)}`,
  );
}

/** Every checkpoint offset must be a record boundary of the file it names (or its end). */
async function assertCheckpointsOnBoundaries(ws: Workspace, sim: PmtaSimulator): Promise<void> {
  const { snapshot } = await new CheckpointStore(ws.stateDir).load();
  assert.ok(snapshot.files.length > 0, "checkpoints were written");
  const boundaries = new Map<number, Set<number>>();
  for (const r of sim.records()) {
    const set = boundaries.get(r.ino) ?? new Set<number>([0]);
    set.add(r.offset);
    set.add(r.offset + r.length);
    boundaries.set(r.ino, set);
  }
  for (const cp of snapshot.files) {
    const set = boundaries.get(cp.ino);
    if (set === undefined) continue;
    // The header line ends before the first record: its end is the first record's offset.
    assert.ok(
      set.has(cp.offset) || cp.offset === 0,
      `checkpoint ${cp.path}@${cp.offset} is on a record boundary`,
    );
  }
}

describe("pmta-ingest run (tailer)", () => {
  for (const rotationOrder of ["move-then-create", "create-then-move"] as const) {
    it(`follows files through rotations (${rotationOrder}), late writes and split writes: exactly once`, async () => {
      const ws = workspace();
      const sim = new PmtaSimulator({
        liveDir: ws.liveDir,
        seed: 7,
        rotationOrder,
        splitWrites: true,
        lateWritesAfterMove: 2,
      });
      const run = startRun(ws);
      for (let round = 0; round < 8; round++) {
        await sim.writeRecords(120);
        await sim.rotate();
      }
      await sim.writeRecords(50);
      await allDelivered(ws, sim, run.stderr);
      run.child.kill("SIGTERM");
      const exit = await run.exited;
      assert.equal(exit.code, 0, run.stderr());
      const t = tally(sim.records(), readDelivered(ws));
      assert.deepEqual(t.lost, []);
      assert.equal(t.duplicates, 0, "no duplicates without crashes");
      assert.equal(t.unexpected, 0);
      await assertCheckpointsOnBoundaries(ws, sim);

      // A restart after a graceful stop delivers nothing twice.
      const again = startRun(ws);
      await sim.writeRecords(20);
      await allDelivered(ws, sim, again.stderr);
      again.child.kill("SIGTERM");
      assert.equal((await again.exited).code, 0);
      assert.equal(tally(sim.records(), readDelivered(ws)).duplicates, 0, again.stderr());
      await sim.stop();
    });
  }

  it("sets a sealed file's trailing partial record aside in the dead-letter file, flagged partial", async () => {
    const ws = workspace();
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 11, streams: ["bounces"] });
    const run = startRun(ws);
    await sim.writeRecords(30);
    const partialAt = sim.liveFile("bounces")?.bytes;
    await sim.writePartial("bounces", 40);
    await sim.rotate("bounces");
    await sim.writeRecords(10);
    await allDelivered(ws, sim, run.stderr);
    await waitUntil(
      () => existsSync(ws.deadLetter),
      10_000,
      () => run.stderr().slice(-2000),
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0);
    const entries = readFileSync(ws.deadLetter, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { reason: string; offset: number; length: number; file: string });
    assert.equal(entries.length, 1);
    assert.equal(entries[0]?.reason, "partial-record");
    assert.equal(entries[0]?.length, 40);
    assert.equal(entries[0]?.offset, partialAt);
    assert.match(entries[0]?.file ?? "", /accounting\/bounces\/bounces-/);
    assert.equal(tally(sim.records(), readDelivered(ws)).duplicates, 0);
    await sim.stop();
  });

  it("reads a file whose inode was reused while stopped from the start, never at the stale offset", async () => {
    const ws = workspace();
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 12, streams: ["bounces"] });
    const first = startRun(ws);
    await sim.writeRecords(40);
    await allDelivered(ws, sim, first.stderr);
    first.child.kill("SIGTERM");
    assert.equal((await first.exited).code, 0);
    await sim.reuseInode("bounces");
    await sim.writeRecords(5);
    const second = startRun(ws);
    await allDelivered(ws, sim, second.stderr);
    second.child.kill("SIGTERM");
    assert.equal((await second.exited).code, 0);
    const live = sim.records().filter((r) => r.fate === undefined);
    assert.deepEqual(tally(live, readDelivered(ws)).lost, []);
    assert.match(second.stderr(), /checkpoint does not match the file on disk/);
    await sim.stop();
  });

  it("closes the descriptors of finished files (open fds stay flat over many rotations)", async () => {
    const ws = workspace();
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 13 });
    const run = startRun(ws);
    const fdsOf = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
    await sim.writeRecords(20);
    await allDelivered(ws, sim, run.stderr);
    const baseline = fdsOf(run.child.pid as number);
    for (let i = 0; i < 60; i++) {
      await sim.writeRecords(5);
      await sim.rotate();
    }
    await allDelivered(ws, sim, run.stderr);
    // Sealing needs the quiet period after the last rotation.
    await waitUntil(
      () => fdsOf(run.child.pid as number) <= baseline + 2,
      10_000,
      () => `fds ${fdsOf(run.child.pid as number)} vs baseline ${baseline}`,
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0);
    await sim.stop();
  });

  it("stops at start-up with one clear message for a bad config", async () => {
    const ws = workspace({ batch: { maxEventz: 5 } });
    const run = startRun(ws);
    const exit = await run.exited;
    assert.equal(exit.code, 2);
    assert.match(run.stderr(), /batch\.maxEventz/);
  });
});
