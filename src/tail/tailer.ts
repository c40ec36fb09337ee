import type { Stats } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { open, stat } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import type { FileCheckpoint } from "../checkpoint/checkpoint-store.js";
import { crashPoint } from "../checkpoint/crash-point.js";
import { AccountingDecoder, type DecodedItem, type DecoderOptions } from "../decode/accounting-decoder.js";
import { headerFromLine, isHeaderRow } from "../decode/header.js";
import { FileLineLimiter } from "../observe/file-line-limiter.js";
import { AckTracker, type Span } from "./ack-tracker.js";
import { type DiscoveredFile, listInputFiles, oldestFirst, orderKey } from "./discover.js";
import {
  ANCHOR_BYTES,
  type ContentMarks,
  contentMarks,
  HEAD_BYTES,
  identityKey,
  marksOf,
  readRange,
  verifyMarks,
} from "./file-identity.js";

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
  /** The inputs startAt applies to (default: all): those at their first start (start-policy.ts). */
  readonly startAtInputs?: ReadonlySet<string>;
  readonly maxRecordBytes: number;
  readonly sealAfterMs: number;
  /** How often a listing stat's finished archived files too (default 10 min; see scan). */
  readonly archiveRecheckMs?: number;
  readonly maxOpenFiles: number;
  readonly readChunkBytes?: number;
  /** Read buffers: one for the file being handed on, the others for files read ahead (default 8). */
  readonly readers?: number;
  /** Time budget of a read round (default 200 ms; at least one chunk is read). */
  readonly roundMs?: number;
}

/** A file's first chunk read ahead; "nothing" to read now; undefined: not tried (no room then). */
type Ahead = DecodedItem[] | "nothing" | undefined;

/** A read issued ahead of its use: where it reads, and how many bytes it got. */
interface PendingRead {
  readonly handle: FileHandle;
  readonly at: number;
  readonly done: Promise<number>;
}

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
  /** Adopted from the archive: never seen live (see mayFinishEarly). */
  readonly foundArchived: boolean;
  /**
   * A small quiet archived file's unread bytes, read whole when it was adopted (see STASH_FILE_BYTES):
   * handed to the decoder as its first chunk, so that the file is never opened again.
   */
  stash: Buffer | undefined;
  /** Marks for the end of the stashed bytes, where its checkpoint will be once they are acknowledged. */
  endMarks: ContentMarks | undefined;
  endMarksOffset: number;
}

/**
 * A file read to its end, sealed and wholly acknowledged: all that is kept of it is its checkpoint
 * entry. An archive of 100,000 files is mostly these, and a Tracked with its decoder, ack tracker and
 * strings cost ~2.8 KB each (280 MB for 100,000); the entry about a fifth of that. It becomes a
 * Tracked again only if it grows or shrinks (see scan).
 */
interface DoneFile {
  entry: FileCheckpoint;
  readonly input: TailerInput;
  live: boolean;
  /** As last stat'ed: a new modification time means a write, or another file on a reused inode. */
  mtimeMs: number;
  /** Date.now() time from which it has been quiet for sealAfterMs (see `unquiet`). */
  readonly quietAt: number;
  /** While not quiet: when (Date.now() time) a listing is to stat it next. */
  recheckAt: number;
}

/** A directory's identity and change times, and when (Date.now()) it was stat'ed before a readdir. */
interface DirStamp {
  readonly ino: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly at: number;
}

/**
 * A directory's mtime is trusted to show that nothing was added, removed or renamed in it since a
 * readdir only when it is older than that readdir by this much: a change in the same timestamp tick
 * (1 s or 2 s on some filesystems) would otherwise go unseen.
 */
const DIR_MTIME_MARGIN_MS = 2000;

/** A file the last listing found and did not adopt yet (ADOPT_PER_SCAN). */
interface Waiting {
  readonly input: TailerInput;
  readonly path: string;
  readonly live: boolean;
  /** Identity when listed (isPresent): a file renamed since its entry was saved is still found. */
  readonly key: string;
}

const now = (): number => performance.now();
/** Files read at the same time by default (see readRound). */
const READERS = 8;
/** New files opened and fingerprinted per listing at most (see scan). */
const ADOPT_PER_SCAN = 2000;
/**
 * How stale a finished file's "last seen on disk" time (its entry's updatedAt, which retention counts
 * from) may get before a listing renews it. A renewal changes the entry, so the whole checkpoint
 * document is written again: renewing on every checkpoint re-encoded a 100,000-file archive each
 * time, and once a minute still cost an idle daemon a 50 MB save a minute. Retention is days (7 by
 * default); an hour is exact enough.
 */
