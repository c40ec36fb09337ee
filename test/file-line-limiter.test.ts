import assert from "node:assert/strict";
import { it } from "node:test";
import { FileLineLimiter } from "../src/observe/file-line-limiter.js";

type Line = { msg: string } & Record<string, unknown>;

function limiter(perWindow: number, windowMs: number) {
  const lines: Line[] = [];
  let now = 1_000_000;
  const l = new FileLineLimiter(
    (_level, msg, fields) => lines.push({ msg, ...fields }),
    { perWindow, windowMs },
    () => now,
  );
  return { l, lines, advance: (ms: number) => (now += ms) };
}

it("logs the first lines of a window one by one and the rest as one line with their count, total and first and last file", () => {
  const { l, lines, advance } = limiter(3, 60_000);
  for (let i = 0; i < 10; i++)
    l.line("file finished", "bounces", `/a/f${i}.csv`, { bytes: 100 + i }, "bytes");
  assert.deepEqual(
    lines.map((x) => x.file),
    ["/a/f0.csv", "/a/f1.csv", "/a/f2.csv"],
  );
  assert.deepEqual(lines[0], { msg: "file finished", input: "bounces", file: "/a/f0.csv", bytes: 100 });

  l.flush();
  assert.equal(lines.length, 3, "the window has not ended: nothing summarised yet");
  advance(60_000);
  l.flush();
  assert.equal(lines.length, 4);
  const sum = lines[3] as Line;
  assert.equal(sum.msg, "file finished");
  assert.equal(sum.input, "bounces");
  assert.equal(sum.files, 7);
  assert.equal(sum.bytes, 103 + 104 + 105 + 106 + 107 + 108 + 109);
  assert.equal(sum.firstFile, "/a/f3.csv");
  assert.equal(sum.lastFile, "/a/f9.csv");
  assert.match(String(sum.note), /^7 more files in 60 s after the 3 logged one by one/);

  // A new window: one by one again.
  l.line("file finished", "bounces", "/a/g.csv", { bytes: 1 }, "bytes");
  assert.equal(lines.at(-1)?.file, "/a/g.csv");
});

it("counts per message and input, summarises an ended window when the next line comes, and everything at a stop", () => {
  const { l, lines, advance } = limiter(1, 10_000);
  l.line("file finished", "bounces", "/b/1", { bytes: 5 }, "bytes");
  l.line("file finished", "fbl", "/f/1", { bytes: 7 }, "bytes");
  l.line("file finished", "bounces", "/b/2", { bytes: 5 }, "bytes");
  l.line(
    "no checkpoint; starting at the end as configured (startAt)",
    "bounces",
    "/b/3",
    { skippedBytes: 9 },
    "skippedBytes",
  );
  assert.deepEqual(
    lines.map((x) => `${x.input} ${x.file}`),
    ["bounces /b/1", "fbl /f/1", "bounces /b/3"],
  );
  advance(10_000);
  // The next line of an ended window summarises it first, without waiting for a flush.
  l.line("file finished", "bounces", "/b/4", { bytes: 5 }, "bytes");
  assert.deepEqual(lines.at(-2), {
    msg: "file finished",
    input: "bounces",
    files: 1,
    bytes: 5,
    firstFile: "/b/2",
    lastFile: "/b/2",
    note: "1 more file in 10 s after the 1 logged one by one; counted in one line",
  });
  assert.equal(lines.at(-1)?.file, "/b/4");
  l.line("file finished", "bounces", "/b/5", { bytes: 6 }, "bytes");
  const before = lines.length;
  l.flush(true);
  assert.equal(lines.length, before + 1, "a stop logs what is held, however young its window");
  assert.equal(lines.at(-1)?.files, 1);
  assert.equal(lines.at(-1)?.bytes, 6);
  l.flush(true);
  assert.equal(lines.length, before + 1, "nothing twice");
});
