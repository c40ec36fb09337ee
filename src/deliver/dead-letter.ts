import { type FileHandle, open } from "node:fs/promises";
import type { EnvelopeOrigin } from "./batcher.js";

/**
 * What cannot be delivered is written here instead of being dropped: one JSON line per record with
 * where it was (file, device/inode, byte range), why, and the first KiB of its bytes. Each entry is
 * fsynced before the checkpoint may move past the record, so a crash cannot lose it either.
 */
export interface DeadLetterEntry {
  readonly time: string;
  readonly input: string;
  readonly file: string;
  readonly dev: number;
  readonly ino: number;
  readonly offset: number;
  readonly end: number;
  readonly length: number;
  /** `partial-record`, `record-too-long`, `unterminated-quote`, or a delivery rejection. */
  readonly reason: string;
  readonly detail: string;
  /** The first KiB of the record's bytes (UTF-8, invalid sequences replaced). */
  readonly preview?: string;
  /** For events the backend rejected: the HTTP status, the first KiB of its answer, the event. */
  readonly status?: number;
  readonly response?: string;
  readonly event?: unknown;
}

export class DeadLetterFile {
  private handle: FileHandle | undefined;
  count = 0;

  constructor(readonly path: string) {}

  async append(entry: DeadLetterEntry): Promise<void> {
    this.handle ??= await open(this.path, "a");
    await this.handle.write(`${JSON.stringify(entry)}\n`);
    await this.handle.sync();
    this.count++;
  }

  /** Appends an entry for the byte range `origin`, filling in the time and length. */
  async appendAt(
    origin: EnvelopeOrigin | undefined,
    what: Omit<DeadLetterEntry, "time" | "input" | "file" | "dev" | "ino" | "offset" | "end" | "length">,
  ): Promise<void> {
    const o = origin ?? { input: "", file: "", dev: 0, ino: 0, offset: 0, end: 0 };
    await this.append({ time: new Date().toISOString(), ...o, length: o.end - o.offset, ...what });
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    await h?.close();
  }
}
