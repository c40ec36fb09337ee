import { DECIMAL_MAX, writeDecimal } from "../sink/decimal.js";

/**
 * Writes event JSON as UTF-8 bytes into large shared slabs; each event comes out as a view of its
 * slab, valid for as long as it is referenced (an old slab lives on only through its views).
 *
 * Most of an event is the record's own bytes: the values of the CSV fields, copied under their keys.
 * Copying them byte for byte from the file's buffer into the slab is about 1 ns a byte. The string
 * route it replaced — concatenate a hundred pieces into one JS string, then encode it — spent most of
 * its time in V8 flattening the concatenation (~3.5 µs of a 1.4 KB event) before a byte was written.
 * So an event is written piece by piece: constant keys as pre-encoded bytes, field values straight
 * from the record's bytes (escaped as JSON needs), and only the few computed values (ISO times,
 * lower-cased domains) from strings.
 *
 * Writes never check the slab's end one by one: `begin` reserves a bound the caller computed, a
 * typed-array store past the end is dropped without effect, and `end` reports whether the event
 * really fit. A caller whose bound was wrong learns it there and takes its other path; no byte of a
 * neighbouring event is ever touched.
 *
 * Slabs are written again once every event in them is released (`release`, called when the output
 * acknowledged the event and nothing will read its bytes any more). A fresh 1 MiB slab per ~700
 * events was 1.5 GB of allocations per million events that V8 let pile up as external memory:
 * reusing them took ~10–20 MiB off the catch-up's peak RSS (104 vs 113–126 MiB). An event never
 * released (the daemon stopping with events in flight) simply keeps its slab until the GC takes it.
 */

/**
 * `s` as UTF-8 in memory of its own, for bytes kept in a long-lived cache. Buffer.from gives a string
 * under 4 KiB a slice of Node's shared 8 KiB pool, and one such slice kept alive keeps its whole pool
 * slab alive: the bounce prefixes cached per classification once held 17 MB of 8 KiB slabs for
 * ~2,100 entries (a heap snapshot of the 100,000-file case).
 */
export function ownBytes(s: string): Uint8Array {
  const bytes = Buffer.allocUnsafeSlow(Buffer.byteLength(s));
  bytes.write(s);
  return bytes;
}

/** Slab size: ~700 events of the usual size; a window of 10,000 events keeps ~15 slabs alive. */
const SLAB_BYTES = 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const HEX = "0123456789abcdef";
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Longer values are moved with copyWithin rather than byte by byte (the two cost the same at ~16). */
const COPY_WITHIN = 16;

/** Slabs kept for reuse at most: enough to absorb the acknowledgement of a few batches at once. */
const SPARE_SLABS = 4;

interface SlabUse {
  readonly slab: Buffer;
  /** Events written into the slab and not yet released. */
  live: number;
}

export class EventWriter {
  private buf: Buffer = EMPTY;
  private pos = 0;
  private start = 0;
  /** End of the bytes the current event may take (`begin`'s bound). */
  private limit = 0;
  /**
   * Where the source record (`begin`'s `src`) sits in the slab, minus nothing: byte i of the record
   * is at `staged + i`, just past the event's bound. -1 when no record was staged.
   */
  private staged = -1;
  /** Slabs holding events not yet released, by their memory. */
  private readonly uses = new Map<ArrayBufferLike, SlabUse>();
  private readonly spare: Buffer[] = [];

  /** `line` as UTF-8: a view of the current slab. */
  write(line: string): Buffer {
    // A UTF-16 code unit never takes more than 3 bytes of UTF-8.
    this.begin(3 * line.length);
    this.pos += this.buf.write(line, this.pos);
    return this.written();
  }