const SEEN_REFRESH_MS = 3600_000;
/**
 * Archived files up to this size, quiet for sealAfterMs, are read whole by their adoption: its open
 * and fstat, one read, and close are then all the file costs. Opened again to be read, fstat'ed to
 * be sealed and read once more for the marks of its end, each of 100,000 tiny archived files took 12
 * trips through libuv's thread pool, and their promises were most of the main thread's time.
 */
const STASH_FILE_BYTES = 8 * 1024;
/** Stashed bytes held at most across files, give or take the adoptions in flight (READERS files). */
const STASH_BUDGET = 4 * 1024 * 1024;
/** Default of TailerOptions.archiveRecheckMs. */
// Stat'ing 100,000 archived files costs an idle daemon ~5 % of a core at once a minute, ~0.5 % at
// this; what it catches (a quiet archived file written to or replaced) is rare.
const ARCHIVE_RECHECK_MS = 600_000;

export class Tailer {
  private readonly files = new Map<string, Tracked>();
  /** Finished files on disk, by identity: only their checkpoint entry is kept (see DoneFile). */
  private readonly done = new Map<string, DoneFile>();
  /** Archive path → identity of the finished file there, so that listings can skip its stat. */
  private readonly donePaths = new Map<string, string>();
  /**
   * Finished files not yet quiet for sealAfterMs (finished early: see mayFinishEarly): stat'ed by
   * listings, backing off (recheckDue), so that a late write is read within about a second.
   */
  private readonly unquiet = new Set<string>();
  /** Finished files in a live directory (PowerMTA without move-to keeps them there). */
  private readonly doneLive = new Set<string>();
  /** When a listing last stat'ed every file (performance.now() time). */
  private lastFullListing = -Number.MAX_VALUE;
  /** Each archive directory as stat'ed just before its last readdir. */
  private readonly archiveDirs = new Map<string, DirStamp>();
  /** Bumped whenever `done` changes: part of the progress signature. */
  private doneVersion = 0;
  /** Checkpoint entries of files not (yet) seen on disk: kept until retention drops them. */
  private readonly restored = new Map<string, FileCheckpoint>();
  private readonly missingReported = new Set<string>();
  private initialScanDone = false;
  /** A listing has completed since start: before one, no file can be said to be gone (isPresent). */
  private listed = false;
  /** New files listings left for later (ADOPT_PER_SCAN) by path, in the order they are to be adopted. */
  private waiting = new Map<string, Waiting>();
  /** The identity keys of `waiting`'s files. */
  private waitingKeys = new Set<string>();
  private readonly headerLines = new Map<string, string>();
  /** "file finished" and startAt lines, counted in one line beyond 20 in 10 s (a large archive). */
  private readonly fileLines: FileLineLimiter;
  /** Bytes held in Tracked.stash, bounded by STASH_BUDGET. */
  private stashBytes = 0;
  /** One read buffer per concurrent reader (see readRound). */
  private readonly chunks: Buffer[];
  /** The second buffer of the file being read (see readOn). */
  private readonly prefetchChunk: Buffer;

  constructor(
    private readonly options: TailerOptions,
    private readonly sink: TailerSink,
  ) {
    const size = options.readChunkBytes ?? 64 * 1024;
    const readers = Math.max(2, options.readers ?? READERS);
    this.chunks = Array.from({ length: readers }, () => Buffer.allocUnsafe(size));
    this.prefetchChunk = Buffer.allocUnsafe(size);
    this.fileLines = new FileLineLimiter((level, msg, fields) => sink.log(level, msg, fields));
  }

  /** Checkpoints loaded at start; files are matched to them as they are discovered. */
  restore(entries: readonly FileCheckpoint[]): void {
    for (const e of entries) this.restored.set(identityKey(e.dev, e.ino), e);
  }

  /** Every file present at start has been adopted (and startAt decided for it). */
  get startScanDone(): boolean {
    return this.initialScanDone;
  }

  /** The last listing found more new files than a scan adopts (ADOPT_PER_SCAN), and some still wait. */
  get moreToAdopt(): boolean {
    return this.waiting.size > 0;
  }

  /**
   * Whether a checkpoint entry's file was on disk at the last listing (retention spares those). An
   * entry counts as on disk until a listing has completed, and while its file waits for adoption:
   * after an outage longer than checkpointRetention every loaded entry is past it, and the first
   * checkpoints come before the archive's files are adopted (2,000 a listing), or before any
   * listing at all when a stop comes during start-up. Dropping those entries had their files read
   * and delivered again from the start. Files in a directory that is missing are not judged either.
   */
  isPresent(e: FileCheckpoint): boolean {
    if (!this.listed) return true;
    // A directory that is missing (an archive filesystem not mounted yet) says nothing about its files.
    if (this.missingReported.size > 0) {
      const parent = dirname(e.path);
      for (const dir of this.missingReported) if (resolve(dir) === parent) return true;
    }
    const key = identityKey(e.dev, e.ino);
    const tracked = this.files.get(key);
    if (tracked !== undefined) return tracked.present;
    return this.done.has(key) || this.waitingKeys.has(key);
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
    for (const d of this.done.values()) {
      const s = out.get(d.input.name);
      if (s !== undefined) s.tracked++;
    }
    return out;
  }

