import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout } from "node:timers/promises";
import { CheckpointStore } from "../src/checkpoint/checkpoint-store.js";
import { deliveredIds, ID_HEADER as HEADER, idRow as row } from "./support/id-rows.js";
import { makeWorkspace, startRun, type Workspace, waitUntil } from "./support/run-harness.js";

/**
 * A large archive backlog (more files than one listing adopts: 2,000) next to a live file: the live
 * file is not held back, every archived record arrives exactly once, and `startAt: end` covers every
 * file present at start even though adopting them takes several listings.
 */
const ARCHIVED = 2_500;

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function backlog(extra: Record<string, unknown> = {}): { ws: Workspace; live: string } {
  const ws = makeWorkspace("pmta-backlog-", extra);
  roots.push(ws.root);
  const archive = join(ws.liveDir, "accounting", "bounces");
  mkdirSync(archive, { recursive: true });
  mkdirSync(join(ws.liveDir, "accounting", "fbl"), { recursive: true });
  for (let i = 0; i < ARCHIVED; i++) {
    writeFileSync(
      join(archive, `bounces-2025-01-14-${String(i).padStart(6, "0")}.csv`),
      HEADER + row(`arch-${i}`),
    );
  }
  const live = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
  writeFileSync(live, HEADER + row("live-0"));
  return { ws, live };
}

/** Runs the daemon until the backlog and the live file's first record are delivered, then stops it. */
async function runThroughBacklog(ws: Workspace): Promise<void> {
  const run = startRun(ws);
  await waitUntil(
    () => deliveredIds(ws).length >= ARCHIVED + 1,
    60_000,
    () => `${deliveredIds(ws).length} delivered\n${run.stderr().slice(-2000)}`,
  );
  run.child.kill("SIGTERM");
  assert.equal((await run.exited).code, 0, run.stderr());
}

