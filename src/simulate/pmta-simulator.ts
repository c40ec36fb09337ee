/**
 * Writes PowerMTA-style accounting files on a real filesystem the way `<acct-file>` with `move-to` does:
 * `<stream>-YYYY-MM-DD-NNNN.csv` in the live directory, appended through a kept-open fd, header written with
 * the first record, rotation by rename(2) into the archive directory (inode preserved), then a new file.
 * Fault modes from tailer-reliability.md §8.1 (late writes after the move, split writes, partial records,
 * inode reuse, copytruncate) are switchable. Every complete record is logged as ground truth.
 */

import { EventEmitter } from "node:events";
import * as fs from "node:fs";
import { join } from "node:path";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { formatCsvRow, type LineEnding } from "./csv-row.js";
import { BOUNCES_HEADER, FBL_HEADER, generateBounce, generateFbl, localParts } from "./record-generator.js";
import { Rng } from "./rng.js";

export type SimStream = "bounces" | "fbl";
export type RotationOrder = "move-then-create" | "create-then-move";
export type SimRecordType = "b" | "rb" | "f";

export interface PmtaSimulatorOptions {
  liveDir: string;
  /** Default: `<liveDir>/accounting/<stream>`. */
  archiveDir?: (stream: SimStream) => string;
  streams?: SimStream[];
  seed?: number;
  lineEnding?: LineEnding;
  /** Rate used by start(). Default 50. */
  recordsPerSecond?: number;
  /** Fraction of records that go to the fbl stream. Default 0.1. */
  fblShare?: number;
  /** Time-driven rotation in start(); 0 = never. Default 5000. */
  rotateEveryMs?: number;
  /** Rotate a file once it reaches this many bytes; 0 = off (default). */
  maxFileBytes?: number;
  rotationOrder?: RotationOrder;
  /** Records still appended through the old fd after each rename. Default 0. */
  lateWritesAfterMove?: number;
  /** Write about a quarter of the records in two write() calls split at an awkward byte. Default false. */
  splitWrites?: boolean;
  /** Header goes out together with the first record (default true), so a file nobody wrote to stays 0 bytes. */
  headerOnFirstRecord?: boolean;
  /** Keep per-record ground truth (default true). Off for long demo runs: only the counters are kept. */
  keepRecords?: boolean;
  /** Fixed offset for timestamps and the date in file names. Default "+0000". */
  utcOffset?: string;
  clock?: () => Date;
}

export interface SimRecord {
  readonly stream: SimStream;
  readonly seq: number;
  readonly type: SimRecordType;
  /** File name (not path) the record was written to; it keeps this name in the archive directory. */
  readonly file: string;
  readonly ino: number;
  /** Byte range of the record (header excluded) in that file. */
  readonly offset: number;
  readonly length: number;
  readonly values: readonly string[];
  /** Written through the old fd after the file had been moved. */
  readonly late: boolean;
  /** Set when the bytes are gone from disk: the file was deleted (reuseInode) or truncated (truncateLive). */
  readonly fate?: "deleted" | "truncated";
}

export interface RotateEvent {
  stream: SimStream;
  /** Path of the file before the move (in liveDir). */
  from: string;
  /** Path after the move (in the archive dir); same inode. */
  to: string;
  /** The new live file. */
  next: string;
}

export interface FileEvent {
  stream: SimStream;
  path: string;
}

export interface PartialWrite {
  stream: SimStream;
  seq: number;
  path: string;
  written: number;
  total: number;
}

export interface SimulatorEvents {
  rotate: [RotateEvent];
  file: [FileEvent];
  delete: [FileEvent];
  truncate: [FileEvent];
  error: [Error];
}

type MutableRecord = { -readonly [K in keyof SimRecord]: SimRecord[K] };

interface SimFile {
  readonly stream: SimStream;
  readonly name: string;
  readonly day: string;
  path: string;
  fd: number | undefined;
  ino: number;
  bytes: number;
  headerWritten: boolean;
  /** Records currently on disk in this file (only while live and keepRecords), to mark them lost. */
  records: MutableRecord[];
}

interface PendingPartial {
  readonly file: SimFile;
  readonly rest: Buffer;
  readonly record: MutableRecord;
}

interface StreamState {
  readonly stream: SimStream;
  readonly header: readonly string[];
  readonly rng: Rng;
  live: SimFile | undefined;
  /** Moved files still held open (for a pending partial record). */
  readonly retired: Set<SimFile>;
  partial: PendingPartial | undefined;
  nextSeq: number;
  day: string;
  daySeq: number;
  written: number;
  rotations: number;
  lastRotateAt: number;
}

