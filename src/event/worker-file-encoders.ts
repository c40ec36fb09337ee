import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Classification } from "../classify/classifier.js";
import type { DecoderState } from "../decode/accounting-decoder.js";
import { type Header, headerFromLine } from "../decode/header.js";
import {
  ENCODER_ROLE,
  type EncoderInit,
  type Failure,
  ITEM,
  KINDS,
  NUMS,
  type OpenOptions,
  type Reply,
  type Request,
  STRS,
} from "./encode-protocol.js";
import type { EncodedItem, EncoderOptions, FileEncoder, FileEncoders } from "./file-encoder.js";

/**
 * Decode → classify → encode in one worker thread. On a catch-up that work is about two thirds of
 * the daemon's CPU; in the worker it runs on the second core while the main thread reads, batches,
 * sends and checkpoints, and the tailer keeps one chunk in the worker while it hands on the last.
 *
 * A failed worker fails every request, now and later: the daemon stops with the error and, since
 * checkpoints only cover acknowledged records, loses nothing (systemd starts it again).
 */
export class WorkerFileEncoders implements FileEncoders {
  /** Three 64 KiB chunks: the worker has the next one queued whenever it finishes one. */
  readonly depth = 3;
  private readonly worker: Worker;
  private nextFile = 0;
  private nextReq = 0;
  private readonly pending = new Map<
    number,
    {
      readonly file: WorkerFileEncoder;
      readonly resolve: (items: EncodedItem[]) => void;
      readonly reject: (err: Error) => void;
    }
  >();
  private classifications: Classification[] = [];
  private failure: Error | undefined;
  private closing = false;

  constructor(init: Omit<EncoderInit, "role">) {
    this.worker = new Worker(workerEntry(), { workerData: { ...init, role: ENCODER_ROLE } });
    // Referenced only while a request waits for it: an idle worker must not keep the process alive
    // (a start-up error, a test's finished daemon), a busy one must.
    this.worker.unref();
    this.worker.on("message", (m: Reply | Failure) => this.onMessage(m));
    this.worker.on("error", (err) => this.fail(err));
    this.worker.on("exit", (code) => {
      if (!this.closing) this.fail(new Error(`encoder worker stopped (exit code ${code})`));
    });
  }

  open(options: EncoderOptions): FileEncoder {
    const id = this.nextFile++;
    const o: OpenOptions = {
      ...(options.startOffset === undefined ? {} : { startOffset: options.startOffset }),
      ...(options.maxRecordBytes === undefined ? {} : { maxRecordBytes: options.maxRecordBytes }),
      ...(options.fallbackColumns === undefined ? {} : { fallbackColumns: options.fallbackColumns }),
      ...(options.header === undefined ? {} : { headerLine: options.header.line }),
      ...(options.fileKey === undefined ? {} : { fileKey: options.fileKey }),
      ...(options.types === undefined ? {} : { types: options.types }),
    };
    this.post({ op: "open", id, options: o });
    return new WorkerFileEncoder(this, id, options.header, options.fileKey);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.fail(new Error("encoder worker closed"));
    await this.worker.terminate();
  }

