import type { FileHandle } from "node:fs/promises";
import { open } from "node:fs/promises";
import type { FileCheckpoint } from "../checkpoint/checkpoint-store.js";
import { crashPoint } from "../checkpoint/crash-point.js";
import { AccountingDecoder, type DecodedItem, type DecoderOptions } from "../decode/accounting-decoder.js";
import { headerFromLine, isHeaderRow } from "../decode/header.js";
import { AckTracker, type Span } from "./ack-tracker.js";
import { type DiscoveredFile, listInputFiles, oldestFirst } from "./discover.js";
import { type ContentMarks, contentMarks, identityKey, verifyMarks } from "./file-identity.js";

/**
 * The tailer: discovers accounting files, reads each from its checkpoint through one descriptor that
 * follows the file into the archive, decodes records and hands them on, and keeps per file the
 * offset up to which the output acknowledged everything. It owns no policy about delivery; the
 * daemon wires it to the batcher, the dead-letter file and the checkpoint store.
 */

export interface TailerInput {
  readonly name: string;
  readonly dir: string;
  readonly pattern: RegExp;
  readonly archive?: string;
  readonly types?: readonly string[];
  readonly fallbackColumns?: readonly string[];
}

export type StartPolicy =
  | { readonly kind: "beginning" }
  | { readonly kind: "end" }
  | { readonly kind: "max-age"; readonly ms: number };

export interface TailerOptions {
  readonly inputs: readonly TailerInput[];
  readonly startAt: StartPolicy;
  readonly maxRecordBytes: number;
  readonly sealAfterMs: number;
  readonly maxOpenFiles: number;
  readonly readChunkBytes?: number;
  /** Read buffers: one for the file being handed on, the others for files read ahead (default 8). */
  readonly readers?: number;
  /** Time budget of a read round (default 200 ms; at least one chunk is read). */
  readonly roundMs?: number;
}

/** A file's first chunk read ahead; "nothing" to read now; undefined: not tried (no room then). */
type Ahead = DecodedItem[] | "nothing" | undefined;

interface ReadRoundState {
  openNow: number;
  progressed: boolean;
  /** The window is full, or the round's time is up: nothing more is handed on (or read ahead). */
  stop: boolean;
  /** When the round gives control back to the daemon's loop (performance.now() time). */
  deadline: number;
}

/**
 * How long one read round may go on. A round that read a large file to its end while the window
 * had room (the output keeping up: the usual catch-up) held the daemon's loop for as long: no
 * checkpoint was written for the whole catch-up, and a stop signal waited for its end.
 */
const ROUND_MS = 200;

/** What the tailer needs from the rest of the daemon. */
export interface TailerSink {
  /** Room for more events? (the in-flight window) */
  hasRoom(): boolean;
  /** One record to deliver; `span.ack()` once the output acknowledged it. */
  record(file: TrackedFileView, item: Extract<DecodedItem, { kind: "record" }>, span: Span): void;
  /** A span that cannot be delivered; resolves once it is durably recorded. */
  deadLetter(
    file: TrackedFileView,
    item: Extract<DecodedItem, { kind: "error" }>,
    preview: string,
  ): Promise<void>;
  log(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>): void;
  /** Counters for metrics, per input. */
  count(name: TailerCounter, input: string, by?: number): void;
}

export type TailerCounter =
  | "checkpoint_invalidated"
  | "rotation"
  | "truncation"
  | "lost_unread_bytes"
  | "bytes_read";

/** Per-input gauges for metrics. */
export interface InputStats {
  tracked: number;
  open: number;
  /** Bytes on disk not yet read (the lag). */
  unread: number;
}

export interface TrackedFileView {
  readonly key: string;
  readonly dev: number;
  readonly ino: number;
  readonly input: TailerInput;
  readonly path: string;
}

interface Tracked extends TrackedFileView {
  path: string;
  name: string;
  orderKey: string;
  live: boolean;
  present: boolean;
  newerExists: boolean;
  size: number;
  mtimeMs: number;
  lastGrowthAt: number;
  handle: FileHandle | undefined;
  readOffset: number;
  decoder: AccountingDecoder;
  tracker: AckTracker;
  finished: boolean;
  /** Decoded items not yet handed on because the window was full (at most one read chunk's worth). */
  backlog: DecodedItem[];
  /** Content marks computed for the last saved checkpoint offset (reused while the offset holds). */
  marks: ContentMarks | undefined;
  marksOffset: number;
}