  /**
   * Lists every input's directories and reconciles them with what is tracked. `shouldStop` is asked
   * between new files: adopting 100,000 archived files takes seconds, and SIGTERM must not wait for
   * it. A scan cut short reconciles nothing (a partial listing must not mark files as gone).
   */
  async scan(shouldStop?: () => boolean): Promise<void> {
    this.fileLines.flush();
    let adopted = 0;
    const nowMs = Date.now();
    // Finished archived files are stat'ed every archiveRecheckMs (10 min), not at every listing:
    // PowerMTA never writes a file after moving it and sealing waited sealAfterMs for late writes,
    // so their stats only repeat themselves. A name that disappears is still noticed at once
    // (readdir), a file replaced or grown under an archived name at the next full listing.
    const full = now() - this.lastFullListing >= (this.options.archiveRecheckMs ?? ARCHIVE_RECHECK_MS);
    // A full listing finds every file waiting anew; the others keep the waiting ones as they are.
    const waiting = full ? new Map<string, Waiting>() : this.waiting;
    const waitingKeys = full ? new Set<string>() : this.waitingKeys;
    for (const key of this.unquiet) {
      if ((this.done.get(key)?.quietAt ?? 0) <= nowMs) this.unquiet.delete(key);
    }
    // Files still waiting for adoption need no stat either: adopt() identifies them through their
    // descriptor.
    const skipStat = full
      ? undefined
      : (path: string) => {
          const key = this.donePaths.get(path);
          return (key !== undefined && !this.recheckDue(key, nowMs)) || waiting.has(path);
        };
    for (const input of this.options.inputs) {
      // The live directory first, then the archive: a file PowerMTA moves in between is seen in
      // one or both (both is handled below), never in neither.
      const listing = await listInputFiles(input, { only: "live" });
      // An archive whose directory has not changed since it was last read lists nothing new: only
      // the files being read in it are stat'ed (their size), the finished ones count as seen. A
      // 100,000-file archive listed every second was most of an idle daemon's CPU and garbage.
      const archive = input.archive !== undefined && input.archive !== input.dir ? input.archive : undefined;
      let archiveUnchanged = false;
      if (archive !== undefined) {
        const statAt = Date.now();
        const dirStat = await stat(archive).catch(() => undefined);
        const stamp = this.archiveDirs.get(archive);
        archiveUnchanged =
          !full &&
          dirStat !== undefined &&
          stamp !== undefined &&
          dirStat.ino === stamp.ino &&
          dirStat.mtimeMs === stamp.mtimeMs &&
          dirStat.ctimeMs === stamp.ctimeMs &&
          dirStat.mtimeMs < stamp.at - DIR_MTIME_MARGIN_MS;
        if (archiveUnchanged) append(listing.files, await this.statArchived(input));
        else {
          const archived = await listInputFiles(input, { only: "archive", ...(skipStat && { skipStat }) });
          append(listing.files, archived.files);
          append(listing.unchecked, archived.unchecked);
          append(listing.missing, archived.missing);
          if (dirStat === undefined) this.archiveDirs.delete(archive);
          else {
            const { ino, mtimeMs, ctimeMs } = dirStat;
            this.archiveDirs.set(archive, { ino, mtimeMs, ctimeMs, at: statAt });
          }
        }
      }
      const seen = new Set<string>();
      for (const path of listing.unchecked) {
        const key = this.donePaths.get(path);
        if (key === undefined) continue; // waiting
        seen.add(key);
        const d = this.done.get(key);
        if (d !== undefined) this.seenDone(d, nowMs);
      }
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
      // Live files first, then the archive oldest first; at most ADOPT_PER_SCAN new files per scan
      // (each costs an open and a hash), so that reading starts after seconds, not after the whole
      // of a 100,000-file archive was looked at. The rest wait in `waiting`, adopted from there
      // (adoptWaiting) without listing 100,000 files again for every 2,000.
      listing.files.sort((a, b) => Number(b.live) - Number(a.live) || oldestFirst(a, b));
      const fresh: DiscoveredFile[] = [];
      for (const f of listing.files) {
        const key = identityKey(f.dev, f.ino);
        // Listed twice: renamed from the live directory into the archive between the two readdirs.
        if (seen.has(key)) continue;
        seen.add(key);
        const t = this.files.get(key);
        if (t !== undefined) {
          this.update(t, f);
          continue;
        }
        const d = this.done.get(key);
        if (d !== undefined && this.stillDone(key, d, f, nowMs)) continue;
        if (adopted >= ADOPT_PER_SCAN) {
          waiting.set(f.path, { input, path: f.path, live: f.live, key });
          waitingKeys.add(key);
          continue;
        }
        adopted++;
        fresh.push(f);
      }
      // Adopted several at a time (each is an open, an fstat and a read of the head).
      if (!(await this.adoptAll(fresh, input, shouldStop))) return;
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
      // With the archive unchanged only finished files in the live directory can have gone: looking
      // through all 100,000 finished files every second was most of an idle daemon's time.
      for (const key of archiveUnchanged ? [...this.doneLive] : this.done.keys()) {
        const d = this.done.get(key) as DoneFile;
        if (d.input !== input || seen.has(key)) continue;
        // Gone from disk: remembered like any entry of a file not seen, until retention drops it.
        this.dropDone(key, d);
        this.restored.set(key, d.entry);
      }
      this.markNewest(input);
    }
    this.waiting = waiting;
    this.waitingKeys = waitingKeys;
    this.listed = true;
    if (full) this.lastFullListing = now();
    // startAt applies to every file present at start, however many listings adopting them takes.
    if (waiting.size === 0) this.initialScanDone = true;
  }

