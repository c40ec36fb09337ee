import assert from "node:assert/strict";
import { once } from "node:events";
import { createWriteStream, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { decodeCheckpointFile } from "../src/checkpoint/checkpoint-store.js";
import { generateBouncesFile } from "../src/simulate/record-generator.js";
import {
  makeWorkspace,
  type Running,
  readDelivered,
  startRun,
  type Workspace,
  waitUntil,
} from "./support/run-harness.js";

const workspaces: Workspace[] = [];
after(() => {
  for (const ws of workspaces) rmSync(ws.root, { recursive: true, force: true });
});

/** The checkpointed offset of `file`, or -1 (no checkpoint yet, or none for it). */
function checkpointOf(ws: Workspace, file: string): number {
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(ws.stateDir, "checkpoints.json"));
  } catch {
    return -1;
  }
  const snapshot = decodeCheckpointFile(bytes);
  if (typeof snapshot === "string") return -1;
  return snapshot.files.find((f) => f.path === file)?.offset ?? -1;
}

describe("pmta-ingest run: one large file to catch up", () => {
  it("checkpoints as it reads, stops on SIGTERM before the end, and the next start delivers the rest", async () => {
    const ws = makeWorkspace("pmta-catch-up-");
    workspaces.push(ws);
    const records = 100_000;
    const file = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    const out = createWriteStream(file);
    for (const chunk of generateBouncesFile(11, records)) if (!out.write(chunk)) await once(out, "drain");
    out.end();
    await once(out, "finish");
    const size = statSync(file).size;

    // The output keeps up, so the in-flight window never fills: the case where one read round used to
    // run to the end of the file, with no checkpoint and no reaction to a signal meanwhile.
    const runs: Running[] = [];
    try {
      const first = startRun(ws);
      runs.push(first);
      let mid = -1;
      await waitUntil(
        () => {
          mid = checkpointOf(ws, file);
          return mid > 0;
        },
        60_000,
        () => `no checkpoint while reading ${size} bytes\n${first.stderr().slice(-2000)}`,
      );
      assert.ok(mid < size, `a checkpoint inside the file (${mid} of ${size}), not only at its end`);
      first.child.kill("SIGTERM");
      const exit = await first.exited;
      assert.equal(exit.code, 0, first.stderr().slice(-2000));
      const stopped = checkpointOf(ws, file);
      assert.ok(stopped >= mid && stopped < size, `stopped at ${stopped} of ${size}: before the end`);

      const second = startRun(ws);
      runs.push(second);
      await waitUntil(
        () => checkpointOf(ws, file) === size,
        120_000,
        () => `second run did not finish the file\n${second.stderr().slice(-2000)}`,
      );
      second.child.kill("SIGTERM");
      assert.equal((await second.exited).code, 0, second.stderr().slice(-2000));
    } finally {
      // A failed assertion must not leave a daemon behind (it would hold the test process open).
      for (const r of runs) r.child.kill("SIGKILL");
    }
    const ids = new Set(readDelivered(ws).map((d) => d.id));
    assert.equal(ids.size, records, "every record delivered, none lost across the stop");
  });
});
