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
 * Constant bytes of an event (a key with its quotes and colon, a cached `bounce` object's start), as
 * raw() writes them. Short pieces are written as 32-bit words rather than byte by byte: a JSON key of
 * ~14 bytes cost ~15 ns in the byte loop, ~6 ns as four word stores, and an event has ~35 of them.
 *
 * The bytes live in memory of their own, not in a slice of Node's shared 8 KiB pool (Buffer.from
 * gives a short string one): one such slice kept in a long-lived cache keeps its whole pool slab
 * alive — the bounce prefixes cached per classification once held 17 MB of 8 KiB slabs for ~2,100
 * entries (a heap snapshot of the 100,000-file case).
 */
export interface Piece {
  readonly bytes: Uint8Array;
  /** `bytes` zero-padded to a multiple of 4, as words in the platform's byte order. */
  readonly words: Int32Array;
}

export function piece(s: string): Piece {
  const n = Buffer.byteLength(s);
  const memory = new ArrayBuffer((n + 3) & ~3);
  Buffer.from(memory).write(s);
  return { bytes: new Uint8Array(memory, 0, n), words: new Int32Array(memory) };
}

/** The byte order typed arrays use, which the word copies keep through their DataView. */
const NATIVE_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Slab size: ~700 events of the usual size; a window of 10,000 events keeps ~15 slabs alive. */
const SLAB_BYTES = 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const HEX = "0123456789abcdef";
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Values longer than this are moved with copyWithin (~20 ns whatever the length); shorter ones as
 * 32-bit words (~1.2 ns a word), which copyWithin's fixed cost only matches at about this length.
 */
const COPY_WITHIN = 48;

/** Pieces longer than this are written with set() (~16 ns whatever the length) rather than as words. */
const LONG_PIECE = 48;

/**
 * Word writes run up to 3 bytes past a value's end, and word reads up to 3 bytes past the staged
 * record's: the staged record starts this far past the event's bound, so that a write starting
 * within the bound never reaches it, and as far again is kept free after it for the reads.
 */
const WORD_SLACK = 4;

/** Slabs kept for reuse at most: enough to absorb the acknowledgement of a few batches at once. */
const SPARE_SLABS = 4;

/**
 * One slab and its count of events not yet released. Callers that keep an event by its place
 * (`lastSlab`, `lastStart`, `lastEnd`) release it through this handle: no view per event, no lookup.
 */
export interface EventSlab {
  readonly bytes: Buffer;
  /** Events written into the slab and not yet released. */
  live: number;
}

const NO_SLAB: EventSlab = { bytes: EMPTY, live: 0 };

export interface EventWriterOptions {
  /**
   * A byte written after every event (`\n`, `,`): consecutive events then lie in their slab exactly
   * as a batch joins them, and a batch body is copied a run of events at a time (LineJoiner).
   */
  readonly separator?: number;
}

export class EventWriter {
  private buf: Buffer = EMPTY;
  private slab: EventSlab = NO_SLAB;
  /** `buf` as a DataView: the word copies' unaligned 32-bit loads and stores. */
  private view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  private pos = 0;
  private start = 0;
  /** End of the bytes the current event may take (`begin`'s bound). */
  private limit = 0;
  /**
   * Where the source record (`begin`'s `src`) sits in the slab, minus nothing: byte i of the record
   * is at `staged + i`, WORD_SLACK bytes past the event's bound. -1 when no record was staged.
   */
  private staged = -1;
  /** Slabs that may hold events not yet released, by their memory (release(data)). */
  private readonly slabs = new Map<ArrayBufferLike, EventSlab>();
  private readonly spare: EventSlab[] = [];
  private readonly separator: number;
  /** The event finished last: `lastSlab.bytes[lastStart, lastEnd)`. */
  lastSlab: EventSlab = NO_SLAB;
  lastStart = 0;
  lastEnd = 0;

  constructor(options: EventWriterOptions = {}) {
    this.separator = options.separator ?? -1;
  }

  /** `line` as UTF-8: a view of the current slab. */
  write(line: string): Buffer {
    // A UTF-16 code unit never takes more than 3 bytes of UTF-8.
    this.begin(3 * line.length);
    this.pos += this.buf.write(line, this.pos);
    this.finish();
    return this.lastEvent();
  }

