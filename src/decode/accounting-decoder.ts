import { createHash } from "node:crypto";
import { type SplitResult, splitFields } from "./field-splitter.js";
import { type FallbackColumns, Header, headerFromRow, isHeaderRow, PMTA_DEFAULT_COLUMNS } from "./header.js";
import { type ErrorSpan, type RecordSpan, RecordSplitter, type SpanErrorReason } from "./record-splitter.js";

/**
 * Bytes of one accounting file → header lines, records and error spans, each with exact byte
 * offsets. Pure: it never touches the filesystem, so the tailer, `replay` and the tests drive it with
 * chunks of any size. Every byte of the input ends up in exactly one emitted item (or is still held
 * back), so the offsets of consecutive items tile the file; that is what makes checkpoints exact.
 */

export const DEFAULT_MAX_RECORD_BYTES = 1024 * 1024;

/** Where the columns of a record came from. */
export type ColumnSource = "file" | "remembered" | "fallback" | "pmta-default";

export interface DecodedRecord {
  readonly kind: "record";
  readonly offset: number;
  readonly end: number;
  /** Record type (first column), e.g. `b`, `rb`, `f`. */
  readonly type: string;
  readonly values: string[];
  readonly header: Header;
  readonly columnSource: ColumnSource;
  /** Stable key of the file's content (header + first record), shared by every record of the file. */
  readonly fileKey: string;
  /**
   * The record's bytes as read (no line ending, no byte-order mark), for writers that copy values
   * from them. A view into the reader's buffer, which is never written again once a record in it
   * was emitted, so it stays valid for as long as it is referenced.
   */
  readonly bytes: Buffer;
  /** Present only when something was off. */
  readonly warnings?: string[];
  /**
   * The decoder knows of no warning: the columns came from a header line and the type is a known
   * one. What only a split of the fields can show (quoting, encoding, column count) is left to the
   * reader: `values` and `warnings` are worked out when first read, and a writer that splits the
   * bytes itself (encodeEvent) checks those three and never reads either.
   */
  readonly plain: boolean;
}

export interface DecodedHeader {
  readonly kind: "header";
  readonly offset: number;
  readonly end: number;
  readonly header: Header;
  /** True when it replaced a different header mid-file (PowerMTA reloaded with new record-fields). */
  readonly changed: boolean;
}

export interface DecodeError {
  readonly kind: "error";
  readonly offset: number;
  readonly end: number;
  readonly reason: SpanErrorReason;
  readonly message: string;
}

/** Blank lines: no data, but their bytes still belong to the file's tiling. */
export interface DecodedBlank {
  readonly kind: "blank";
  readonly offset: number;
  readonly end: number;
}

export type DecodedItem = DecodedRecord | DecodedHeader | DecodeError | DecodedBlank;

export interface DecoderState {
  /** Header remembered for this file (saved with its checkpoint). */
  readonly header?: Header;
  /** File key remembered for this file (saved with its checkpoint). */
  readonly fileKey?: string;
}

export interface DecoderOptions extends DecoderState {
  /** File offset of the first byte that will be pushed (0 for a whole file). */
  readonly startOffset?: number;
  /** Records longer than this become error items; the default is 1 MiB. */
  readonly maxRecordBytes?: number;
  /** Columns for rows seen before any header line and with no remembered header. */
  readonly fallbackColumns?: FallbackColumns;
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

export class AccountingDecoder {
  private readonly splitter: RecordSplitter;
  private readonly fallback: FallbackColumns | undefined;
  private header: Header | undefined;
  private headerSource: ColumnSource;
  private fileKey: string | undefined;
  private readonly fallbackHeaders = new Map<string, Header>();
  private out: DecodedItem[] = [];
  private readonly sink = {
    record: (span: RecordSpan) => this.onRecord(span),
    error: (span: ErrorSpan) => this.onError(span),
  };

  constructor(options: DecoderOptions = {}) {
    this.splitter = new RecordSplitter(
      options.startOffset ?? 0,
      options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES,
    );
    this.header = options.header;
    this.headerSource = options.header ? "remembered" : "fallback";
    this.fileKey = options.fileKey;
    this.fallback = options.fallbackColumns;
  }

  /** Decoder state worth saving with a checkpoint, so a later reader resumes with the same columns and ids. */
  state(): DecoderState {
    return { header: this.header, fileKey: this.fileKey };
  }

