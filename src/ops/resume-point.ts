import type { FileHandle } from "node:fs/promises";
import { AccountingDecoder } from "../decode/accounting-decoder.js";
import type { FallbackColumns } from "../decode/header.js";

/**
 * Where the daemon should resume in a file that another reader (Logstash) had read up to `target`.
 *
 * Logstash splits on "\n", so its offsets sit after a newline. PowerMTA writes RFC 4180 CSV in which
 * a quoted field may contain CRLF (a multi-line SMTP reply in dsnDiag), so such an offset can fall
 * inside a record. We decode the file from 0 with the daemon's own decoder and resume at the last
 * record boundary at or before `target`: the record Logstash had only partly read is sent again
 * (Logstash shipped its first half as a broken line of its own; the backend dedups nothing there, but
 * a re-sent whole record is recoverable and a skipped one is not). Decoding from 0 also yields the
 * decoder state a daemon that had read the file itself would checkpoint — the header line and the
 * file key that event ids derive from — so ids after the import are the same as without it.
 */
export interface ResumePoint {
  /** Record boundary at or before the target (0 when no record ends before it). */
  readonly offset: number;
  /** Bytes between the boundary and the target: the part of a record that will be sent again. */
  readonly rewound: number;
  /** Header line seen before the boundary, as the daemon saves it. */
  readonly header?: string;
  readonly fileKey?: string;
}

export interface ResumeOptions {
  readonly maxRecordBytes: number;
  readonly fallbackColumns?: FallbackColumns;
  readonly chunkBytes?: number;
}

export async function resumePointAt(
  handle: FileHandle,
  target: number,
  options: ResumeOptions,
): Promise<ResumePoint> {
  const decoder = new AccountingDecoder({
    maxRecordBytes: options.maxRecordBytes,
    ...(options.fallbackColumns === undefined ? {} : { fallbackColumns: options.fallbackColumns }),
  });
  const chunk = Buffer.allocUnsafe(options.chunkBytes ?? 256 * 1024);
  let boundary = 0;
  let pos = 0;
  // Only bytes before the target are decoded: every item emitted from them ends at or before it, and
  // an item is emitted only once its end is certain, exactly as when the daemon reads the file.
  while (pos < target) {
    const want = Math.min(chunk.length, target - pos);
    const { bytesRead } = await handle.read(chunk, 0, want, pos);
    if (bytesRead === 0) break;
    pos += bytesRead;
    for (const item of decoder.push(chunk.subarray(0, bytesRead))) boundary = Math.max(boundary, item.end);
  }
  const state = decoder.state();
  return {
    offset: boundary,
    rewound: target - boundary,
    ...(state.header === undefined ? {} : { header: state.header.line }),
    ...(state.fileKey === undefined ? {} : { fileKey: state.fileKey }),
  };
}
