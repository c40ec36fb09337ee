import { isMainThread, parentPort, workerData } from "node:worker_threads";
import type { Classification } from "../classify/classifier.js";
import { classifierFromRulesFile } from "../cli/load-rules.js";
import { AccountingDecoder, type DecodedItem } from "../decode/accounting-decoder.js";
import { headerFromLine } from "../decode/header.js";
import { encodeEvent } from "./encode-event.js";
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
} from "./encode-protocol.js";
import { Contexts } from "./file-encoder.js";

/**
 * The encoder worker: decodes, classifies and encodes chunks for the daemon's main thread, which
 * meanwhile reads, batches, sends and checkpoints. Started by WorkerFileEncoders; when this module is
 * loaded in any other thread it does nothing.
 */

/** Where a chunk's events are written; grown when a chunk needs more (never shrunk). */
let scratch: Buffer = Buffer.allocUnsafeSlow(1024 * 1024);

function grow(buf: Buffer, used: number, need: number): Buffer {
  const bigger = Buffer.allocUnsafeSlow(Math.max(2 * buf.length, used + need));
  buf.copy(bigger, 0, 0, used);
  return bigger;
}

/** Classification ids handed out before the table starts over (a cache reset makes new objects). */
const MAX_CLASSIFICATIONS = 100_000;

interface Open {
  readonly decoder: AccountingDecoder;
  readonly types: readonly string[] | undefined;
  headerLine: string | undefined;
}

function serve(init: EncoderInit): void {
  const port = parentPort;
  if (port === null) return;
  let contexts: Contexts | undefined;
  // Requests that arrive while the rules file is read wait here, in order.
  const early: Request[] = [];
  classifierFromRulesFile(init.rulesPath).then(
    (classifier) => {
      contexts = new Contexts(init.host, classifier);
      for (const m of early.splice(0)) handle(m);
    },
    (err: unknown) => {
      // Thrown out of the worker: the main thread's "error" handler fails every pending request.
      setImmediate(() => {
        throw err;
      });
    },
  );
  const files = new Map<number, Open>();
  let ids = new WeakMap<Classification, number>();
  let nextId = 0;

  const reply = (req: number, f: Open, items: readonly DecodedItem[], path: string): void => {
    const ctx = (contexts as Contexts).for(path);
    const n = items.length;
    const nums = new Float64Array(n * NUMS);
    const strs: Array<string | undefined> = [];
    let used = 0;
    const classifications: Array<readonly [number, Classification]> = [];
    const warnings: Array<readonly [number, readonly string[]]> = [];
    const errors: Array<readonly [number, Reply["errors"][number][1], string]> = [];
    const changedHeaders: number[] = [];
    let resetClassifications = false;
    for (let i = 0; i < n; i++) {
      const item = items[i] as DecodedItem;
      const o = i * NUMS;
      nums[o + 1] = item.offset;
      nums[o + 2] = item.end;
      nums[o + 4] = -1;
      if (item.kind === "record") {
        if (f.types !== undefined && !f.types.includes(item.type)) {
          nums[o] = ITEM.skipped;
          continue;
        }
        nums[o] = ITEM.record;
        const e = encodeEvent(item, ctx);
        // Written at once: a chunk's worth of event strings kept until the end of the chunk survived
        // into V8's old generation (the worker spent three times the main thread's GC time).
        if (scratch.length - used < 3 * e.line.length) scratch = grow(scratch, used, 3 * e.line.length);
        used += scratch.write(e.line, used);
        nums[o + 3] = used;
        nums[o + 5] = KINDS.indexOf(e.kind);
        if (e.bounce !== undefined) {
          let id = ids.get(e.bounce);
          if (id === undefined) {
            if (nextId >= MAX_CLASSIFICATIONS) {
              ids = new WeakMap();
              nextId = 0;
              resetClassifications = true;
              classifications.length = 0;
            }
            id = nextId++;
            ids.set(e.bounce, id);
            classifications.push([id, e.bounce]);
          }
          nums[o + 4] = id;
        }
        strs.push(e.recordType, e.vmta, e.jobId, e.recipientDomain);
        if (e.warnings !== undefined) warnings.push([i, e.warnings]);
      } else if (item.kind === "header") {
        nums[o] = ITEM.header;
        if (item.changed) changedHeaders.push(i);
        f.headerLine = item.header.line;
      } else if (item.kind === "blank") nums[o] = ITEM.blank;
      else {
        nums[o] = ITEM.error;
        errors.push([i, item.reason, item.message]);
      }
    }
    // The chunk's events in a buffer of their own size, moved (not copied again) to the main thread.
    const data = new ArrayBuffer(used);
    new Uint8Array(data).set(scratch.subarray(0, used));
    const state = f.decoder.state();
    const msg: Reply = {
      req,
      count: n,
      nums,
      strs,
      data,
      classifications,
      resetClassifications,
      warnings,
      errors,
      changedHeaders,
      ...(f.headerLine === undefined ? {} : { headerLine: f.headerLine }),
      ...(state.fileKey === undefined ? {} : { fileKey: state.fileKey }),
    };
    port.postMessage(msg, [nums.buffer as ArrayBuffer, msg.data]);
  };

  port.on("message", (m: Request) => {
    if (contexts === undefined) early.push(m);
    else handle(m);
  });

  function handle(m: Request): void {
    try {
      switch (m.op) {
        case "open":
          files.set(m.id, open(m.options));
          return;
        case "push":
        case "end": {
          const f = files.get(m.id);
          if (f === undefined) throw new Error(`encoder: no open file ${m.id}`);
          const items =
            m.op === "push"
              ? f.decoder.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength))
              : f.decoder.end(m.accept);
          reply(m.req, f, items, m.path);
          return;
        }
        case "release":
          files.get(m.id)?.decoder.release();
          return;
        case "close":
          files.delete(m.id);
          return;
      }
    } catch (err) {
      const req = m.op === "push" || m.op === "end" ? m.req : -1;
      const failure: Failure = {
        req,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      };
      port?.postMessage(failure);
    }
  }
}

function open(o: OpenOptions): Open {
  const decoder = new AccountingDecoder({
    ...(o.startOffset === undefined ? {} : { startOffset: o.startOffset }),
    ...(o.maxRecordBytes === undefined ? {} : { maxRecordBytes: o.maxRecordBytes }),
    ...(o.fallbackColumns === undefined ? {} : { fallbackColumns: o.fallbackColumns }),
    ...(o.headerLine === undefined ? {} : { header: headerFromLine(o.headerLine) }),
    ...(o.fileKey === undefined ? {} : { fileKey: o.fileKey }),
  });
  return { decoder, types: o.types, headerLine: o.headerLine };
}

const init = workerData as Partial<EncoderInit> | null;
if (!isMainThread && init?.role === ENCODER_ROLE) {
  serve(init as EncoderInit);
}
