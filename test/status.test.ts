import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CheckpointStore, type FileCheckpoint } from "../src/checkpoint/checkpoint-store.js";
import { runStatus, type StatusReport } from "../src/ops/status.js";
import { PmtaSimulator } from "../src/simulate/pmta-simulator.js";
import { contentMarks } from "../src/tail/file-identity.js";
import { collect } from "./support/collect.js";
import { makeWorkspace, startRun, type Workspace, waitUntil } from "./support/run-harness.js";

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function workspace(prefix: string, extra: Record<string, unknown> = {}): Workspace {
  const ws = makeWorkspace(prefix, extra);
  roots.push(ws.root);
  mkdirSync(join(ws.liveDir, "accounting", "bounces"), { recursive: true });
  return ws;
}

const HEADER =
  "type,timeQueued,timeLogged,orig,rcpt,bounceCat,dsnStatus,dsnAction,dsnDiag,dsnMta,jobId,vmta,header_X-FBLId\r\n";
const row = (seq: number): string =>
  `b,2025-01-15 08:00:00+0000,2025-01-15 08:00:0${seq % 10}+0000,news@example.com,user${seq}@example.net,bad-mailbox,5.1.1 (bad destination mailbox address),failed,smtp;550 5.1.1 user unknown,mx.example.net (192.0.2.1),${seq},vmta1,${seq}-x\r\n`;

/** A file of `n` records starting at seq `from`; returns the offsets where records end. */
function writeAccounting(path: string, from: number, n: number): number[] {
  let text = HEADER;
  const ends: number[] = [];
  for (let i = 0; i < n; i++) {
    text += row(from + i);
    ends.push(Buffer.byteLength(text));
  }
  writeFileSync(path, text);
  return ends;
}

/** The entry the daemon would save for `path` at `offset`. */
async function entryFor(path: string, offset: number, finished = false): Promise<FileCheckpoint> {
  const st = statSync(path);
  const handle = await open(path, "r");
  try {
    const marks = await contentMarks(handle, st.size, offset);
    return {
      dev: st.dev,
      ino: st.ino,
      input: "bounces",
      path,
      offset,
      ...marks,
      header: HEADER.trimEnd(),
      finished,
      updatedAt: Date.parse("2025-01-15T09:00:00Z"),
    };
  } finally {
    await handle.close();
  }
}

async function statusJson(ws: Workspace): Promise<{ code: number; report: StatusReport; stderr: string }> {
  const io = collect();
  const code = await runStatus({ config: ws.config, json: true, ...io });
  return { code, report: JSON.parse(io.stdout()) as StatusReport, stderr: io.stderr() };
}

