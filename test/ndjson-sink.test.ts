import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { NdjsonFileSink } from "../src/sink/ndjson-file-sink.js";

const dir = mkdtempSync(join(tmpdir(), "pmta-sink-"));
after(() => rmSync(dir, { recursive: true, force: true }));

it("appends lines and rotates by size, keeping every line", async () => {
  const path = join(dir, "events.ndjson");
  const sink = new NdjsonFileSink({ path, maxBytes: 1000, keep: 10 });
  await sink.open();
  const lines = Array.from({ length: 100 }, (_, i) => JSON.stringify({ n: i, pad: "x".repeat(40) }));
  for (let i = 0; i < lines.length; i += 7) await sink.writeLines(lines.slice(i, i + 7));
  await sink.close();
  assert.ok(existsSync(`${path}.1`), "rotated at least once");
  const all: string[] = [];
  for (let i = 10; i >= 1; i--)
    if (existsSync(`${path}.${i}`)) all.push(...readFileSync(`${path}.${i}`, "utf8").trim().split("\n"));
  all.push(...readFileSync(path, "utf8").trim().split("\n"));
  assert.deepEqual(all, lines);
});

it("refuses to write when not open, naming the file", async () => {
  const sink = new NdjsonFileSink({ path: join(dir, "never.ndjson") });
  await assert.rejects(sink.writeLines(["{}"]), /never\.ndjson is not open/);
});

it("cuts a torn last line left by a crash mid-write before appending (no two events glued together)", async () => {
  const path = join(dir, "torn.ndjson");
  // Two whole lines, then a write cut between pages: no newline at the end.
  const whole = `${JSON.stringify({ n: 1 })}\n${JSON.stringify({ n: 2, pad: "y".repeat(70_000) })}\n`;
  writeFileSync(path, `${whole}{"n":3,"remoteMta":"mx.ex`);
  const sink = new NdjsonFileSink({ path });
  assert.equal(await sink.open(), '{"n":3,"remoteMta":"mx.ex'.length);
  await sink.writeLines([JSON.stringify({ n: 3 })]);
  await sink.close();
  const lines = readFileSync(path, "utf8").trimEnd().split("\n");
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { n: number }).n),
    [1, 2, 3],
  );
  // A file that ends cleanly, one without any newline, and an empty one are left as they are / emptied.
  const clean = new NdjsonFileSink({ path });
  assert.equal(await clean.open(), 0);
  await clean.close();
  const noNewline = join(dir, "no-newline.ndjson");
  writeFileSync(noNewline, '{"half":');
  const half = new NdjsonFileSink({ path: noNewline });
  assert.equal(await half.open(), 8);
  await half.close();
  assert.equal(readFileSync(noNewline, "utf8"), "");
});
