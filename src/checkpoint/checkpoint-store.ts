import { isUtf8 } from "node:buffer";
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { crashPoint } from "./crash-point.js";
import { nodeStoreFs, type StoreFileHandle, type StoreFs } from "./store-fs.js";

/**
 * Durable checkpoint store: per file, the byte offset up to which the output has acknowledged every
 * record (reliability note §7 R1–R3). The entries handed to `save()` are, by the caller's contract,
 * already acknowledged; so the store's whole job is (a) never to return a snapshot that is not exactly
 * one of those handed to `save()` — no torn, zeroed or mixed file — and (b) never to lose the newest
 * one that `save()` reported durable. Anything else (fewer generations kept, an older snapshot after a
 * crash mid-save) only costs duplicates, which the API deduplicates by event id; a torn or invented
 * offset would cost records, which nothing downstream can recover.
 *
 * Why this shape (the field failures it answers, note §0.3 and T21/T22):
 * - Filebeat beats#4733/#3537 and Promtail loki#6268 found registries full of NUL bytes after a power
 *   loss: data written without fsync. Here the new generation is fsynced before any rename points at it.
 * - Promtail loki#1460 truncated positions files: written in place. Here the live file is only ever
 *   replaced by rename(2), which is atomic.
 * - Vector does temp + sync_all + rename but no directory fsync, so a "saved" checkpoint can vanish at
 *   power loss. Here `save()` resolves only after the directory fsync.
 * - syslog-ng#3113 crash-looped on a corrupt persist file. Here every candidate is versioned and
 *   checksummed, a bad one is reported in `problems` and skipped, and `load()` never throws on content.
 *
 * On-disk format v1, one file:
 *     pmta-ingest-checkpoint v1 sha256=<hex of everything after this line's "\n">
 *     {"version":1,"generation":N,"writtenAt":"<ISO>","files":[ ...one entry per line... ]}
 * The header line sits outside the JSON so that version and checksum are checked before parsing, and
 * a future format may change the body entirely.
 *
 * Format v2, written only when at least `finishedSetMin` (1,000) entries are finished files: those
 * go into a finished-files set, a file of its own written once and then referenced, by name and
 * checksum, by every generation until it is replaced:
 *     <name>.finished-<G>:  pmta-ingest-finished-set v2 sha256=<hex>
 *                           {"version":2,"files":[ ...finished entries... ]}
 *     <name>:               pmta-ingest-checkpoint v2 sha256=<hex>
 *                           {"version":2,"generation":N,"writtenAt":"<ISO>",
 *                            "finishedSet":{"file":"<name>.finished-<G>","sha256":"<hex>","entries":K},
 *                            "dropped":[[dev,ino],...],"files":[ ...every other entry... ]}
 * The snapshot is the set's entries, less those `dropped` and those an entry of `files` replaces (same
 * dev and inode), plus `files`. Why: an archive of 100,000 finished files made every generation a
 * 50 MB document, rewritten every second or two for as long as live records kept arriving — ~35 MB/s
 * of writes and a fifth of a core for 20 records/s. Finished entries change only when a file
 * finishes, goes or is seen again after an hour, so a generation now carries the few that did, and
 * the set is written again only once they come to a quarter of it. Entry order is not kept in v2.
 */

export interface FileCheckpoint {
  readonly dev: number;
  readonly ino: number;
  readonly input: string;
  readonly path: string;
  readonly offset: number;
  readonly headHash: string;
  readonly headLen: number;
  readonly anchorHash: string;
  readonly anchorLen: number;
  readonly header?: string;
  readonly fileKey?: string;
  readonly finished: boolean;
  readonly updatedAt: number;
}

export interface CheckpointSnapshot {
  readonly generation: number;
  readonly writtenAt: string;
  readonly files: readonly FileCheckpoint[];
}

export type LoadSource = "current" | "temp" | "previous" | "none";

export interface LoadResult {
  readonly snapshot: CheckpointSnapshot;
  readonly source: LoadSource;
  /** One line per rejected candidate: its path and what was wrong with it. */
  readonly problems: readonly string[];
  /**
   * The snapshot is a generation used without its finished-files set (no generation was whole): the
   * files it listed as finished have no entry, as at a first start.
   */
  readonly withoutSet?: boolean;
}

/** The state directory cannot be used (EACCES, ENOSPC, EROFS, ENOTDIR...); the message says what to do. */
export class CheckpointStoreError extends Error {
  override readonly name = "CheckpointStoreError";
  /** errno code of the underlying failure, e.g. "ENOSPC". */
  readonly code: string | undefined;
  /** The file or directory the failing operation was on. */
  readonly path: string;

  constructor(message: string, path: string, code: string | undefined, options?: { cause?: unknown }) {
    super(message, options);
    this.path = path;
    this.code = code;
  }
}

/** The newest format this release reads and writes (it still writes v1 while no set is needed). */
export const CHECKPOINT_FORMAT_VERSION = 2;
const MAGIC = "pmta-ingest-checkpoint";
const SET_MAGIC = "pmta-ingest-finished-set";
/** Differences from a set (entries) that are folded into a new one once they stop changing. */
const SETTLED_DIFF = 64;
const EMPTY: CheckpointSnapshot = Object.freeze({ generation: 0, writtenAt: "", files: Object.freeze([]) });

export interface CheckpointStoreOptions {
  readonly fs?: StoreFs;
  /** Name of the live file inside `dir`; `.tmp` and `.prev` are appended for the other two. Default "checkpoints.json". */
  readonly fileName?: string;
  /** Finished entries from which they are kept in a finished-files set (format v2). Default 1,000. */
  readonly finishedSetMin?: number;
}

type Candidate = Exclude<LoadSource, "none">;

/** The newest valid generation on disk and which name holds it, as far as this instance knows. */
interface Known {
  readonly generation: number;
  readonly bestAt: LoadSource;
  /** The finished-files set that generation refers to (v2), if any. */
  readonly set: FinishedSet | undefined;
}

/** A finished-files set on disk (format v2), as this process wrote or read it. */
interface FinishedSet {
  /** Its name in the state directory. */
  readonly file: string;
  readonly sha256: string;
  readonly entries: readonly FileCheckpoint[];
  /** The same entries by device, then inode. */
  readonly byKey: ReadonlyMap<number, ReadonlyMap<number, FileCheckpoint>>;
}

/**
 * What a generation is written as: v1 (no set), v2 against the set already on disk (`reuse`), or v2
 * against a new set of `newSet` written first.
 */
