import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Envelope } from "../src/deliver/batcher.js";
import { EventWriter } from "../src/event/event-writer.js";
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

describe("LineJoiner.joinEvents", () => {
  /** An envelope as RecordEnvelope makes it: the event by its place in the writer's slab. */
  const placed = (w: EventWriter): Envelope => {
    const slab = w.lastSlab.bytes;
    const start = w.lastStart;
    const size = w.lastEnd - w.lastStart;
    return {
      get data() {
        return slab.subarray(start, start + size);
      },
      slab,
      start,
      size,
      ack: () => {},
    };
  };
  const text = (batch: readonly Envelope[], head: string, sep: string, tail: string): string =>
    head + batch.map((e) => e.data.toString()).join(sep) + tail;

  it("gives what join() gives, whatever the writers' separators, slabs, order and plain envelopes", () => {
    let seed = 11;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const writers = [
      new EventWriter({ separator: 0x2c }),
      new EventWriter({ separator: 0x0a }),
      new EventWriter(),
    ];
    const j = new LineJoiner();
    for (let round = 0; round < 300; round++) {
      const w = writers[rnd(writers.length)] as EventWriter;
      const batch: Envelope[] = [];
      const n = rnd(40);
      for (let i = 0; i < n; i++) {
        const pick = rnd(10);
        if (pick === 0) batch.push({ data: Buffer.from(`{"plain":${i},"s":"é,\n"}`), ack: () => {} });
        else {
          // Now and then a large event, so that slabs change within a batch.
          w.write(`{"i":${i},"round":${round},"v":"${"xé,\n".repeat(pick === 1 ? 60_000 : rnd(50))}"}`);
          batch.push(placed(w));
        }
      }
      // Mostly in the order written; sometimes two swapped, which must not be joined as one run.
      if (batch.length > 2 && rnd(4) === 0) {
        const k = rnd(batch.length - 1);
        [batch[k], batch[k + 1]] = [batch[k + 1] as Envelope, batch[k] as Envelope];
      }
      for (const [head, sep, tail] of [
        ['{"events":[', ",", "]}"],
        ["", "\n", "\n"],
        ["", "\r\n", ""],
      ] as const) {
        assert.equal(
          j.joinEvents(batch, head, sep, tail).toString(),
          text(batch, head, sep, tail),
          `round ${round}`,
        );
      }
    }
  });

  it("copies a run of consecutive events of one slab at once, and the JSON array it makes parses", () => {
    const w = new EventWriter({ separator: 0x2c });
    const batch: Envelope[] = [];
    for (let i = 0; i < 500; i++) {
      w.write(JSON.stringify({ i, s: "a,b" }));
      batch.push(placed(w));
      // The separator lies right after each event, where the next one does not start.
      assert.equal(w.lastSlab.bytes[w.lastEnd], 0x2c);
    }
    const body = new LineJoiner().joinEvents(batch, '{"events":[', ",", "]}");
    const parsed = JSON.parse(body.toString()) as { events: Array<{ i: number }> };
    assert.deepEqual(
      parsed.events.map((e) => e.i),
      batch.map((_, i) => i),
    );
  });
});