  /**
   * Starts an event of at most `bound` bytes. With `src` (the record the event is written from),
   * the record is also copied into the slab just past the bound, so that `copy` moves values inside
   * one buffer: long ones with copyWithin (a native move, ~20 ns whatever the length), short ones as
   * words through the slab's DataView; the byte loop costs ~1.1 ns a byte, and Buffer.copy or set()
   * from the record's own buffer first allocate a view (~70 ns). Those staged bytes are overwritten
   * by the next event.
   */
  begin(bound: number, src?: Uint8Array): void {
    // WORD_SLACK past the bound even without a record: a word write that ends within the bound
    // may still run 3 bytes past it, and must never be skipped for want of room (see words()). The
    // separator after the event lands in that room too.
    const need = bound + WORD_SLACK + (src === undefined ? 0 : src.length + WORD_SLACK);
    if (this.buf.length - this.pos < need) {
      const old = this.slab;
      // The slab being left is spare at once if all its events were released already.
      if (old !== NO_SLAB && old.live === 0) this.keep(old);
      let slab = need <= SLAB_BYTES ? this.spare.pop() : undefined;
      if (slab === undefined) {
        slab = { bytes: Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, need)), live: 0 };
        this.slabs.set(slab.bytes.buffer, slab);
      }
      this.slab = slab;
      this.buf = slab.bytes;
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
      this.pos = 0;
    }
    this.start = this.pos;
    this.limit = this.pos + bound;
    if (src === undefined) this.staged = -1;
    else {
      this.staged = this.limit + WORD_SLACK;
      this.buf.set(src, this.staged);
    }
  }

  /**
   * Ends the event written since `begin`: true and the event in `lastSlab`/`lastStart`/`lastEnd`,
   * or false (and nothing kept) when it outgrew its bound: its bytes may then have run over the
   * staged record, so none of them can be trusted.
   */
  finish(): boolean {
    if (this.pos > this.limit) {
      this.pos = this.start;
      return false;
    }
    this.lastSlab = this.slab;
    this.lastStart = this.start;
    this.lastEnd = this.pos;
    if (this.separator >= 0) this.buf[this.pos++] = this.separator;
    this.slab.live++;
    return true;
  }

  /** finish(), and the event as a view of its slab. */
  end(): Buffer | undefined {
    return this.finish() ? this.lastEvent() : undefined;
  }

  /** The event finished last, as a view of its slab. */
  lastEvent(): Buffer {
    return this.lastSlab.bytes.subarray(this.lastStart, this.lastEnd);
  }

  /**
   * An event of `slab` will not be read again: once every event of the slab is released, the slab
   * is written over. Releasing the same event twice would free a slab too early, so callers release
   * exactly once (RecordEnvelope makes sure).
   */
  releaseIn(slab: EventSlab): void {
    if (--slab.live > 0) return;
    // The slab being written stays in use; it becomes spare when it is left (begin).
    if (slab !== this.slab) this.keep(slab);
  }

  /** releaseIn for an event this writer returned as a view. */
  release(data: Buffer): void {
    const slab = this.slabs.get(data.buffer);
    if (slab !== undefined && slab.live > 0) this.releaseIn(slab);
  }

  private keep(slab: EventSlab): void {
    if (slab.bytes.length === SLAB_BYTES && this.spare.length < SPARE_SLABS) this.spare.push(slab);
    else this.slabs.delete(slab.bytes.buffer);
  }

  /** One ASCII byte: a separator or a bracket. */
  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  /** Pre-encoded JSON, as it is. */
  raw(p: Piece): void {
    const n = p.bytes.length;
    if (n > LONG_PIECE) {
      const o = this.pos;
      if (o + n <= this.buf.length) this.buf.set(p.bytes, o);
      this.pos = o + n;
    } else this.words(p.words, n);
  }

  /**
   * The first `n` bytes held by `words` (bytes in the platform's order, as an Int32Array over them
   * gives), as they are: pre-encoded JSON. Whole words are written, so up to 3 bytes past the `n`th
   * are written too; what comes next overwrites them, and past an event's end they are not its own.
   */
  words(words: Int32Array, n: number): void {
    const o = this.pos;
    const count = (n + 3) >> 2;
    // Past the slab's end a DataView throws where a typed array drops the store: skip the write
    // (the event has outgrown its bound by then, and end() rejects it).
    if (o + 4 * count <= this.buf.length) {
      const view = this.view;
      for (let i = 0; i < count; i++) view.setInt32(o + 4 * i, words[i] as number, NATIVE_LE);
    }
    this.pos = o + n;
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
   * plain copy between quotes. `src` must be the record staged by `begin`: values are moved from the
   * staged copy.
   */
  copy(src: Uint8Array, from: number, to: number): void {
    const buf = this.buf;
    let o = this.pos;
    buf[o++] = QUOTE;
    const n = to - from;
    const staged = this.staged;
    if (staged >= 0 && o + n + WORD_SLACK <= buf.length) {
      if (n > COPY_WITHIN) buf.copyWithin(o, staged + from, staged + to);
      else {
        // Unaligned words through the DataView; the record is staged WORD_SLACK bytes past the
        // bound, so a write that stays within the bound never reaches a byte still to be read.
        const view = this.view;
        const at = staged + from;
        for (let i = 0; i < n; i += 4) view.setInt32(o + i, view.getInt32(at + i, NATIVE_LE), NATIVE_LE);
      }
      o += n;
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
