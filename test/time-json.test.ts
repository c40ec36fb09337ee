import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parsePmtaTime } from "../src/decode/field-values.js";
import { TimeJson } from "../src/event/time-json.js";
import { createRng } from "../src/simulate/rng.js";

/** What TimeJson must write for `raw` (undefined: it must say it cannot read it). */
function expected(raw: string): string | undefined {
  const iso = parsePmtaTime(raw);
  return iso === undefined ? undefined : JSON.stringify(iso);
}

function check(t: TimeJson, raw: string, padded = false): void {
  // The field inside a longer record, as the encoder hands it over.
  const src = Buffer.from(padded ? `x,${raw},y` : raw);
  const from = padded ? 2 : 0;
  const ok = t.read(src, from, from + Buffer.byteLength(raw), () => raw);
  const want = expected(raw);
  assert.equal(ok, want !== undefined, `readable: ${JSON.stringify(raw)}`);
  if (want !== undefined) assert.equal(Buffer.from(t.json.subarray(0, t.length)).toString(), want, raw);
}

const pad = (n: number, w = 2): string => String(n).padStart(w, "0");

describe("TimeJson", () => {
  it("writes JSON.stringify(parsePmtaTime(raw)) for times in every offset, month end and leap year", () => {
    const rng = createRng(7);
    const zones = ["+0000", "-0000", "-0400", "+0530", "+1400", "-1200", "+0045"];
    const t = new TimeJson();
    const q = new TimeJson();
    for (let n = 0; n < 50_000; n++) {
      const year = rng.pick([1969, 1970, 1999, 2000, 2024, 2025, 2100, 9999, 2, 99]);
      const month = rng.int(0, 13);
      const day = rng.pick([0, 1, 15, 28, 29, 30, 31, 32]);
      const hour = rng.pick([0, 9, 23, 24]);
      const minute = rng.pick([0, 30, 59, 60]);
      const second = rng.pick([0, 7, 59, 60, 61]);
      const sep = rng.chance(0.9) ? " " : "T";
      const raw = `${pad(year, 4)}-${pad(month)}-${pad(day)}${sep}${pad(hour)}:${pad(minute)}:${pad(second)}${rng.pick(zones)}`;
      check(rng.chance(0.5) ? t : q, raw, rng.chance(0.5));
    }
  });

  it("keeps up with a log's seconds ticking through minute, day and year ends in one offset", () => {
    const t = new TimeJson();
    for (const zone of ["-0400", "+0000", "+0930"]) {
      let ms = Date.UTC(2024, 11, 31, 23, 58, 0);
      for (let i = 0; i < 400; i++, ms += 1000) {
        const d = new Date(ms);
        const raw = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${zone}`;
        check(t, raw);
      }
    }
  });

  it("refuses or reads through parsePmtaTime whatever is not PowerMTA's plain form", () => {
    const t = new TimeJson();
    for (const raw of [
      "",
      "yesterday",
      "1736928000",
      "2025-01-15 08:00:00",
      "2025-01-15 08:00:00Z",
      "2025-01-15 08:00:00+00:00",
      "2025-01-15 08:00:00.123+0000",
      "2025-01-15 08:00:0a+0000",
      "2025-01-15_08:00:00+0000",
      "2025-01-15 08:00:00*0000",
      "２０２５-01-15 08:00:00+0000",
    ])
      check(t, raw, true);
  });
});