const now = (): number => performance.now();
/** Files read at the same time by default (see readRound). */
const READERS = 8;
/** New files opened and fingerprinted per listing at most (see scan). */
const ADOPT_PER_SCAN = 2000;

export class Tailer {
  private readonly files = new Map<string, Tracked>();
  /** Checkpoint entries of files not (yet) seen on disk: kept until retention drops them. */
  private readonly restored = new Map<string, FileCheckpoint>();
  private readonly missingReported = new Set<string>();
  private initialScanDone = false;
  /** The last listing found more new files than a scan adopts (ADOPT_PER_SCAN). */
  moreToAdopt = false;
  /** One read buffer per concurrent reader (see readRound). */
  private readonly chunks: Buffer[];

  constructor(
    private readonly options: TailerOptions,
    private readonly sink: TailerSink,
  ) {
    const size = options.readChunkBytes ?? 64 * 1024;
    const readers = Math.max(2, options.readers ?? READERS);
    this.chunks = Array.from({ length: readers }, () => Buffer.allocUnsafe(size));
  }

  /** Checkpoints loaded at start; files are matched to them as they are discovered. */
  restore(entries: readonly FileCheckpoint[]): void {
    for (const e of entries) this.restored.set(identityKey(e.dev, e.ino), e);
  }

  get openDescriptors(): number {
    let n = 0;
    for (const f of this.files.values()) if (f.handle !== undefined) n++;
    return n;
  }

  /** Files tracked, descriptors open and bytes not yet read, per configured input (zeros included). */
  inputStats(): Map<string, InputStats> {
    const out = new Map<string, InputStats>();
    for (const input of this.options.inputs) out.set(input.name, { tracked: 0, open: 0, unread: 0 });
    for (const f of this.files.values()) {
      const s = out.get(f.input.name);
      if (s === undefined) continue;
      s.tracked++;
      if (f.handle !== undefined) s.open++;
      if (!f.finished) s.unread += Math.max(0, f.size - f.readOffset);
    }
    return out;
  }

  /**
   * Lists every input's directories and reconciles them with what is tracked. `shouldStop` is asked
   * between new files: adopting 100,000 archived files takes seconds, and SIGTERM must not wait for
   * it. A scan cut short reconciles nothing (a partial listing must not mark files as gone).
   */
  async scan(shouldStop?: () => boolean): Promise<void> {
    let adopted = 0;
    let complete = true;
    for (const input of this.options.inputs) {
      const listing = await listInputFiles(input);
      for (const dir of listing.missing) {
        if (!this.missingReported.has(dir)) {
          this.missingReported.add(dir);
          this.sink.log("warn", "directory does not exist yet; waiting for it", { input: input.name, dir });
        }
      }
      for (const dir of this.missingReported) {
        if (!listing.missing.includes(dir) && (dir === input.dir || dir === input.archive)) {
          this.missingReported.delete(dir);
          this.sink.log("info", "directory appeared", { input: input.name, dir });
        }
      }
      const seen = new Set<string>();
      // Live files first, then the archive oldest first; at most ADOPT_PER_SCAN new files per scan
      // (each costs an open and a hash), so that reading starts after seconds, not after the whole
      // of a 100,000-file archive was looked at. The rest are adopted by the next listings.
      listing.files.sort((a, b) => Number(b.live) - Number(a.live) || oldestFirst(a, b));
      const fresh: DiscoveredFile[] = [];
      for (const f of listing.files) {
        const key = identityKey(f.dev, f.ino);
        seen.add(key);
        const t = this.files.get(key);
        if (t === undefined) {
          if (adopted >= ADOPT_PER_SCAN) {
            complete = false;
            continue;
          }
          adopted++;
          fresh.push(f);
        } else this.update(t, f);
      }
      // Adopted several at a time (each is an open, an fstat and a read of the head).
      let stopped = false;
      await inParallel(fresh, this.chunks.length, async (f) => {
        if (stopped || shouldStop?.() === true) {
          stopped = true;
          return;
        }
        await this.adopt(f, input);
      });
      if (stopped) return;
      for (const t of this.files.values()) {
        if (t.input !== input || seen.has(t.key)) continue;
        if (t.present) {
          t.present = false;
          if (!t.finished && t.handle === undefined && t.size > t.tracker.ackedOffset) {
            const lost = t.size - t.readOffset;
            this.sink.count("lost_unread_bytes", t.input.name, lost);
            this.sink.log("error", "file deleted before it was read to the end", {
              input: input.name,
              file: t.path,
              unreadBytes: lost,
              hint: "PowerMTA or a cleanup job removed it; raise retention in the archive directory",
            });
          }
        }
      }
      this.markNewest(input);
    }
    // startAt applies to every file present at start, however many listings adopting them takes.
    if (complete) this.initialScanDone = true;
    this.moreToAdopt = !complete;
  }

