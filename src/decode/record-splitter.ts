/**
 * Finds record boundaries in a byte stream written as RFC 4180 CSV, incrementally and with exact
 * byte offsets. It works on bytes, not characters: the only bytes that matter (`"`, LF, CR) are ASCII
 * and never occur inside a multi-byte UTF-8 sequence, so a chunk may end anywhere — even inside a
 * character — without affecting where records end.
 *
 * A record ends at an LF seen at even quote parity. Parity is enough for RFC 4180: a doubled quote
 * inside a quoted field toggles twice. Bytes after the last complete record are held back until more
 * data arrives; nothing is emitted early, because a live accounting file is appended while we read.
 *
 * Memory is bounded by `maxRecordBytes`: a record that grows past it (a stray quote swallowing the
 * following lines, or a single enormous line) is cut at the first LF that is followed by a PowerMTA
 * record-type token, reported as an error span, and splitting resumes there. When no such LF is in
 * sight the bytes are discarded as they arrive (only the error's start offset is kept).
 */

const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;

/** One complete record (or header line) found in the stream. */
export interface RecordSpan {
  /** File offset of the record's first byte. */
  readonly start: number;
  /** File offset just past the record's line ending: where the next record starts. */
  readonly end: number;
  /**
   * The record's content without the line ending: a view into the splitter's buffer, whose bytes are
   * never rewritten once emitted (see append), so it stays valid while referenced.
   */
  readonly content: Buffer;
  /** Whether the record contains any double quote (fields need the slow RFC 4180 path). */
  readonly quoted: boolean;
}

export type SpanErrorReason = "record-too-long" | "unterminated-quote" | "partial-record";

export interface ErrorSpan {
  readonly start: number;
  readonly end: number;
  readonly reason: SpanErrorReason;
}

export interface SplitterSink {
  record(span: RecordSpan): void;
  error(span: ErrorSpan): void;
}

export interface EndOptions {
  /**
   * Emit a final line that has no line ending as a record (replay of a finished file) instead of
   * reporting it as a partial record (a sealed live file whose writer died mid-record).
   */
  readonly acceptUnterminated: boolean;
}

/** A line start that looks like a PowerMTA record (`b,` `rb,` `f,` ...) or a header (`type,` `#type,`). */
const RESYNC_TOKENS: readonly Buffer[] = [
  "b,",
  "rb,",
  "f,",
  "d,",
  "t,",
  "tq,",
  "r,",
  "rs,",
  "type,",
  "#type,",
].map((t) => Buffer.from(t, "latin1"));
const LONGEST_TOKEN = Math.max(...RESYNC_TOKENS.map((t) => t.length));
const EMPTY = Buffer.alloc(0);

export class RecordSplitter {
  private buf: Buffer;
  /** Bytes of `buf` in use. */
  private len = 0;
  /** File offset of buf[0]. */
  private base: number;
  /** Index in buf where the current (incomplete) record starts. */
  private recStart = 0;
  /** Index in buf where scanning resumes. */
  private pos = 0;
  private inQuote = false;
  private sawQuote = false;
  /** File offset where an over-long record began while we discard its bytes; -1 when not skipping. */
  private skippingFrom = -1;
  private readonly maxRecordBytes: number;

  constructor(startOffset: number, maxRecordBytes: number) {
    this.base = startOffset;
    this.maxRecordBytes = maxRecordBytes;
    // Allocated on the first push: a tailer may track hundreds of files it has not read yet.
    this.buf = EMPTY;
  }

  /**
   * Gives back buffer memory while the stream is idle: only the held-back tail is kept. A tailer
   * calls this when it stops reading a file for a while; the next push grows the buffer again.
   */
  release(): void {
    const pending = this.len - this.recStart;
    const kept = pending === 0 ? EMPTY : Buffer.from(this.buf.subarray(this.recStart, this.len));
    this.base += this.recStart;
    this.pos -= this.recStart;
    this.len = pending;
    this.recStart = 0;
    this.buf = kept;
  }

  /** File offset of the first byte not yet emitted as part of a record or error. */
  get committedOffset(): number {
    return this.skippingFrom >= 0 ? this.skippingFrom : this.base + this.recStart;
  }

  /** Bytes held back (the incomplete tail). */
  get pendingBytes(): number {
    return this.len - this.recStart;
  }

  push(chunk: Buffer, sink: SplitterSink): void {
    this.append(chunk);
    this.scan(sink);
  }

  /** Input is finished: decide what the held-back tail is. */
  end(sink: SplitterSink, options: EndOptions): void {
    if (this.skippingFrom >= 0) {
      sink.error({ start: this.skippingFrom, end: this.base + this.len, reason: "record-too-long" });
      this.skippingFrom = -1;
      this.recStart = this.len;
      return;
    }
    while (this.recStart < this.len) {
      if (this.inQuote) {
        // An opening quote never closed. If a later line looks like a record, only the first line is
        // broken: report it and split the rest again with quotes reset.
        const cut = this.findResyncLf(this.recStart, this.len);
        if (cut >= 0) {
          sink.error({
            start: this.base + this.recStart,
            end: this.base + cut + 1,
            reason: "unterminated-quote",
          });
          this.restartAt(cut + 1);
          this.scan(sink);
          continue;
        }
        sink.error({
          start: this.base + this.recStart,
          end: this.base + this.len,
          reason: "unterminated-quote",
        });
        this.recStart = this.len;
        break;
      }
      if (options.acceptUnterminated) {
        let contentEnd = this.len;
        if (contentEnd > this.recStart && this.buf[contentEnd - 1] === CR) contentEnd--;
        sink.record({
          start: this.base + this.recStart,
          end: this.base + this.len,
          content: this.buf.subarray(this.recStart, contentEnd),
          quoted: this.sawQuote,
        });
      } else {
        sink.error({ start: this.base + this.recStart, end: this.base + this.len, reason: "partial-record" });
      }
      this.recStart = this.len;
    }
    this.pos = this.len;
  }

