import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { rename, stat } from "node:fs/promises";

/**
 * Appends events as NDJSON to a local file (the embedded default output), rotating by size:
 * `events.ndjson` → `events.ndjson.1` → ... up to `keep` old files. Writes honour the stream's
 * backpressure, so a slow disk slows the reader instead of growing memory.
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
  private stream: WriteStream | undefined;
  private bytes = 0;
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
    this.stream = await openStream(this.path);
  }

  /** Writes a batch of already-serialised lines (each without its newline). */
  async writeLines(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const stream = this.stream;
    if (stream === undefined) throw new Error(`sink ${this.path} is not open`);
    const text = `${lines.join("\n")}\n`;
    const size = Buffer.byteLength(text);
    if (this.maxBytes > 0 && this.bytes > 0 && this.bytes + size > this.maxBytes) await this.rotate();
    const ok = (this.stream as WriteStream).write(text);
    this.bytes += size;
    this.written += lines.length;
    if (!ok) await once(this.stream as WriteStream, "drain");
  }

  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = undefined;
    if (stream === undefined) return;
    await new Promise<void>((resolve, reject) =>
      stream.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
  }

  private async rotate(): Promise<void> {
    await this.close();
    for (let i = this.keep - 1; i >= 1; i--) {
      await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch(() => undefined);
    }
    await rename(this.path, `${this.path}.1`);
    this.bytes = 0;
    this.stream = await openStream(this.path);
  }
}

async function openStream(path: string): Promise<WriteStream> {
  const stream = createWriteStream(path, { flags: "a" });
  await once(stream, "open");
  return stream;
}
