import assert from "node:assert/strict";
import { it } from "node:test";
import { runChaos } from "./support/chaos.js";

// The short CI version of `npm run chaos`: real CLI, real files, SIGKILL at random moments and at
// every named crash point (each twice) while PowerMTA (the simulator) writes and rotates.
it("loses no record across repeated SIGKILLs at random moments and named crash points", async (t) => {
  const window = 200;
  const report = await runChaos({ trials: 24, seed: 20261123, window, progress: (l) => t.diagnostic(l) });
  t.diagnostic(JSON.stringify(report));
  assert.equal(report.lost, 0, "no record lost");
  assert.equal(report.offBoundaryCheckpoints, 0, "checkpoints on record boundaries");
  for (const [point, n] of Object.entries(report.pointMisses)) {
    assert.fail(`crash point ${point} was not reached in ${n} trial(s)`);
  }
  // Duplicates come only from the window each crashed run had out (in flight, or acknowledged and not
  // yet checkpointed — the window counts both): at most `window` per crash. One restart can re-send
  // the windows of several runs that all died before checkpointing (each may have read other files
  // first), so the bound is on the total.
  assert.ok(
    report.duplicates <= report.trials * window,
    `${report.duplicates} duplicates > ${report.trials} crashes × ${window}`,
  );
  assert.ok(report.rotations > 0);
});