  private append(chunk: Buffer): void {
    const need = this.len + chunk.length;
    if (need > this.buf.length) {
      // Bytes before recStart were emitted, and records keep views of them (DecodedRecord.bytes):
      // they are never written again. The held-back tail moves to a fresh buffer instead, sized for
      // one record plus a chunk; the old one lives on only as long as those views.
      const pending = this.len - this.recStart;
      const grown = Buffer.allocUnsafe(Math.max(pending + chunk.length, 2 * pending, 4096));
      this.buf.copy(grown, 0, this.recStart, this.len);
      this.len = pending;
      this.pos -= this.recStart;
      this.base += this.recStart;
      this.recStart = 0;
      this.buf = grown;
    }
    chunk.copy(this.buf, this.len);
    this.len += chunk.length;
  }

  private restartAt(index: number): void {
    this.recStart = index;
    this.pos = index;
    this.inQuote = false;
    this.sawQuote = false;
  }

  private scan(sink: SplitterSink): void {
    if (this.skippingFrom >= 0 && !this.skip(sink)) return;
    const len = this.len;
    // A view ending at `len`, so indexOf never wanders into stale bytes past the data.
    const buf = this.buf.subarray(0, len);
    // Cached positions of the next quote / LF at or after `pos`; -1 = none before `len`. Without the
    // cache a quote-free chunk would be rescanned to its end for every record.
    let nextQuote = -2;
    let nextLf = -2;
    let pos = this.pos;
    while (pos < len) {
      if (this.inQuote) {
        if (nextQuote !== -1 && nextQuote < pos) nextQuote = buf.indexOf(QUOTE, pos);
        if (nextQuote < 0 || nextQuote >= len) {
          pos = len;
          break;
        }
        this.inQuote = false;
        pos = nextQuote + 1;
        continue;
      }
      if (nextLf !== -1 && nextLf < pos) nextLf = buf.indexOf(LF, pos);
      if (nextLf >= len) nextLf = -1;
      if (nextQuote !== -1 && nextQuote < pos) nextQuote = buf.indexOf(QUOTE, pos);
      if (nextQuote >= len) nextQuote = -1;
      if (nextQuote >= 0 && (nextLf < 0 || nextQuote < nextLf)) {
        this.inQuote = true;
        this.sawQuote = true;
        pos = nextQuote + 1;
        continue;
      }
      if (nextLf < 0) {
        pos = len;
        break;
      }
      const start = this.recStart;
      let contentEnd = nextLf;
      if (contentEnd > start && buf[contentEnd - 1] === CR) contentEnd--;
      if (nextLf - start > this.maxRecordBytes) {
        this.pos = pos;
        this.overflow(sink);
        return;
      }
      sink.record({
        start: this.base + start,
        end: this.base + nextLf + 1,
        content: buf.subarray(start, contentEnd),
        quoted: this.sawQuote,
      });
      this.recStart = nextLf + 1;
      this.sawQuote = false;
      pos = nextLf + 1;
    }
    this.pos = pos;
    if (this.len - this.recStart > this.maxRecordBytes) this.overflow(sink);
  }

  /** The current record exceeded the limit: cut it at a plausible record start, or start discarding. */
  private overflow(sink: SplitterSink): void {
    const cut = this.findResyncLf(this.recStart, this.len);
    if (cut >= 0) {
      sink.error({ start: this.base + this.recStart, end: this.base + cut + 1, reason: "record-too-long" });
      this.restartAt(cut + 1);
      this.scan(sink);
      return;
    }
    this.skippingFrom = this.base + this.recStart;
    // Keep only a tail long enough to recognise "LF + token" straddling the next chunk boundary.
    const keep = Math.min(this.len - this.recStart, LONGEST_TOKEN + 1);
    this.restartAt(this.len - keep);
  }

  /** In discard mode: look for the resync point; returns true once normal splitting can resume. */
  private skip(sink: SplitterSink): boolean {
    const cut = this.findResyncLf(this.recStart, this.len);
    if (cut >= 0) {
      sink.error({ start: this.skippingFrom, end: this.base + cut + 1, reason: "record-too-long" });
      this.skippingFrom = -1;
      this.restartAt(cut + 1);
      return true;
    }
    const keep = Math.min(this.len - this.recStart, LONGEST_TOKEN + 1);
    this.restartAt(this.len - keep);
    return false;
  }

  /**
   * Index of the first LF in [from, to) that is followed by a record-type token, ignoring quotes.
   * An LF too close to `to` to be judged counts as not found (more bytes will tell).
   */
  private findResyncLf(from: number, to: number): number {
    const buf = this.buf.subarray(0, to);
    let i = buf.indexOf(LF, from);
    while (i >= 0) {
      const after = i + 1;
      for (const token of RESYNC_TOKENS) {
        if (
          after + token.length <= to &&
          buf.compare(token, 0, token.length, after, after + token.length) === 0
        )
          return i;
      }
      i = buf.indexOf(LF, after);
    }
    return -1;
  }
}
