import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AckTracker } from "../src/tail/ack-tracker.js";

describe("AckTracker", () => {
  it("advances only over the contiguous acknowledged prefix", () => {
    const t = new AckTracker(100);
    t.add(100, 150);
    t.add(150, 160, true); // a header or blank line: nothing to deliver
    t.add(160, 200);
    t.add(200, 260);
    assert.equal(t.ackedOffset, 100);
    t.ack(200); // out of order
    assert.equal(t.ackedOffset, 100, "a later ack does not move the checkpoint past an unacknowledged span");
    t.ack(100);
    assert.equal(t.ackedOffset, 160, "the auto-acked span follows the first one");
    t.ack(160);
    assert.equal(t.ackedOffset, 260);
    assert.equal(t.pending, 0);
  });

  it("ignores a second ack of the same span and refuses gaps", () => {
    const t = new AckTracker(0);
    t.add(0, 10);
    t.ack(0);
    t.ack(0);
    assert.equal(t.ackedOffset, 10);
    assert.throws(() => t.add(11, 20), /does not follow 10/);
  });

  it("stays small over a long file", () => {
    const t = new AckTracker(0);
    for (let i = 0; i < 100_000; i++) {
      t.add(i * 10, i * 10 + 10);
      t.ack(i * 10);
    }
    assert.equal(t.ackedOffset, 1_000_000);
    assert.equal(t.pending, 0);
  });
});