interface Plan {
  readonly reuse?: FinishedSet;
  readonly newSet?: readonly FileCheckpoint[];
  /** The entries written in the generation itself. */
  readonly files: readonly FileCheckpoint[];
  readonly dropped: ReadonlyArray<readonly [number, number]>;
}

/** A checkpoint file as decoded, before its finished-files set (v2) is read. */
interface Document {
  readonly generation: number;
  readonly writtenAt: string;
  readonly files: readonly FileCheckpoint[];
  readonly set?: { readonly file: string; readonly sha256: string; readonly entries: number };
  readonly dropped: ReadonlyArray<readonly [number, number]>;
}

interface Step {
  readonly op: string;
  readonly path: string;
}

export class CheckpointStore {
  readonly path: string;
  private readonly dir: string;
  private readonly tmpPath: string;
  private readonly prevPath: string;
  private readonly fs: StoreFs;
  private readonly fileName: string;
  private readonly finishedSetMin: number;
  /** Undefined until a scan, and again after a failed save: the next save must look at the disk first. */
  private known: Known | undefined;
  /** The set names kept by the last clean-up of old sets (undefined: none yet since start). */
  private keptSets: string | undefined;
  /** Entries the last generation wrote next to its set (changed, new or dropped finished files). */
  private lastDiff = 0;
  /**
   * The last save's input and what was worked out from it, entry by entry: with 100,000 archived
   * files the tailer hands the same entry objects save after save, and validating and diffing all of
   * them again cost ~25 ms a save (5 % of a core under a trickle of records into the live file). The
   * arrays are kept, not copied (a copy per save was 800 KB that outlived the young generation and
   * kept the old one busy): save() asks its caller not to change an array once saved.
   */
  private lastInput:
    | { readonly files: readonly FileCheckpoint[]; readonly normalised: Normalised }
    | undefined;
  private lastPlan:
    | { readonly files: readonly FileCheckpoint[]; readonly set: FinishedSet; readonly flags: Uint8Array }
    | undefined;
  private dirReady = false;
  /** Loads and saves run one after the other: two saves interleaving on the same temp file would tear it. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(dir: string, options: CheckpointStoreOptions = {}) {
    const fileName = options.fileName ?? "checkpoints.json";
    if (fileName === "" || fileName.includes("/")) {
      throw new TypeError(`checkpoint fileName must be a plain file name, got ${JSON.stringify(fileName)}`);
    }
    this.dir = dir;
    this.fileName = fileName;
    this.finishedSetMin = options.finishedSetMin ?? 1000;
    this.path = join(dir, fileName);
    this.tmpPath = `${this.path}.tmp`;
    this.prevPath = `${this.path}.prev`;
    this.fs = options.fs ?? nodeStoreFs;
  }

  /**
   * Reads `<name>`, `<name>.tmp` and `<name>.prev`, rejects the invalid ones (each gets a line in
   * `problems`) and returns the valid one with the highest generation. None valid → the empty snapshot
   * (generation 0) with source "none": the caller applies its start policy (R12) and alerts when
   * `problems` is not empty. "none" with no problems simply means first start.
   *
   * Never throws for bad content; throws CheckpointStoreError only when the directory itself cannot be
   * read (permissions, a path component that is a file...), because a save would fail there too and
   * starting "from scratch" would silently re-ingest everything.
   *
   * Read-only: a snapshot found in `.tmp` is moved into place by the next `save()`.
   */
  load(): Promise<LoadResult> {
    return this.serialise(async () => (await this.scan()).result);
  }

  /**
   * Writes `files` as the next generation. When the promise resolves the snapshot survives a power
   * loss; when it rejects with CheckpointStoreError (disk full, read-only...) the last durable snapshot
   * is intact and `save()` can simply be called again later. Rejects with TypeError, before touching
   * the disk, if an entry is malformed or two entries share a `dev:ino` key — a snapshot the loader
   * would later reject must never be written.
   *
   * `files` is not changed, and must not be changed by the caller afterwards either (pass a new
   * array, or the same one after changing it, but do not change one already saved and then save
   * another): the next save is compared with it entry by entry.
   */
  save(files: readonly FileCheckpoint[]): Promise<CheckpointSnapshot> {
    let normalised: Normalised;
    try {
      const last = this.lastInput;
      // The same array again may have been changed in place: compared with itself it would look unchanged.
      const comparable = last !== undefined && last.files !== files && last.files.length === files.length;
      normalised = (comparable ? renormalise(last, files) : undefined) ?? normaliseEntries(files);
    } catch (err) {
      return Promise.reject(err);
    }
    this.lastInput = { files, normalised };
    return this.serialise(() => this.write(normalised));
  }

  /**
   * Pure retention filter (R1: stale entries, including files that vanished while we were stopped —
   * the Vector #23076 gap): drops an entry only if it is older than `retentionMs` AND `present` says the
   * file is gone. `present` is consulted only for entries past retention. A clock stepped backwards
   * (updatedAt in the future) keeps the entry.
   */
  expire(
    files: readonly FileCheckpoint[],
    retentionMs: number,
    now: number,
    present: (c: FileCheckpoint) => boolean,
  ): readonly FileCheckpoint[] {
    return expireCheckpoints(files, retentionMs, now, present);
  }

