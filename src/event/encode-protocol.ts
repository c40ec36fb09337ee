import type { Classification } from "../classify/classifier.js";
import type { FallbackColumns } from "../decode/header.js";
import type { SpanErrorReason } from "../decode/record-splitter.js";
import type { EventKind } from "./event.js";

/**
 * Messages between the daemon and its encoder worker. A reply packs a chunk's items into two
 * transferred buffers and one string array instead of an object per record: structured cloning
 * ~175 objects per chunk would cost about what the worker saves.
 */

export const ENCODER_ROLE = "pmta-ingest-encoder";

export interface EncoderInit {
  readonly role: typeof ENCODER_ROLE;
  readonly host: string;
  /** The operator's rules file (the worker builds its own classifier from it, as `run` does). */
  readonly rulesPath?: string;
}

export interface OpenOptions {
  readonly startOffset?: number;
  readonly maxRecordBytes?: number;
  readonly fallbackColumns?: FallbackColumns;
  readonly headerLine?: string;
  readonly fileKey?: string;
  readonly types?: readonly string[];
}

export type Request =
  | { readonly op: "open"; readonly id: number; readonly options: OpenOptions }
  | {
      readonly op: "push";
      readonly id: number;
      readonly req: number;
      readonly path: string;
      readonly chunk: Uint8Array;
    }
  | {
      readonly op: "end";
      readonly id: number;
      readonly req: number;
      readonly path: string;
      readonly accept: boolean;
    }
  | { readonly op: "release"; readonly id: number }
  | { readonly op: "close"; readonly id: number };

/** Item codes in Reply.nums. */
export const ITEM = { record: 0, skipped: 1, header: 2, blank: 3, error: 4 } as const;
export const KINDS: readonly EventKind[] = ["bounce", "deferral", "complaint", "delivery", "other"];

/**
 * Per item, NUMS numbers: code, offset, end, end of its event in `data` (records), classification
 * id or -1, kind index. Per record, STRS strings: type, vmta, jobId, recipientDomain.
 */
export const NUMS = 6;
export const STRS = 4;

export interface Reply {
  readonly req: number;
  readonly count: number;
  readonly nums: Float64Array;
  readonly strs: ReadonlyArray<string | undefined>;
  /** Every record's event JSON, one after the other. */
  readonly data: ArrayBuffer;
  /** Classifications first used in this reply, by id (the main thread keeps the table). */
  readonly classifications: ReadonlyArray<readonly [number, Classification]>;
  /** The table was started over before these ids (it is bounded). */
  readonly resetClassifications: boolean;
  /** Rare per-item extras, by item index. */
  readonly warnings: ReadonlyArray<readonly [number, readonly string[]]>;
  readonly errors: ReadonlyArray<readonly [number, SpanErrorReason, string]>;
  readonly changedHeaders: readonly number[];
  /** Decoder state after this chunk. */
  readonly headerLine?: string;
  readonly fileKey?: string;
}

export interface Failure {
  readonly req: number;
  readonly error: string;
}
