import type { Classifier } from "../classify/classifier.js";
import {
  AccountingDecoder,
  type DecodedBlank,
  type DecodedHeader,
  type DecodedItem,
  type DecodeError,
  type DecoderOptions,
  type DecoderState,
} from "../decode/accounting-decoder.js";
import type { EventContext } from "./build-event.js";
import { type EncodedEvent, encodeEvent } from "./encode-event.js";
import { EventWriter } from "./event-writer.js";

/**
 * Decode → classify → encode for one file, behind one interface with two homes: in-process
 * (LocalFileEncoder) or in a worker thread (WorkerFileEncoder), so the tailer reads and hands on in
 * the same way whichever does the work.
 */

/** An event ready for the output: its JSON as UTF-8, and what the metrics read. */
export interface ReadyEvent extends Omit<EncodedEvent, "line"> {
  readonly data: Buffer;
}

export interface ReadyRecord {
  readonly kind: "record";
  readonly offset: number;
  readonly end: number;
  readonly type: string;
  readonly event: ReadyEvent;
}

/** A record of a type the input does not want: its bytes are passed over, like a blank line's. */
export interface SkippedRecord {
  readonly kind: "skipped";
  readonly offset: number;
  readonly end: number;
}

/** A header line (Header objects stay with the decoder). */
export type HeaderItem = Pick<DecodedHeader, "kind" | "offset" | "end" | "changed">;

export type EncodedItem = ReadyRecord | SkippedRecord | HeaderItem | DecodeError | DecodedBlank;

export interface EncoderOptions extends DecoderOptions {
  /** Record types to encode; others become `skipped` items (all when absent). */
  readonly types?: readonly string[];
}

export interface FileEncoder {
  /**
   * Decodes and encodes a chunk of the file. The chunk is consumed (copied or decoded) before push
   * returns, so the caller may read the next chunk into the same buffer while this one is encoded.
   * `path` is the file's name now (it becomes the events' `source.file`).
   */
  push(chunk: Buffer, path: string): Promise<EncodedItem[]>;
  /** No more input; see AccountingDecoder.end. */
  end(acceptUnterminated: boolean, path: string): Promise<EncodedItem[]>;
  /** Gives back buffer memory while the file is idle. */
  release(): void;
  /** Decoder state for the checkpoint, as of the last push or end that resolved. */
  state(): DecoderState;
  /** The file is no longer read with this encoder. */
  close(): void;
}

export interface FileEncoders {
  /** Chunks of one file worth having in the encoder at once (1 when encoding is synchronous). */
  readonly depth: number;
  open(options: EncoderOptions): FileEncoder;
  close(): Promise<void>;
}

/** One event context per file path: built once, not once per record. */
export class Contexts {
  private readonly byPath = new Map<string, EventContext>();

  constructor(
    private readonly host: string,
    private readonly classifier: Classifier,
  ) {}

  for(file: string): EventContext {
    let ctx = this.byPath.get(file);
    if (ctx === undefined) {
      if (this.byPath.size >= 10_000) this.byPath.clear();
      ctx = { host: this.host, file, classifier: this.classifier };
      this.byPath.set(file, ctx);
    }
    return ctx;
  }
}

/** Decoded items → encoded items; records of unwanted types are only skipped. */
export function encodeItems(
  items: readonly DecodedItem[],
  ctx: EventContext,
  writer: EventWriter,
  types: readonly string[] | undefined,
): EncodedItem[] {
  const out: EncodedItem[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as DecodedItem;
    if (item.kind !== "record") out[i] = item;
    else if (types !== undefined && !types.includes(item.type))
      out[i] = { kind: "skipped", offset: item.offset, end: item.end };
    else {
      const e = encodeEvent(item, ctx);
      out[i] = {
        kind: "record",
        offset: item.offset,
        end: item.end,
        type: item.type,
        event: {
          data: writer.write(e.line),
          id: e.id,
          kind: e.kind,
          recordType: e.recordType,
          recipientDomain: e.recipientDomain,
          vmta: e.vmta,
          jobId: e.jobId,
          bounce: e.bounce,
          warnings: e.warnings,
        },
      };
    }
  }
  return out;
}

/** Everything on the calling thread. */
export class LocalFileEncoders implements FileEncoders {
  readonly depth = 1;
  private readonly writer = new EventWriter();
  private readonly contexts: Contexts;

  constructor(host: string, classifier: Classifier) {
    this.contexts = new Contexts(host, classifier);
  }

  open(options: EncoderOptions): FileEncoder {
    const decoder = new AccountingDecoder(options);
    const encode = (items: DecodedItem[], path: string): Promise<EncodedItem[]> =>
      Promise.resolve(encodeItems(items, this.contexts.for(path), this.writer, options.types));
    return {
      push: (chunk, path) => encode(decoder.push(chunk), path),
      end: (accept, path) => encode(decoder.end(accept), path),
      release: () => decoder.release(),
      state: () => decoder.state(),
      close: () => {},
    };
  }

  async close(): Promise<void> {}
}