describe("pmta-ingest status", () => {
  it("says clearly when there is no checkpoint yet, lists the files it would read, and exits 0", async () => {
    const ws = workspace("pmta-status-none-");
    const live = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    writeAccounting(live, 1, 3);
    const io = collect();
    assert.equal(await runStatus({ config: ws.config, ...io }), 0, io.stderr());
    assert.match(io.stdout(), /checkpoint: none yet in .*state — pmta-ingest has not saved progress here/);
    assert.match(io.stdout(), /bounces {2}untracked .*bounces-2025-01-15-0000\.csv/);
    assert.match(io.stdout(), /bounces: 1 files \(0 tracked, 1 untracked, 0 gone, 0 identity mismatch\)/);
    assert.match(io.stdout(), /warning: input fbl: .*accounting\/fbl does not exist \(yet\)/);
    const { code, report } = await statusJson(ws);
    assert.equal(code, 0);
    assert.equal(report.checkpoint.source, "none");
    assert.equal(report.files[0]?.unreadBytes, statSync(live).size);
    assert.deepEqual(report.startAtInputs, ["bounces", "fbl"]);
    assert.match(report.files[0]?.detail ?? "", /left to startAt \(beginning\), the first start of bounces/);
  });

  it("shows live, moved-to-archive, gone, identity-mismatch and untracked files with offsets and totals", async () => {
    const ws = workspace("pmta-status-states-");
    const archived = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    const live = join(ws.liveDir, "bounces-2025-01-15-0001.csv");
    const reused = join(ws.liveDir, "bounces-2025-01-15-0002.csv");
    const fresh = join(ws.liveDir, "bounces-2025-01-15-0003.csv");
    const deleted = join(ws.liveDir, "bounces-2025-01-14-0009.csv");
    const archiveEnds = writeAccounting(archived, 1, 4);
    const liveEnds = writeAccounting(live, 11, 5);
    const reusedEnds = writeAccounting(reused, 21, 3);
    writeAccounting(fresh, 31, 2);
    writeAccounting(deleted, 41, 2);
    const entries = [
      await entryFor(archived, archiveEnds[3] ?? 0, true),
      await entryFor(live, liveEnds[2] ?? 0),
      await entryFor(reused, reusedEnds[1] ?? 0),
      await entryFor(deleted, 0),
    ];
    await new CheckpointStore(ws.stateDir).save(entries);
    // PowerMTA's move-to; a cleanup job removed an old file; a file rewritten in place (same inode).
    const archivedNow = join(ws.liveDir, "accounting", "bounces", "bounces-2025-01-15-0000.csv");
    renameSync(archived, archivedNow);
    unlinkSync(deleted);
    writeFileSync(reused, readFileSync(reused, "utf8").replaceAll("user2", "USER2"));

    const storeBefore = readFileSync(join(ws.stateDir, "checkpoints.json"));
    const { code, report } = await statusJson(ws);
    assert.equal(code, 0);
    assert.deepEqual(
      readFileSync(join(ws.stateDir, "checkpoints.json")),
      storeBefore,
      "status never writes the store",
    );
    assert.deepEqual(readdirSync(ws.stateDir), ["checkpoints.json"], "and leaves nothing behind");
    assert.equal(report.checkpoint.source, "current");
    assert.equal(report.checkpoint.generation, 1);
    const by = new Map(report.files.map((f) => [f.path, f]));
    const a = by.get(archived);
    assert.equal(a?.state, "archived");
    assert.equal(a?.found, "moved");
    assert.equal(a?.currentPath, archivedNow);
    assert.equal(a?.unreadBytes, 0);
    const l = by.get(live);
    assert.equal(l?.state, "live");
    assert.equal(l?.found, "at-recorded-path");
    assert.equal(l?.offset, liveEnds[2]);
    assert.equal(l?.unreadBytes, (liveEnds[4] ?? 0) - (liveEnds[2] ?? 0));
    assert.equal(l?.updatedAt, "2025-01-15T09:00:00.000Z");
    const r = by.get(reused);
    assert.equal(r?.state, "identity-mismatch");
    assert.equal(r?.unreadBytes, statSync(reused).size, "the daemon reads it again from 0");
    assert.match(r?.detail ?? "", /content check failed \(different-/);
    assert.equal(by.get(deleted)?.state, "gone");
    assert.equal(by.get(deleted)?.unreadBytes, null);
    assert.equal(by.get(fresh)?.state, "untracked");
    const totals = report.totals.find((t) => t.input === "bounces");
    assert.deepEqual(totals, {
      input: "bounces",
      files: 5,
      tracked: 4,
      untracked: 1,
      gone: 1,
      identityMismatch: 1,
      unreadBytes: (liveEnds[4] ?? 0) - (liveEnds[2] ?? 0) + statSync(reused).size + statSync(fresh).size,
    });

    const io = collect();
    assert.equal(
      await runStatus({
        config: ws.config,
        ...io,
        now: () => Date.parse(report.checkpoint.writtenAt ?? "") + 5000,
      }),
      0,
    );
    const text = io.stdout();
    assert.match(text, /checkpoint: .*checkpoints\.json generation 1, written .* \(5s ago\)/);
    assert.match(text, /INPUT +STATE +DEV:INO +SIZE +OFFSET +UNREAD +UPDATED +FILE/);
    assert.match(
      text,
      /bounces +archived, done .*accounting\/bounces\/bounces-2025-01-15-0000\.csv \(moved from .*pmta\/bounces-2025-01-15-0000\.csv\)/,
    );
    assert.match(text, /bounces +gone .*\(not found\)/);
    assert.match(text, /identity-mismatch .*0002\.csv: content check failed/);
    assert.match(text, /bounces: 5 files \(4 tracked, 1 untracked, 1 gone, 1 identity mismatch\)/);
  });

  it("reads while the daemon runs (no lock, no write) and shows every file caught up", async () => {
    const ws = workspace("pmta-status-run-");
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 5 });
    await sim.writeRecords(60);
    await sim.rotate();
    await sim.writeRecords(40);
    const run = startRun(ws);
    try {
      await waitUntil(
        () => {
          try {
            const text = readFileSync(join(ws.stateDir, "checkpoints.json"), "utf8");
            return [
              ...sim
                .records()
                .reduce(
                  (m, r) => m.set(r.ino, Math.max(m.get(r.ino) ?? 0, r.offset + r.length)),
                  new Map<number, number>(),
                ),
            ].every(([ino, end]) => new RegExp(`"ino":${ino},[^\\n]*"offset":${end},`).test(text));
          } catch {
            return false;
          }
        },
        20_000,
        () => run.stderr().slice(-2000),
      );
      const { code, report } = await statusJson(ws);
      assert.equal(code, 0);
      assert.ok(report.files.length >= 4, JSON.stringify(report.files));
      for (const f of report.files) {
        assert.ok(f.state === "live" || f.state === "archived", `${f.path}: ${f.state}`);
        assert.equal(f.unreadBytes, 0, f.path);
      }
      // The daemon records the new path once it sees the rename, so the entry names the archive path.
      assert.ok(report.files.some((f) => f.state === "archived" && f.found === "at-recorded-path"));
      // Its first start is complete (the save that covered it wrote inputs-started): a file that
      // appears from now on, even while it is stopped, is read from 0.
      await waitUntil(
        () => existsSync(join(ws.stateDir, "inputs-started")),
        20_000,
        () => run.stderr().slice(-2000),
      );
      assert.deepEqual((await statusJson(ws)).report.startAtInputs, []);
    } finally {
      run.child.kill("SIGTERM");
      assert.equal((await run.exited).code, 0, run.stderr());
    }
  });

  it("a damaged checkpoint file: names it and what is wrong, shows the older generation it falls back to, exits 1", async () => {
    const ws = workspace("pmta-status-damaged-");
    const live = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    const ends = writeAccounting(live, 1, 3);
    const store = new CheckpointStore(ws.stateDir);
    await store.save([await entryFor(live, ends[0] ?? 0)]);
    await store.save([await entryFor(live, ends[1] ?? 0)]);
    const current = join(ws.stateDir, "checkpoints.json");
    const bytes = readFileSync(current);
    writeFileSync(current, bytes.subarray(0, bytes.length - 20)); // torn
    const io = collect();
    assert.equal(await runStatus({ config: ws.config, ...io }), 1);
    assert.match(io.stdout(), /DAMAGED .*checkpoints\.json: checksum mismatch/);
    assert.match(
      io.stdout(),
      /checkpoint: .*checkpoints\.json\.prev generation 1, written .* — the previous generation/,
    );
    assert.match(
      io.stderr(),
      /checkpoint store is damaged \(the daemon uses generation 1 from the previous file\)/,
    );

    writeFileSync(join(ws.stateDir, "checkpoints.json.prev"), "{}");
    const none = collect();
    assert.equal(await runStatus({ config: ws.config, ...none }), 1);
    assert.match(none.stdout(), /checkpoint: DAMAGED, no valid generation/);
    assert.match(none.stderr(), /checkpoints\.json\.prev: not a checkpoint file/);
  });

  it("a torn .tmp beside a valid checkpoint (a save in progress) is a note, not damage", async () => {
    const ws = workspace("pmta-status-tmp-");
    const live = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    const ends = writeAccounting(live, 1, 2);
    await new CheckpointStore(ws.stateDir).save([await entryFor(live, ends[1] ?? 0)]);
    writeFileSync(join(ws.stateDir, "checkpoints.json.tmp"), Buffer.alloc(300));
    const io = collect();
    assert.equal(await runStatus({ config: ws.config, ...io }), 0, io.stderr());
    assert.match(
      io.stdout(),
      /note: .*checkpoints\.json\.tmp: not a checkpoint file: all 300 bytes are zero/,
    );
  });

  it("writes nothing: a state directory that does not exist is reported, not created", async () => {
    const ws = workspace("pmta-status-nowrite-");
    const stateDir = join(ws.root, "never-created");
    const io = collect();
    assert.equal(await runStatus({ config: ws.config, flags: { stateDir }, ...io }), 0, io.stderr());
    assert.match(io.stdout(), /checkpoint: none yet/);
    assert.equal(existsSync(stateDir), false);
  });

  it("bad input: missing config (2), state dir under a regular file (1), unreadable checkpoint path (1)", async () => {
    const missing = collect();
    assert.equal(await runStatus({ config: "/nonexistent/pmta.yaml", ...missing }), 2);
    assert.match(
      missing.stderr(),
      /\/nonexistent\/pmta\.yaml: cannot read the config file \(ENOENT\); check the path/,
    );

    const ws = workspace("pmta-status-bad-");
    const file = join(ws.root, "plain-file");
    writeFileSync(file, "");
    const under = collect();
    // status writes nothing, so the state dir is not probed as a config error: reading the store fails.
    assert.equal(
      await runStatus({ config: ws.config, flags: { stateDir: join(file, "state") }, ...under }),
      1,
    );
    assert.match(under.stderr(), /cannot read the checkpoint store: .*plain-file\/state.*ENOTDIR/);

    mkdirSync(join(ws.stateDir, "checkpoints.json"), { recursive: true });
    const isDir = collect();
    assert.equal(await runStatus({ config: ws.config, ...isDir }), 1);
    assert.match(isDir.stderr(), /cannot read the checkpoint store: checkpoint store .*EISDIR/);
  });
});