  /** File offset up to which every byte has been emitted: the first byte of the held-back tail. */
  get committedOffset(): number {
    return this.splitter.committedOffset;
  }

  get pendingBytes(): number {
    return this.splitter.pendingBytes;
  }

  /** Frees buffer memory while no more input is expected for a while (see RecordSplitter.release). */
  release(): void {
    this.splitter.release();
  }

  /** Decodes a chunk; returns the items completed by it (possibly none). */
  push(chunk: Buffer): DecodedItem[] {
    this.splitter.push(chunk, this.sink);
    return this.take();
  }

  /**
   * No more input. `acceptUnterminated: true` (replaying a finished file) emits a last line without
   * a line ending as a record; false (a sealed live file) reports it as a partial record.
   */
  end(acceptUnterminated: boolean): DecodedItem[] {
    this.splitter.end(this.sink, { acceptUnterminated });
    return this.take();
  }

  private take(): DecodedItem[] {
    const items = this.out;
    this.out = [];
    return items;
  }

  private onError(span: ErrorSpan): void {
    const length = span.end - span.start;
    const message =
      span.reason === "record-too-long"
        ? `record of ${length} bytes at offset ${span.start} exceeds the limit; skipped to the next record`
        : span.reason === "unterminated-quote"
          ? `quoted field opened at offset ${span.start} is never closed; ${length} bytes set aside`
          : `file ends inside a record at offset ${span.start} (${length} bytes without a line ending)`;
    this.out.push({ kind: "error", offset: span.start, end: span.end, reason: span.reason, message });
  }

  private onRecord(span: RecordSpan): void {
    let content = span.content;
    if (
      span.start === 0 &&
      content.length >= 3 &&
      content[0] === 0xef &&
      content.subarray(0, 3).equals(BOM)
    ) {
      content = content.subarray(3);
    }
    if (content.length === 0) {
      this.out.push({ kind: "blank", offset: span.start, end: span.end });
      return;
    }
    // The usual record starts with a known type and a comma: no string but the type's constant, and
    // the fields are split only if someone asks. Splitting every record into strings was ~0.75 of the
    // decoder's ~1 µs a record, while the event writer reads the bytes and wants a few fields only.
    let type = knownTypeAt(content);
    let text: string | undefined;
    let split: SplitResult | undefined;
    let first = type;
    if (type === undefined) {
      text = content.toString("utf8");
      split = splitFields(text, span.quoted);
      const values = split.values;
      first = values[0] as string;
      if (isHeaderRow(first)) {
        const header = headerFromRow(values, text);
        const changed = this.header !== undefined && this.header.line !== header.line;
        this.header = header;
        this.headerSource = "file";
        this.out.push({ kind: "header", offset: span.start, end: span.end, header, changed });
        return;
      }
      type = KNOWN_TYPES.get(first);
    }
    const [header, source] = this.columnsFor(first as string);
    this.fileKey ??= computeFileKey(this.header?.line ?? "", text ?? content.toString("utf8"));
    // Split already (an odd first field): the record keeps that split rather than doing it again.
    const early = text !== undefined && split !== undefined ? { text, split } : undefined;
    this.out.push(new LazyRecord(span, content, type, header, source, this.fileKey, early));
  }

