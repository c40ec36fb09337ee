import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FieldSpans } from "../src/decode/field-spans.js";
import { splitFields } from "../src/decode/field-splitter.js";
import { createRng } from "../src/simulate/rng.js";

/** The values FieldSpans finds, decoded the way a JSON writer reads them (`""` is one quote). */
function valuesOf(spans: FieldSpans, bytes: Buffer, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const raw = bytes.subarray(spans.from[i], spans.to[i]).toString("utf8");
    out.push(raw.replaceAll('""', '"'));
  }
  return out;
}

describe("FieldSpans", () => {
  it("agrees with splitFields on every record it accepts, and refuses exactly what splitFields warns about", () => {
    const rng = createRng(42);
    const alphabet = ["a", "b", ",", '"', '""', "\t", "é", "\\", " ", "𝄞", ","];
    const spans = new FieldSpans();
    let accepted = 0;
    let refused = 0;
    for (let n = 0; n < 20_000; n++) {
      let text = "";
      const len = rng.int(1, 24);
      for (let k = 0; k < len; k++) text += rng.pick(alphabet);
      // A record never holds an LF, and a quote count that is odd would have swallowed the next line.
      if ((text.match(/"/g)?.length ?? 0) % 2 === 1) text += '"';
      const bytes = Buffer.from(text);
      const split = splitFields(text, text.includes('"'));
      const count = spans.split(bytes);
      if (count < 0) {
        assert.ok(
          split.quoteWarning !== undefined,
          `refused ${JSON.stringify(text)}, splitFields did not warn`,
        );
        refused++;
        continue;
      }
      assert.equal(split.quoteWarning, undefined, `accepted ${JSON.stringify(text)}, splitFields warned`);
      const values = valuesOf(spans, bytes, count);
      assert.deepEqual(values, split.values, JSON.stringify(text));
      values.forEach((v, i) => {
        assert.equal(spans.clean[i] === 1, JSON.stringify(v) === `"${v}"`, `clean: ${JSON.stringify(v)}`);
      });
      assert.equal(
        (spans.high & 0x80) !== 0,
        [...text].some((ch) => (ch.codePointAt(0) ?? 0) > 0x7f),
      );
      accepted++;
    }
    assert.ok(accepted > 5_000 && refused > 1_000, `${accepted} accepted, ${refused} refused`);
  });

  it("grows past 64 fields and keeps a trailing empty field", () => {
    const spans = new FieldSpans();
    const text = `${Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? `"v,${i}"` : `v${i}`)).join(",")},`;
    const count = spans.split(Buffer.from(text));
    assert.equal(count, 301);
    assert.deepEqual(valuesOf(spans, Buffer.from(text), count), splitFields(text, true).values);
  });
});