const SPLIT_SHARE = 0.25;
const TICK_MS = 100;

export class PmtaSimulator extends EventEmitter<SimulatorEvents> {
  readonly liveDir: string;
  private readonly archiveDirFor: (stream: SimStream) => string;
  private readonly streamList: readonly SimStream[];
  private readonly lineEnding: LineEnding;
  private readonly recordsPerSecond: number;
  private readonly fblShare: number;
  private readonly rotateEveryMs: number;
  private readonly maxFileBytes: number;
  private readonly rotationOrder: RotationOrder;
  private readonly lateWritesAfterMove: number;
  private readonly splitWrites: boolean;
  private readonly headerOnFirstRecord: boolean;
  private readonly keepRecords: boolean;
  private readonly utcOffset: string;
  private readonly clock: () => Date;

  private readonly states: Map<SimStream, StreamState>;
  private readonly mechanics: Rng;
  private readonly log: MutableRecord[] = [];
  private fblCredit = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  private lastTickAt = 0;
  private rateCredit = 0;
  private failure: Error | undefined;

  constructor(options: PmtaSimulatorOptions) {
    super();
    this.liveDir = options.liveDir;
    this.archiveDirFor = options.archiveDir ?? ((stream) => join(options.liveDir, "accounting", stream));
    const streams: readonly SimStream[] = options.streams ?? ["bounces", "fbl"];
    this.streamList = [...new Set(streams)];
    if (this.streamList.length === 0) throw new RangeError("PmtaSimulator needs at least one stream");
    this.lineEnding = options.lineEnding ?? "\r\n";
    this.recordsPerSecond = options.recordsPerSecond ?? 50;
    this.fblShare = options.fblShare ?? 0.1;
    this.rotateEveryMs = options.rotateEveryMs ?? 5000;
    this.maxFileBytes = options.maxFileBytes ?? 0;
    this.rotationOrder = options.rotationOrder ?? "move-then-create";
    this.lateWritesAfterMove = options.lateWritesAfterMove ?? 0;
    this.splitWrites = options.splitWrites ?? false;
    this.headerOnFirstRecord = options.headerOnFirstRecord ?? true;
    this.keepRecords = options.keepRecords ?? true;
    this.utcOffset = options.utcOffset ?? "+0000";
    this.clock = options.clock ?? (() => new Date());

    // Separate generators per stream and for the write mechanics, so switching splitWrites on or adding
    // a stream does not change the content of the other stream's records.
    const master = new Rng(options.seed ?? 1);
    const bouncesRng = master.fork();
    const fblRng = master.fork();
    this.mechanics = master.fork();
    this.states = new Map(
      this.streamList.map((stream) => [
        stream,
        this.newState(stream, stream === "fbl" ? fblRng : bouncesRng),
      ]),
    );
  }

  // -------------------------------------------------------------------------------------------------
  // Public API

  archiveDir(stream: SimStream): string {
    return this.archiveDirFor(stream);
  }

  /** Current live file of a stream (undefined before the first write). */
  liveFile(stream: SimStream): { name: string; path: string; ino: number; bytes: number } | undefined {
    const live = this.state(stream).live;
    return live === undefined
      ? undefined
      : { name: live.name, path: live.path, ino: live.ino, bytes: live.bytes };
  }

  /** Ground truth of every complete record written (empty with keepRecords: false). */
  records(): readonly SimRecord[] {
    return this.log;
  }

  get written(): Readonly<Record<SimStream, number>> {
    return this.counters((s) => s.written);
  }

  get rotations(): Readonly<Record<SimStream, number>> {
    return this.counters((s) => s.rotations);
  }

  /** Writes n records now, split between the streams by fblShare. */
  writeRecords(n: number): Promise<void> {
    return this.serialize(async () => {
      for (let i = 0; i < n; i++) await this.writeNext(this.state(this.nextStream()));
    });
  }

  /** Rotates one stream (or all) now, like `pmta rotate acct`. */
  rotate(stream?: SimStream): Promise<void> {
    return this.serialize(async () => {
      for (const s of stream === undefined ? this.streamList : [stream])
        await this.rotateStream(this.state(s));
    });
  }

  /** Writes the first `bytes` bytes of the next record; the rest follows with completePartial(). */
  writePartial(stream: SimStream, bytes: number): Promise<PartialWrite> {
    return this.serialize(async () => this.startPartial(this.state(stream), bytes));
  }

