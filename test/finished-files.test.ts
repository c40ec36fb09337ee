import assert from "node:assert/strict";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  CheckpointStore,
  decodeCheckpointFile,
  type FileCheckpoint,
} from "../src/checkpoint/checkpoint-store.js";
import { deliveredIds, ID_HEADER as HEADER, idRow as row } from "./support/id-rows.js";
import { makeWorkspace, startRun, type Workspace, waitUntil } from "./support/run-harness.js";

/**
 * Finished archived files are kept as their checkpoint entry only, and listings stat them only every
 * `archiveRecheck`. Whatever happens to such a file afterwards must still be seen: a late write is
 * read once, a file replaced under its name (same size, possibly on the same inode) is read from the
 * start, a deleted one stays remembered, and a restart sends nothing again.
 */
const FILES = 30;

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** The newest checkpoint's entries ([] while a save is between its renames). */
function checkpointFiles(ws: Workspace): FileCheckpoint[] {
  try {
    const decoded = decodeCheckpointFile(readFileSync(join(ws.stateDir, "checkpoints.json")));
    return typeof decoded === "string" ? [] : [...decoded.files];
  } catch {
    return [];
  }
}

/** The newest checkpoint's generation (0 while a save is between its renames). */
function checkpointGeneration(ws: Workspace): number {
  try {
    const decoded = decodeCheckpointFile(readFileSync(join(ws.stateDir, "checkpoints.json")));
    return typeof decoded === "string" ? 0 : decoded.generation;
  } catch {
    return 0;
  }
}

/**
 * A workspace whose bounces archive holds `ids.length` one-record files written an hour ago (quiet
 * for longer than sealAfter, so finished as soon as read). `name(i)` is the i-th file's path.
 */
function archiveOf(
  extra: Record<string, unknown>,
  ids: readonly string[],
): { ws: Workspace; archive: string; name: (i: number) => string } {
  const ws = makeWorkspace("pmta-finished-", extra);
  roots.push(ws.root);
  const archive = join(ws.liveDir, "accounting", "bounces");
  mkdirSync(archive, { recursive: true });
  const name = (i: number) => join(archive, `bounces-2025-01-14-${String(i).padStart(4, "0")}.csv`);
  const hourAgo = new Date(Date.now() - 3600_000);
  ids.forEach((id, i) => {
    writeFileSync(name(i), HEADER + row(id));
    utimesSync(name(i), hourAgo, hourAgo);
  });
  return { ws, archive, name };
}

