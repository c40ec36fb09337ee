import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AckTracker } from "../src/tail/ack-tracker.js";

describe("AckTracker", () => {
  it("advances only over the contiguous acknowledged prefix", () => {
    const t = new AckTracker(100);
    const a = t.add(100, 150);
    t.skip(150, 160); // a header or blank line: nothing to deliver
    const b = t.add(160, 200);
    const c = t.add(200, 260);
    assert.equal(t.ackedOffset, 100);
    c.ack(); // out of order
    assert.equal(t.ackedOffset, 100, "a later ack does not move the checkpoint past an unacknowledged span");
    a.ack();
    assert.equal(t.ackedOffset, 160, "the skipped span follows the first one");
    b.ack();
    assert.equal(t.ackedOffset, 260);
    assert.equal(t.pending, 0);
  });

  it("ignores a second ack of the same span and refuses gaps", () => {
    const t = new AckTracker(0);
    const a = t.add(0, 10);
    a.ack();
    a.ack();
    assert.equal(t.ackedOffset, 10);
    assert.throws(() => t.add(11, 20), /does not follow 10/);
    assert.throws(() => t.skip(11, 20), /does not follow 10/);
  });

  it("moves straight over skipped spans when nothing is pending", () => {
    const t = new AckTracker(0);
    t.skip(0, 5);
    assert.equal(t.ackedOffset, 5);
    assert.equal(t.pending, 0);
  });

  it("stays small over a long file, acknowledged in order or in batches out of order", () => {
    const t = new AckTracker(0);
    for (let i = 0; i < 100_000; i++) t.add(i * 10, i * 10 + 10).ack();
    assert.equal(t.ackedOffset, 1_000_000);
    assert.equal(t.pending, 0);
    const batch = Array.from({ length: 5000 }, (_, i) => t.add(1_000_000 + i * 10, 1_000_000 + i * 10 + 10));
    for (const s of batch.reverse()) s.ack();
    assert.equal(t.ackedOffset, 1_050_000);
    assert.equal(t.pending, 0);
  });
});