  private serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async scan(): Promise<{ result: LoadResult; known: Known }> {
    const candidates: ReadonlyArray<readonly [Candidate, string]> = [
      // The order only breaks ties between equal generations, which the write protocol never creates.
      ["current", this.path],
      ["temp", this.tmpPath],
      ["previous", this.prevPath],
    ];
    const problems: string[] = [];
    let best: { source: Candidate; snapshot: CheckpointSnapshot; set: FinishedSet | undefined } | undefined;
    // Candidates usually share one set: it is read and checked once.
    const sets = new Map<string, FinishedSet | string>();
    // A generation whose set is lost still holds every file not finished (the ones whose offsets
    // matter: a finished file was acknowledged to its end, so without its entry it is only read
    // again, or skipped under startAt: end). Used when no candidate is whole.
    let partial: { source: Candidate; snapshot: CheckpointSnapshot } | undefined;
    for (const [source, path] of candidates) {
      const bytes = await this.readIfThere(path);
      if (bytes === undefined) continue;
      if (typeof bytes === "string") {
        problems.push(`${path}: ${bytes}`);
        continue;
      }
      const note = source === "temp" ? " (leftover of an interrupted save; harmless on its own)" : "";
      const decoded = decodeDocument(bytes);
      if (typeof decoded === "string") {
        problems.push(`${path}: ${decoded}${note}`);
        continue;
      }
      if (best !== undefined && decoded.generation <= best.snapshot.generation) continue;
      let set: FinishedSet | undefined;
      if (decoded.set !== undefined) {
        const ref = decoded.set;
        let found = sets.get(ref.file);
        if (found === undefined) {
          found = await this.readSet(ref.file);
          sets.set(ref.file, found);
        }
        const wrong =
          typeof found === "string"
            ? found
            : found.sha256 !== ref.sha256
              ? `its sha256 is ${found.sha256.slice(0, 12)}…, not the ${ref.sha256.slice(0, 12)}… this generation refers to (replaced since)`
              : found.entries.length !== ref.entries
                ? `it holds ${found.entries.length} entries, not ${ref.entries}`
                : undefined;
        if (wrong !== undefined || typeof found === "string") {
          problems.push(`${path}: its finished-files set ${join(this.dir, ref.file)}: ${wrong}${note}`);
          if (partial === undefined || decoded.generation > partial.snapshot.generation) {
            const { generation, writtenAt, files } = decoded;
            partial = { source, snapshot: { generation, writtenAt, files } };
          }
          continue;
        }
        set = found;
      }
      const snapshot = merged(decoded, set);
      if (typeof snapshot === "string") {
        problems.push(`${path}: ${snapshot}${note}`);
        continue;
      }
      best = { source, snapshot, set };
    }
    let withoutSet = false;
    if (best === undefined && partial !== undefined) {
      withoutSet = true;
      const lost = partial.snapshot;
      problems.push(
        `using generation ${lost.generation} without its finished-files set: files it listed as finished have no checkpoint, and are read again from the start (or skipped with startAt: end)`,
      );
      best = { ...partial, set: undefined };
    }
    const known: Known =
      best === undefined
        ? { generation: 0, bestAt: "none", set: undefined }
        : { generation: best.snapshot.generation, bestAt: best.source, set: best.set };
    this.known = known;
    const result: LoadResult =
      best === undefined
        ? { snapshot: EMPTY, source: "none", problems }
        : { snapshot: best.snapshot, source: best.source, problems, ...(withoutSet && { withoutSet }) };
    return { result, known };
  }

  /*
   * Write protocol, and why every crash point is safe.
   *
   * Let B be the newest valid generation on disk when the save starts (`known.bestAt` says which name
   * holds it) and N the one being written. B and N are each exactly a snapshot the caller handed to
   * save(), so neither is ahead of what was acknowledged. What must hold at every instant is: "B or N
   * is intact under a name load() reads, and nothing torn can pass for either".
   *
   *   0. Only if B is in `.tmp` (we recovered from a crash between fsync and rename, or the previous
   *      process died before its fsync): fsync `.tmp`, rename `.tmp` → `.prev`, fsync dir. The fsync
   *      comes first because B may exist only in the page cache. B keeps its inode throughout and is
   *      named `.tmp` or `.prev`, both read by load(); step 1 then reuses the name on a new inode.
   *   0b. Only if N needs a new finished-files set (v2): write it under `<name>.finished-N`, fsync
   *      it, fsync dir                                    ── crash point ckpt-after-set-write
   *      (before its fsync). A name no durable generation refers to: a crash anywhere here leaves
   *      B as it was, and a torn set nobody reads, removed by a later save.
   *   1. open `.tmp` (create/truncate), write N            ── crash point ckpt-after-temp-write
   *   2. fsync `.tmp`                                      ── crash point ckpt-after-fsync
   *   3. rename `<name>` → `.prev`, only if B is `<name>`: this is what keeps the previous generation.
   *      (If B is already in `.prev`, `<name>` is corrupt, older or absent and step 4 replaces it.)
   *   4. rename `.tmp` → `<name>`                          ── crash point ckpt-after-rename
   *   5. fsync dir; only now does save() resolve.
   *
   * - Crash during or after 1, before 2 completes: `.tmp` may hold nothing, zeros, a prefix or all of
   *   N. Steps 3–4 have not run, so B is untouched under its name. A torn N fails the checksum and is
   *   reported; a complete one is N itself. Load → B, or N.
   * - Crash after 2, before 5 completes: N's bytes are durable. Each rename is atomic, and whatever
   *   subset of 3–4 reached the disk (journaled filesystems keep their order, but even an arbitrary
   *   subset is fine): N is under `.tmp` or `<name>`; `.prev` was only ever replaced by B. Load → N
   *   (the highest generation), or B if N's name was lost.
   * - After 5: `<name>` = N and `.prev` = B, both durable. Only then are sets that neither refers
   *   to removed (a set is never removed while a durable name may still refer to it).
   * - A set's data and name are durable before N is written at all (0b), so N, under whatever name,
   *   never refers to a set that a power loss could take away.
   * A file gets the name `<name>` only after its bytes were fsynced (2 precedes 4; step 0 moves `.tmp`
   * to `.prev`, never to `<name>`), so power loss never tears `<name>`; only media faults can, which is
   * what `.prev` and the checksum are for.
   *
   * Generations: N = (highest valid generation on disk) + 1. A save never runs without knowing that
   * number — it scans first if load() was not called or the previous save failed — so a leftover file
   * can never outrank a newer one, and the highest generation is always the latest acknowledged state.
   */
  private async write({ entries: files, keys }: Normalised): Promise<CheckpointSnapshot> {
    const known = this.known ?? (await this.scan()).known;
    const snapshot: CheckpointSnapshot = {
      generation: known.generation + 1,
      writtenAt: new Date().toISOString(),
      files,
    };
    const plan = this.plan(files, keys, known.set);
    let set = plan.reuse;
    let step: Step = { op: "mkdir", path: this.dir };
    try {
      if (!this.dirReady) {
        const created = await this.fs.mkdir(this.dir);
        if (created !== undefined) {
          await this.syncNewDirectories(created, (s) => {
            step = s;
          });
        }
        this.dirReady = true;
      }
      let bestAt = known.bestAt;
      if (bestAt === "temp") {
        step = { op: "fsync", path: this.tmpPath };
        await this.fs.fsyncFile(this.tmpPath);
        step = { op: "rename", path: this.tmpPath };
        await this.fs.rename(this.tmpPath, this.prevPath);
        step = { op: "fsync", path: this.dir };
        await this.fs.fsyncDir(this.dir);
        bestAt = "previous";
        this.known = { generation: known.generation, bestAt, set: known.set };
      }
      if (plan.newSet !== undefined) {
        // Data and name made durable before the generation that refers to it is written: the renames
        // of steps 3–4 may reach the disk without the set's creation otherwise, and a generation N
        // under `<name>` whose set is missing would leave only `.prev`'s older one.
        // Named by the generation: no valid generation on disk can refer to a set of that name yet.
        const file = `${this.fileName}.finished-${snapshot.generation}`;
        const setPath = join(this.dir, file);
        step = { op: "open", path: setPath };
        const handle = await this.fs.openForWrite(setPath);
        try {
          step = { op: "write", path: setPath };
          const hash = await writeChecksummed(handle, SET_MAGIC, 2, encodeBody('{"version":2', plan.newSet));
          set = finishedSet(file, plan.newSet, hash);
          crashPoint("ckpt-after-set-write");
          step = { op: "fsync", path: setPath };
          await handle.sync();
        } catch (err) {
          await handle.close().catch(() => undefined);
          throw err;
        }
        step = { op: "close", path: setPath };
        await handle.close();
        step = { op: "fsync", path: this.dir };
        await this.fs.fsyncDir(this.dir);
      }
      step = { op: "open", path: this.tmpPath };
      const handle = await this.fs.openForWrite(this.tmpPath);
      try {
        step = { op: "write", path: this.tmpPath };
        if (set === undefined) {
          await writeChecksummed(handle, MAGIC, 1, encodeBody(headOf(1, snapshot), files));
        } else {
          const ref = JSON.stringify({ file: set.file, sha256: set.sha256, entries: set.entries.length });
          const head = `${headOf(2, snapshot)},"finishedSet":${ref},"dropped":${JSON.stringify(plan.dropped)}`;
          await writeChecksummed(handle, MAGIC, 2, encodeBody(head, plan.files));
        }
        crashPoint("ckpt-after-temp-write");
        step = { op: "fsync", path: this.tmpPath };
        await handle.sync();
      } catch (err) {
        // The write or fsync error is the one worth reporting, not a secondary close failure.
        await handle.close().catch(() => undefined);
        throw err;
      }
      step = { op: "close", path: this.tmpPath };
      await handle.close();
      crashPoint("ckpt-after-fsync");
      if (bestAt === "current") {
        step = { op: "rename", path: this.path };
        await this.fs.rename(this.path, this.prevPath);
      }
      step = { op: "rename", path: this.tmpPath };
      await this.fs.rename(this.tmpPath, this.path);
      crashPoint("ckpt-after-rename");
      step = { op: "fsync", path: this.dir };
      await this.fs.fsyncDir(this.dir);
    } catch (err) {
      // After a failure we no longer know which renames happened: look at the disk before the next save.
      this.known = undefined;
      this.dirReady = false;
      // A set it may have left half-written goes at the next clean-up, whatever that one keeps.
      this.keptSets = undefined;
      if (errnoCode(err) === undefined) throw err;
      throw this.storeError(`save checkpoints (${step.op} ${step.path}) in`, step.path, err);
    }
    this.known = { generation: snapshot.generation, bestAt: "current", set };
    // `.prev` now holds the generation that was best before (`known`): its set is kept too.
    await this.removeOldSets([known.set?.file, set?.file]);
    return snapshot;
  }

