import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import type { Envelope } from "../src/deliver/batcher.js";
import { idempotencyKey } from "../src/deliver/idempotency-key.js";
import { createRng } from "../src/simulate/rng.js";

/** The definition: SHA-256 over the ids as text, one per line (what the key was before it was written as bytes). */
function reference(batch: readonly Envelope[]): string {
  let ids = "";
  for (const e of batch) ids += `${e.id ?? e.data.toString()}\n`;
  return createHash("sha256").update(ids).digest("hex").slice(0, 32);
}

const ack = (): void => {};
/** An event read from a file: its id in two parts, as RecordEnvelope gives it (id made on demand). */
const fromFile = (fileKey: string, offset: number): Envelope => ({
  data: Buffer.from("{}"),
  ack,
  idFileKey: fileKey,
  idOffset: offset,
  get id() {
    return `${fileKey}:${offset}`;
  },
});

describe("idempotencyKey", () => {
  it("is the hash of the ids as text, whether they come in parts, as text, or not at all", () => {
    const rng = createRng(11);
    const offsets = [0, 9, 10, 99, 100, 2 ** 31 - 1, 2 ** 31, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER];
    const keys = ["75db5118a09145d3", "0000000000000000", "ünïcode-key", ""];
    for (let n = 0; n < 300; n++) {
      const batch: Envelope[] = [];
      for (let k = rng.int(1, 800); k > 0; k--) {
        const kind = rng.int(0, 9);
        const offset = rng.chance(0.2) ? rng.pick(offsets) : rng.int(0, 5_000_000);
        if (kind < 7) batch.push(fromFile(rng.pick(keys), offset));
        else if (kind < 9) batch.push({ data: Buffer.from("{}"), ack, id: `k:${offset}` });
        else batch.push({ data: Buffer.from(`{"n":${offset},"t":"é"}`), ack });
      }
      assert.equal(idempotencyKey(batch), reference(batch), `batch ${n}`);
    }
  });

  it("tells apart batches that differ in one offset, one file key, or the order of their events", () => {
    const a = [fromFile("f1", 0), fromFile("f1", 120), fromFile("f2", 0)];
    const key = idempotencyKey(a);
    assert.match(key, /^[0-9a-f]{32}$/);
    assert.equal(idempotencyKey([fromFile("f1", 0), fromFile("f1", 120), fromFile("f2", 0)]), key);
    assert.notEqual(idempotencyKey([fromFile("f1", 0), fromFile("f1", 121), fromFile("f2", 0)]), key);
    assert.notEqual(idempotencyKey([fromFile("f1", 0), fromFile("f1", 120), fromFile("f3", 0)]), key);
    assert.notEqual(idempotencyKey([fromFile("f2", 0), fromFile("f1", 0), fromFile("f1", 120)]), key);
  });
});