  /**
   * What a listing would have found of the files in `input`'s archive that are being read or were
   * finished without being quiet yet (the others need no stat; see scan).
   */
  private async statArchived(input: TailerInput): Promise<DiscoveredFile[]> {
    const out: DiscoveredFile[] = [];
    const paths: string[] = [];
    for (const t of this.files.values()) if (t.input === input && !t.live && t.present) paths.push(t.path);
    const nowMs = Date.now();
    for (const key of this.unquiet) {
      const d = this.done.get(key);
      if (d !== undefined && d.input === input && !d.live && this.recheckDue(key, nowMs)) {
        paths.push(d.entry.path);
      }
    }
    await inParallel(paths, this.chunks.length, async (path) => {
      const st = await stat(path).catch(() => undefined);
      if (st === undefined || !st.isFile()) return;
      const name = basename(path);
      const { dev, ino, size, mtimeMs } = st;
      out.push({ path, name, orderKey: orderKey(name), dev, ino, size, mtimeMs, live: false });
    });
    return out;
  }

  /**
   * Adopts the next files the last listing left waiting, without listing again: each is opened and
   * identified through its descriptor, so one renamed or replaced since is taken as what it is now,
   * and one gone is left to the next listing.
   */
  async adoptWaiting(shouldStop?: () => boolean): Promise<void> {
    const batch: Waiting[] = [];
    for (const w of this.waiting.values()) {
      if (batch.length >= ADOPT_PER_SCAN) break;
      batch.push(w);
    }
    await inParallel(batch, this.chunks.length, async (w) => {
      if (shouldStop?.() === true) return;
      this.waiting.delete(w.path);
      this.waitingKeys.delete(w.key);
      await this.adopt(w.path, w.live, w.input);
    });
    if (this.waiting.size === 0) this.initialScanDone = true;
  }

  /** False when `shouldStop` cut it short. */
  private async adoptAll(
    files: readonly DiscoveredFile[],
    input: TailerInput,
    shouldStop?: () => boolean,
  ): Promise<boolean> {
    let stopped = false;
    await inParallel(files, this.chunks.length, async (f) => {
      if (stopped || shouldStop?.() === true) {
        stopped = true;
        return;
      }
      await this.adopt(f.path, f.live, input);
    });
    return !stopped;
  }

  /**
   * A finished file seen again by a listing. Unchanged (same size, path and modification time), it
   * stays an entry, its last-seen time renewed. Otherwise it is adopted again from its entry, which
   * checks its content through a descriptor: a late write is read from where the file ended; a new
   * file on a reused inode (a deleted file's inode handed to a new one at once, as ext4 does) is read
   * from the start even when its size happens to be the old one. False: adopt it.
   */
  private stillDone(key: string, d: DoneFile, f: DiscoveredFile, nowMs: number): boolean {
    if (f.size === d.entry.offset && f.path === d.entry.path && f.mtimeMs === d.mtimeMs) {
      this.seenDone(d, nowMs);
      return true;
    }
    if (f.path !== d.entry.path && d.live && !f.live) this.sink.count("rotation", d.input.name);
    if (f.size > d.entry.offset) {
      if (this.unquiet.has(key)) {
        this.sink.log("info", "late write to a file finished early; reading the new bytes", {
          input: d.input.name,
          file: f.path,
        });
      } else {
        this.sink.log("warn", "finished file grew again; reading the new bytes", {
          input: d.input.name,
          file: f.path,
        });
      }
    }
    this.dropDone(key, d);
    this.restored.set(key, d.entry);
    return false;
  }