  /**
   * Reads from files with unread bytes, the current live files first and then oldest first, while
   * the in-flight window has room.
   * Returns whether any byte was read.
   */
  async readRound(): Promise<boolean> {
    // The newest live file of each input first, then the rest oldest first: a backlog of archived
    // files (an outage, 100,000 small files) must not hold back the bounces PowerMTA writes now,
    // and among archived files the oldest are nearest to their retention deadline.
    const t0 = now();
    const current = (f: Tracked): number => (f.live && !f.newerExists ? 0 : 1);
    const order = [...this.files.values()]
      .filter((f) => !f.finished)
      .sort((a, b) => current(a) - current(b) || oldestFirst(a, b));
    // Counted once, then kept up to date here: asking per file made a round O(files²) (10,000 archived
    // files: a quarter of the CPU).
    const round: ReadRoundState = {
      openNow: this.openDescriptors,
      progressed: false,
      stop: false,
      // Never much shorter than ordering the files took (100,000 archived files), or rounds would be
      // mostly ordering.
      deadline: now() + Math.max(this.options.roundMs ?? ROUND_MS, 4 * (now() - t0)),
    };
    // Records are handed on strictly in `order`; only the I/O overlaps. Every open, fstat and read is
    // a trip through libuv's thread pool, and taking files one after the other left the process
    // waiting on them (100,000 tiny archived files: half the time idle). So while one file is handed
    // on, the next few are opened, fstat'ed and have their first chunk read and decoded, each into a
    // buffer of its own; what was read ahead waits in the file's backlog if the window fills first.
    const [main, ...spare] = this.chunks as [Buffer, ...Buffer[]];
    const pending: Array<{ readonly t: Tracked; readonly first: Promise<Ahead> }> = [];
    let next = 0;
    const fill = (): void => {
      while (next < order.length && !round.stop) {
        const t = order[next] as Tracked;
        if (t.backlog.length > 0) {
          pending.push({ t, first: Promise.resolve(undefined) });
        } else {
          const buf = spare.pop();
          if (buf === undefined) return;
          pending.push({ t, first: this.readAhead(t, buf, round).finally(() => spare.push(buf)) });
        }
        next++;
      }
    };
    fill();
    for (let p = pending.shift(); p !== undefined; p = pending.shift()) {
      const ahead = await p.first;
      if (round.stop) {
        // Read ahead, but the window filled or the time is up: handed on first thing next round.
        if (Array.isArray(ahead)) p.t.backlog = p.t.backlog.concat(ahead);
        continue;
      }
      if (ahead !== "nothing") await this.readOn(p.t, ahead, main, round);
      // Many small files take time too: no new ones once the round's time is up.
      if (now() >= round.deadline) round.stop = true;
      fill();
    }
    return round.progressed;
  }

  /** Opens `t` if needed, checks its size, and reads and decodes its next chunk; nothing is handed on. */
  private async readAhead(t: Tracked, chunk: Buffer, round: ReadRoundState): Promise<Ahead> {
    if (!this.sink.hasRoom()) return undefined;
    if (!(await this.ready(t, round))) return "nothing";
    return (await this.readChunk(t, chunk, round)) ?? "nothing";
  }