  /**
   * How generation N is written. Fewer than finishedSetMin finished entries: v1, every entry in it.
   * Otherwise v2 against the set the best generation refers to, if the entries that differ from it
   * (new, changed or gone finished files) stay under a quarter of it and are not the same number as
   * last time (SETTLED_DIFF); else against a new set of all finished entries. Unchanged entries are
   * found by identity first: the tailer hands the same objects save after save, so comparing 100,000
   * of them costs a map lookup each.
   */
  private plan(files: readonly FileCheckpoint[], keys: FileKeys, current: FinishedSet | undefined): Plan {
    let finished = 0;
    for (const f of files) if (f.finished) finished++;
    if (finished < this.finishedSetMin) return { files, dropped: [] };
    if (current !== undefined) {
      const inline: FileCheckpoint[] = [];
      let changed = 0;
      // Keys are unique in `files` (normaliseEntries): when as many of them are in the set as it
      // holds, none of its entries was dropped, and no key needs looking up.
      let inSet = 0;
      // Per entry: IN_SET, INLINE (differs from the set), and an entry the same object at the same
      // place against the same set as last time keeps last time's answer without a lookup.
      const last = this.lastPlan;
      const reuse =
        last !== undefined &&
        last.set === current &&
        last.files !== files &&
        last.files.length === files.length;
      const flags = new Uint8Array(files.length);
      for (let i = 0; i < files.length; i++) {
        const f = files[i] as FileCheckpoint;
        let flag: number;
        if (reuse && last.files[i] === f) flag = last.flags[i] as number;
        else {
          const s = current.byKey.get(f.dev)?.get(f.ino);
          flag =
            (s === undefined ? 0 : IN_SET) | (s === f || (s !== undefined && sameEntry(s, f)) ? 0 : INLINE);
        }
        flags[i] = flag;
        if ((flag & IN_SET) !== 0) inSet++;
        if ((flag & INLINE) === 0) continue;
        inline.push(f);
        if (f.finished) changed++;
      }
      this.lastPlan = { files, set: current, flags };
      const dropped: Array<readonly [number, number]> = [];
      if (inSet < current.entries.length) {
        for (const e of current.entries) if (!keys.has(e)) dropped.push([e.dev, e.ino]);
      }
      // Also folded into a new set: differences that stayed the same since the last generation (a
      // catch-up is over), or they would be written again at every save for as long as it runs.
      const diff = changed + dropped.length;
      const settled = diff >= SETTLED_DIFF && diff === this.lastDiff;
      this.lastDiff = diff;
      if (diff <= current.entries.length / 4 && !settled) {
        return { reuse: current, files: inline, dropped };
      }
    }
    this.lastDiff = 0;
    return {
      newSet: files.filter((f) => f.finished),
      files: files.filter((f) => !f.finished),
      dropped: [],
    };
  }

  /**
   * A file of the store: its bytes, undefined when it does not exist, or why it cannot be read. A bad
   * sector is a property of this file, not of the directory: the other copies may be fine. Anything
   * else (permissions...) is the directory's, and a save would fail there too: thrown.
   */
  private async readIfThere(path: string): Promise<Uint8Array | string | undefined> {
    try {
      return await this.fs.readFile(path);
    } catch (err) {
      const code = errnoCode(err);
      if (code === undefined) throw err;
      if (code === "ENOENT") return undefined;
      if (code === "EIO") return "unreadable (EIO: the device reported an I/O error)";
      throw this.storeError("load checkpoints from", path, err);
    }
  }

