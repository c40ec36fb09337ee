import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { crashPoint } from "./crash-point.js";
import { nodeStoreFs, type StoreFs } from "./store-fs.js";

/**
 * Durable checkpoint store: per file, the byte offset up to which the output has acknowledged every
 * record (reliability note §7 R1–R3). The entries handed to `save()` are, by the caller's contract,
 * already acknowledged; so the store's whole job is (a) never to return a snapshot that was not
 * exactly one of those handed to `save()` — no torn, zeroed or mixed file — and (b) never to lose the
 * newest one that `save()` reported durable. Anything else (fewer generations, an older snapshot)
 * only costs duplicates, which the API deduplicates by event id; a torn or invented offset would cost
 * records, which nothing downstream can recover.
 *
 * Why this shape (the field failures it answers, §0.3 and T21/T22):
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
 *     {"version":1,"generation":N,"writtenAt":"<ISO>","files":[...]}
 * The header line is outside the JSON so that version and checksum can be checked before parsing, and
 * a future format can change the body entirely.
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

export const CHECKPOINT_FORMAT_VERSION = 1;
const MAGIC = "pmta-ingest-checkpoint";
const EMPTY: CheckpointSnapshot = Object.freeze({ generation: 0, writtenAt: "", files: Object.freeze([]) });

export interface CheckpointStoreOptions {
  readonly fs?: StoreFs;
  /** Name of the live file inside `dir`; `.tmp` and `.prev` are appended for the other two. Default "checkpoints.json". */
  readonly fileName?: string;
}

/** Where the newest valid generation lives, as far as this instance knows. */
type BestAt = "current" | "temp" | "previous" | "none";

export class CheckpointStore {
  readonly path: string;
  private readonly dir: string;
  private readonly tmpPath: string;
  private readonly prevPath: string;
  private readonly fs: StoreFs;
  /** Generation and location of the newest valid snapshot on disk; undefined = must scan first. */
  private known: { generation: number; bestAt: BestAt } | undefined;
  private dirReady = false;
  /** Every load/save runs after the previous one settled: two saves interleaving on the same temp file would tear it. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(dir: string, options: CheckpointStoreOptions = {}) {
    const fileName = options.fileName ?? "checkpoints.json";
    if (fileName === "" || fileName.includes("/")) {
      throw new TypeError(`checkpoint fileName must be a plain file name, got ${JSON.stringify(fileName)}`);
    }
    this.dir = dir;
    this.path = join(dir, fileName);
    this.tmpPath = `${this.path}.tmp`;
    this.prevPath = `${this.path}.prev`;
    this.fs = options.fs ?? nodeStoreFs;
  }

  /**
   * Reads `<name>`, `<name>.tmp` and `<name>.prev`, rejects the invalid ones (each gets a line in
   * `problems`) and returns the valid one with the highest generation. None valid → the empty snapshot
   * (generation 0) with source "none": the caller applies its start policy (R12) and alerts when
   * `problems` is not empty. "none" without problems simply means first start.
   *
   * Never throws for bad content; throws CheckpointStoreError only when the directory itself cannot be
   * read (permissions, a path component that is a file...), because then a save would fail too and
   * starting "from scratch" would silently re-ingest everything.
   *
   * Read-only: a snapshot found in `.tmp` or `.prev` is moved into place by the next `save()`.
   */
  load(): Promise<LoadResult> {
    return this.serialise(() => this.scan());
  }

  /**
   * Writes `files` as the next generation. When the promise resolves the snapshot survives a power
   * loss; when it rejects (CheckpointStoreError, e.g. disk full) the last durable snapshot is intact
   * and a later `save()` can be retried. Rejects with TypeError, before touching the disk, if an entry
   * is malformed or two entries share a `dev:ino` key.
   */
  save(files: readonly FileCheckpoint[]): Promise<CheckpointSnapshot> {
    const normalised = normaliseEntries(files);
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
  ): FileCheckpoint[] {
    return expireCheckpoints(files, retentionMs, now, present);
  }