  /** Sends a push or end; resolves with the chunk's items. */
  request(
    file: WorkerFileEncoder,
    make: (req: number) => Request,
    transfer: ArrayBuffer[] = [],
  ): Promise<EncodedItem[]> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(req, { file, resolve, reject });
      this.worker.postMessage(make(req), transfer);
    });
  }

  post(m: Request): void {
    if (this.failure === undefined) this.worker.postMessage(m);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
    this.worker.unref();
  }

  private onMessage(m: Reply | Failure): void {
    const p = this.pending.get(m.req);
    if ("error" in m) {
      this.fail(new Error(`encoder worker: ${m.error}`));
      return;
    }
    if (p === undefined) return;
    this.pending.delete(m.req);
    if (this.pending.size === 0) this.worker.unref();
    if (m.resetClassifications) this.classifications = [];
    for (const [id, c] of m.classifications) this.classifications[id] = c;
    p.file.update(m.headerLine, m.fileKey);
    p.resolve(this.unpack(m));
  }

  private unpack(m: Reply): EncodedItem[] {
    const { nums, strs, count } = m;
    const data = Buffer.from(m.data);
    const items: EncodedItem[] = new Array(count);
    const fileKey = m.fileKey ?? "";
    let warningAt = 0;
    let errorAt = 0;
    let headerAt = 0;
    let dataAt = 0;
    let s = 0;
    for (let i = 0; i < count; i++) {
      const o = i * NUMS;
      const code = nums[o] as number;
      const offset = nums[o + 1] as number;
      const end = nums[o + 2] as number;
      if (code === ITEM.record) {
        const dataEnd = nums[o + 3] as number;
        const cls = nums[o + 4] as number;
        const w = m.warnings[warningAt];
        let warnings: readonly string[] | undefined;
        if (w !== undefined && w[0] === i) {
          warnings = w[1];
          warningAt++;
        }
        const type = strs[s] as string;
        items[i] = {
          kind: "record",
          offset,
          end,
          type,
          event: {
            data: data.subarray(dataAt, dataEnd),
            id: `${fileKey}:${offset}`,
            kind: KINDS[nums[o + 5] as number] ?? "other",
            recordType: type,
            vmta: strs[s + 1],
            jobId: strs[s + 2],
            recipientDomain: strs[s + 3],
            bounce: cls < 0 ? undefined : this.classifications[cls],
            warnings,
          },
        };
        s += STRS;
        dataAt = dataEnd;
      } else if (code === ITEM.error) {
        const e = m.errors[errorAt++];
        if (e === undefined || e[0] !== i) throw new Error("encoder worker: error items out of step");
        items[i] = { kind: "error", offset, end, reason: e[1], message: e[2] };
      } else if (code === ITEM.header) {
        const changed = m.changedHeaders[headerAt] === i;
        if (changed) headerAt++;
        items[i] = { kind: "header", offset, end, changed };
      } else if (code === ITEM.skipped) items[i] = { kind: "skipped", offset, end };
      else items[i] = { kind: "blank", offset, end };
    }
    return items;
  }
}

class WorkerFileEncoder implements FileEncoder {
  private headerLine: string | undefined;
  private header: Header | undefined;
  private closed = false;

  constructor(
    private readonly pool: WorkerFileEncoders,
    private readonly id: number,
    header: Header | undefined,
    private fileKey: string | undefined,
  ) {
    this.header = header;
    this.headerLine = header?.line;
  }

  push(chunk: Buffer, path: string): Promise<EncodedItem[]> {
    // Copied now into a buffer of its own, which is moved (not copied again) to the worker.
    const copy = new Uint8Array(chunk.length);
    copy.set(chunk);
    return this.pool.request(this, (req) => ({ op: "push", id: this.id, req, path, chunk: copy }), [
      copy.buffer,
    ]);
  }

  end(accept: boolean, path: string): Promise<EncodedItem[]> {
    return this.pool.request(this, (req) => ({ op: "end", id: this.id, req, path, accept }));
  }

  release(): void {
    this.pool.post({ op: "release", id: this.id });
  }

  state(): DecoderState {
    return {
      ...(this.header === undefined ? {} : { header: this.header }),
      ...(this.fileKey === undefined ? {} : { fileKey: this.fileKey }),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pool.post({ op: "close", id: this.id });
  }

  /** The worker's decoder state after a reply. */
  update(headerLine: string | undefined, fileKey: string | undefined): void {
    if (headerLine !== undefined && headerLine !== this.headerLine) {
      this.headerLine = headerLine;
      this.header = headerFromLine(headerLine);
    }
    if (fileKey !== undefined) this.fileKey = fileKey;
  }
}

/**
 * The worker's script: encode-worker.js next to this module, or — in the single-file bundle, where
 * there is no such file — the bundle itself, whose entry starts the worker when loaded in one.
 */
function workerEntry(): URL {
  const sibling = new URL("./encode-worker.js", import.meta.url);
  return existsSync(fileURLToPath(sibling)) ? sibling : new URL(import.meta.url);
}