  /** Reads and checks the finished-files set `file`: the set, or what is wrong with it. */
  private async readSet(file: string): Promise<FinishedSet | string> {
    if (!file.startsWith(`${this.fileName}.finished-`) || file.includes("/") || file.includes("\\")) {
      return `not a finished-files set name of this store (${JSON.stringify(file)})`;
    }
    const bytes = await this.readIfThere(join(this.dir, file));
    if (bytes === undefined) return "missing (deleted or lost)";
    if (typeof bytes === "string") return bytes;
    const checked = checkedBody(bytes, SET_MAGIC, [2]);
    if (typeof checked === "string") return checked;
    const { json, sha256 } = checked;
    if (!isObject(json) || json.version !== 2 || !Array.isArray(json.files)) {
      return `content is ${show(json)}, not a finished-files set`;
    }
    const entries = validateEntries(json.files);
    if (typeof entries === "string") return entries;
    return finishedSet(file, entries, sha256);
  }

  /**
   * Deletes the finished-files sets no generation on disk refers to: those of `keep` are the two
   * generations now in `<name>` and `.prev`. Only when that pair changed (and once after start, for
   * sets a crashed process left): a listing per save would be one more syscall for nothing.
   * Best effort: a set left over is only disk space, and the next change tries again.
   */
  private async removeOldSets(keep: ReadonlyArray<string | undefined>): Promise<void> {
    const kept = keep.filter((k) => k !== undefined).join("\n");
    if (kept === this.keptSets) return;
    try {
      const prefix = `${this.fileName}.finished-`;
      for (const name of await this.fs.list(this.dir)) {
        if (name.startsWith(prefix) && !keep.includes(name)) await this.fs.remove(join(this.dir, name));
      }
      this.keptSets = kept;
    } catch {
      // Left for the next save that changes the pair.
    }
  }

  /** A directory made by `mkdir -p` survives power loss only once each parent's entry for it is fsynced. */
  private async syncNewDirectories(firstCreated: string, track: (step: Step) => void): Promise<void> {
    const parents: string[] = [];
    // The state directory itself is fsynced at the end of every save; its new parents are done here.
    for (let d = dirname(this.dir); d !== dirname(firstCreated) && dirname(d) !== d; d = dirname(d)) {
      parents.push(d);
    }
    parents.push(dirname(firstCreated));
    for (const d of parents) {
      track({ op: "fsync", path: d });
      await this.fs.fsyncDir(d);
    }
  }

  private storeError(action: string, path: string, err: unknown): CheckpointStoreError {
    const code = errnoCode(err);
    const detail = err instanceof Error ? err.message : String(err);
    // The first sentence is the generic fix (and what operators grep for); then the specific one.
    return new CheckpointStoreError(
      `checkpoint store ${this.dir}: ${code ?? "error"}; make the state directory writable by the service user (systemd StateDirectory=) with free space on its volume. ${hintFor(code, this.dir, path)} (could not ${action} ${this.dir}: ${detail})`,
      path,
      code,
      { cause: err },
    );
  }
}

function hintFor(code: string | undefined, dir: string, path: string): string {
  const intact = "The last durable checkpoint is unchanged.";
  switch (code) {
    case "EACCES":
    case "EPERM": {
      const uid = process.getuid?.();
      const who = uid === undefined ? "" : ` (uid ${uid})`;
      return `Here: permission denied; give the user running pmta-ingest${who} write access to ${dir}, or set stateDir to a directory it owns. ${intact}`;
    }
    case "ENOSPC":
    case "EDQUOT":
      return `Here: no space (or quota) left on the filesystem holding ${dir}; saving resumes by itself once there is. ${intact}`;
    case "EROFS":
      return `Here: the filesystem holding ${dir} is read-only; remount it read-write or set stateDir to a writable filesystem. ${intact}`;
    case "ENOTDIR":
      return `Here: a component of ${dir} is a regular file, not a directory; set stateDir to a directory path (or move that file away).`;
    case "EEXIST":
      return `Here: ${dir} exists but is not a directory; set stateDir to a directory path (or move that file away).`;
    case "EISDIR":
      return `Here: ${path} is a directory where the store keeps a file; remove it or choose another checkpoint file name.`;
    case "EIO":
      return `Here: the device holding ${dir} reported an I/O error; check the kernel log (dmesg) and the disk. ${intact}`;
    case "EMFILE":
    case "ENFILE":
      return "Here: too many open files; raise the open-file limit (LimitNOFILE=, ulimit -n).";
    case "ELOOP":
    case "ENAMETOOLONG":
      return `Here: the path itself is unusable; fix stateDir (${dir}).`;
    default:
      return `Check that ${dir} is a writable directory on a healthy local filesystem. ${intact}`;
  }
}

function errnoCode(err: unknown): string | undefined {
  if (err instanceof Error && "code" in err && typeof err.code === "string") return err.code;
  return undefined;
}

/** Drops entries that are past retention and no longer present; see CheckpointStore.expire. */
export function expireCheckpoints(
  files: readonly FileCheckpoint[],
  retentionMs: number,
  now: number,
  present: (c: FileCheckpoint) => boolean,
): readonly FileCheckpoint[] {
  // Nothing past retention (the usual case, checked several times a second with 100,000 archived
  // files): the same array back, rather than a copy of it per save.
  let i = 0;
  while (i < files.length && now - (files[i] as FileCheckpoint).updatedAt <= retentionMs) i++;
  if (i === files.length) return files;
  return files.filter((c) => now - c.updatedAt <= retentionMs || present(c));
}

// ------------------------------------------------------------------------------------------------
// Encoding and validation

/** Serialises a snapshot in format v1 (header line with checksum, then JSON with one entry per line). */
export function encodeCheckpointFile(snapshot: CheckpointSnapshot): Uint8Array {
  const body: Buffer[] = [];
  const hash = createHash("sha256");
  for (const chunk of encodeBody(headOf(1, snapshot), snapshot.files)) {
    hash.update(chunk);
    body.push(Buffer.from(chunk)); // the generator reuses its buffer
  }
  return Buffer.concat([checksumLine(MAGIC, 1, hash.digest("hex")), ...body]);
}

