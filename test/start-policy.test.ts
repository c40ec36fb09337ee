import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import {
  clearStartPolicyPending,
  markStartPolicyPending,
  START_POLICY_PENDING,
  startPolicyPending,
} from "../src/checkpoint/start-policy.js";

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

it("the start policy's pending state: set (creating the state directory), read, cleared, cleared again", async () => {
  const root = mkdtempSync(join(tmpdir(), "pmta-start-policy-"));
  roots.push(root);
  const dir = join(root, "state");
  assert.equal(await startPolicyPending(dir), false, "a directory that does not exist yet: nothing pending");
  await markStartPolicyPending(dir);
  assert.equal(await startPolicyPending(dir), true);
  assert.match(readFileSync(join(dir, START_POLICY_PENDING), "utf8"), /startAt still applies/);
  await clearStartPolicyPending(dir);
  assert.equal(await startPolicyPending(dir), false);
  assert.equal(existsSync(join(dir, START_POLICY_PENDING)), false);
  await clearStartPolicyPending(dir); // already gone: not an error
});

it("a state directory that cannot be read is an error, never taken as nothing pending", async (t) => {
  if (process.getuid?.() === 0) {
    // root reads through any mode: a path through a file gives the same kind of failure.
    const root = mkdtempSync(join(tmpdir(), "pmta-start-policy-"));
    roots.push(root);
    writeFileSync(join(root, "file"), "x");
    await assert.rejects(startPolicyPending(join(root, "file")), { code: "ENOTDIR" });
    return;
  }
  const root = mkdtempSync(join(tmpdir(), "pmta-start-policy-"));
  roots.push(root);
  chmodSync(root, 0o000);
  t.after(() => chmodSync(root, 0o700));
  await assert.rejects(startPolicyPending(root), { code: "EACCES" });
});
