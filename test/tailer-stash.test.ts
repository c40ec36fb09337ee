import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, it } from "node:test";
import { contentMarks, HEAD_BYTES, marksOf, verifyMarks } from "../src/tail/file-identity.js";
import { Tailer, type TailerSink } from "../src/tail/tailer.js";
import { ID_HEADER, idRow } from "./support/id-rows.js";

const root = mkdtempSync(join(tmpdir(), "pmta-stash-"));
after(() => rmSync(root, { recursive: true, force: true }));

it("marksOf gives contentMarks' marks from bytes in hand, below and above the head's size", async () => {
  const path = join(root, "marks.bin");
  const bytes = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 131 + 7) % 251));
  writeFileSync(path, bytes);
  const handle = await open(path, "r");
  try {
    for (const size of [0, 1, 63, 64, 65, 1000, HEAD_BYTES, HEAD_BYTES + 1, 3000]) {
      for (const offset of new Set([
        0,
        Math.min(1, size),
        Math.floor(size / 2),
        Math.max(0, size - 1),
        size,
      ])) {
        const headLen = Math.min(HEAD_BYTES, size);
        assert.deepEqual(
          marksOf(bytes.subarray(0, size), headLen, offset),
          await contentMarks(handle, size, offset),
          `size ${size}, offset ${offset}`,
        );
      }
    }
  } finally {
    await handle.close();
  }
});

/**
 * A small quiet archived file is read whole when it is adopted, and not opened again to be read. What
 * it gets afterwards must still be read, from where the stashed bytes end, and the checkpoint for its
 * end must describe the file on disk.
 */
it("a small archived file read at adoption: bytes written after it are still read, once, from where the stash ends", async () => {
  const live = join(root, "live");
  const archive = join(root, "archive");
  mkdirSync(live);
  mkdirSync(archive);
  const path = join(archive, "bounces-2025-01-14-0000.csv");
  writeFileSync(path, ID_HEADER + idRow("s1") + idRow("s2"));
  const hourAgo = new Date(Date.now() - 3600_000);
  utimesSync(path, hourAgo, hourAgo);
  const adoptedSize = statSync(path).size;

  let room = false;
  const records: Array<{ id: string; offset: number; end: number }> = [];
  const sink: TailerSink = {
    hasRoom: () => room,
    record: (_file, item, span) => {
      records.push({ id: item.values.at(-1) ?? "", offset: item.offset, end: item.end });
      span.ack();
    },
    deadLetter: async () => assert.fail("no dead letters expected"),
    log: () => undefined,
    count: () => undefined,
  };
  const tailer = new Tailer(
    {
      inputs: [{ name: "bounces", dir: live, pattern: /^bounces-.*\.csv$/, archive }],
      startAt: { kind: "beginning" },
      maxRecordBytes: 1 << 20,
      sealAfterMs: 1000,
      maxOpenFiles: 64,
    },
    sink,
  );
  await tailer.scan();
  assert.equal(await tailer.readRound(), false, "no room: nothing read");

  // Written after the adoption read it.
  appendFileSync(path, idRow("s3"));
  room = true;
  await tailer.readRound();
  assert.deepEqual(
    records.map((r) => r.id),
    ["s1", "s2"],
  );
  assert.equal(records.at(-1)?.end, adoptedSize, "the stash ends where the file ended when adopted");

  await tailer.scan(); // sees the larger size
  await tailer.readRound();
  assert.deepEqual(
    records.map((r) => r.id),
    ["s1", "s2", "s3"],
  );
  assert.equal(records[2]?.offset, adoptedSize);
  await tailer.sealRound();

  const [entry] = await tailer.checkpoints(Date.now());
  const size = statSync(path).size;
  assert.equal(entry?.offset, size);
  const handle = await open(path, "r");
  try {
    assert.equal(await verifyMarks(handle, size, size, entry as NonNullable<typeof entry>), "same");
  } finally {
    await handle.close();
  }
  await tailer.close();
});
