import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, it } from "node:test";
import { pathToFileURL } from "node:url";
import { describeError } from "../src/run/crash-report.js";
import { deliveredIds, ID_HEADER, idRow } from "./support/id-rows.js";
import { makeWorkspace, startRun, waitUntil } from "./support/run-harness.js";

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

it("describeError keeps name, message and stack, and takes credentials out of URLs", () => {
  const err = new TypeError("fetch https://ingest:s3cr3t@api.example.com/events failed");
  const d = describeError(err);
  assert.equal(d.error, "TypeError: fetch https://[Redacted]@api.example.com/events failed");
  assert.ok(d.stack?.startsWith("TypeError: fetch https://[Redacted]@api.example.com/events failed\n"));
  assert.doesNotMatch(JSON.stringify(d), /s3cr3t/);
  assert.deepEqual(describeError("plain"), { error: "plain" });
  assert.deepEqual(describeError(undefined), { error: "undefined" });
});

/**
 * A bug that throws from a callback reaches no handler of ours. The daemon's log is JSON lines, read
 * by journald and log shippers that split Node's plain trace into one entry per stack frame: the
 * crash must be one JSON error line, and the exit code 1 that systemd's Restart=on-failure acts on.
 * The throw is injected from outside (a preloaded module throwing on SIGUSR2), so no test hook lives
 * in the daemon.
 */
it("an uncaught exception in the daemon is one JSON error line, exit 1, secrets left out", async () => {
  const ws = makeWorkspace("pmta-crash-report-");
  roots.push(ws.root);
  const preload = join(ws.root, "throw-on-usr2.mjs");
  writeFileSync(
    preload,
    `process.on("SIGUSR2", () => { throw new RangeError("bug seen at https://user:hunter2@backend.example/x"); });\n`,
  );
  writeFileSync(join(ws.liveDir, "bounces-2025-01-14-1000.csv"), ID_HEADER + idRow("a1"));
  const run = startRun(ws, { NODE_OPTIONS: `--import=${pathToFileURL(preload).href}` });
  await waitUntil(() => deliveredIds(ws).length === 1, 30_000, run.stderr);

  run.child.kill("SIGUSR2");
  const end = await run.exited;
  assert.deepEqual(end, { code: 1, signal: null }, run.stderr());
  const out = run.stderr();
  const lines = out.split("\n").filter((l) => l !== "");
  // Every line is JSON: no plain trace on stderr.
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const last = parsed.at(-1) as Record<string, unknown>;
  assert.equal(last.level, "error");
  assert.match(String(last.msg), /^unexpected error; exiting/);
  assert.equal(last.origin, "uncaughtException");
  assert.equal(last.error, "RangeError: bug seen at https://[Redacted]@backend.example/x");
  assert.match(String(last.stack), /throw-on-usr2\.mjs/);
  assert.doesNotMatch(out, /hunter2/);
});
