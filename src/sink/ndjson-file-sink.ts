import { type FileHandle, open, rename, stat } from "node:fs/promises";
import type { Envelope } from "../deliver/batcher.js";
import { joinLines, LineJoiner } from "./join-lines.js";

/**
 * Appends events as NDJSON to a local file (the embedded default output), rotating by size:
 * `events.ndjson` → `events.ndjson.1` → ... up to `keep` old files.
 *
 * A batch is acknowledged only once its bytes are in the kernel (one write() per batch, awaited),
 * so a process crash after the acknowledgement cannot lose it; `sync()` adds an fsync, which the
 * daemon calls before it writes a checkpoint, so a power loss cannot either.
 */
export interface NdjsonFileSinkOptions {
  readonly path: string;
  /** Rotate when the file reaches this size; 0 = never. Default 256 MiB. */
  readonly maxBytes?: number;
  /** Rotated files kept. Default 5. */
  readonly keep?: number;
}

export class NdjsonFileSink {
  readonly path: string;
  private readonly maxBytes: number;
  private readonly keep: number;
  private handle: FileHandle | undefined;
  private bytes = 0;
  private dirty = false;
  private readonly joiner = new LineJoiner();
  written = 0;

  constructor(options: NdjsonFileSinkOptions) {
    this.path = options.path;
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.keep = options.keep ?? 5;
  }

  /**
   * Opens for appending. A file that does not end in a newline was cut by a crash in the middle of a
   * write (Linux stops a large write between pages when SIGKILL arrives): that batch was never
   * acknowledged and will be sent again, so its torn tail is cut off first — appending after it
   * would glue two events into one invalid line. Returns the bytes cut.
   */
  async open(): Promise<number> {
    const size = await stat(this.path).then(
      (s) => s.size,
      () => 0,
    );
    let cut = 0;
    if (size > 0) {
      const fh = await open(this.path, "r+");
      try {
        const end = await lastNewlineEnd(fh, size);
        if (end < size) {
          await fh.truncate(end);
          await fh.sync();
          cut = size - end;
        }
      } finally {
        await fh.close();
      }
    }
    this.bytes = size - cut;
    this.handle = await open(this.path, "a");
    return cut;
  }

  /** Writes a batch of already-serialised lines (each without its newline); resolves once written. */
  async writeLines(lines: readonly string[]): Promise<void> {
    await this.writeEvents(lines.map((l) => Buffer.from(l)));
  }

  /** Same as writeLines for lines already encoded as UTF-8 (no line endings inside). */
  async writeEvents(lines: readonly Buffer[]): Promise<void> {
    if (lines.length === 0) return;
    if (this.handle === undefined) throw new Error(`sink ${this.path} is not open`);
    await this.writeJoined(joinLines(lines, "", "\n", "\n"), lines.length);
  }

  /**
   * writeEvents for a batch of envelopes: events that lie one after the other in a slab, a newline
   * between them, are copied as one run and none needs a view (LineJoiner.joinEvents). The joined
   * buffer is reused, so calls must not overlap: the batcher sends one batch at a time.
   */
  async writeBatch(batch: readonly Envelope[]): Promise<void> {
    if (batch.length === 0) return;
    if (this.handle === undefined) throw new Error(`sink ${this.path} is not open`);
    await this.writeJoined(this.joiner.joinEvents(batch, "", "\n", "\n"), batch.length);
  }

  private async writeJoined(buf: Buffer, lines: number): Promise<void> {
    if (this.maxBytes > 0 && this.bytes > 0 && this.bytes + buf.length > this.maxBytes) await this.rotate();
    const handle = this.handle as FileHandle;
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await handle.write(buf, done, buf.length - done);
      done += bytesWritten;
    }
    this.bytes += buf.length;
    this.written += lines;
    this.dirty = true;
  }

  /** fsync: makes everything acknowledged so far survive a power loss. */
  async sync(): Promise<void> {
    if (this.handle === undefined || !this.dirty) return;
    await this.handle.sync();
    this.dirty = false;
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    if (handle === undefined) return;
    if (this.dirty) await handle.sync();
    this.dirty = false;
    await handle.close();
  }

  private async rotate(): Promise<void> {
    await this.close();
    for (let i = this.keep - 1; i >= 1; i--) {
      await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch(() => undefined);
    }
    await rename(this.path, `${this.path}.1`);
    this.bytes = 0;
    this.handle = await open(this.path, "a");
  }
}

/** Offset just after the last "\n" of the file (0 if there is none), reading backwards in 64 KiB steps. */
async function lastNewlineEnd(fh: FileHandle, size: number): Promise<number> {
  const buf = Buffer.allocUnsafe(64 * 1024);
  let pos = size;
  while (pos > 0) {
    const len = Math.min(buf.length, pos);
    pos -= len;
    const { bytesRead } = await fh.read(buf, 0, len, pos);
    const i = buf.subarray(0, bytesRead).lastIndexOf(0x0a);
    if (i >= 0) return pos + i + 1;
  }
  return 0;
}
