import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import type { Envelope } from "../src/deliver/batcher.js";
import { EventWriter } from "../src/event/event-writer.js";
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

it("writes batches of envelopes from a writer's slabs, plain ones among them, line for line and across rotations", async () => {
  const path = join(dir, "batches.ndjson");
  const sink = new NdjsonFileSink({ path, maxBytes: 4000, keep: 20 });
  await sink.open();
  const w = new EventWriter({ separator: 0x0a });
  const expected: string[] = [];
  for (let b = 0; b < 30; b++) {
    const batch: Envelope[] = [];
    for (let i = 0; i < 9; i++) {
      const line = JSON.stringify({ b, i, s: "é\n,".repeat(i) });
      expected.push(line);
      if (i === 4) {
        batch.push({ data: Buffer.from(line), ack: () => {} });
        continue;
      }
      w.write(line);
      const slab = w.lastSlab.bytes;
      const start = w.lastStart;
      const size = w.lastEnd - w.lastStart;
      batch.push({ data: slab.subarray(start, start + size), slab, start, size, ack: () => {} });
    }
    await sink.writeBatch(batch);
  }
  await sink.writeBatch([]);
  await sink.close();
  const all: string[] = [];
  for (let i = 20; i >= 1; i--)
    if (existsSync(`${path}.${i}`)) all.push(...readFileSync(`${path}.${i}`, "utf8").trimEnd().split("\n"));
  all.push(...readFileSync(path, "utf8").trimEnd().split("\n"));
  assert.ok(existsSync(`${path}.1`), "rotated at least once");
  assert.deepEqual(all, expected);
});
