import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { joinLines, LineJoiner } from "../src/sink/join-lines.js";

describe("LineJoiner", () => {
  const parts = ["{}", "", '{"a":"Zoë"}', "x".repeat(5000)].map((s) => Buffer.from(s));
  const expect = (head: string, sep: string, tail: string): string =>
    head + parts.map((p) => p.toString()).join(sep) + tail;

  it("joins with one-byte, multi-byte and non-ASCII separators, heads and tails", () => {
    for (const [head, sep, tail] of [
      ["", "\n", "\n"],
      ['{"events":[', ",", "]}"],
      ["", "\r\n", ""],
      ["«", "é", "»"],
      ["", "", ""],
    ] as const) {
      assert.equal(
        joinLines(parts, head, sep, tail).toString(),
        expect(head, sep, tail),
        JSON.stringify(sep),
      );
    }
  });

  it("reuses its buffer: a shorter join after a longer one carries none of the older bytes", () => {
    const j = new LineJoiner();
    assert.equal(j.join(parts, "[", ",", "]").toString(), expect("[", ",", "]"));
    const short = j.join([Buffer.from("a"), Buffer.from("b")], "", "\n", "\n");
    assert.equal(short.toString(), "a\nb\n");
    assert.equal(j.join([], "[", ",", "]").toString(), "[]");
  });
});