  /**
   * Whether a finished file not yet quiet is to be stat'ed by this listing. Backing off (the next
   * check when its quiet time so far has grown by half) keeps a fresh 100,000-file archive from
   * costing 100,000 stats a second, while a late write, which comes right after the last one, is
   * still read within about a second.
   */
  private recheckDue(key: string, nowMs: number): boolean {
    if (!this.unquiet.has(key)) return false;
    const d = this.done.get(key) as DoneFile;
    if (nowMs < d.recheckAt) return false;
    d.recheckAt = nowMs + Math.max(500, (nowMs - d.mtimeMs) / 2);
    return true;
  }

  /** A listing saw the finished file unchanged: renew its last-seen time once it is stale. */
  private seenDone(d: DoneFile, nowMs: number): void {
    if (nowMs - d.entry.updatedAt < SEEN_REFRESH_MS) return;
    d.entry = { ...d.entry, updatedAt: nowMs };
    this.doneVersion++;
  }

  private addDone(key: string, d: DoneFile): void {
    this.done.set(key, d);
    if (d.quietAt > Date.now()) this.unquiet.add(key);
    if (d.live) this.doneLive.add(key);
    this.donePaths.set(d.entry.path, key);
    this.restored.delete(key);
    this.doneVersion++;
  }

  private dropDone(key: string, d: DoneFile): void {
    this.done.delete(key);
    this.unquiet.delete(key);
    this.doneLive.delete(key);
    if (this.donePaths.get(d.entry.path) === key) this.donePaths.delete(d.entry.path);
    this.doneVersion++;
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
    // Only files that can have something to read: thousands of archived files read to their end and
    // waiting to be sealed were each taken through an async read-ahead every round for nothing.
    const order = [...this.files.values()]
      .filter(
        (f) =>
          !f.finished &&
          (f.readOffset < f.size || f.backlog.length > 0 || f.handle !== undefined || !f.present),
      )
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
    if (t.stash !== undefined) {
      await this.handOn(t, this.fromStash(t, round));
      return;
    }
    // While one chunk's records are handed on (encoding them is most of the daemon's CPU), the next
    // chunk is read into the other buffer by libuv's thread pool: waiting for each read in turn left
    // the main thread idle for ~8 % of a catch-up. A read is only used if nothing moved the file
    // meanwhile (same descriptor, same offset); one left over when the loop ends is waited for, so
    // its buffer is free again, and dropped: the offset was not advanced, the bytes are read again.
    let buf = chunk;
    let other = this.prefetchChunk;
    let reading = this.startRead(t, buf);
    try {
      while (reading !== undefined) {
        const got = await reading.done;
        const started = reading;
        reading = undefined;
        if (got === 0 || started.handle !== t.handle || started.at !== t.readOffset) break;
        const items = this.decoded(t, buf, got, round);
        [buf, other] = [other, buf];
        if (this.sink.hasRoom()) reading = this.startRead(t, buf);
        await this.handOn(t, items);
        if (t.backlog.length > 0 || !this.sink.hasRoom()) break;
        if (now() >= round.deadline) {
          // Time to checkpoint, list and seal; this file is first again next round.
          round.stop = true;
          break;
        }
      }
    } finally {
      if (reading !== undefined) await reading.done.catch(() => 0);
    }
  }

  /** Starts reading `t`'s next chunk into `buf`; undefined when there is nothing to read. */
  private startRead(t: Tracked, buf: Buffer): PendingRead | undefined {
    const handle = t.handle;
    if (handle === undefined || t.readOffset >= t.size) return undefined;
    const want = Math.min(buf.length, t.size - t.readOffset);
    const done = handle.read(buf, 0, want, t.readOffset).then((r) => r.bytesRead);
    // A read still in flight when handing on throws is waited for in readOn's finally; until then
    // its rejection must not count as unhandled.
    done.catch(() => undefined);
    return { handle, at: t.readOffset, done };
  }

  /**
   * Opens `t` if it has no descriptor (verifying that a reused inode still holds the same file) and
   * takes its size through the descriptor. False when there is nothing to read now.
   */
  private async ready(t: Tracked, round: ReadRoundState): Promise<boolean> {
    if (t.stash !== undefined) return true;
    let justOpened: Stats | undefined;
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
        justOpened = st0;
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
    const st = justOpened ?? (await t.handle.stat());
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
    if (t.stash !== undefined) return this.fromStash(t, round);
    const read = this.startRead(t, chunk);
    const bytesRead = read === undefined ? 0 : await read.done;
    return bytesRead === 0 ? undefined : this.decoded(t, chunk, bytesRead, round);
  }