  /**
   * Starts an event of at most `bound` bytes. With `src` (the record the event is written from),
   * the record is also copied into the slab right after the bound, so that `copy` can move long
   * values with copyWithin: a native move inside one buffer costs the same ~20 ns whatever the
   * length, where the byte loop costs ~1.1 ns a byte (and Buffer.copy or set() from the record's
   * own buffer first allocate a view, ~70 ns). Those staged bytes are overwritten by the next event.
   */
  begin(bound: number, src?: Uint8Array): void {
    const need = bound + (src?.length ?? 0);
    if (this.buf.length - this.pos < need) {
      const old = this.buf;
      // The slab being left is spare at once if all its events were released already.
      if (old !== EMPTY && !this.uses.has(old.buffer)) this.keep(old);
      this.buf =
        (need <= SLAB_BYTES ? this.spare.pop() : undefined) ??
        Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, need));
      this.pos = 0;
    }
    this.start = this.pos;
    this.limit = this.pos + bound;
    if (src === undefined) this.staged = -1;
    else {
      this.staged = this.limit;
      this.buf.set(src, this.limit);
    }
  }

  /**
   * The event written since `begin`, or undefined (and nothing kept) when it outgrew its bound: its
   * bytes may then have run over the staged record, so none of them can be trusted.
   */
  end(): Buffer | undefined {
    if (this.pos > this.limit) {
      this.pos = this.start;
      return undefined;
    }
    return this.written();
  }

  /**
   * `data` (an event this writer returned) will not be read again: once every event of its slab is
   * released, the slab is written over. Releasing the same event twice would free a slab too early,
   * so callers release exactly once (RecordEnvelope makes sure).
   */
  release(data: Buffer): void {
    const use = this.uses.get(data.buffer);
    if (use === undefined) return;
    if (--use.live > 0) return;
    this.uses.delete(data.buffer);
    // The slab being written stays in use; it becomes spare when it is left (begin).
    if (use.slab !== this.buf) this.keep(use.slab);
  }

  private written(): Buffer {
    const ab = this.buf.buffer;
    const use = this.uses.get(ab);
    if (use === undefined) this.uses.set(ab, { slab: this.buf, live: 1 });
    else use.live++;
    return this.buf.subarray(this.start, this.pos);
  }

  private keep(slab: Buffer): void {
    if (slab.length === SLAB_BYTES && this.spare.length < SPARE_SLABS) this.spare.push(slab);
  }

  /** One ASCII byte: a separator or a bracket. */
  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  /** The first `n` bytes of `bytes` (all of them by default), as they are: pre-encoded JSON. */
  raw(bytes: Uint8Array, n = bytes.length): void {
    const buf = this.buf;
    let o = this.pos;
    if (n > 32) {
      if (o + n <= buf.length) buf.set(n === bytes.length ? bytes : bytes.subarray(0, n), o);
      o += n;
    } else {
      for (let i = 0; i < n; i++) buf[o++] = bytes[i] as number;
    }
    this.pos = o;
  }

  /** A non-negative integer (a file offset). */
  int(n: number): void {
    if (n >= DECIMAL_MAX) this.ascii(String(n));
    else this.pos = writeDecimal(this.buf, this.pos, n);
  }

  /** Text known to be printable ASCII with nothing to escape (ISO times, keys built here). */
  ascii(s: string): void {
    const buf = this.buf;
    let o = this.pos;
    const n = s.length;
    for (let i = 0; i < n; i++) buf[o++] = s.charCodeAt(i);
    this.pos = o;
  }

  /** The JSON string literal of `s`, byte for byte what JSON.stringify writes. */
  str(s: string): void {
    const buf = this.buf;
    const from = this.pos;
    let o = from;
    buf[o++] = QUOTE;
    const n = s.length;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x20 || c >= 0x80 || c === QUOTE || c === BACKSLASH) {
        // Anything but plain ASCII (rare in these values): let JSON.stringify and the encoder do it.
        const json = JSON.stringify(s);
        const len = Buffer.byteLength(json);
        if (from + len <= buf.length) buf.write(json, from);
        this.pos = from + len;
        return;
      }
      buf[o++] = c;
    }
    buf[o++] = QUOTE;
    this.pos = o;
  }

  /**
   * The JSON string literal of bytes `src[from, to)` that need no escaping (FieldSpans.clean): a
   * plain copy between quotes. `src` must be the record staged by `begin`; values longer than
   * COPY_WITHIN bytes are moved from the staged copy.
   */
  copy(src: Uint8Array, from: number, to: number): void {
    const buf = this.buf;
    let o = this.pos;
    buf[o++] = QUOTE;
    if (to - from > COPY_WITHIN && this.staged >= 0) {
      // Past the slab's end copyWithin copies what fits; end() then rejects the event anyway.
      buf.copyWithin(o, this.staged + from, this.staged + to);
      o += to - from;
    } else for (let i = from; i < to; i++) buf[o++] = src[i] as number;
    buf[o++] = QUOTE;
    this.pos = o;
  }

  /**
   * The JSON string literal of a CSV field's value, from the field's bytes in `src`: `[from, to)` is
   * the value as written, inside the quotes for a quoted field, where `""` stands for one quote.
   * The bytes must be valid UTF-8 (which JSON needs no escaping for); what JSON escapes is escaped
   * exactly as JSON.stringify does.
   */
  csv(src: Uint8Array, from: number, to: number): void {
    const buf = this.buf;
    let o = this.pos;
    buf[o++] = QUOTE;
    for (let i = from; i < to; i++) {
      const b = src[i] as number;
      if (b >= 0x20 && b !== QUOTE && b !== BACKSLASH) {
        buf[o++] = b;
        continue;
      }
      buf[o++] = BACKSLASH;
      if (b === QUOTE) {
        buf[o++] = QUOTE;
        // The second quote of a doubled pair is the same character.
        if (src[i + 1] === QUOTE && i + 1 < to) i++;
      } else if (b === BACKSLASH) buf[o++] = BACKSLASH;
      else if (b === 0x08)
        buf[o++] = 0x62; // b
      else if (b === 0x09)
        buf[o++] = 0x74; // t
      else if (b === 0x0a)
        buf[o++] = 0x6e; // n
      else if (b === 0x0c)
        buf[o++] = 0x66; // f
      else if (b === 0x0d)
        buf[o++] = 0x72; // r
      else {
        buf[o++] = 0x75; // u00XX
        buf[o++] = 0x30;
        buf[o++] = 0x30;
        buf[o++] = HEX.charCodeAt(b >> 4);
        buf[o++] = HEX.charCodeAt(b & 15);
      }
    }
    buf[o++] = QUOTE;
    this.pos = o;
  }
}