/** The first line of a file; always the same length for one magic (SHA-256 in hex is 64 characters). */
function checksumLine(magic: string, version: number, hex: string): Buffer {
  return Buffer.from(`${magic} v${version} sha256=${hex}\n`, "utf8");
}

/** `{"version":V,"generation":N,"writtenAt":"…"` — a generation's first members, unclosed. */
function headOf(version: number, snapshot: CheckpointSnapshot): string {
  const head = JSON.stringify({ version, generation: snapshot.generation, writtenAt: snapshot.writtenAt });
  return head.slice(0, -1);
}

/**
 * Writes a header line and `body` to `handle`; returns the body's SHA-256. The checksum line comes
 * first but covers the body: a placeholder of the same length goes first, the body is hashed as it
 * is written, and the real line is written over the placeholder (before the caller's fsync). A crash
 * in between leaves a file whose checksum does not match, which load() rejects like any torn write.
 */
async function writeChecksummed(
  handle: StoreFileHandle,
  magic: string,
  version: number,
  body: Iterable<Buffer>,
): Promise<string> {
  await handle.write(checksumLine(magic, version, "0".repeat(64)));
  const hash = createHash("sha256");
  for (const chunk of body) {
    hash.update(chunk);
    await handle.write(chunk);
  }
  const hex = hash.digest("hex");
  await handle.writeAt(checksumLine(magic, version, hex), 0);
  return hex;
}

const CHUNK_BYTES = 1024 * 1024;

/**
 * A JSON body, `head` (an object's first members, unclosed) then `"files":[…]` with one entry per
 * line, in pieces of up to 1 MiB made as they are written. Each piece is a view of one buffer that
 * the next piece overwrites: use it (write it, hash it) before asking for the next. A 100,000-file
 * archive makes a 50 MB document; built whole (one string, one buffer, one more with the header line
 * in front) it was ~200 MB of garbage per save, most of it in V8's large-object space, and the
 * daemon's RSS followed.
 */
function* encodeBody(head: string, files: readonly FileCheckpoint[]): Generator<Buffer> {
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let n = 0;
  function* put(text: string): Generator<Buffer> {
    // Up to 3 bytes per UTF-16 unit: a cheap bound instead of Buffer.byteLength.
    if (n + 3 * text.length > CHUNK_BYTES && n > 0) {
      yield buf.subarray(0, n);
      n = 0;
    }
    if (3 * text.length > CHUNK_BYTES) yield Buffer.from(text, "utf8");
    else n += buf.write(text, n, "utf8");
  }
  yield* put(`${head},"files":[`);
  for (let i = 0; i < files.length; i++) {
    const f = files[i] as FileCheckpoint;
    yield* put(`${i === 0 ? "\n" : ",\n"}${JSON.stringify(canonical.has(f) ? f : canonicalEntry(f))}`);
  }
  yield* put(files.length === 0 ? "]}\n" : "\n]}\n");
  if (n > 0) yield buf.subarray(0, n);
}

/**
 * Parses and verifies one checkpoint file on its own: the snapshot, or a one-line description of the
 * defect. A v2 generation that refers to a finished-files set needs that set too: CheckpointStore's
 * load() reads both; here it is reported as a defect.
 */
export function decodeCheckpointFile(bytes: Uint8Array): CheckpointSnapshot | string {
  const doc = decodeDocument(bytes);
  if (typeof doc === "string") return doc;
  if (doc.set !== undefined)
    return `refers to the finished-files set ${doc.set.file}: read it with CheckpointStore.load()`;
  return { generation: doc.generation, writtenAt: doc.writtenAt, files: doc.files };
}

function decodeDocument(bytes: Uint8Array): Document | string {
  const checked = checkedBody(bytes, MAGIC, [1, 2]);
  return typeof checked === "string" ? checked : validateDocument(checked.json, checked.version);
}

/**
 * The header line (magic, version, checksum) and JSON body of a file in one of the store's formats:
 * the parsed body, its SHA-256 and version, or what is wrong.
 */
