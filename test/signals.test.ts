import assert from "node:assert/strict";
import { appendFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, it } from "node:test";
import { deliveredIds, ID_HEADER, idRow } from "./support/id-rows.js";
import { makeWorkspace, startRun, waitUntil } from "./support/run-harness.js";

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/**
 * A `kill -HUP` out of habit ("reload") must not stop delivery: Node's default ends the process on
 * SIGHUP, and systemd counts that end as clean, so the unit's Restart=on-failure would not restart it.
 */
it("logs and ignores SIGHUP, keeps delivering, and still stops cleanly on SIGTERM", async () => {
  const ws = makeWorkspace("pmta-signals-");
  roots.push(ws.root);
  const live = join(ws.liveDir, "bounces-2025-01-14-1000.csv");
  writeFileSync(live, ID_HEADER + idRow("a1") + idRow("a2"));
  const run = startRun(ws);
  const log = () => `${run.stderr()}\ndelivered: ${deliveredIds(ws).join(",")}`;
  await waitUntil(() => deliveredIds(ws).length === 2, 30_000, log);

  run.child.kill("SIGHUP");
  await waitUntil(() => run.stderr().includes('"signal":"SIGHUP"'), 30_000, log);
  assert.match(run.stderr(), /"level":"warn".*SIGHUP ignored: the configuration is read only at start/);
  assert.match(run.stderr(), /systemctl restart pmta-ingest/);

  // Still reading after the signal.
  appendFileSync(live, idRow("b1"));
  await waitUntil(() => deliveredIds(ws).length === 3, 30_000, log);

  run.child.kill("SIGTERM");
  const end = await run.exited;
  assert.deepEqual(end, { code: 0, signal: null }, run.stderr());
  assert.deepEqual(deliveredIds(ws), ["a1", "a2", "b1"]);
  assert.match(run.stderr(), /"msg":"stopped"/);
});