  private serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async scan(): Promise<LoadResult> {
    const candidates: ReadonlyArray<readonly [Exclude<LoadSource, "none">, string]> = [
      // Order matters only for equal generations, which a correct history never produces.
      ["current", this.path],
      ["temp", this.tmpPath],
      ["previous", this.prevPath],
    ];
    const problems: string[] = [];
    let best: { source: Exclude<LoadSource, "none">; snapshot: CheckpointSnapshot } | undefined;
    for (const [source, path] of candidates) {
      let bytes: Uint8Array;
      try {
        bytes = await this.fs.readFile(path);
      } catch (err) {
        const code = errnoCode(err);
        if (code === "ENOENT") continue;
        // A bad sector is a property of this file, not of the directory: the other copies may be fine.
        if (code === "EIO") {
          problems.push(`${path}: unreadable (EIO)`);
          continue;
        }
        throw this.storeError("load checkpoints from", path, err);
      }
      const decoded = decodeCheckpointFile(bytes);
      if (typeof decoded === "string") {
        const note = source === "temp" ? " (leftover of an interrupted save; harmless on its own)" : "";
        problems.push(`${path}: ${decoded}${note}`);
        continue;
      }
      if (best === undefined || decoded.generation > best.snapshot.generation)
        best = { source, snapshot: decoded };
    }
    this.known =
      best === undefined
        ? { generation: 0, bestAt: "none" }
        : { generation: best.snapshot.generation, bestAt: best.source };
    return best === undefined
      ? { snapshot: EMPTY, source: "none", problems }
      : { snapshot: best.snapshot, source: best.source, problems };
  }

  /*
   * Write protocol and why every crash point is safe.
   *
   * Let B be the newest valid generation on disk when the save starts (where it lives: `known.bestAt`),
   * and N the one being written. Each of B and N is exactly a snapshot the caller handed to save(), so
   * neither is ahead of what was acknowledged; what must hold at every instant is "B or N is intact
   * under some name the loader reads, and nothing torn can pass for either".
   *
   *   0. (only if B is in `.tmp`, i.e. we recovered from a crash between fsync and rename)
   *      fsync `.tmp`, rename `.tmp` → `.prev`, fsync dir. The previous process may have died before its
   *      fsync, so B may be only in the page cache: fsync it before anything else depends on it. B
   *      keeps its inode throughout; the name is either `.tmp` or `.prev`, both read by load().
   *   1. open `.tmp` (create/truncate), write N              ── crash point ckpt-after-temp-write
   *   2. fsync `.tmp`                                        ── crash point ckpt-after-fsync
   *   3. rename `<name>` → `.prev` (only if B is `<name>`: keeps B as the previous generation; if B is
   *      already in `.prev` then `<name>` is corrupt or older and is simply replaced in step 4)
   *   4. rename `.tmp` → `<name>`                            ── crash point ckpt-after-rename
   *   5. fsync dir; only now does save() resolve.
   *
   * Crash (process kill or power loss) during or after 1, before 2 completes: `.tmp` may hold nothing,
   * zeros, a prefix or all of N. Steps 3–4 have not run, so B is untouched under its name. A torn N
   * fails the checksum and is reported; a complete one is N itself. Load → B, or N.
   * Crash after 2, before 5 completes: N's bytes are durable. The renames are atomic, and whichever
   * subset of them reached the disk (journaled filesystems keep their order; even an arbitrary subset
   * is fine): `<name>` is B or N; B is in `<name>` or `.prev` unless `<name>` became N; N is in `.tmp` or
   * `<name>`. So at least one of B, N is intact. Load → B or N, the higher being N.
   * After 5: `<name>` = N and `.prev` = B, both durable.
   * A file can be named `<name>` only after its bytes were fsynced (step 2 precedes 4, and step 0 moves
   * `.tmp` to `.prev`, never to `<name>`), so `<name>` is never torn by a power loss, only by media faults
   * — which is what `.prev` and the checksum are for.
   *
   * Generations: N = (highest valid generation seen) + 1. A save never runs without knowing that
   * number (it scans first if load() was not called or a previous save failed), so a stale file can
   * never outrank a newer one and the highest generation is always the newest acknowledged state.
   */
  private async write(files: readonly FileCheckpoint[]): Promise<CheckpointSnapshot> {
    const known = this.known ?? ((await this.scan()).snapshot && this.known);
    if (known === undefined) throw new Error("unreachable: scan() sets the known generation");
    const snapshot: CheckpointSnapshot = {
      generation: known.generation + 1,
      writtenAt: new Date().toISOString(),
      files,
    };
    const bytes = encodeCheckpointFile(snapshot);
    let step: { op: string; path: string } = { op: "mkdir", path: this.dir };
    try {
      if (!this.dirReady) {
        const created = await this.fs.mkdir(this.dir);
        if (created !== undefined) await this.syncNewDirectories(created, (s) => (step = s));
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
        this.known = { generation: known.generation, bestAt };
      }
      step = { op: "open", path: this.tmpPath };
      const handle = await this.fs.openForWrite(this.tmpPath);
      try {
        step = { op: "write", path: this.tmpPath };
        await handle.write(bytes);
        crashPoint("ckpt-after-temp-write");
        step = { op: "fsync", path: this.tmpPath };
        await handle.sync();
      } finally {
        step = { op: "close", path: this.tmpPath };
        await handle.close();
      }
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
      // After a failure we no longer know which renames happened: rescan before the next save.
      this.known = undefined;
      this.dirReady = false;
      if (errnoCode(err) === undefined) throw err;
      throw this.storeError(`save checkpoints (${step.op}) in`, step.path, err);
    }
    this.known = { generation: snapshot.generation, bestAt: "current" };
    return snapshot;
  }

