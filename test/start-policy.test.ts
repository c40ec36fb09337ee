import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import {
  forgetStartedInputs,
  INPUTS_STARTED,
  readStartedInputs,
  writeStartedInputs,
} from "../src/checkpoint/start-policy.js";

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function stateDir(): string {
  const root = mkdtempSync(join(tmpdir(), "pmta-start-policy-"));
  roots.push(root);
  const dir = join(root, "state");
  mkdirSync(dir);
  return dir;
}

it("the started inputs: none at first, written atomically (no temp file left), forgotten", async () => {
  const dir = stateDir();
  assert.deepEqual(await readStartedInputs(dir), { inputs: new Set() });
  await writeStartedInputs(dir, ["fbl", "bounces", "fbl"]);
  assert.deepEqual(await readStartedInputs(dir), { inputs: new Set(["bounces", "fbl"]) });
  assert.deepEqual(readdirSync(dir), [INPUTS_STARTED]);
  await forgetStartedInputs(dir);
  assert.equal(existsSync(join(dir, INPUTS_STARTED)), false);
  await forgetStartedInputs(dir); // already gone: not an error
});

it("bad content counts as no input started (startAt applies, as before the list) and names the file", async () => {
  const dir = stateDir();
  for (const bad of ["", "{", '{"version":2,"inputs":[]}', '{"version":1,"inputs":[1]}', '{"version":1}']) {
    writeFileSync(join(dir, INPUTS_STARTED), bad);
    const r = await readStartedInputs(dir);
    assert.equal(r.inputs.size, 0, bad);
    assert.match(
      r.problem ?? "",
      new RegExp(`${INPUTS_STARTED}: not a list of started inputs; startAt applies`),
    );
  }
});

it("a state directory that cannot be read is an error, never taken as no input started", async () => {
  const root = mkdtempSync(join(tmpdir(), "pmta-start-policy-"));
  roots.push(root);
  writeFileSync(join(root, "file"), "x");
  await assert.rejects(readStartedInputs(join(root, "file")), { code: "ENOTDIR" });
});