  /** Hands on what `t` had waiting and what was read ahead, then reads on while the window has room. */
  private async readOn(
    t: Tracked,
    ahead: DecodedItem[] | undefined,
    chunk: Buffer,
    round: ReadRoundState,
  ): Promise<void> {
    if (t.backlog.length > 0) {
      await this.handOn(t, []);
      if (t.backlog.length > 0) {
        round.stop = true; // still no room
        if (ahead !== undefined) t.backlog = t.backlog.concat(ahead);
        return;
      }
      round.progressed = true;
    }
    if (ahead !== undefined) await this.handOn(t, ahead);
    if (!this.sink.hasRoom() || t.backlog.length > 0) {
      round.stop = true;
      return;
    }
    if (ahead === undefined && !(await this.ready(t, round))) return;
    while (t.readOffset < t.size && this.sink.hasRoom() && t.backlog.length === 0) {
      const items = await this.readChunk(t, chunk, round);
      if (items === undefined) break;
      await this.handOn(t, items);
      if (now() >= round.deadline) {
        // Time to checkpoint, list and seal; this file is first again next round.
        round.stop = true;
        return;
      }
    }
  }

  /**
   * Opens `t` if it has no descriptor (verifying that a reused inode still holds the same file) and
   * takes its size through the descriptor. False when there is nothing to read now.
   */
  private async ready(t: Tracked, round: ReadRoundState): Promise<boolean> {
    if (t.handle === undefined) {
      if (t.readOffset >= t.size && t.present) return false;
      if (round.openNow >= this.options.maxOpenFiles) return false;
      // Counted before the open: a read-ahead must not take the same last slot meanwhile.
      round.openNow++;
      try {
        t.handle = await open(t.path, "r");
      } catch (err) {
        round.openNow--;
        this.sink.log("warn", "cannot open file", {
          input: t.input.name,
          file: t.path,
          reason: (err as NodeJS.ErrnoException).code,
        });
        return false;
      }
      // While no descriptor was held the inode could be freed and handed to a new file (ext4 does so
      // at once): check the content before trusting the offset (reliability matrix T12).
      if (t.marks !== undefined) {
        const st0 = await t.handle.stat();
        const verdict = await verifyMarks(t.handle, st0.size, t.marksOffset, t.marks);
        if (verdict !== "same") {
          this.sink.count("checkpoint_invalidated", t.input.name);
          this.restart(
            t,
            st0.size,
            "file changed identity while closed (inode reused); reading it from the start",
            verdict,
          );
        }
      }
    }
    // fstat through the descriptor: it sees growth of a file renamed or deleted since the listing.
    const st = await t.handle.stat();
    if (st.size > t.size) t.lastGrowthAt = now();
    if (st.size < t.readOffset) {
      this.truncated(t, st.size);
      return false;
    }
    t.size = st.size;
    return t.readOffset < t.size;
  }

  /** Reads and decodes the next chunk of `t` (undefined at its end). */
  private async readChunk(
    t: Tracked,
    chunk: Buffer,
    round: ReadRoundState,
  ): Promise<DecodedItem[] | undefined> {
    const handle = t.handle;
    if (handle === undefined || t.readOffset >= t.size) return undefined;
    const want = Math.min(chunk.length, t.size - t.readOffset);
    const { bytesRead } = await handle.read(chunk, 0, want, t.readOffset);
    if (bytesRead === 0) return undefined;
    crashPoint("after-read");
    const items = t.decoder.push(chunk.subarray(0, bytesRead));
    t.readOffset += bytesRead;
    this.sink.count("bytes_read", t.input.name, bytesRead);
    round.progressed = true;
    return items;
  }