  /** The stashed bytes as the chunk read at `t.readOffset`. */
  private fromStash(t: Tracked, round: ReadRoundState): DecodedItem[] {
    const bytes = t.stash as Buffer;
    this.dropStash(t);
    return this.decoded(t, bytes, bytes.length, round);
  }

  private dropStash(t: Tracked): void {
    if (t.stash === undefined) return;
    this.stashBytes -= t.stash.length;
    t.stash = undefined;
  }

  /** The marks taken at adoption for where the stashed bytes end, once the checkpoint is there. */
  private useEndMarks(t: Tracked, offset: number): void {
    if (t.endMarks === undefined || t.marksOffset === offset || t.endMarksOffset !== offset) return;
    t.marks = t.endMarks;
    t.marksOffset = offset;
    t.endMarks = undefined;
  }

  /** Decodes `bytesRead` bytes just read at `t.readOffset` (the decoder copies what it keeps). */
  private decoded(t: Tracked, chunk: Buffer, bytesRead: number, round: ReadRoundState): DecodedItem[] {
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
        (t0 - t.lastGrowthAt >= this.options.sealAfterMs || this.mayFinishEarly(t)),
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
      this.fileLines.line("file finished", t.input.name, t.path, { bytes: t.size }, "bytes");
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
    // Finished and wholly acknowledged: only the checkpoint entry is kept — as a DoneFile while on
    // disk, among the remembered entries once gone. Marks for the final offset are needed for the
    // entry; a file whose marks are behind keeps being tracked until checkpoints() renews them.
    const nowMs = Date.now();
    for (const [key, t] of this.files) {
      if (!t.finished || t.tracker.pending > 0 || t.handle !== undefined || t.backlog.length > 0) continue;
      const offset = t.tracker.ackedOffset;
      this.useEndMarks(t, offset);
      if (t.marks === undefined || t.marksOffset !== offset || offset < t.size) {
        if (!t.present) this.files.delete(key); // the last entry stays remembered
        continue;
      }
      const entry = this.entryOf(t, t.marks, offset, nowMs);
      this.files.delete(key);
      if (t.present) {
        const quietIn = Math.max(0, this.options.sealAfterMs - (now() - t.lastGrowthAt));
        this.addDone(key, {
          entry,
          input: t.input,
          live: t.live,
          mtimeMs: t.mtimeMs,
          quietAt: nowMs + quietIn,
          recheckAt: 0,
        });
      } else this.restored.set(key, entry);
    }
  }

  /**
   * A file found in the archive (never seen live), read to a record boundary, may be finished before
   * it has been quiet for sealAfterMs: the wait is for a record PowerMTA is still writing through its
   * old descriptor, and there is none pending here. Finishing early lets the file shrink to its
   * checkpoint entry at once (a fresh 100,000-file archive otherwise held 100,000 decoders for a
   * minute); it is stat'ed again until quiet (recheckDue), so a late write is still read.
   */
  private mayFinishEarly(t: Tracked): boolean {
    // Every byte read was emitted: nothing held back, no over-long record being skipped.
    return t.foundArchived && !t.live && t.present && t.decoder.committedOffset >= t.readOffset;
  }

  /**
   * Checkpoint entries for every file: the acknowledged offset with content marks computed at it,
   * plus the remembered entries of files no longer tracked (kept until retention drops them).
   */
  async checkpoints(nowMs: number): Promise<FileCheckpoint[]> {
    // Sized once (an upper bound, trimmed at the end): with 100,000 finished files, an array grown
    // entry by entry allocated ~2.4 MB per save outside the young generation, and a caught-up daemon
    // under a trickle of records ran a full collection of its ~90 MB heap every few seconds for it.
    const out: FileCheckpoint[] = new Array(this.files.size + this.done.size + this.restored.size);
    let n = 0;
    const trackedKeys = new Set<string>();
    for (const t of this.files.values()) {
      trackedKeys.add(t.key);
      const offset = t.tracker.ackedOffset;
      this.useEndMarks(t, offset);
      if (t.marks === undefined || t.marksOffset !== offset) {
        const handle = t.handle ?? (await open(t.path, "r").catch(() => undefined));
        if (handle === undefined) {
          // Renamed or deleted since we last looked: keep the last saved entry (behind, never ahead).
          const previous = this.restored.get(t.key);
          if (previous !== undefined) out[n++] = previous;
          continue;
        }
        try {
          t.marks = await contentMarks(handle, Math.max(t.size, offset), offset);
          t.marksOffset = offset;
        } finally {
          if (handle !== t.handle) await handle.close();
        }
      }
      const entry = this.entryOf(t, t.marks, offset, nowMs);
      this.restored.set(t.key, entry);
      out[n++] = entry;
    }
    for (const d of this.done.values()) out[n++] = d.entry;
    for (const [key, e] of this.restored) if (!trackedKeys.has(key) && !this.done.has(key)) out[n++] = e;
    out.length = n;
    return out;
  }

