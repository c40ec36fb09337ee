import { parsePmtaTime } from "../decode/field-values.js";

/**
 * A timeLogged / timeQueued field → its event value, `"<ISO 8601 UTC>"`, as JSON bytes: exactly
 * `JSON.stringify(parsePmtaTime(raw))` (a property test holds the two together), read from the field's
 * bytes so that the usual record costs no string and no Date.
 *
 * PowerMTA writes `2025-01-15 08:00:00+0000`. With a zero offset the ISO form is the same digits
 * rearranged, once the date is checked to be one Date would not roll over (31 April, second 60).
 * With another offset the hours and even the day shift, so the converted minute is remembered and
 * only the seconds are copied while records stay in that minute — consecutive timeLogged values
 * nearly always do. Everything else goes through parsePmtaTime.
 */
export class TimeJson {
  /** `json[0, length)` holds the last time read; `words` is the same memory, for EventWriter.words. */
  readonly json = new Uint8Array(64);
  readonly words = new Int32Array(this.json.buffer);
  length = 0;
  /** The remembered minute: bytes 0–15 and 19–23 of the raw field (seconds left out) ... */
  private readonly key = new Uint8Array(21);
  private keyed = false;
  /** ... and its ISO form up to the seconds, `YYYY-MM-DDTHH:MM:`. */
  private readonly prefix = new Uint8Array(17);

  /**
   * Reads the field `src[from, to)`, whose text `raw(field)` gives (asked only for the odd forms);
   * false when the time cannot be read.
   */
  read(src: Uint8Array, from: number, to: number, raw: (field: number) => string, field = 0): boolean {
    const plain = to - from === 24 && isPlain(src, from);
    if (plain) {
      if (utcDirect(src, from)) {
        const json = this.json;
        json[0] = 0x22;
        for (let i = 0; i < 19; i++) json[i + 1] = src[from + i] as number;
        json[11] = 0x54; // T
        json[20] = 0x5a; // Z
        json[21] = 0x22;
        this.length = 22;
        return true;
      }
      if (this.keyed && this.sameMinute(src, from)) {
        const json = this.json;
        json[0] = 0x22;
        json.set(this.prefix, 1);
        json[18] = src[from + 17] as number;
        json[19] = src[from + 18] as number;
        json[20] = 0x5a;
        json[21] = 0x22;
        this.length = 22;
        return true;
      }
    }
    const iso = parsePmtaTime(raw(field));
    if (iso === undefined || iso.length > 60) return false;
    const json = this.json;
    json[0] = 0x22;
    // toISOString's alphabet (digits, `-+:.TZ`) needs no escaping.
    for (let i = 0; i < iso.length; i++) json[i + 1] = iso.charCodeAt(i);
    json[iso.length + 1] = 0x22;
    this.length = iso.length + 2;
    // Remember the minute when the seconds cannot have carried into it (60 would roll over).
    if (plain && iso.length === 20 && (src[from + 17] as number) <= 0x35) {
      for (let i = 0; i < 16; i++) this.key[i] = src[from + i] as number;
      for (let i = 0; i < 5; i++) this.key[16 + i] = src[from + 19 + i] as number;
      for (let i = 0; i < 17; i++) this.prefix[i] = iso.charCodeAt(i);
      this.keyed = true;
    }
    return true;
  }

  private sameMinute(src: Uint8Array, from: number): boolean {
    const key = this.key;
    for (let i = 0; i < 16; i++) if (src[from + i] !== key[i]) return false;
    for (let i = 0; i < 5; i++) if (src[from + 19 + i] !== key[16 + i]) return false;
    // Second 60 is not in the remembered minute (Date carries it into the next).
    return (src[from + 17] as number) <= 0x35;
  }
}

const digit = (b: number | undefined): boolean => b !== undefined && b >= 0x30 && b <= 0x39;

/** `YYYY-MM-DD HH:MM:SS±HHMM` (or with `T`): the shape PowerMTA writes. */
function isPlain(src: Uint8Array, f: number): boolean {
  for (const i of DIGITS) if (!digit(src[f + i])) return false;
  const sep = src[f + 10];
  const sign = src[f + 19];
  return (
    src[f + 4] === 0x2d &&
    src[f + 7] === 0x2d &&
    (sep === 0x20 || sep === 0x54) &&
    src[f + 13] === 0x3a &&
    src[f + 16] === 0x3a &&
    (sign === 0x2b || sign === 0x2d)
  );
}

const DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23];
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** A plain time at offset zero whose fields Date would keep as they are. */
function utcDirect(src: Uint8Array, f: number): boolean {
  for (let i = 20; i < 24; i++) if (src[f + i] !== 0x30) return false;
  const n = (i: number): number => ((src[f + i] as number) - 0x30) * 10 + ((src[f + i + 1] as number) - 0x30);
  const year = n(0) * 100 + n(2);
  const month = n(5);
  const day = n(8);
  if (year < 1970 || month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : (DAYS[month - 1] as number);
  return day <= days && n(11) <= 23 && n(14) <= 59 && n(17) <= 59;
}