  /**
   * Finishes files that can no longer grow: not the newest live file of their input (or moved to the
   * archive, or deleted), read to the end, and quiet for `sealAfterMs` — PowerMTA may still append
   * through its old descriptor for a moment after the move. A trailing partial record then goes to
   * the dead-letter file, and the descriptor is closed.
   */
  async sealRound(): Promise<void> {
    const t0 = now();
    const sealable = [...this.files.values()].filter(
      (t) =>
        !t.finished &&
        (!t.live || t.newerExists || !t.present) &&
        t.readOffset >= t.size &&
        t.backlog.length === 0 &&
        t0 - t.lastGrowthAt >= this.options.sealAfterMs,
    );
    await inParallel(sealable, this.chunks.length, async (t) => {
      if (t.handle !== undefined) {
        const st = await t.handle.stat();
        if (st.size !== t.size) {
          t.size = st.size;
          t.lastGrowthAt = t0;
          return;
        }
      }
      await this.handOn(t, t.decoder.end(false));
      t.finished = true;
      this.sink.log("info", "file finished", { input: t.input.name, file: t.path, bytes: t.size });
    });
    // A retired file read to its end gives its descriptor back at once, with the marks taken through
    // it for the offset its checkpoint will reach when every record handed on is acknowledged (the
    // path may soon name another file, or none). Not waiting for the acknowledgements matters: with
    // thousands of archived files to catch up, descriptors held until the output answered capped the
    // catch-up at maxOpenFiles files per batch round trip. It is not finished yet — a late write
    // shows up in the next listing and reopens it — but a rotation storm must not pin a descriptor
    // per file for the whole seal period.
    const idle = [...this.files.values()].filter(
      (t) =>
        (t.finished || ((!t.live || t.newerExists) && t.present && t.readOffset >= t.size)) &&
        t.handle !== undefined &&
        t.backlog.length === 0,
    );
    await inParallel(idle, this.chunks.length, async (t) => {
      const handle = t.handle as FileHandle;
      const offset = t.tracker.addedOffset;
      t.marks = await contentMarks(handle, Math.max(t.size, offset), offset);
      t.marksOffset = offset;
      await handle.close();
      t.handle = undefined;
      t.decoder.release();
    });
    // Files gone from disk and finished need no descriptor and no tracking beyond their checkpoint.
    for (const [key, t] of this.files) {
      if (!t.present && t.finished && t.tracker.pending === 0) {
        this.files.delete(key);
      }
    }
  }

  /**
   * Checkpoint entries for every file: the acknowledged offset with content marks computed at it,
   * plus the remembered entries of files no longer tracked (kept until retention drops them).
   */
  async checkpoints(nowMs: number): Promise<FileCheckpoint[]> {
    const out: FileCheckpoint[] = [];
    const trackedKeys = new Set<string>();
    for (const t of this.files.values()) {
      trackedKeys.add(t.key);
      const offset = t.tracker.ackedOffset;
      if (t.marks === undefined || t.marksOffset !== offset) {
        const handle = t.handle ?? (await open(t.path, "r").catch(() => undefined));
        if (handle === undefined) {
          // Renamed or deleted since we last looked: keep the last saved entry (behind, never ahead).
          const previous = this.restored.get(t.key);
          if (previous !== undefined) out.push(previous);
          continue;
        }
        try {
          t.marks = await contentMarks(handle, Math.max(t.size, offset), offset);
          t.marksOffset = offset;
        } finally {
          if (handle !== t.handle) await handle.close();
        }
      }
      const state = t.decoder.state();
      const entry: FileCheckpoint = {
        dev: t.dev,
        ino: t.ino,
        input: t.input.name,
        path: t.path,
        offset,
        headHash: t.marks.headHash,
        headLen: t.marks.headLen,
        anchorHash: t.marks.anchorHash,
        anchorLen: t.marks.anchorLen,
        ...(state.header === undefined ? {} : { header: state.header.line }),
        ...(state.fileKey === undefined ? {} : { fileKey: state.fileKey }),
        finished: t.finished && t.tracker.pending === 0 && offset >= t.size,
        // Retention counts from the last time the file was seen on disk.
        updatedAt: t.present ? nowMs : (this.restored.get(t.key)?.updatedAt ?? nowMs),
      };
      this.restored.set(t.key, entry);
      out.push(entry);
    }
    for (const [key, e] of this.restored) if (!trackedKeys.has(key)) out.push(e);
    return out;
  }

  /** Drops remembered entries (the store decided they expired). */
  forget(keep: readonly FileCheckpoint[]): void {
    const keys = new Set(keep.map((e) => identityKey(e.dev, e.ino)));
    for (const key of this.restored.keys()) if (!keys.has(key)) this.restored.delete(key);
  }

