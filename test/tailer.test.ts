import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CheckpointStore } from "../src/checkpoint/checkpoint-store.js";
import { PmtaSimulator } from "../src/simulate/pmta-simulator.js";
import { deliveredIds, ID_HEADER, idRow } from "./support/id-rows.js";
import {
  makeWorkspace,
  offBoundaryCheckpoints,
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
  const { checked, off } = await offBoundaryCheckpoints(ws, sim.records());
  assert.ok(checked > 0, "checkpoints were written");
  assert.deepEqual(off, [], "checkpoints on record boundaries");
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

  it("reads a file of many chunks through a small window: each record once, in file order", async () => {
    // ~1 MB of bounces: the next 64 KiB chunk is read while one is handed on, and the window (60)
    // fills mid-chunk again and again, so reads issued ahead are dropped and re-read many times.
    const ws = workspace({ inFlight: { maxEvents: 60 }, batch: { maxEvents: 20, maxWait: "5ms" } });
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 5 });
    await sim.writeRecords(3_000);
    const run = startRun(ws);
    await allDelivered(ws, sim, run.stderr);
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    const delivered = readDelivered(ws);
    const t = tally(sim.records(), delivered);
    assert.deepEqual([t.lost.length, t.duplicates, t.unexpected], [0, 0, 0]);
    const last = new Map<string, number>();
    for (const d of delivered) {
      assert.ok(
        d.offset > (last.get(d.file) ?? -1),
        `${d.file}: offset ${d.offset} after ${last.get(d.file)}`,
      );
      last.set(d.file, d.offset);
    }
    assert.ok(
      sim.records().some((r) => r.offset > 10 * 64 * 1024),
      "a file spans more than ten read chunks",
    );
    await assertCheckpointsOnBoundaries(ws, sim);
    await sim.stop();
  });

  it("saves its checkpoint as soon as it has caught up, long before the checkpoint interval", async () => {
    const ws = workspace({ checkpointInterval: "60s" });
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 11 });
    const run = startRun(ws);
    await sim.writeRecords(300);
    await allDelivered(ws, sim, run.stderr);
    const ends = new Map<number, number>();
    for (const r of sim.records()) ends.set(r.ino, Math.max(ends.get(r.ino) ?? 0, r.offset + r.length));
    const store = new CheckpointStore(ws.stateDir);
    let covered = false;
    // Polls the real store (a read-only load); the interval alone would take a minute.
    const deadline = performance.now() + 10_000;
    while (!covered && performance.now() < deadline) {
      const { snapshot } = await store.load();
      covered = [...ends].every(([ino, end]) =>
        snapshot.files.some((f) => f.ino === ino && f.offset === end),
      );
      if (!covered) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.ok(covered, `checkpoint at the end of every file within 10 s\n${run.stderr().slice(-2000)}`);
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0);
    await sim.stop();
  });

  it("catches up exactly once after being stopped (SIGSTOP) while 30 rotations happened", async () => {
    const ws = workspace();
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 17 });
    const run = startRun(ws);
    await sim.writeRecords(20);
    await allDelivered(ws, sim, run.stderr);
    run.child.kill("SIGSTOP");
    for (let i = 0; i < 30; i++) {
      await sim.writeRecords(15);
      await sim.rotate();
    }
    run.child.kill("SIGCONT");
    await allDelivered(ws, sim, run.stderr);
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0);
    const t = tally(sim.records(), readDelivered(ws));
    assert.deepEqual(t.lost, []);
    assert.equal(t.duplicates, 0);
    // Oldest first: within each stream, files were delivered in the order they were written.
    const firstSeen = new Map<string, number>();
    readDelivered(ws).forEach((d, i) => {
      const name = d.file.split("/").pop() ?? "";
      if (!firstSeen.has(name)) firstSeen.set(name, i);
    });
    for (const stream of ["bounces", "fbl"]) {
      const names = [...firstSeen.keys()].filter((n) => n.startsWith(`${stream}-`));
      assert.deepEqual(names, [...names].sort(), `${stream} files read oldest first`);
    }
    await sim.stop();
  });

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
    const before = sim.liveFile("bounces")?.ino;
    await sim.reuseInode("bounces");
    await sim.writeRecords(5);
    // The filesystem decides whether the freed inode goes to the new file (ext4 does at once; overlayfs
    // under load may not). Only a reused inode puts the stale checkpoint in the daemon's way.
    const reused = sim.liveFile("bounces")?.ino === before;
    const second = startRun(ws);
    await allDelivered(ws, sim, second.stderr);
    second.child.kill("SIGTERM");
    assert.equal((await second.exited).code, 0);
    const live = sim.records().filter((r) => r.fate === undefined);
    assert.deepEqual(tally(live, readDelivered(ws)).lost, []);
    if (reused) assert.match(second.stderr(), /checkpoint does not match the file on disk/);
    else assert.doesNotMatch(second.stderr(), /"records":0,/, "the new file was read from its start");
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

  it("notices an inode reused while running (archived file deleted, new file gets its inode)", async (t) => {
    const ws = workspace();
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 18, streams: ["bounces"] });
    const run = startRun(ws);
    const pid = run.child.pid as number;
    const openPaths = () =>
      readdirSync(`/proc/${pid}/fd`).map((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`);
        } catch {
          return "";
        }
      });
    let reused = 0;
    for (let round = 0; round < 5; round++) {
      await sim.writeRecords(30);
      const archivedInos = new Set(sim.records().map((r) => r.ino));
      await sim.rotate("bounces");
      await allDelivered(ws, sim, run.stderr);
      const archived = readdirSync(sim.archiveDir("bounces")).map((n) => join(sim.archiveDir("bounces"), n));
      // Wait until the daemon has let go of the archived files, then delete them: their inodes are free.
      await waitUntil(
        () => !openPaths().some((p) => archived.includes(p)),
        10_000,
        () => openPaths().join(", "),
      );
      for (const p of archived) rmSync(p);
      await sim.rotate("bounces");
      await sim.writeRecords(25);
      if (
        sim
          .records()
          .slice(-25)
          .some((r) => archivedInos.has(r.ino))
      )
        reused++;
    }
    await allDelivered(ws, sim, run.stderr);
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0);
    assert.equal(tally(sim.records(), readDelivered(ws)).duplicates, 0);
    t.diagnostic(`inode reused in ${reused} of 5 rounds`);
    await sim.stop();
  });

  it("re-reads a file truncated while running (copytruncate) from the start", async () => {
    const ws = workspace();
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 14, streams: ["bounces"] });
    const run = startRun(ws);
    await sim.writeRecords(30);
    await allDelivered(ws, sim, run.stderr);
    await sim.truncateLive("bounces");
    await sim.writeRecords(10);
    const live = () => sim.records().filter((r) => r.fate === undefined);
    await waitUntil(
      () => tally(live(), readDelivered(ws)).lost.length === 0,
      20_000,
      () => run.stderr().slice(-2000),
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0);
    assert.match(run.stderr(), /shrank below the read offset/);
    await sim.stop();
  });

  it("starts from an older generation, then from the start policy, when the checkpoint store is damaged", async () => {
    const ws = workspace();
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 15, streams: ["bounces"] });
    const first = startRun(ws);
    await sim.writeRecords(25);
    await allDelivered(ws, sim, first.stderr);
    first.child.kill("SIGTERM");
    assert.equal((await first.exited).code, 0);
    const store = join(ws.stateDir, "checkpoints.json");
    writeFileSync(store, Buffer.alloc(statSync(store).size)); // all zeros, as after a power loss
    rmSync(`${store}.prev`, { force: true });
    const second = startRun(ws);
    await sim.writeRecords(5);
    await allDelivered(ws, sim, second.stderr);
    second.child.kill("SIGTERM");
    assert.equal((await second.exited).code, 0, second.stderr());
    assert.match(second.stderr(), /checkpoint store damaged/);
    assert.deepEqual(tally(sim.records(), readDelivered(ws)).lost, []);
    await sim.stop();
  });

  it("tracks 0-byte and header-only files without stalling, and dead-letters an over-long record", async () => {
    const ws = workspace({ maxRecordBytes: "4KiB" });
    const run = startRun(ws);
    const header = "type,timeLogged,orig,rcpt,dsnStatus,dsnDiag,header_X-FBLId\r\n";
    writeFileSync(join(ws.liveDir, "bounces-2026-11-20-0000.csv"), "");
    writeFileSync(join(ws.liveDir, "bounces-2026-11-21-0000.csv"), header);
    const long = `b,2026-11-22 10:00:00+0000,o@x.com,a@x.com,5.0.0,smtp;550 ${"x".repeat(10_000)},1-1-1\r\n`;
    const ok = "b,2026-11-22 10:00:01+0000,o@x.com,b@x.com,5.1.1,smtp;550 5.1.1 user unknown,2-1-1\r\n";
    writeFileSync(join(ws.liveDir, "bounces-2026-11-22-0000.csv"), header + long + ok);
    await waitUntil(
      () => readDelivered(ws).some((d) => d.seq === 2),
      20_000,
      () => run.stderr().slice(-2000),
    );
    await waitUntil(
      () => existsSync(ws.deadLetter),
      10_000,
      () => run.stderr().slice(-2000),
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0);
    const dl = JSON.parse(readFileSync(ws.deadLetter, "utf8").trim()) as {
      reason: string;
      length: number;
      preview: string;
    };
    assert.equal(dl.reason, "record-too-long");
    assert.equal(dl.length, Buffer.byteLength(long));
    assert.equal(dl.preview.length, 1024);
    assert.deepEqual(
      readDelivered(ws).map((d) => d.seq),
      [2],
    );
  });

  it("with startAt: end skips what is already in the files at first start, then reads everything new", async () => {
    const ws = workspace({ startAt: "end" });
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 16, streams: ["bounces"] });
    await sim.writeRecords(20);
    const run = startRun(ws);
    await waitUntil(
      () => existsSync(join(ws.stateDir, "checkpoints.json")),
      10_000,
      () => run.stderr(),
    );
    await sim.writeRecords(5);
    await sim.rotate();
    await sim.writeRecords(5);
    const newer = () => sim.records().slice(20);
    await waitUntil(
      () => tally(newer(), readDelivered(ws)).lost.length === 0,
      20_000,
      () => run.stderr().slice(-2000),
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0);
    assert.equal(
      tally(newer(), readDelivered(ws)).unexpected,
      0,
      "nothing from before the start was delivered",
    );
    await sim.stop();
  });

  it("applies startAt only at an input's first start: a file rotated in during a long outage is read whole", async () => {
    const ws = workspace({ startAt: "1h" });
    const archive = join(ws.liveDir, "accounting", "bounces");
    mkdirSync(archive, { recursive: true });
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    const old = (path: string, ids: string[]): void => {
      writeFileSync(path, ID_HEADER + ids.map(idRow).join(""));
      utimesSync(path, twoHoursAgo, twoHoursAgo);
    };
    // Before the first start: an archived file older than startAt (skipped) and a live one (read).
    old(join(archive, "bounces-2025-01-14-0000.csv"), ["before-1", "before-2"]);
    writeFileSync(join(ws.liveDir, "bounces-2025-01-15-0000.csv"), ID_HEADER + idRow("live-1"));
    const started = join(ws.stateDir, "inputs-started");
    let run = startRun(ws);
    await waitUntil(
      () => deliveredIds(ws).includes("live-1") && existsSync(started),
      20_000,
      () => run.stderr().slice(-2000),
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.match(run.stderr(), /no checkpoint; starting at the end as configured/);

    assert.deepEqual(JSON.parse(readFileSync(started, "utf8")), { version: 1, inputs: ["bounces", "fbl"] });

    // Stopped for longer than startAt: PowerMTA rotated a file into the archive meanwhile. And an
    // input is added to the configuration, whose directory already holds an old file: that input is
    // at its first start, so startAt skips the old file there.
    old(join(archive, "bounces-2025-01-15-0001.csv"), ["outage-1", "outage-2"]);
    const doc = JSON.parse(readFileSync(ws.config, "utf8")) as { inputs: object[] };
    doc.inputs.push({ name: "extra", path: join(ws.liveDir, "extra-*.csv") });
    writeFileSync(ws.config, JSON.stringify(doc));
    old(join(ws.liveDir, "extra-2025-01-14-0000.csv"), ["extra-old"]);
    run = startRun(ws);
    await waitUntil(
      () => deliveredIds(ws).includes("outage-2") && readFileSync(started, "utf8").includes("extra"),
      20_000,
      () => `${deliveredIds(ws).join(",")}\n${run.stderr().slice(-2000)}`,
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.deepEqual(deliveredIds(ws), ["live-1", "outage-1", "outage-2"]);
    assert.match(run.stderr(), /"input":"extra".*no checkpoint; starting at the end as configured/);
    assert.doesNotMatch(run.stderr(), /"input":"bounces".*no checkpoint; starting at the end/);
  });

  it("stops at start-up with one clear message for a bad config", async () => {
    const ws = workspace({ batch: { maxEventz: 5 } });
    const run = startRun(ws);
    const exit = await run.exited;
    assert.equal(exit.code, 2);
    assert.match(run.stderr(), /batch\.maxEventz/);
  });
});