  /**
   * One string per distinct header line: every file's decoder read its own copy, and 100,000 finished
   * files' entries kept 100,000 copies of the same line.
   */
  private sharedHeader(line: string): string {
    const known = this.headerLines.get(line);
    if (known !== undefined) return known;
    if (this.headerLines.size >= 256) this.headerLines.clear();
    this.headerLines.set(line, line);
    return line;
  }

  private entryOf(t: Tracked, marks: ContentMarks, offset: number, nowMs: number): FileCheckpoint {
    const state = t.decoder.state();
    return {
      dev: t.dev,
      ino: t.ino,
      input: t.input.name,
      path: t.path,
      offset,
      headHash: marks.headHash,
      headLen: marks.headLen,
      anchorHash: marks.anchorHash,
      anchorLen: marks.anchorLen,
      ...(state.header === undefined ? {} : { header: this.sharedHeader(state.header.line) }),
      ...(state.fileKey === undefined ? {} : { fileKey: state.fileKey }),
      finished: t.finished && t.tracker.pending === 0 && offset >= t.size,
      // Retention counts from the last time the file was seen on disk.
      updatedAt: t.present ? nowMs : (this.restored.get(t.key)?.updatedAt ?? nowMs),
    };
  }

  /** Drops remembered entries (the store decided they expired). */
  forget(keep: readonly FileCheckpoint[]): void {
    const keys = new Set(keep.map((e) => identityKey(e.dev, e.ino)));
    for (const key of this.restored.keys()) if (!keys.has(key)) this.restored.delete(key);
  }

  /** A fingerprint of acknowledged progress: when unchanged, no checkpoint needs writing. */
  progressSignature(): string {
    let sig = `${this.doneVersion};`;
    for (const t of this.files.values()) sig += `${t.key}@${t.tracker.ackedOffset}${t.finished ? "f" : ""};`;
    return sig;
  }

  async close(): Promise<void> {
    this.fileLines.flush(true);
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
    // A finished file keeps the mtime it had when read: becoming a DoneFile with a newer one would
    // hide a same-size rewrite (or a new file on its inode) from stillDone's check for good.
    if (!t.finished) t.mtimeMs = f.mtimeMs;
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
    t.endMarks = undefined;
    this.dropStash(t);
    t.lastGrowthAt = now();
  }

  private decoderOptions(input: TailerInput): DecoderOptions {
    return {
      maxRecordBytes: this.options.maxRecordBytes,
      ...(input.fallbackColumns === undefined ? {} : { fallbackColumns: input.fallbackColumns }),
    };
  }