  /** A fingerprint of acknowledged progress: when unchanged, no checkpoint needs writing. */
  progressSignature(): string {
    let sig = "";
    for (const t of this.files.values()) sig += `${t.key}@${t.tracker.ackedOffset}${t.finished ? "f" : ""};`;
    return sig;
  }

  async close(): Promise<void> {
    for (const t of this.files.values()) {
      await t.handle?.close();
      t.handle = undefined;
    }
  }

  private update(t: Tracked, f: DiscoveredFile): void {
    if (t.path !== f.path) {
      if (t.live && !f.live) this.sink.count("rotation", t.input.name);
      t.path = f.path;
      t.name = f.name;
      t.orderKey = f.orderKey;
    }
    t.live = f.live;
    t.present = true;
    t.mtimeMs = f.mtimeMs;
    if (f.size < t.readOffset && t.handle === undefined) {
      this.truncated(t, f.size);
      return;
    }
    if (f.size > t.size) {
      t.size = f.size;
      t.lastGrowthAt = now();
      if (t.finished) {
        // Grew after it was finished (a very late write): pick it up again where it ended.
        this.sink.log("warn", "finished file grew again; reading the new bytes", {
          input: t.input.name,
          file: t.path,
        });
        t.finished = false;
        t.decoder = new AccountingDecoder({
          ...this.decoderOptions(t.input),
          ...t.decoder.state(),
          startOffset: t.tracker.ackedOffset,
        });
        t.readOffset = t.tracker.ackedOffset;
      }
    }
  }

  private truncated(t: Tracked, size: number): void {
    this.sink.count("truncation", t.input.name);
    this.restart(
      t,
      size,
      "file shrank below the read offset (truncated or rewritten); reading it again from the start",
      "truncated",
    );
  }

  /** Reads a file again from 0: never resume at an offset that belongs to other content. */
  private restart(t: Tracked, size: number, msg: string, reason: string): void {
    this.sink.log("warn", msg, { input: t.input.name, file: t.path, size, offset: t.readOffset, reason });
    // Acks still in flight for the old content go to the old tracker and are ignored.
    t.tracker = new AckTracker(0);
    t.backlog = [];
    t.decoder = new AccountingDecoder(this.decoderOptions(t.input));
    t.readOffset = 0;
    t.size = size;
    t.finished = false;
    t.marks = undefined;
    t.lastGrowthAt = now();
  }

  private decoderOptions(input: TailerInput): DecoderOptions {
    return {
      maxRecordBytes: this.options.maxRecordBytes,
      ...(input.fallbackColumns === undefined ? {} : { fallbackColumns: input.fallbackColumns }),
    };
  }

  private async adopt(f: DiscoveredFile, input: TailerInput): Promise<void> {
    const key = identityKey(f.dev, f.ino);
    const cp = this.restored.get(key);
    let start = 0;
    let header: string | undefined;
    let fileKey: string | undefined;
    let finished = false;
    let marks: ContentMarks | undefined;
    const handle = await open(f.path, "r").catch(() => undefined);
    if (handle === undefined) return; // vanished or unreadable: the next scan tries again
    try {
      if (cp !== undefined) {
        const verdict = await verifyMarks(handle, f.size, cp.offset, cp);
        if (verdict === "same") {
          start = cp.offset;
          header = cp.header;
          fileKey = cp.fileKey;
          finished = cp.finished && f.size === cp.offset;
        } else {
          this.sink.count("checkpoint_invalidated", input.name);
          this.sink.log("warn", "checkpoint does not match the file on disk; reading it from the start", {
            input: input.name,
            file: f.path,
            reason: verdict,
            checkpointOffset: cp.offset,
            size: f.size,
            hint: "inode reused by a new file, or the file was truncated or rewritten",
          });
        }
      } else if (!this.initialScanDone && this.options.startAt.kind !== "beginning") {
        const policy = this.options.startAt;
        const skip =
          policy.kind === "end" || (policy.kind === "max-age" && Date.now() - f.mtimeMs > policy.ms);
        if (skip) {
          [start, header] = await endBoundary(handle, f.size);
          this.sink.log("info", "no checkpoint; starting at the end as configured (startAt)", {
            input: input.name,
            file: f.path,
            skippedBytes: start,
          });
        }
      }
      // Marks for the starting offset, taken now while the file is open: a checkpoint written before
      // any progress must not depend on reopening a path that a rotation may already have renamed.
      marks = await contentMarks(handle, f.size, start);
    } finally {
      await handle.close();
    }
    const decoder = new AccountingDecoder({
      ...this.decoderOptions(input),
      startOffset: start,
      ...(header === undefined ? {} : { header: headerFromLine(header) }),
      ...(fileKey === undefined ? {} : { fileKey }),
    });
    const t: Tracked = {
      key,
      dev: f.dev,
      ino: f.ino,
      input,
      path: f.path,
      name: f.name,
      orderKey: f.orderKey,
      live: f.live,
      present: true,
      newerExists: false,
      size: f.size,
      mtimeMs: f.mtimeMs,
      lastGrowthAt: now(),
      handle: undefined,
      readOffset: start,
      decoder,
      tracker: new AckTracker(start),
      finished,
      backlog: [],
      marks,
      marksOffset: start,
    };
    this.files.set(key, t);
  }

