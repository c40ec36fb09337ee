import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Batcher, type Envelope } from "../src/deliver/batcher.js";
import type { Output } from "../src/deliver/output.js";

function fakeOutput(failFirst: number): Output & { batches: string[][]; attempts: number } {
  const o = {
    name: "fake",
    batches: [] as string[][],
    attempts: 0,
    async send(batch: readonly Envelope[]) {
      o.attempts++;
      if (o.attempts <= failFirst) throw new Error(`refused (attempt ${o.attempts})`);
      o.batches.push(batch.map((e) => e.data.toString()));
    },
    async sync() {},
    async close() {},
  };
  return o;
}

describe("Batcher", () => {
  it("cuts batches by count and bytes, sends them in order and acknowledges each event once", async () => {
    const out = fakeOutput(0);
    const acked: number[] = [];
    const b = new Batcher(out, { maxEvents: 3, maxBytes: 1000, maxWaitMs: 10_000 });
    for (let i = 0; i < 10; i++) b.push({ data: Buffer.from(`e${i}`), ack: () => acked.push(i) });
    assert.equal(b.inFlightEvents, 10);
    assert.equal(await b.drain(5000), true);
    assert.deepEqual(out.batches, [["e0", "e1", "e2"], ["e3", "e4", "e5"], ["e6", "e7", "e8"], ["e9"]]);
    assert.deepEqual(acked, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(b.inFlightEvents, 0);
    assert.equal(b.inFlightBytes, 0);
  });

  it("retries a failing output without dropping anything, reporting every attempt", async () => {
    const out = fakeOutput(3);
    const retries: number[] = [];
    const acked: string[] = [];
    const b = new Batcher(out, {
      maxEvents: 2,
      maxBytes: 1000,
      maxWaitMs: 5,
      onRetry: (n) => retries.push(n),
    });
    for (const l of ["a", "b", "c"]) b.push({ data: Buffer.from(l), ack: () => acked.push(l) });
    assert.equal(await b.drain(20_000), true);
    assert.deepEqual(retries, [1, 2, 3]);
    assert.deepEqual(acked, ["a", "b", "c"]);
    assert.deepEqual(out.batches.flat(), ["a", "b", "c"]);
  });

  it("sends a partial batch after maxWaitMs", async () => {
    const out = fakeOutput(0);
    let acked = 0;
    const b = new Batcher(out, {
      maxEvents: 100,
      maxBytes: 1000,
      maxWaitMs: 20,
      onAcked: (n) => {
        acked += n;
      },
    });
    b.push({ data: Buffer.from("x"), ack: () => {} });
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (acked === 1) {
          clearInterval(check);
          resolve();
        }
      }, 5);
    });
    assert.deepEqual(out.batches, [["x"]]);
  });

  it("gives up at the drain timeout without acknowledging what was not delivered", async () => {
    const out = fakeOutput(Number.POSITIVE_INFINITY);
    let acked = 0;
    const b = new Batcher(out, { maxEvents: 1, maxBytes: 1000, maxWaitMs: 5 });
    b.push({ data: Buffer.from("x"), ack: () => acked++ });
    assert.equal(await b.drain(100), false);
    b.stop();
    assert.equal(acked, 0);
    assert.equal(b.inFlightEvents, 1);
  });
});