  /**
   * Starts tracking the file at `path`, identified through its descriptor: the listing's stat may be
   * stale (renamed or replaced since; adoptWaiting has none). A file already tracked or finished
   * under another path is left to the next listing, which sees the rename.
   */
  private async adopt(path: string, live: boolean, input: TailerInput): Promise<void> {
    let start = 0;
    let header: string | undefined;
    let fileKey: string | undefined;
    let finished = false;
    let marks: ContentMarks | undefined;
    /** Its entry, when the file is the finished one the checkpoint describes (see below). */
    let finishedAsBefore: FileCheckpoint | undefined;
    let stash: Buffer | undefined;
    let endMarks: ContentMarks | undefined;
    const handle = await open(path, "r").catch(() => undefined);
    if (handle === undefined) return; // vanished or unreadable: the next scan tries again
    let f: Stats;
    let key: string;
    try {
      f = await handle.stat();
      key = identityKey(f.dev, f.ino);
      if (!f.isFile() || this.files.has(key) || this.done.has(key)) return;
      const cp = this.restored.get(key);
      if (cp !== undefined) {
        const verdict = await verifyMarks(handle, f.size, cp.offset, cp);
        if (verdict === "same" && isFinishedAsBefore(cp, f.size, path, input.name)) {
          finishedAsBefore = cp;
        } else if (verdict === "same") {
          start = cp.offset;
          header = cp.header;
          fileKey = cp.fileKey;
          finished = cp.finished && f.size === cp.offset;
        } else {
          this.sink.count("checkpoint_invalidated", input.name);
          this.sink.log("warn", "checkpoint does not match the file on disk; reading it from the start", {
            input: input.name,
            file: path,
            reason: verdict,
            checkpointOffset: cp.offset,
            size: f.size,
            hint: "inode reused by a new file, or the file was truncated or rewritten",
          });
        }
      } else if (
        !this.initialScanDone &&
        this.options.startAt.kind !== "beginning" &&
        (this.options.startAtInputs?.has(input.name) ?? true)
      ) {
        const policy = this.options.startAt;
        const skip =
          policy.kind === "end" || (policy.kind === "max-age" && Date.now() - f.mtimeMs > policy.ms);
        if (skip) {
          [start, header] = await endBoundary(handle, f.size);
          this.fileLines.line(
            "no checkpoint; starting at the end as configured (startAt)",
            input.name,
            path,
            { skippedBytes: start },
            "skippedBytes",
          );
        }
      }
      // Marks for the starting offset, taken now while the file is open: a checkpoint written before
      // any progress must not depend on reopening a path that a rotation may already have renamed.
      if (finishedAsBefore === undefined) {
        if (this.mayStash(live, f, start)) {
          const bytes = await readRange(handle, 0, f.size);
          const headLen = Math.min(HEAD_BYTES, f.size);
          marks = marksOf(bytes, headLen, start);
          // A short read (the file shrank meanwhile) is left to the reads, which notice it.
          if (bytes.length === f.size) {
            stash = bytes.subarray(start);
            endMarks = marksOf(bytes, headLen, f.size);
          }
        } else marks = await contentMarks(handle, f.size, start);
      }
    } finally {
      await handle.close();
    }
    if (finishedAsBefore !== undefined) {
      // Finished before the restart and unchanged: back to what it was, its checkpoint entry, with
      // no decoder, tracker or fresh marks. Restarting next to 100,000 archived files built all
      // three for each, then a new entry equal to the one loaded (its hashes and path copies of the
      // loaded ones): 1.5 KB of live heap a file and a peak of ~440 MiB, against ~340 for the
      // catch-up that finished them. Quiet since its last write, as sealing would have counted.
      if (this.files.has(key) || this.done.has(key)) return;
      this.addDone(key, {
        entry: finishedAsBefore,
        input,
        live,
        mtimeMs: f.mtimeMs,
        quietAt: Math.max(Date.now(), f.mtimeMs + this.options.sealAfterMs),
        recheckAt: 0,
      });
      return;
    }
    const decoder = new AccountingDecoder({
      ...this.decoderOptions(input),
      startOffset: start,
      ...(header === undefined ? {} : { header: headerFromLine(header) }),
      ...(fileKey === undefined ? {} : { fileKey }),
    });
    const name = basename(path);
    const t: Tracked = {
      key,
      dev: f.dev,
      ino: f.ino,
      input,
      path,
      name,
      orderKey: orderKey(name),
      live,
      present: true,
      newerExists: false,
      size: f.size,
      mtimeMs: f.mtimeMs,
      // Quiet since its last write, not since now: an archived file written hours ago is sealed as
      // soon as it is read, not held (with its decoder) for another sealAfterMs.
      lastGrowthAt: now() - Math.max(0, Date.now() - f.mtimeMs),
      handle: undefined,
      readOffset: start,
      decoder,
      tracker: new AckTracker(start),
      finished,
      backlog: [],
      marks,
      marksOffset: start,
      foundArchived: !live,
      stash,
      endMarks,
      endMarksOffset: f.size,
    };
    // Adoptions run side by side: the same file under two names (a rename during the listing) once.
    if (this.files.has(key) || this.done.has(key)) return;
    this.files.set(key, t);
    if (stash !== undefined) this.stashBytes += stash.length;
  }

  /**
   * Whether adopting the file reads it whole (Tracked.stash): archived, small, with bytes to read, and
   * quiet for sealAfterMs, so that it is sealed as soon as read without a look at its size (PowerMTA
   * does not write to a file it moved; a late write is still found by the listings, as for any
   * finished file). Bounded by STASH_BUDGET across files.
   */
  private mayStash(live: boolean, f: Stats, start: number): boolean {
    return (
      !live &&
      f.size > start &&
      f.size <= STASH_FILE_BYTES &&
      Date.now() - f.mtimeMs >= this.options.sealAfterMs &&
      this.stashBytes + f.size <= STASH_BUDGET
    );
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

/** Appends one by one: push(...list) with a 100,000-file listing's arguments overflows the stack. */
function append<T>(to: T[], from: readonly T[]): void {
  for (const x of from) to.push(x);
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

/**
 * Whether a file whose content marks match checkpoint `cp` is the finished file `cp` describes, as it
 * was: read to its end, at the same path, with marks a new entry would take over the same ranges.
 */
function isFinishedAsBefore(cp: FileCheckpoint, size: number, path: string, input: string): boolean {
  return (
    cp.finished &&
    size === cp.offset &&
    cp.path === path &&
    cp.input === input &&
    cp.headLen === Math.min(HEAD_BYTES, size) &&
    cp.anchorLen === Math.min(ANCHOR_BYTES, cp.offset)
  );
}