  /** Per input: every live file but the newest is retired (PowerMTA started a new one). */
  private markNewest(input: TailerInput): void {
    const live = [...this.files.values()]
      .filter((t) => t.input === input && t.live && t.present)
      .sort(oldestFirst);
    live.forEach((t, i) => {
      t.newerExists = i < live.length - 1;
    });
  }

  /**
   * Hands decoded items on in file order. A record waits in the file's backlog while the window is
   * full, so the window — and with it the number of records a crash can make us send again — is
   * exact, not overshot by a read chunk.
   */
  private async handOn(t: Tracked, items: DecodedItem[]): Promise<void> {
    const tracker = t.tracker;
    const types = t.input.types;
    const queue = t.backlog.length === 0 ? items : t.backlog.concat(items);
    let i = 0;
    for (; i < queue.length; i++) {
      const item = queue[i] as DecodedItem;
      if (item.kind === "record") {
        if (types !== undefined && !types.includes(item.type)) {
          tracker.skip(item.offset, item.end);
          continue;
        }
        if (!this.sink.hasRoom()) break;
        this.sink.record(t, item, tracker.add(item.offset, item.end));
      } else if (item.kind === "error") {
        const preview = await this.preview(t, item.offset, item.end);
        await this.sink.deadLetter(t, item, preview);
        tracker.skip(item.offset, item.end);
      } else {
        tracker.skip(item.offset, item.end);
      }
    }
    t.backlog = i === queue.length ? [] : queue.slice(i);
  }

  private async preview(t: Tracked, start: number, end: number): Promise<string> {
    const handle = t.handle ?? (await open(t.path, "r").catch(() => undefined));
    if (handle === undefined) return "";
    try {
      const buf = Buffer.alloc(Math.min(1024, end - start));
      const { bytesRead } = await handle.read(buf, 0, buf.length, start);
      return buf.subarray(0, bytesRead).toString("utf8");
    } finally {
      if (handle !== t.handle) await handle.close();
    }
  }
}

/** Runs `fn` over `items`, at most `limit` at a time (each item once; order of starts kept). */
async function inParallel<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** For startAt=end: the offset after the last complete line, and the file's header line if it has one. */
async function endBoundary(handle: FileHandle, size: number): Promise<[number, string | undefined]> {
  const headBuf = Buffer.alloc(Math.min(size, 64 * 1024));
  await handle.read(headBuf, 0, headBuf.length, 0);
  const firstLf = headBuf.indexOf(0x0a);
  let header: string | undefined;
  if (firstLf > 0) {
    let line = headBuf.subarray(0, firstLf).toString("utf8").replace(/\r$/, "");
    if (line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    if (isHeaderRow(line.split(",")[0] ?? "")) header = line;
  }
  const tailLen = Math.min(size, 1024 * 1024);
  const tail = Buffer.alloc(tailLen);
  await handle.read(tail, 0, tailLen, size - tailLen);
  const lastLf = tail.lastIndexOf(0x0a);
  return [lastLf < 0 ? 0 : size - tailLen + lastLf + 1, header];
}