  /** Writes the rest of the pending partial record, to the file it started in (even if that was moved). */
  completePartial(stream: SimStream): Promise<void> {
    return this.serialize(async () => this.finishPartial(this.state(stream)));
  }

  /** Deletes the live file and at once creates the next one, which on ext4 gets the freed inode. */
  reuseInode(stream: SimStream, options: { sameName?: boolean } = {}): Promise<void> {
    return this.serialize(async () => this.replaceLive(this.state(stream), options.sameName ?? false));
  }

  /** copytruncate-style: the live file is truncated to 0 bytes and starts again with a header. */
  truncateLive(stream: SimStream): Promise<void> {
    return this.serialize(async () => this.truncate(this.state(stream)));
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.lastTickAt = performance.now();
    for (const s of this.states.values()) s.lastRotateAt = this.lastTickAt;
    this.timer = setInterval(() => this.onTick(), TICK_MS);
  }

  /** Stops the timer, waits for queued work and closes every fd. A pending partial record stays partial. */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.serialize(async () => this.closeAll());
    if (this.failure !== undefined) throw this.failure;
  }

  // -------------------------------------------------------------------------------------------------
  // Setup helpers

  private newState(stream: SimStream, rng: Rng): StreamState {
    return {
      stream,
      header: stream === "fbl" ? FBL_HEADER : BOUNCES_HEADER,
      rng,
      live: undefined,
      retired: new Set(),
      partial: undefined,
      nextSeq: 1,
      day: "",
      daySeq: 0,
      written: 0,
      rotations: 0,
      lastRotateAt: 0,
    };
  }

  private state(stream: SimStream): StreamState {
    const s = this.states.get(stream);
    if (s === undefined) throw new RangeError(`stream ${stream} is not simulated`);
    return s;
  }

  private counters(get: (s: StreamState) => number): Readonly<Record<SimStream, number>> {
    const out: Record<SimStream, number> = { bounces: 0, fbl: 0 };
    for (const s of this.states.values()) out[s.stream] = get(s);
    return out;
  }

  /** Operations run one at a time: a split write must not interleave with another write to the same fd. */
  private serialize<T>(op: () => Promise<T>): Promise<T> {
    const result = this.chain.then(op);
    this.chain = result.catch(() => undefined);
    return result;
  }

  /** Deterministic stream choice: error diffusion gives exactly round(n × fblShare) fbl records. */
  private nextStream(): SimStream {
    if (this.streamList.length === 1) return this.streamList[0] as SimStream;
    this.fblCredit += this.fblShare;
    if (this.fblCredit >= 1 - 1e-9) {
      this.fblCredit -= 1;
      return "fbl";
    }
    return "bounces";
  }

  // -------------------------------------------------------------------------------------------------
  // Files

  private dayOf(time: Date): string {
    return localParts(time, this.utcOffset).toISOString().slice(0, 10);
  }

  private nameTaken(s: StreamState, name: string): boolean {
    return fs.existsSync(join(this.liveDir, name)) || fs.existsSync(join(this.archiveDirFor(s.stream), name));
  }

  private nextName(s: StreamState): { name: string; day: string } {
    const day = this.dayOf(this.clock());
    if (day !== s.day) {
      s.day = day;
      s.daySeq = 0;
    }
    for (;;) {
      const name = `${s.stream}-${day}-${String(s.daySeq).padStart(4, "0")}.csv`;
      s.daySeq++;
      // Never append to a file left by an earlier run in the same directories.
      if (!this.nameTaken(s, name)) return { name, day };
    }
  }

  private createFile(s: StreamState, fixedName?: string): SimFile {
    fs.mkdirSync(this.liveDir, { recursive: true });
    const { name, day } = fixedName === undefined ? this.nextName(s) : { name: fixedName, day: s.day };
    const path = join(this.liveDir, name);
    const fd = fs.openSync(path, "ax");
    const file: SimFile = {
      stream: s.stream,
      name,
      day,
      path,
      fd,
      ino: fs.fstatSync(fd).ino,
      bytes: 0,
      headerWritten: false,
      records: [],
    };
    if (!this.headerOnFirstRecord) this.writeHeader(s, file);
    this.emit("file", { stream: s.stream, path });
    return file;
  }

  private writeHeader(s: StreamState, file: SimFile): void {
    file.bytes += writeAll(openFd(file), Buffer.from(formatCsvRow(s.header, this.lineEnding)));
    file.headerWritten = true;
  }

  private liveOf(s: StreamState): SimFile {
    if (s.live === undefined) s.live = this.createFile(s);
    if (s.live.fd === undefined) s.live.fd = fs.openSync(s.live.path, "a");
    return s.live;
  }

  private closeFile(file: SimFile): void {
    if (file.fd !== undefined) fs.closeSync(file.fd);
    file.fd = undefined;
  }

  private closeAll(): void {
    for (const s of this.states.values()) {
      if (s.live !== undefined) this.closeFile(s.live);
      for (const f of s.retired) this.closeFile(f);
      s.retired.clear();
      // The fd it needed is gone: the fragment stays on disk as an unterminated record.
      s.partial = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Records

  private nextValues(s: StreamState): { seq: number; values: string[] } {
    const seq = s.nextSeq++;
    const generate = s.stream === "fbl" ? generateFbl : generateBounce;
    return { seq, values: generate(s.rng, seq, this.clock(), { utcOffset: this.utcOffset }) };
  }

  private newRecord(
    s: StreamState,
    file: SimFile,
    seq: number,
    values: string[],
    offset: number,
    length: number,
  ): MutableRecord {
    const record: MutableRecord = {
      stream: s.stream,
      seq,
      type: recordType(values[0]),
      file: file.name,
      ino: file.ino,
      offset,
      length,
      values,
      late: file !== s.live,
    };
    return record;
  }

  private remember(s: StreamState, file: SimFile, record: MutableRecord): void {
    s.written++;
    if (!this.keepRecords) return;
    this.log.push(record);
    if (file === s.live) file.records.push(record);
  }

  /** Header bytes that must precede the next record in this file, if it has none yet. */
  private headerPrefix(s: StreamState, file: SimFile): Buffer {
    if (file.headerWritten) return Buffer.alloc(0);
    file.headerWritten = true;
    return Buffer.from(formatCsvRow(s.header, this.lineEnding));
  }

  private async writeNext(s: StreamState): Promise<void> {
    if (s.live !== undefined && s.live.day !== this.dayOf(this.clock())) await this.rotateStream(s);
    await this.writeRecordTo(s, this.liveOf(s));
    const live = s.live;
    if (this.maxFileBytes > 0 && live !== undefined && live.bytes >= this.maxFileBytes)
      await this.rotateStream(s);
  }

  private async writeRecordTo(s: StreamState, file: SimFile): Promise<void> {
    if (s.partial?.file === file) this.finishPartial(s);
    const { seq, values } = this.nextValues(s);
    const body = Buffer.from(formatCsvRow(values, this.lineEnding));
    const prefix = this.headerPrefix(s, file);
    const offset = file.bytes + prefix.length;
    const fd = openFd(file);
    if (this.splitWrites && this.mechanics.chance(SPLIT_SHARE)) {
      const at = splitPoint(this.mechanics, body, this.lineEnding);
      file.bytes += writeAll(fd, Buffer.concat([prefix, body.subarray(0, at)]));
      // Let a concurrent reader see the half-written record before the rest arrives.
      await yieldToEventLoop();
      file.bytes += writeAll(fd, body.subarray(at));
    } else {
      file.bytes += writeAll(fd, Buffer.concat([prefix, body]));
    }
    this.remember(s, file, this.newRecord(s, file, seq, values, offset, body.length));
  }

  private startPartial(s: StreamState, bytes: number): PartialWrite {
    if (s.partial !== undefined) this.finishPartial(s);
    const file = this.liveOf(s);
    const { seq, values } = this.nextValues(s);
    const body = Buffer.from(formatCsvRow(values, this.lineEnding));
    const at = Math.min(Math.max(1, Math.trunc(bytes)), body.length - 1);
    const prefix = this.headerPrefix(s, file);
    const offset = file.bytes + prefix.length;
    file.bytes += writeAll(openFd(file), Buffer.concat([prefix, body.subarray(0, at)]));
    const record = this.newRecord(s, file, seq, values, offset, body.length);
    s.partial = { file, rest: body.subarray(at), record };
    return { stream: s.stream, seq, path: file.path, written: at, total: body.length };
  }

  private finishPartial(s: StreamState): void {
    const pending = s.partial;
    if (pending === undefined) return;
    s.partial = undefined;
    const { file, rest, record } = pending;
    file.bytes += writeAll(openFd(file), rest);
    record.late = file !== s.live;
    this.remember(s, file, record);
    if (s.retired.delete(file)) this.closeFile(file);
  }

  // -------------------------------------------------------------------------------------------------
  // Rotation and faults

  private moveOut(s: StreamState, file: SimFile): string {
    const dir = this.archiveDirFor(s.stream);
    fs.mkdirSync(dir, { recursive: true });
    const to = join(dir, file.name);
    fs.renameSync(file.path, to);
    file.path = to;
    return to;
  }

  private async rotateStream(s: StreamState): Promise<void> {
    const old = this.liveOf(s);
    const from = old.path;
    let next: SimFile;
    if (this.rotationOrder === "create-then-move") {
      next = this.createFile(s);
      this.moveOut(s, old);
    } else {
      this.moveOut(s, old);
      next = this.createFile(s);
    }
    s.live = next;
    s.rotations++;
    s.lastRotateAt = performance.now();
    old.records = [];
    this.emit("rotate", { stream: s.stream, from, to: old.path, next: next.path });
    for (let i = 0; i < this.lateWritesAfterMove; i++) await this.writeRecordTo(s, old);
    // PowerMTA would finish a record it had started; keep the fd until completePartial() does.
    if (s.partial?.file === old) s.retired.add(old);
    else this.closeFile(old);
  }

  private markLost(file: SimFile, fate: "deleted" | "truncated"): void {
    for (const r of file.records) r.fate = fate;
    file.records = [];
  }

  private replaceLive(s: StreamState, sameName: boolean): void {
    const old = this.liveOf(s);
    if (s.partial?.file === old) s.partial = undefined;
    this.closeFile(old);
    fs.unlinkSync(old.path);
    this.markLost(old, "deleted");
    this.emit("delete", { stream: s.stream, path: old.path });
    s.live = this.createFile(s, sameName ? old.name : undefined);
  }

  private truncate(s: StreamState): void {
    const file = this.liveOf(s);
    if (s.partial?.file === file) s.partial = undefined;
    fs.ftruncateSync(openFd(file), 0);
    file.bytes = 0;
    file.headerWritten = false;
    this.markLost(file, "truncated");
    this.emit("truncate", { stream: s.stream, path: file.path });
    if (!this.headerOnFirstRecord) this.writeHeader(s, file);
  }

  // -------------------------------------------------------------------------------------------------
  // Timer-driven mode

  private onTick(): void {
    if (this.ticking) return;
    this.ticking = true;
    this.serialize(async () => this.tick()).then(
      () => {
        this.ticking = false;
      },
      (err: unknown) => this.fail(err),
    );
  }

  private async tick(): Promise<void> {
    const now = performance.now();
    this.rateCredit += (this.recordsPerSecond * (now - this.lastTickAt)) / 1000;
    this.lastTickAt = now;
    const due = Math.floor(this.rateCredit);
    this.rateCredit -= due;
    for (let i = 0; i < due; i++) await this.writeNext(this.state(this.nextStream()));
    if (this.rotateEveryMs <= 0) return;
    for (const s of this.states.values()) {
      if (now - s.lastRotateAt >= this.rotateEveryMs) await this.rotateStream(s);
    }
  }

  private fail(err: unknown): void {
    this.failure = err instanceof Error ? err : new Error(String(err));
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.ticking = false;
    if (this.listenerCount("error") > 0) this.emit("error", this.failure);
  }
}

function recordType(value: string | undefined): SimRecordType {
  if (value === "b" || value === "rb" || value === "f") return value;
  throw new Error(`generator produced a row of unexpected type ${JSON.stringify(value)}`);
}

function openFd(file: SimFile): number {
  if (file.fd === undefined) throw new Error(`${file.path}: fd is closed`);
  return file.fd;
}

function writeAll(fd: number, buf: Buffer): number {
  let done = 0;
  while (done < buf.length) done += fs.writeSync(fd, buf, done, buf.length - done);
  return buf.length;
}

/**
 * Byte at which a split write cuts a record: preferably somewhere a reader can get wrong (inside a multi-byte
 * UTF-8 character, between CR and LF, right after a quote), otherwise anywhere.
 */
export function splitPoint(rng: Rng, body: Buffer, lineEnding: LineEnding): number {
  const candidates: number[][] = [];
  const inChar: number[] = [];
  const afterQuote: number[] = [];
  for (let i = 1; i < body.length - 1; i++) {
    if (((body[i] ?? 0) & 0xc0) === 0x80) inChar.push(i);
    if (body[i - 1] === 0x22) afterQuote.push(i);
  }
  if (inChar.length > 0) candidates.push(inChar);
  if (afterQuote.length > 0) candidates.push(afterQuote);
  if (lineEnding === "\r\n") candidates.push([body.length - 1]);
  if (candidates.length > 0 && rng.chance(0.6)) return rng.pick(rng.pick(candidates));
  return rng.int(1, body.length - 1);
}