describe("finished archived files", () => {
  it("are still watched: a late write is read once, a file replaced under its name is read from the start, a deleted one stays remembered, a restart sends nothing again", async () => {
    const want = Array.from({ length: FILES }, (_, i) => `arch-${String(i).padStart(2, "0")}`);
    const { ws, archive, name } = archiveOf({ archiveRecheck: "300ms" }, want);
    const live = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    writeFileSync(live, HEADER);
    let run = startRun(ws);
    const allFinished = (n: number) =>
      checkpointFiles(ws).filter((f) => f.path.startsWith(archive) && f.finished).length >= n;
    await waitUntil(
      () => deliveredIds(ws).length >= FILES && allFinished(FILES),
      30_000,
      () => `${deliveredIds(ws).length} delivered\n${run.stderr().slice(-2000)}`,
    );

    // A late write to a finished file.
    appendFileSync(name(3), row("late-03"));
    // Replaced under its name by a file of the same size (ext4 may even hand it the same inode).
    const size9 = statSync(name(9)).size;
    rmSync(name(9));
    writeFileSync(name(9), HEADER + row("repl-09"));
    assert.equal(statSync(name(9)).size, size9);
    // Replaced by a longer file.
    rmSync(name(7));
    writeFileSync(name(7), HEADER + row("new-07a") + row("new-07b"));
    // Deleted.
    rmSync(name(12));
    want.push("late-03", "repl-09", "new-07a", "new-07b");
    await waitUntil(
      () => deliveredIds(ws).length >= want.length,
      30_000,
      () => `${deliveredIds(ws).join(",")}\n${run.stderr().slice(-2000)}`,
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.deepEqual([...deliveredIds(ws)].sort(), [...want].sort(), "every record exactly once");
    assert.match(run.stderr(), /finished file grew again; reading the new bytes/);
    const deleted = checkpointFiles(ws).filter((f) => f.path === name(12));
    assert.equal(deleted.length, 1, "the deleted file's entry is remembered (retention)");

    // A restart: every finished file is recognised from its entry, nothing is sent again.
    run = startRun(ws);
    appendFileSync(live, row("after-restart"));
    want.push("after-restart");
    await waitUntil(
      () => deliveredIds(ws).includes("after-restart"),
      30_000,
      () => run.stderr().slice(-2000),
    );
    await waitUntil(
      () => allFinished(FILES - 1),
      30_000,
      () => run.stderr().slice(-2000),
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.deepEqual([...deliveredIds(ws)].sort(), [...want].sort(), "nothing sent twice after the restart");
  });

  it("after a restart, a finished file unchanged is its entry again; one written to, replaced or renamed while stopped is handled as when running", async () => {
    const want = Array.from({ length: 12 }, (_, i) => `stop-${String(i).padStart(2, "0")}`);
    const { ws, archive, name } = archiveOf({}, want);
    let run = startRun(ws);
    const finished = () => checkpointFiles(ws).filter((f) => f.path.startsWith(archive) && f.finished);
    await waitUntil(
      () => deliveredIds(ws).length >= want.length && finished().length >= want.length,
      30_000,
      () => `${deliveredIds(ws).length} delivered\n${run.stderr().slice(-2000)}`,
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    const before = new Map(finished().map((f) => [f.path, f]));

    // While stopped: a late write, a replacement of the same size, a rename within the archive.
    appendFileSync(name(2), row("late-02"));
    const { size: size5, ino: ino5 } = statSync(name(5));
    rmSync(name(5));
    writeFileSync(name(5), HEADER + row("repl-05"));
    assert.equal(statSync(name(5)).size, size5);
    renameSync(name(8), name(80));
    want.push("late-02", "repl-05");

    run = startRun(ws);
    await waitUntil(
      () =>
        deliveredIds(ws).length >= want.length &&
        finished().length >= 12 &&
        finished().some((f) => f.path === name(80)) &&
        finished().some((f) => f.path === name(2) && f.offset > (before.get(name(2))?.offset ?? 0)),
      30_000,
      () => `${deliveredIds(ws).join(",")}\n${JSON.stringify(finished())}\n${run.stderr().slice(-2000)}`,
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.deepEqual([...deliveredIds(ws)].sort(), [...want].sort(), "every record exactly once");
    // The replacement is read from the start either way: as a new file, or, when ext4 handed it the
    // old inode, because its content no longer matches that inode's checkpoint.
    if (statSync(name(5)).ino === ino5)
      assert.match(run.stderr(), /checkpoint does not match the file on disk/);
    // The files nothing happened to keep their entries as they were (the same offsets and marks).
    for (const f of finished()) {
      if ([name(2), name(5), name(80)].includes(f.path)) continue;
      const old = before.get(f.path);
      assert.ok(old !== undefined, f.path);
      assert.deepEqual(
        [f.offset, f.headHash, f.anchorHash, f.header, f.fileKey],
        [old.offset, old.headHash, old.anchorHash, old.header, old.fileKey],
      );
    }
    assert.equal(finished().filter((f) => f.path === name(8)).length, 0, "the old name is gone");
  });

  it("with an hour between rechecks, a file added to the archive or renamed in it is still seen at the next listing", async () => {
    const { ws, archive, name } = archiveOf(
      { archiveRecheck: "1h" },
      [0, 1, 2, 3, 4].map((i) => `old-${i}`),
    );
    const run = startRun(ws);
    const allFinished = () =>
      checkpointFiles(ws).filter((f) => f.path.startsWith(archive) && f.finished).length >= 5;
    await waitUntil(
      () => deliveredIds(ws).length >= 5 && allFinished(),
      30_000,
      () => run.stderr().slice(-2000),
    );
    // Listings trust the directory's mtime only once it is 2 s older than their last readdir.
    const dirChanged = statSync(archive).mtimeMs;
    await waitUntil(
      () => Date.now() > dirChanged + 3_000,
      10_000,
      () => "clock",
    );
    renameSync(name(2), name(22)); // a finished file renamed: not read again
    writeFileSync(name(30), HEADER + row("added-30"));
    await waitUntil(
      () => deliveredIds(ws).includes("added-30"),
      10_000,
      () => `${deliveredIds(ws).join(",")}\n${run.stderr().slice(-2000)}`,
    );
    await waitUntil(
      () => checkpointFiles(ws).some((f) => f.path === name(22) && f.finished),
      10_000,
      () => JSON.stringify(checkpointFiles(ws).map((f) => f.path)),
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.deepEqual([...deliveredIds(ws)].sort(), ["added-30", "old-0", "old-1", "old-2", "old-3", "old-4"]);
  });

  it("a fresh archived file ending on a record boundary is finished at once and a late write to it is still read at once; one ending inside a record waits for the rest", async () => {
    // An hour of sealAfter and of archiveRecheck: only finishing early and the per-listing stat of
    // files not yet quiet can make this test pass in seconds.
    const ws = makeWorkspace("pmta-finished-", { sealAfter: "1h", archiveRecheck: "1h" });
    roots.push(ws.root);
    const archive = join(ws.liveDir, "accounting", "bounces");
    mkdirSync(archive, { recursive: true });
    const clean = join(archive, "bounces-2025-01-14-0001.csv");
    const partial = join(archive, "bounces-2025-01-14-0002.csv");
    writeFileSync(clean, HEADER + row("clean-1"));
    const cut = row("partial-1");
    writeFileSync(partial, HEADER + cut.slice(0, 20));
    const run = startRun(ws);
    await waitUntil(
      () =>
        deliveredIds(ws).includes("clean-1") &&
        checkpointFiles(ws).some((f) => f.path === clean && f.finished),
      20_000,
      () => `${JSON.stringify(checkpointFiles(ws))}\n${run.stderr().slice(-2000)}`,
    );
    assert.ok(
      !checkpointFiles(ws).some((f) => f.path === partial && f.finished),
      "not finished inside a record",
    );
    appendFileSync(clean, row("clean-2"));
    appendFileSync(partial, cut.slice(20));
    await waitUntil(
      () => deliveredIds(ws).includes("clean-2") && deliveredIds(ws).includes("partial-1"),
      20_000,
      () => `${deliveredIds(ws).join(",")}\n${run.stderr().slice(-2000)}`,
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.deepEqual([...deliveredIds(ws)].sort(), ["clean-1", "clean-2", "partial-1"]);
    assert.match(run.stderr(), /late write to a file finished early; reading the new bytes/);
    assert.ok(
      !existsSync(ws.deadLetter) || readFileSync(ws.deadLetter, "utf8") === "",
      "nothing dead-lettered",
    );
  });
});

describe("retention after an outage longer than checkpointRetention", () => {
  it("keeps the entries of an archive whose directory is missing at start (not mounted yet), and sends nothing again once it is back", async () => {
    const want = Array.from({ length: 6 }, (_, i) => `mnt-${i}`);
    const { ws, archive } = archiveOf({ checkpointRetention: "1h" }, want);
    const live = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    writeFileSync(live, HEADER);
    let run = startRun(ws);
    await waitUntil(
      () => deliveredIds(ws).length >= want.length,
      30_000,
      () => `${deliveredIds(ws).length} delivered\n${run.stderr().slice(-2000)}`,
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());

    // Stopped for a day, and started before the archive's filesystem is back.
    const store = new CheckpointStore(ws.stateDir);
    const { snapshot } = await store.load();
    const dayAgo = Date.now() - 24 * 3600_000;
    await store.save(snapshot.files.map((f) => ({ ...f, updatedAt: dayAgo })));
    const generation = (await store.load()).snapshot.generation;
    const away = `${archive}.unmounted`;
    renameSync(archive, away);
    run = startRun(ws);
    // A checkpoint written while it is missing (the first one follows the first listing).
    await waitUntil(
      () => run.stderr().includes("directory does not exist yet") && checkpointGeneration(ws) > generation,
      30_000,
      () => run.stderr().slice(-2000),
    );
    assert.equal(checkpointFiles(ws).filter((f) => f.path.startsWith(archive)).length, want.length);
    renameSync(away, archive);
    appendFileSync(live, row("after-mount"));
    await waitUntil(
      () => deliveredIds(ws).includes("after-mount") && run.stderr().includes("directory appeared"),
      30_000,
      () => run.stderr().slice(-2000),
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
    assert.deepEqual(deliveredIds(ws).sort(), [...want, "after-mount"].sort(), "nothing sent twice");
  });
});