describe("reading ahead never reorders records", () => {
  it("with a window of 2 events, 60 archived files of 3 records arrive exactly once, file by file, oldest first", async () => {
    const ws = makeWorkspace("pmta-readahead-", {
      inFlight: { maxEvents: 2 },
      batch: { maxEvents: 1, maxWait: "1ms" },
    });
    roots.push(ws.root);
    const archive = join(ws.liveDir, "accounting", "bounces");
    mkdirSync(archive, { recursive: true });
    const want: string[] = [];
    for (let i = 0; i < 60; i++) {
      const ids = [0, 1, 2].map((r) => `f${String(i).padStart(2, "0")}-r${r}`);
      want.push(...ids);
      writeFileSync(
        join(archive, `bounces-2025-01-14-${String(i).padStart(6, "0")}.csv`),
        HEADER + ids.map(row).join(""),
      );
    }
    const run = startRun(ws);
    await waitUntil(
      () => deliveredIds(ws).length >= want.length,
      30_000,
      () => `${deliveredIds(ws).length}/${want.length}\n${run.stderr().slice(-2000)}`,
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.deepEqual(deliveredIds(ws), want, "every record once, in file order, files oldest first");
  });
});

describe("an archive backlog larger than one listing adopts", () => {
  it("delivers every archived record exactly once and does not hold the live file back", async () => {
    const { ws, live } = backlog({ inFlight: { maxEvents: 200 } });
    const run = startRun(ws);
    // Written while the backlog is being worked through: must not wait for the 2,500 files.
    await waitUntil(
      () => deliveredIds(ws).includes("live-0"),
      20_000,
      () => run.stderr().slice(-2000),
    );
    appendFileSync(live, row("live-1"));
    await waitUntil(
      () => deliveredIds(ws).length >= ARCHIVED + 2,
      60_000,
      () => `${deliveredIds(ws).length} delivered\n${run.stderr().slice(-2000)}`,
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    const ids = deliveredIds(ws);
    assert.equal(new Set(ids).size, ids.length, "no duplicates");
    assert.equal(ids.length, ARCHIVED + 2);
    assert.ok(ids.indexOf("live-0") < 1_000, `live-0 delivered at position ${ids.indexOf("live-0")}`);
    assert.ok(ids.indexOf("live-1") < ARCHIVED, "a record appended during the catch-up is not last in line");
  });

  it("restarted after the backlog, reads none of it again: its files come back from the finished-files set", async () => {
    const { ws, live } = backlog();
    await runThroughBacklog(ws);
    // 2,500 finished files: format v2, their entries in a set of their own.
    assert.ok(
      readdirSync(ws.stateDir).some((n) => n.startsWith("checkpoints.json.finished-")),
      readdirSync(ws.stateDir).join(", "),
    );
    const { snapshot, problems } = await new CheckpointStore(ws.stateDir).load();
    assert.deepEqual(problems, []);
    assert.equal(snapshot.files.filter((f) => f.finished).length, ARCHIVED);
    const run = startRun(ws);
    appendFileSync(live, row("live-1"));
    await waitUntil(
      () => deliveredIds(ws).includes("live-1"),
      20_000,
      () => run.stderr().slice(-2000),
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    const ids = deliveredIds(ws);
    assert.equal(new Set(ids).size, ids.length, "nothing delivered twice across the restart");
    assert.equal(ids.length, ARCHIVED + 2);
  });

  it("restarted after longer than checkpointRetention, reads none of it again while the files are adopted", async () => {
    // Retention drops an entry only if its file is gone. Files a listing found but has not adopted
    // yet (2,000 a listing) are on disk too: their entries must survive the checkpoints in between.
    const { ws, live } = backlog({ checkpointRetention: "1h" });
    await runThroughBacklog(ws);
    // As if the daemon had been stopped for a day: every entry last seen on disk then.
    const store = new CheckpointStore(ws.stateDir);
    const { snapshot } = await store.load();
    const dayAgo = Date.now() - 24 * 3600_000;
    await store.save(snapshot.files.map((f) => ({ ...f, updatedAt: Math.min(f.updatedAt, dayAgo) })));
    const run = startRun(ws);
    appendFileSync(live, row("live-1"));
    const deadline = performance.now() + 60_000;
    for (;;) {
      const now = await new CheckpointStore(ws.stateDir).load();
      const fresh = now.snapshot.files.filter((f) => f.updatedAt > dayAgo).length;
      if (fresh >= ARCHIVED + 1 && deliveredIds(ws).includes("live-1")) break;
      if (performance.now() > deadline) {
        throw new Error(`timed out: ${fresh} entries seen again\n${run.stderr().slice(-2000)}`);
      }
      await setTimeout(50);
    }
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    const ids = deliveredIds(ws);
    assert.equal(ids.length - new Set(ids).size, 0, "nothing delivered twice across the restart");
    assert.equal(ids.length, ARCHIVED + 2);
  });

  it("with checkpointFormat: 1, keeps every checkpoint whole (what releases before the set read)", async () => {
    const { ws } = backlog({ checkpointFormat: 1 });
    await runThroughBacklog(ws);
    assert.deepEqual(
      readdirSync(ws.stateDir).filter((n) => n.includes(".finished-")),
      [],
    );
    const text = readFileSync(join(ws.stateDir, "checkpoints.json"), "latin1");
    assert.match(text, /^pmta-ingest-checkpoint v1 /);
    assert.equal((text.match(/"finished":true/g) ?? []).length, ARCHIVED);
  });

  it("lists again as soon as the adopted files are read, not after the rescan interval", async () => {
    // An hour between regular listings: only the reader running dry can bring the last 500 files in.
    const { ws } = backlog({ rescanInterval: "1h" });
    await runThroughBacklog(ws);
    assert.equal(new Set(deliveredIds(ws)).size, ARCHIVED + 1);
  });

  it("startAt: end skips every file present at start, however many listings adopting them takes", async () => {
    const { ws, live } = backlog({ startAt: "end" });
    const run = startRun(ws);
    // Every file adopted (and checkpointed at its end) before anything new is written. Read through
    // the store: from 1,000 finished files on, their entries are in a finished-files set.
    const deadline = performance.now() + 60_000;
    for (;;) {
      const { snapshot } = await new CheckpointStore(ws.stateDir).load();
      if (snapshot.files.length >= ARCHIVED + 1) break;
      if (performance.now() > deadline) {
        throw new Error(`timed out: ${snapshot.files.length} entries\n${run.stderr().slice(-2000)}`);
      }
      await setTimeout(50);
    }
    appendFileSync(live, row("live-1"));
    await waitUntil(
      () => deliveredIds(ws).includes("live-1"),
      20_000,
      () => run.stderr().slice(-2000),
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.deepEqual(deliveredIds(ws), ["live-1"]);
    const { snapshot } = await new CheckpointStore(ws.stateDir).load();
    assert.equal(snapshot.files.length, ARCHIVED + 1);
  });
});
