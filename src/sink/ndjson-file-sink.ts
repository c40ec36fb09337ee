import { type FileHandle, open, rename, stat } from "node:fs/promises";

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
  written = 0;

  constructor(options: NdjsonFileSinkOptions) {
    this.path = options.path;
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.keep = options.keep ?? 5;
  }

  async open(): Promise<void> {
    this.bytes = await stat(this.path).then(
      (s) => s.size,
      () => 0,
    );
    this.handle = await open(this.path, "a");
  }

  /** Writes a batch of already-serialised lines (each without its newline); resolves once written. */
  async writeLines(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    if (this.handle === undefined) throw new Error(`sink ${this.path} is not open`);
    const buf = Buffer.from(`${lines.join("\n")}\n`);
    if (this.maxBytes > 0 && this.bytes > 0 && this.bytes + buf.length > this.maxBytes) await this.rotate();
    const handle = this.handle as FileHandle;
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await handle.write(buf, done, buf.length - done);
      done += bytesWritten;
    }
    this.bytes += buf.length;
    this.written += lines.length;
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
