/**
 * Where each field of a record lies in its bytes: the byte-level twin of splitFields, for writers
 * that copy values straight from the file's bytes (EventWriter.csv). Only well-formed RFC 4180 is
 * accepted; whatever splitFields reads leniently (a quote inside an unquoted field, text after a
 * closing quote, a quote never closed) makes it answer -1, and the caller takes the string path.
 */

const COMMA = 0x2c;
const QUOTE = 0x22;

/** What a byte is to the splitter. */
const PLAIN = 0;
const SEPARATOR = 1;
const DOUBLE_QUOTE = 2;
/** JSON writes it escaped: a control byte or a backslash. */
const ESCAPED = 3;
/** Part of a multi-byte UTF-8 sequence. */
const NON_ASCII = 4;
const KIND = new Uint8Array(256).map((_, b) =>
  b === COMMA
    ? SEPARATOR
    : b === QUOTE
      ? DOUBLE_QUOTE
      : b < 0x20 || b === 0x5c
        ? ESCAPED
        : b >= 0x80
          ? NON_ASCII
          : PLAIN,
);

/** Field i is bytes [from[i], to[i]) of the record: inside the quotes for a quoted field. */
export class FieldSpans {
  from = new Int32Array(64);
  to = new Int32Array(64);
  /** 1 when field i's bytes go into a JSON string as they are: no quote, backslash or control byte. */
  clean = new Uint8Array(64);
  /** 0x80 when the record holds anything but ASCII, else 0. */
  high = 0;
  /** The last split record as one string, once text() made it. */
  private whole: string | undefined;

  /**
   * Splits `src` (one record without its line ending); returns the number of fields, or -1 when the
   * record is not well-formed CSV.
   */
  split(src: Uint8Array): number {
    this.whole = undefined;
    const n = src.length;
    let high = 0;
    let count = 0;
    let i = 0;
    for (;;) {
      if (count === this.from.length) this.grow();
      let start: number;
      let end: number;
      let dirty = false;
      if (i < n && src[i] === QUOTE) {
        start = i + 1;
        let j = start;
        for (;;) {
          if (j >= n) return -1; // never closed
          const b = src[j] as number;
          const kind = KIND[b] as number;
          if (kind !== PLAIN && kind !== SEPARATOR) {
            if (kind === DOUBLE_QUOTE) {
              if (src[j + 1] === QUOTE && j + 1 < n) {
                dirty = true;
                j += 2;
                continue;
              }
              break;
            }
            if (kind === ESCAPED) dirty = true;
            else high = 0x80;
          }
          j++;
        }
        end = j;
        i = j + 1;
        if (i < n && src[i] !== COMMA) return -1; // text after the closing quote
      } else {
        start = i;
        // One table load per byte; only the rare kinds take a second look.
        while (i < n) {
          const kind = KIND[src[i] as number] as number;
          if (kind !== PLAIN) {
            if (kind === SEPARATOR) break;
            if (kind === DOUBLE_QUOTE) return -1; // a quote inside an unquoted field
            if (kind === ESCAPED) dirty = true;
            else high = 0x80;
          }
          i++;
        }
        end = i;
      }
      this.from[count] = start;
      this.to[count] = end;
      this.clean[count] = dirty ? 0 : 1;
      count++;
      if (i >= n) break;
      i++; // past the comma
      if (i === n) {
        // A trailing comma: one more, empty field.
        if (count === this.from.length) this.grow();
        this.from[count] = n;
        this.to[count] = n;
        this.clean[count] = 1;
        count++;
        break;
      }
    }
    this.high = high;
    return count;
  }

  /**
   * Field i's value as splitFields gives it, `src` being the record last split: its bytes as UTF-8,
   * a doubled quote read as one. For an ASCII record, a slice of one string of the whole record
   * (byte offsets are character offsets): cheaper than a decode per field when a few are asked for.
   */
  text(src: Buffer, i: number): string {
    const s =
      this.high === 0
        ? this.ascii(src, this.from[i] as number, this.to[i] as number)
        : src.toString("utf8", this.from[i], this.to[i]);
    // Only a quoted field can hold quotes, and in one that split() accepted every quote is doubled.
    return this.clean[i] === 1 ? s : s.replaceAll('""', '"');
  }

  /**
   * Bytes `src[start, end)` of the record last split, known to be ASCII, as a string: a slice of the
   * record's one string when it has been made (text()), else a decode of just those bytes.
   */
  ascii(src: Buffer, start: number, end: number): string {
    if (this.high === 0) {
      this.whole ??= src.toString("latin1");
      return this.whole.slice(start, end);
    }
    return src.toString("latin1", start, end);
  }

  private grow(): void {
    const from = new Int32Array(this.from.length * 2);
    const to = new Int32Array(this.to.length * 2);
    const clean = new Uint8Array(this.clean.length * 2);
    from.set(this.from);
    to.set(this.to);
    clean.set(this.clean);
    this.from = from;
    this.to = to;
    this.clean = clean;
  }
}
