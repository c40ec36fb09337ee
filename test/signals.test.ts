import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, it } from "node:test";
import { CheckpointStore } from "../src/checkpoint/checkpoint-store.js";
import { Classifier } from "../src/classify/classifier.js";
import { loadRunConfig } from "../src/config/run-config.js";
import { runDaemon } from "../src/run/daemon.js";
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

/**
 * A stop that comes during start-up (the signal is caught from the first line) still ends with a
 * checkpoint save, before any listing. Entries past checkpointRetention (a daemon stopped for longer
 * than that) must not be judged gone then: their files were not looked for yet.
 */
it("a stop before the first listing keeps every loaded entry, even those past checkpointRetention", async () => {
  const ws = makeWorkspace("pmta-early-stop-", { checkpointRetention: "1h" });
  roots.push(ws.root);
  const archive = join(ws.liveDir, "accounting", "bounces");
  mkdirSync(archive, { recursive: true });
  for (const id of ["x1", "x2", "x3"])
    writeFileSync(join(archive, `bounces-2025-01-14-${id}.csv`), ID_HEADER + idRow(id));
  const run = startRun(ws);
  await waitUntil(
    () => deliveredIds(ws).length === 3,
    30_000,
    () => run.stderr(),
  );
  run.child.kill("SIGTERM");
  assert.equal((await run.exited).code, 0, run.stderr());

  // As if stopped for a day: every entry last seen on disk then.
  const store = new CheckpointStore(ws.stateDir);
  const before = (await store.load()).snapshot;
  assert.equal(before.files.length, 3);
  const dayAgo = Date.now() - 24 * 3600_000;
  await store.save(before.files.map((f) => ({ ...f, updatedAt: dayAgo })));

  const config = await loadRunConfig({ file: ws.config, flags: {}, env: {} });
  const stop = new AbortController();
  stop.abort();
  const lines: string[] = [];
  const code = await runDaemon(config, new Classifier(), {
    signal: stop.signal,
    handleSignals: false,
    processMetrics: false,
    log: (level, msg) => lines.push(`${level} ${msg}`),
  });
  assert.equal(code, 0, lines.join("\n"));
  assert.ok(lines.includes("info stopping"), lines.join("\n"));
  const kept = (await new CheckpointStore(ws.stateDir).load()).snapshot;
  assert.deepEqual(
    kept.files.map((f) => [f.path, f.offset, f.finished]).sort(),
    before.files.map((f) => [f.path, f.offset, f.finished]).sort(),
  );
});