  private columnsFor(type: string): [Header, ColumnSource] {
    if (this.header) return [this.header, this.headerSource];
    let list: readonly string[] | undefined;
    let source: ColumnSource = "fallback";
    if (this.fallback !== undefined) {
      list = isList(this.fallback) ? this.fallback : this.fallback[type];
    }
    if (list === undefined) {
      list = PMTA_DEFAULT_COLUMNS[type] ?? PMTA_DEFAULT_COLUMNS.b;
      source = "pmta-default";
    }
    const key = `${source}:${type}`;
    let header = this.fallbackHeaders.get(key);
    if (header === undefined) {
      header = new Header(list as readonly string[]);
      this.fallbackHeaders.set(key, header);
    }
    return [header, source];
  }
}

const REPLACEMENT_BYTES = Buffer.from([0xef, 0xbf, 0xbd]);
const KNOWN_TYPES: ReadonlyMap<string, string> = new Map(
  ["d", "b", "t", "tq", "r", "rb", "rs", "f"].map((t) => [t, t]),
);

const COMMA = 0x2c;

/** The known record type `content` starts with, followed by a comma (or nothing), else undefined. */
function knownTypeAt(content: Buffer): string | undefined {
  const a = content[0] as number;
  const b = content.length > 1 ? (content[1] as number) : COMMA;
  const two = content.length > 2 ? (content[2] as number) : COMMA;
  if (b === COMMA) {
    switch (a) {
      case 0x64:
        return "d";
      case 0x62:
        return "b";
      case 0x74:
        return "t";
      case 0x72:
        return "r";
      case 0x66:
        return "f";
    }
    return undefined;
  }
  if (two !== COMMA) return undefined;
  if (a === 0x74 && b === 0x71) return "tq";
  if (a === 0x72 && b === 0x62) return "rb";
  if (a === 0x72 && b === 0x73) return "rs";
  return undefined;
}

/**
 * A record as the decoder hands it on: its fields (`values`) and `warnings` are split from the bytes
 * the first time someone reads them, and kept.
 */
class LazyRecord implements DecodedRecord {
  readonly kind = "record";
  readonly offset: number;
  readonly end: number;
  readonly type: string;
  readonly plain: boolean;
  private readonly quoted: boolean;
  private split: { readonly values: string[]; readonly warnings: string[] | undefined } | undefined;

  constructor(
    span: RecordSpan,
    readonly bytes: Buffer,
    /** The known type's constant; undefined for an unknown one (then the first field is the type). */
    private readonly knownType: string | undefined,
    readonly header: Header,
    readonly columnSource: ColumnSource,
    readonly fileKey: string,
    early?: { readonly text: string; readonly split: SplitResult },
  ) {
    this.offset = span.start;
    this.end = span.end;
    this.quoted = span.quoted;
    this.plain = knownType !== undefined && (columnSource === "file" || columnSource === "remembered");
    if (early !== undefined) this.keep(early.text, early.split);
    // An unknown type's own text; a known type's constant string rather than a slice of the record:
    // maps keyed by type (metrics, caches) find the constant's hash already computed.
    this.type = knownType ?? this.values[0] ?? "";
  }

  get values(): string[] {
    return this.fields().values;
  }

  get warnings(): string[] | undefined {
    return this.fields().warnings;
  }

  private fields(): { readonly values: string[]; readonly warnings: string[] | undefined } {
    if (this.split !== undefined) return this.split;
    const text = this.bytes.toString("utf8");
    return this.keep(text, splitFields(text, this.quoted));
  }

  private keep(
    text: string,
    split: SplitResult,
  ): { readonly values: string[]; readonly warnings: string[] | undefined } {
    const values = split.values;
    const warnings: string[] = [];
    if (split.quoteWarning !== undefined) warnings.push(`quoting: ${split.quoteWarning}`);
    // U+FFFD in the text means the bytes were not valid UTF-8 (unless the file literally holds U+FFFD).
    if (text.includes("\uFFFD") && !this.bytes.includes(REPLACEMENT_BYTES)) {
      warnings.push("encoding: invalid UTF-8 replaced with U+FFFD");
    }
    const source = this.columnSource;
    if (source !== "file" && source !== "remembered") {
      warnings.push(`columns: no header line before this row; used the ${source} column list`);
    }
    if (values.length !== this.header.width) {
      warnings.push(`columns: ${values.length} fields, header has ${this.header.width}`);
    }
    if (this.knownType === undefined) {
      warnings.push(`type: unknown record type "${truncate(values[0] as string, 20)}"`);
    }
    this.split = { values, warnings: warnings.length === 0 ? undefined : warnings };
    return this.split;
  }
}

function isList(f: FallbackColumns): f is readonly string[] {
  return Array.isArray(f);
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/**
 * The file key identifies a file by content, not by name or inode: the header line plus the first
 * record (timestamps and addresses make it unique in practice). It is known as soon as the first
 * record is, so any record's id can be computed from bytes at or before it — re-reading the same
 * bytes after a restart, a rename into the archive or on another machine yields the same ids.
 */
export function computeFileKey(headerLine: string, firstRecord: string): string {
  // The first 8 bytes as hex: a flat 16-character string. digest("hex").slice(0, 16) gave a slice
  // that kept the whole 64-character digest alive for every file tracked (100,000 files: 8 MB).
  return createHash("sha256")
    .update(headerLine)
    .update("\n")
    .update(firstRecord)
    .digest()
    .toString("hex", 0, 8);
}