function checkedBody(
  bytes: Uint8Array,
  magic: string,
  versions: readonly number[],
): { json: unknown; sha256: string; version: number } | string {
  const what = magic === MAGIC ? "checkpoint file" : "finished-files set";
  if (bytes.length === 0) return `not a ${what}: empty (0 bytes)`;
  if (bytes.every((b) => b === 0)) {
    return `not a ${what}: all ${bytes.length} bytes are zero (the size reached the disk but the data never did: a crash before fsync)`;
  }
  const newline = bytes.indexOf(0x0a);
  const end = newline < 0 ? Math.min(bytes.length, 120) : Math.min(newline, 200);
  const firstLine = Buffer.from(bytes.subarray(0, end)).toString("latin1");
  if (!firstLine.startsWith(`${magic} `)) {
    return `not a ${what} (no "${magic}" header line; starts with ${JSON.stringify(firstLine.slice(0, 24))}, ${bytes.length} bytes: overwritten or garbage)`;
  }
  // The version is read before anything else so that a future format can change the rest of the line.
  const versioned = new RegExp(`^${magic} v(\\d{1,9})(?: (.*))?$`).exec(firstLine);
  if (newline < 0 || versioned === null || versioned[1] === undefined) {
    return `not a ${what} (malformed or unterminated header line ${JSON.stringify(firstLine.slice(0, 80))})`;
  }
  const version = Number(versioned[1]);
  if (!versions.includes(version)) {
    const newer =
      version > CHECKPOINT_FORMAT_VERSION
        ? `: format v${version} was written by a newer pmta-ingest; upgrade, or move the file away to fall back`
        : "";
    return `version ${version} is not supported by this release (expects ${versions.join(" or ")})${newer}`;
  }
  const declared = /^sha256=([0-9a-f]{64})$/.exec(versioned[2] ?? "")?.[1];
  if (declared === undefined) return `header line has no valid sha256 checksum: ${JSON.stringify(firstLine)}`;
  const body = bytes.subarray(newline + 1);
  const digest = createHash("sha256").update(body).digest("hex");
  let json: unknown;
  let parseError: string | undefined;
  try {
    json = byLine(body) ?? JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (err) {
    parseError = err instanceof Error ? err.message : String(err);
  }
  if (digest !== declared) {
    const what =
      parseError === undefined
        ? "the JSON parses but is not what was written (edited or bit rot)"
        : `the content is not complete JSON (truncated or torn write, ${body.length} bytes after the header)`;
    return `checksum mismatch (header ${declared.slice(0, 12)}…, content ${digest.slice(0, 12)}…): ${what}`;
  }
  if (parseError !== undefined) return `checksum matches but the content is not valid JSON: ${parseError}`;
  if (isObject(json) && json.version !== version) {
    return `version: the header says v${version} but the content says ${show(json.version)}`;
  }
  return { json, sha256: digest, version };
}

/**
 * A body as this store writes it — `{…,"files":[` on the first line, one entry per line, `]}` on the
 * last — parsed line by line: a 50 MB document of 100,000 entries was one 50 MB string more at start
 * (load peak 217 → 175 MiB measured alone). undefined for anything else (JSON.parse of the whole then
 * reads it, or says what is wrong with it).
 */
function byLine(body: Uint8Array): unknown {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.length);
  const first = bytes.indexOf(0x0a);
  if (first < 2 || bytes[first - 1] !== 0x5b || !isUtf8(bytes)) return undefined;
  // The last line: `]}` and the final newline.
  const end = bytes.length - 3;
  if (end <= first || bytes.toString("latin1", end) !== "]}\n" || bytes[end - 1] !== 0x0a) return undefined;
  try {
    const head = JSON.parse(`${bytes.toString("utf8", 0, first)}]}`) as unknown;
    if (!isObject(head) || !Array.isArray(head.files)) return undefined;
    const files: unknown[] = [];
    // Every entry carries its file's header line and its input's name, nearly always one of a few:
    // each parsed as a string of its own, 100,000 entries held 100,000 copies of the header (12 MiB).
    const seen = new Map<string, string>();
    const shared = (v: unknown): unknown => {
      if (typeof v !== "string") return v;
      const known = seen.get(v);
      if (known !== undefined) return known;
      seen.set(v, v);
      return v;
    };
    for (let at = first + 1; at < end; ) {
      const nl = bytes.indexOf(0x0a, at);
      // Every entry but the last ends with a comma.
      const stop = nl === end - 1 ? nl : nl - 1;
      if (bytes[at] !== 0x7b || bytes[stop - 1] !== 0x7d || (stop !== nl && bytes[stop] !== 0x2c))
        return undefined;
      const entry = JSON.parse(bytes.toString("utf8", at, stop)) as unknown;
      if (isObject(entry)) {
        // Replaced in place: the key order, which tells a canonical entry, stays as parsed.
        if ("header" in entry) entry.header = shared(entry.header);
        if ("input" in entry) entry.input = shared(entry.input);
      }
      files.push(entry);
      at = nl + 1;
    }
    head.files = files;
    return head;
  } catch {
    return undefined;
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  const s = v === undefined ? "nothing" : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

function validateDocument(json: unknown, version: number): Document | string {
  if (!isObject(json)) return `content is ${show(json)}, not an object`;
  if (!isCount(json.generation) || json.generation < 1) {
    return `generation: expected a positive integer, got ${show(json.generation)}`;
  }
  if (typeof json.writtenAt !== "string" || Number.isNaN(Date.parse(json.writtenAt))) {
    return `writtenAt: expected an ISO timestamp, got ${show(json.writtenAt)}`;
  }
  if (!Array.isArray(json.files)) return `files: expected an array, got ${show(json.files)}`;
  const files = validateEntries(json.files);
  if (typeof files === "string") return files;
  const doc = { generation: json.generation, writtenAt: json.writtenAt, files };
  if (version === 1) return { ...doc, dropped: [] };
  const ref = json.finishedSet;
  if (
    !isObject(ref) ||
    typeof ref.file !== "string" ||
    typeof ref.sha256 !== "string" ||
    !/^[0-9a-f]{64}$/.test(ref.sha256) ||
    !isCount(ref.entries)
  ) {
    return `finishedSet: expected {file, sha256, entries}, got ${show(ref)}`;
  }
  if (!Array.isArray(json.dropped)) return `dropped: expected an array, got ${show(json.dropped)}`;
  const dropped: Array<readonly [number, number]> = [];
  for (const [i, d] of json.dropped.entries()) {
    if (!Array.isArray(d) || d.length !== 2 || !isCount(d[0]) || !isCount(d[1])) {
      return `dropped[${i}]: expected [dev, ino], got ${show(d)}`;
    }
    dropped.push([d[0], d[1]]);
  }
  return { ...doc, set: { file: ref.file, sha256: ref.sha256, entries: ref.entries }, dropped };
}

/** Entries read from disk: checked, and no file twice. */
function validateEntries(raw: readonly unknown[]): FileCheckpoint[] | string {
  const files: FileCheckpoint[] = [];
  const keys = new FileKeys();
  for (const [i, item] of raw.entries()) {
    const entry = validateEntry(item, `files[${i}]`);
    if (typeof entry === "string") return entry;
    if (!keys.add(entry)) return `files[${i}]: a second entry for file ${entry.dev}:${entry.ino}`;
    files.push(entry);
  }
  return files;
}

/** Files' (device, inode) keys, as numbers: a string key per entry made 100,000 strings per save. */
class FileKeys {
  private readonly byDev = new Map<number, Set<number>>();

  /** False, and nothing added, when the key is there already. */
  add(f: { readonly dev: number; readonly ino: number }): boolean {
    let inodes = this.byDev.get(f.dev);
    if (inodes === undefined) {
      inodes = new Set();
      this.byDev.set(f.dev, inodes);
    }
    if (inodes.has(f.ino)) return false;
    inodes.add(f.ino);
    return true;
  }

  has(f: { readonly dev: number; readonly ino: number }): boolean {
    return this.byDev.get(f.dev)?.has(f.ino) === true;
  }
}

function finishedSet(file: string, entries: readonly FileCheckpoint[], sha256: string): FinishedSet {
  const byKey = new Map<number, Map<number, FileCheckpoint>>();
  for (const e of entries) {
    let inodes = byKey.get(e.dev);
    if (inodes === undefined) {
      inodes = new Map();
      byKey.set(e.dev, inodes);
    }
    inodes.set(e.ino, e);
  }
  return { file, sha256, entries, byKey };
}

/** A v2 generation with its set: the set's entries not dropped nor replaced, then its own. */
function merged(doc: Document, set: FinishedSet | undefined): CheckpointSnapshot | string {
  const snapshot = { generation: doc.generation, writtenAt: doc.writtenAt };
  if (set === undefined) return { ...snapshot, files: doc.files };
  const out = new Map<number, Map<number, FileCheckpoint>>();
  for (const [dev, inodes] of set.byKey) out.set(dev, new Map(inodes));
  for (const [i, [dev, ino]] of doc.dropped.entries()) {
    if (out.get(dev)?.delete(ino) !== true)
      return `dropped[${i}]: file ${dev}:${ino} is not in its finished-files set`;
  }
  // An entry of the generation replaces the set's for the same file.
  for (const f of doc.files) out.get(f.dev)?.delete(f.ino);
  const files = set.entries.filter((e) => out.get(e.dev)?.has(e.ino) === true);
  return { ...snapshot, files: [...files, ...doc.files] };
}

/** Every persisted field equal (entries are plain data). */
function sameEntry(a: FileCheckpoint, b: FileCheckpoint): boolean {
  for (const k of CANONICAL_KEYS)
    if (a[k as keyof FileCheckpoint] !== b[k as keyof FileCheckpoint]) return false;
  return true;
}

/** Checks one entry (read from disk or given to save) and returns a copy holding only the known fields. */
function validateEntry(raw: unknown, where: string): FileCheckpoint | string {
  if (!isObject(raw)) return `${where}: expected an object, got ${show(raw)}`;
  const bad = (field: string, expected: string): string =>
    `${where}.${field}: expected ${expected}, got ${show(raw[field])}`;
  for (const field of ["dev", "ino", "offset", "headLen", "anchorLen", "updatedAt"] as const) {
    if (!isCount(raw[field])) return bad(field, "a non-negative integer");
  }
  for (const field of ["input", "path"] as const) {
    if (typeof raw[field] !== "string" || raw[field] === "") return bad(field, "a non-empty string");
  }
  // Hashes are checked for type only: their format is the tailer's business, and a hash that does not
  // match the file only makes the tailer re-read it from 0 (duplicates), never skip data.
  for (const field of ["headHash", "anchorHash", "header", "fileKey"] as const) {
    const optional = field === "header" || field === "fileKey";
    if (optional && raw[field] === undefined) continue;
    if (typeof raw[field] !== "string") return bad(field, optional ? "a string or no value" : "a string");
  }
  if (typeof raw.finished !== "boolean") return bad("finished", "a boolean");
  // What this store wrote is canonical already: kept as parsed (a copy of 100,000 entries was ~100 MB
  // more at start), and known canonical so that the first save does not check it again.
  const entry = raw as unknown as FileCheckpoint;
  if (!isCanonical(entry)) return canonicalEntry(entry);
  canonical.add(entry);
  return entry;
}

/** Fixed key order and no stray fields: files are byte-stable and caller-side extras are not persisted. */
function canonicalEntry(f: FileCheckpoint): FileCheckpoint {
  return {
    dev: f.dev,
    ino: f.ino,
    input: f.input,
    path: f.path,
    offset: f.offset,
    headHash: f.headHash,
    headLen: f.headLen,
    anchorHash: f.anchorHash,
    anchorLen: f.anchorLen,
    ...(f.header === undefined ? {} : { header: f.header }),
    ...(f.fileKey === undefined ? {} : { fileKey: f.fileKey }),
    finished: f.finished,
    updatedAt: f.updatedAt,
  };
}

const CANONICAL_KEYS = Object.keys(
  canonicalEntry({
    dev: 0,
    ino: 0,
    input: "",
    path: "",
    offset: 0,
    headHash: "",
    headLen: 0,
    anchorHash: "",
    anchorLen: 0,
    header: "",
    fileKey: "",
    finished: false,
    updatedAt: 0,
  }),
);

/**
 * Entry objects already validated and found canonical (known fields only, in the fixed order), so
 * saved as they are. Entries are immutable (FileCheckpoint is readonly); the tailer hands the same
 * objects for every finished file save after save, and a 100,000-file archive was validated and
 * copied in full on every save.
 */
const canonical = new WeakSet<FileCheckpoint>();

function isCanonical(f: FileCheckpoint): boolean {
  const keys = Object.keys(f);
  let j = 0;
  for (const k of CANONICAL_KEYS) {
    const optional = k === "header" || k === "fileKey";
    if (keys[j] === k && !(optional && f[k] === undefined)) j++;
    else if (!optional) return false;
  }
  return j === keys.length;
}

/** The entries to save, checked, and their keys. */
interface Normalised {
  readonly entries: readonly FileCheckpoint[];
  readonly keys: FileKeys;
}

/** files[i] as a save writes it, or a TypeError for a malformed entry (nothing written). */
function validForSave(f: FileCheckpoint, i: number): FileCheckpoint {
  // validateEntry keeps (and marks) an entry already in canonical form, else copies it.
  const entry = canonical.has(f) ? f : validateEntry(f, `files[${i}]`);
  if (typeof entry === "string") throw new TypeError(`checkpoint save refused: ${entry}`);
  return entry;
}

/** plan()'s per-entry flags: the key is in the set; the entry differs from the set's (written inline). */
const IN_SET = 1;
const INLINE = 2;

/**
 * normaliseEntries of `files` from the last save's result, when `files` differs from that save's
 * input only by entries replaced at the same place for the same file (the live file's new offset):
 * only those are validated, and the keys, unchanged, need no check. Undefined when anything else
 * changed (an entry added, removed, moved or for another file): the caller normalises it all.
 */
function renormalise(
  last: { readonly files: readonly FileCheckpoint[]; readonly normalised: Normalised },
  files: readonly FileCheckpoint[],
): Normalised | undefined {
  const before = last.normalised.entries;
  let entries: FileCheckpoint[] | undefined;
  for (let i = 0; i < files.length; i++) {
    const f = files[i] as FileCheckpoint;
    if (f === last.files[i]) continue;
    const entry = validForSave(f, i);
    const was = before[i] as FileCheckpoint;
    if (entry.dev !== was.dev || entry.ino !== was.ino) return undefined;
    entries ??= before.slice();
    entries[i] = entry;
  }
  return entries === undefined ? last.normalised : { entries, keys: last.normalised.keys };
}

function normaliseEntries(files: readonly FileCheckpoint[]): Normalised {
  // Validated before any I/O: a caller bug (NaN offset, duplicate key) must not produce a generation
  // that the loader would reject, which would silently fall back to an older one on the next start.
  const entries: FileCheckpoint[] = [];
  const keys = new FileKeys();
  for (let i = 0; i < files.length; i++) {
    const f = files[i] as FileCheckpoint;
    const entry = validForSave(f, i);
    if (!keys.add(entry)) {
      throw new TypeError(
        `checkpoint save refused: files[${i}] is a second entry for file ${entry.dev}:${entry.ino}`,
      );
    }
    entries.push(entry);
  }
  return { entries, keys };
}