  /** A directory created by mkdir -p is durable only once each parent's entry for it is fsynced. */
  private async syncNewDirectories(
    firstCreated: string,
    track: (step: { op: string; path: string }) => void,
  ): Promise<void> {
    const chain: string[] = [];
    for (let d = this.dir; d !== firstCreated && dirname(d) !== d; d = dirname(d)) chain.push(d);
    chain.push(firstCreated, dirname(firstCreated));
    // The state directory itself is fsynced at the end of every save; its parents are done here.
    for (const d of chain.slice(1)) {
      track({ op: "fsync", path: d });
      await this.fs.fsyncDir(d);
    }
  }

  private storeError(action: string, path: string, err: unknown): CheckpointStoreError {
    const code = errnoCode(err);
    const detail = err instanceof Error ? err.message : String(err);
    return new CheckpointStoreError(
      `cannot ${action} ${this.dir}: ${code ?? "error"} on ${path} (${detail}). ${hintFor(code, this.dir, path)}`,
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
      return `Make ${dir} writable by the user running pmta-ingest${uid === undefined ? "" : ` (uid ${uid})`}, or set stateDir to a directory it owns. ${intact}`;
    }
    case "ENOSPC":
    case "EDQUOT":
      return `Free space (or raise the quota) on the filesystem holding ${dir}; saving resumes by itself once it can. ${intact}`;
    case "EROFS":
      return `The filesystem holding ${dir} is read-only: remount it read-write or set stateDir to a writable filesystem. ${intact}`;
    case "ENOTDIR":
      return `A component of ${dir} is a regular file, not a directory: set stateDir to a directory path (or move the file out of the way).`;
    case "EEXIST":
      return `${dir} exists but is not a directory: set stateDir to a directory path (or move the file out of the way).`;
    case "EISDIR":
      return `${path} is a directory where the store keeps a file: remove it or choose another checkpoint file name.`;
    case "EIO":
      return `The device holding ${dir} reported an I/O error: check the kernel log (dmesg) and the disk. ${intact}`;
    case "EMFILE":
    case "ENFILE":
      return "Too many open files: raise the open-file limit (LimitNOFILE / ulimit -n).";
    case "ELOOP":
    case "ENAMETOOLONG":
      return `Fix the stateDir path ${dir}.`;
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
): FileCheckpoint[] {
  return files.filter((c) => now - c.updatedAt <= retentionMs || present(c));
}

// ------------------------------------------------------------------------------------------------
// Encoding and validation

/** Serialises a snapshot in format v1 (header line with checksum, then JSON; one entry per line for humans). */
export function encodeCheckpointFile(snapshot: CheckpointSnapshot): Uint8Array {
  const head = JSON.stringify({
    version: CHECKPOINT_FORMAT_VERSION,
    generation: snapshot.generation,
    writtenAt: snapshot.writtenAt,
  });
  const entries = snapshot.files.map((f) => JSON.stringify(canonicalEntry(f)));
  const json = `${head.slice(0, -1)},"files":[${entries.length === 0 ? "" : `\n${entries.join(",\n")}\n`}]}\n`;
  const body = Buffer.from(json, "utf8");
  const digest = createHash("sha256").update(body).digest("hex");
  return Buffer.concat([
    Buffer.from(`${MAGIC} v${CHECKPOINT_FORMAT_VERSION} sha256=${digest}\n`, "utf8"),
    body,
  ]);
}

/** Parses and verifies one candidate file: the snapshot, or a one-line description of the defect. */
export function decodeCheckpointFile(bytes: Uint8Array): CheckpointSnapshot | string {
  if (bytes.length === 0) return "empty file (0 bytes)";
  if (bytes.every((b) => b === 0)) {
    return `all ${bytes.length} bytes are zero (size reached the disk but the data never did: a crash before fsync)`;
  }
  const newline = bytes.indexOf(0x0a);
  const firstLine = Buffer.from(
    bytes.subarray(0, newline < 0 ? Math.min(bytes.length, 120) : newline),
  ).toString("latin1");
  if (!firstLine.startsWith(`${MAGIC} `)) {
    return `not a pmta-ingest checkpoint file (no "${MAGIC}" header line; starts with ${JSON.stringify(firstLine.slice(0, 24))}, ${bytes.length} bytes)`;
  }
  const header = /^pmta-ingest-checkpoint v(\d+)(?: sha256=([0-9a-f]{64}))?$/.exec(firstLine);
  if (newline < 0 || header === null || header[1] === undefined) {
    return `malformed header line ${JSON.stringify(firstLine.slice(0, 100))}`;
  }
  const version = Number(header[1]);
  if (version > CHECKPOINT_FORMAT_VERSION) {
    return `format v${version} is newer than this build reads (v${CHECKPOINT_FORMAT_VERSION}): written by a newer pmta-ingest; upgrade, or move the file away to fall back`;
  }
  if (version !== CHECKPOINT_FORMAT_VERSION) return `unsupported format v${version}`;
  if (header[2] === undefined) return "header line has no sha256 checksum";
  const body = bytes.subarray(newline + 1);
  const digest = createHash("sha256").update(body).digest("hex");
  let json: unknown;
  let parseError: string | undefined;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (err) {
    parseError = err instanceof Error ? err.message : String(err);
  }
  if (digest !== header[2]) {
    return parseError === undefined
      ? `checksum mismatch (header ${header[2].slice(0, 12)}…, content ${digest.slice(0, 12)}…): the JSON parses but is not what was written`
      : `checksum mismatch (header ${header[2].slice(0, 12)}…, content ${digest.slice(0, 12)}…): content is not complete JSON, truncated or torn (${body.length} bytes after the header)`;
  }
  if (parseError !== undefined) return `checksum matches but the content is not valid JSON: ${parseError}`;
  return validateSnapshot(json);
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  const s = v === undefined ? "undefined" : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const SHA256_HEX = /^[0-9a-f]{64}$/;

function validateSnapshot(json: unknown): CheckpointSnapshot | string {
  if (!isObject(json)) return `content is ${show(json)}, not an object`;
  if (json.version !== CHECKPOINT_FORMAT_VERSION) {
    return `version: header says v${CHECKPOINT_FORMAT_VERSION} but the content says ${show(json.version)}`;
  }
  if (!isCount(json.generation) || json.generation < 1) {
    return `generation: expected a positive integer, got ${show(json.generation)}`;
  }
  if (typeof json.writtenAt !== "string" || Number.isNaN(Date.parse(json.writtenAt))) {
    return `writtenAt: expected an ISO timestamp, got ${show(json.writtenAt)}`;
  }
  if (!Array.isArray(json.files)) return `files: expected an array, got ${show(json.files)}`;
  const files: FileCheckpoint[] = [];
  const keys = new Set<string>();
  for (const [i, raw] of json.files.entries()) {
    const entry = validateEntry(raw, `files[${i}]`);
    if (typeof entry === "string") return entry;
    const key = `${entry.dev}:${entry.ino}`;
    if (keys.has(key)) return `files[${i}]: second entry for file ${key}`;
    keys.add(key);
    files.push(entry);
  }
  return { generation: json.generation, writtenAt: json.writtenAt, files };
}

/** Checks one entry (from disk or from the caller) and returns a copy with only the known fields. */
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
  for (const field of ["headHash", "anchorHash"] as const) {
    if (typeof raw[field] !== "string" || !SHA256_HEX.test(raw[field]))
      return bad(field, "64 lowercase hex digits");
  }
  for (const field of ["header", "fileKey"] as const) {
    if (raw[field] !== undefined && typeof raw[field] !== "string") return bad(field, "a string or no value");
  }
  if (typeof raw.finished !== "boolean") return bad("finished", "a boolean");
  const entry = raw as unknown as FileCheckpoint;
  if (entry.anchorLen > entry.offset) {
    return `${where}.anchorLen: ${entry.anchorLen} bytes cannot precede offset ${entry.offset}`;
  }
  return canonicalEntry(entry);
}

/** Fixed key order and no stray fields, so files are byte-stable and extra caller properties are not persisted. */
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

function normaliseEntries(files: readonly FileCheckpoint[]): FileCheckpoint[] {
  // Validating here, before any I/O, keeps a caller bug (NaN offset, duplicate key) from producing a
  // generation that the loader would reject — which would silently fall back to an older one.
  const out: FileCheckpoint[] = [];
  const keys = new Set<string>();
  for (const [i, f] of files.entries()) {
    const entry = validateEntry(f, `files[${i}]`);
    if (typeof entry === "string") throw new TypeError(`checkpoint save refused: ${entry}`);
    const key = `${entry.dev}:${entry.ino}`;
    if (keys.has(key))
      throw new TypeError(`checkpoint save refused: files[${i}] is a second entry for file ${key}`);
    keys.add(key);
    out.push(entry);
  }
  return out;
}
