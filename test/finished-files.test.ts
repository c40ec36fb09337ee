import assert from "node:assert/strict";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { decodeCheckpointFile } from "../src/checkpoint/checkpoint-store.js";
import { makeWorkspace, startRun, type Workspace, waitUntil } from "./support/run-harness.js";

/**
 * Finished archived files are kept as their checkpoint entry only, and listings stat them only every
 * `archiveRecheck`. Whatever happens to such a file afterwards must still be seen: a late write is
 * read once, a file replaced under its name (same size, possibly on the same inode) is read from the
 * start, a deleted one stays remembered, and a restart sends nothing again.
 */
const FILES = 30;
const HEADER = "type,timeLogged,rcpt,dsnStatus,dsnDiag,header_X-FBLId\r\n";
const row = (id: string): string =>
  `b,2025-01-14 10:00:00+0000,${id}@example.com,5.1.1,"smtp;550 5.1.1 user unknown",${id}\r\n`;

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function deliveredIds(ws: Workspace): string[] {
  if (!existsSync(ws.output)) return [];
  const lines = readFileSync(ws.output, "utf8").split("\n");
  lines.pop();
  return lines.map((l) => (JSON.parse(l) as { headers: Record<string, string> }).headers["X-FBLId"] ?? "");
}

/** The newest checkpoint's entries ([] while a save is between its renames). */
function checkpointFiles(ws: Workspace): Array<{ path: string; offset: number; finished: boolean }> {
  try {
    const decoded = decodeCheckpointFile(readFileSync(join(ws.stateDir, "checkpoints.json")));
    return typeof decoded === "string" ? [] : [...decoded.files];
  } catch {
    return [];
  }
}

describe("finished archived files", () => {
  it("are still watched: a late write is read once, a file replaced under its name is read from the start, a deleted one stays remembered, a restart sends nothing again", async () => {
    const ws = makeWorkspace("pmta-finished-", { archiveRecheck: "300ms" });
    roots.push(ws.root);
    const archive = join(ws.liveDir, "accounting", "bounces");
    mkdirSync(archive, { recursive: true });
    const name = (i: number) => join(archive, `bounces-2025-01-14-${String(i).padStart(4, "0")}.csv`);
    const hourAgo = new Date(Date.now() - 3600_000);
    for (let i = 0; i < FILES; i++) {
      writeFileSync(name(i), HEADER + row(`arch-${String(i).padStart(2, "0")}`));
      // Written an hour ago: quiet for longer than sealAfter, so finished as soon as read.
      utimesSync(name(i), hourAgo, hourAgo);
    }
    const live = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    writeFileSync(live, HEADER);
    let run = startRun(ws);
    const want = Array.from({ length: FILES }, (_, i) => `arch-${String(i).padStart(2, "0")}`);
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
});
