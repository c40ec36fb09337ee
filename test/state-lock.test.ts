import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { lockStateDir, StateDirBusyError } from "../src/checkpoint/state-lock.js";
import { makeWorkspace, startRun, waitUntil } from "./support/run-harness.js";

/**
 * One process per state directory (state-lock.ts): two daemons on the same checkpoints deliver
 * everything twice and overwrite each other's saves. The second is refused with a message naming the
 * first; the lock goes with its holder, however it ends (SIGKILL included).
 */
describe("state directory lock", () => {
  const roots: string[] = [];
  after(() => {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it("refuses a second holder of the same directory, by any path to it, until the first releases", async () => {
    const root = mkdtempSync(join(tmpdir(), "pmta-lock-"));
    roots.push(root);
    const dir = join(root, "state");
    const first = await lockStateDir(dir, "first holder");
    assert.equal(first.locked, true);
    symlinkSync(dir, join(root, "alias"));
    for (const path of [dir, join(root, "alias"), `${dir}/`]) {
      await assert.rejects(lockStateDir(path, "second"), (err: unknown) => {
        assert.ok(err instanceof StateDirBusyError);
        assert.match(err.message, new RegExp(`pmta-ingest pid ${process.pid} \\(first holder since `));
        assert.match(err.message, /stop the other one/);
        return true;
      });
    }
    // Another directory is another lock.
    const other = await lockStateDir(join(root, "other"), "other");
    assert.equal(other.locked, true);
    await other.release();
    await first.release();
    const again = await lockStateDir(dir, "after release");
    assert.equal(again.locked, true);
    await again.release();
  });

  it("does not lock, and says why, when the directory cannot be made", async () => {
    const root = mkdtempSync(join(tmpdir(), "pmta-lock-"));
    roots.push(root);
    const file = join(root, "not-a-dir");
    writeFileSync(file, "x");
    const lock = await lockStateDir(join(file, "state"), "x");
    assert.equal(lock.locked, false);
    assert.match(lock.reason ?? "", /cannot create or stat it \(ENOTDIR\)/);
    await lock.release();
  });

  it("a second `run` on the same stateDir exits 2 naming the first; after the first is SIGKILLed a new one starts", async () => {
    const ws = makeWorkspace("pmta-lock-run-");
    roots.push(ws.root);
    mkdirSync(ws.stateDir, { recursive: true });
    const first = startRun(ws);
    await waitUntil(
      () => first.stderr().includes('"msg":"starting"'),
      30_000,
      () => first.stderr(),
    );
    const second = startRun(ws);
    const exit = await second.exited;
    assert.equal(exit.code, 2, second.stderr());
    assert.match(
      second.stderr(),
      new RegExp(`is in use by pmta-ingest pid ${first.child.pid} \\(run --config `),
    );
    assert.doesNotMatch(second.stderr(), /"msg":"starting"/, "refused before reading any checkpoint");

    first.child.kill("SIGKILL");
    await first.exited;
    // No stale lock to clean up: the kernel released the name with the process.
    const third = startRun(ws);
    await waitUntil(
      () => third.stderr().includes('"msg":"starting"'),
      30_000,
      () => third.stderr(),
    );
    third.child.kill("SIGTERM");
    const end = await third.exited;
    assert.equal(end.code, 0, third.stderr());
  });
});
