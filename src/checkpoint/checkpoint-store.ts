import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { crashPoint } from "./crash-point.js";
import { nodeStoreFs, type StoreFs } from "./store-fs.js";

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

type Candidate = Exclude<LoadSource, "none">;

/** The newest valid generation on disk and which name holds it, as far as this instance knows. */
interface Known {
  readonly generation: number;
  readonly bestAt: LoadSource;
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
  /** Undefined until a scan, and again after a failed save: the next save must look at the disk first. */
  private known: Known | undefined;
  private dirReady = false;
  /** Loads and saves run one after the other: two saves interleaving on the same temp file would tear it. */
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
   */
  save(files: readonly FileCheckpoint[]): Promise<CheckpointSnapshot> {
    let normalised: FileCheckpoint[];
    try {
      normalised = normaliseEntries(files);
    } catch (err) {
      return Promise.reject(err);
    }
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

  private async scan(): Promise<{ result: LoadResult; known: Known }> {
    const candidates: ReadonlyArray<readonly [Candidate, string]> = [
      // The order only breaks ties between equal generations, which the write protocol never creates.
      ["current", this.path],
      ["temp", this.tmpPath],
      ["previous", this.prevPath],
    ];
    const problems: string[] = [];
    let best: { source: Candidate; snapshot: CheckpointSnapshot } | undefined;
    for (const [source, path] of candidates) {
      let bytes: Uint8Array;
      try {
        bytes = await this.fs.readFile(path);
      } catch (err) {
        const code = errnoCode(err);
        if (code === undefined) throw err;
        if (code === "ENOENT") continue;
        // A bad sector is a property of this file, not of the directory: the other copies may be fine.
        if (code === "EIO") {
          problems.push(`${path}: unreadable (EIO: the device reported an I/O error)`);
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
      if (best === undefined || decoded.generation > best.snapshot.generation) {
        best = { source, snapshot: decoded };
      }
    }
    const known: Known =
      best === undefined
        ? { generation: 0, bestAt: "none" }
        : { generation: best.snapshot.generation, bestAt: best.source };
    this.known = known;
    const result: LoadResult =
      best === undefined
        ? { snapshot: EMPTY, source: "none", problems }
        : { snapshot: best.snapshot, source: best.source, problems };
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
   * - After 5: `<name>` = N and `.prev` = B, both durable.
   * A file gets the name `<name>` only after its bytes were fsynced (2 precedes 4; step 0 moves `.tmp`
   * to `.prev`, never to `<name>`), so power loss never tears `<name>`; only media faults can, which is
   * what `.prev` and the checksum are for.
   *
   * Generations: N = (highest valid generation on disk) + 1. A save never runs without knowing that
   * number — it scans first if load() was not called or the previous save failed — so a leftover file
   * can never outrank a newer one, and the highest generation is always the latest acknowledged state.
   */
  private async write(files: readonly FileCheckpoint[]): Promise<CheckpointSnapshot> {
    const known = this.known ?? (await this.scan()).known;
    const snapshot: CheckpointSnapshot = {
      generation: known.generation + 1,
      writtenAt: new Date().toISOString(),
      files,
    };
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
        this.known = { generation: known.generation, bestAt };
      }
      step = { op: "open", path: this.tmpPath };
      const handle = await this.fs.openForWrite(this.tmpPath);
      try {
        step = { op: "write", path: this.tmpPath };
        // The checksum line comes first but covers the body: a placeholder of the same length goes
        // first, the body is hashed as it is written, and the real line is written over the
        // placeholder before the fsync. A crash in between leaves a .tmp whose checksum does not
        // match, which load() rejects like any torn write.
        await handle.write(checksumLine("0".repeat(64)));
        const hash = createHash("sha256");
        for (const chunk of encodeCheckpointBody(snapshot)) {
          hash.update(chunk);
          await handle.write(chunk);
        }
        await handle.writeAt(checksumLine(hash.digest("hex")), 0);
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
      if (errnoCode(err) === undefined) throw err;
      throw this.storeError(`save checkpoints (${step.op} ${step.path}) in`, step.path, err);
    }
    this.known = { generation: snapshot.generation, bestAt: "current" };
    return snapshot;
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
): FileCheckpoint[] {
  return files.filter((c) => now - c.updatedAt <= retentionMs || present(c));
}

// ------------------------------------------------------------------------------------------------
// Encoding and validation

/** Serialises a snapshot in format v1 (header line with checksum, then JSON with one entry per line). */
export function encodeCheckpointFile(snapshot: CheckpointSnapshot): Uint8Array {
  const body: Buffer[] = [];
  const hash = createHash("sha256");
  for (const chunk of encodeCheckpointBody(snapshot)) {
    hash.update(chunk);
    body.push(Buffer.from(chunk)); // the generator reuses its buffer
  }
  return Buffer.concat([checksumLine(hash.digest("hex")), ...body]);
}

/** The first line of a v1 file; always the same length (SHA-256 in hex is 64 characters). */
function checksumLine(hex: string): Buffer {
  return Buffer.from(`${MAGIC} v${CHECKPOINT_FORMAT_VERSION} sha256=${hex}\n`, "utf8");
}

const CHUNK_BYTES = 1024 * 1024;

/**
 * The JSON body of a v1 file, one entry per line, in pieces of up to 1 MiB made as they are written.
 * Each piece is a view of one buffer that the next piece overwrites: use it (write it, hash it)
 * before asking for the next. A 100,000-file archive makes a 50 MB document; built whole (one
 * string, one buffer, one more with the header line in front) it was ~200 MB of garbage per save,
 * most of it in V8's large-object space, and the daemon's RSS followed.
 */
export function* encodeCheckpointBody(snapshot: CheckpointSnapshot): Generator<Buffer> {
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
  const head = JSON.stringify({
    version: CHECKPOINT_FORMAT_VERSION,
    generation: snapshot.generation,
    writtenAt: snapshot.writtenAt,
  });
  yield* put(`${head.slice(0, -1)},"files":[`);
  for (let i = 0; i < snapshot.files.length; i++) {
    const f = snapshot.files[i] as FileCheckpoint;
    yield* put(`${i === 0 ? "\n" : ",\n"}${JSON.stringify(canonical.has(f) ? f : canonicalEntry(f))}`);
  }
  yield* put(snapshot.files.length === 0 ? "]}\n" : "\n]}\n");
  if (n > 0) yield buf.subarray(0, n);
}

/** Parses and verifies one candidate file: the snapshot, or a one-line description of the defect. */
export function decodeCheckpointFile(bytes: Uint8Array): CheckpointSnapshot | string {
  if (bytes.length === 0) return "not a checkpoint file: empty (0 bytes)";
  if (bytes.every((b) => b === 0)) {
    return `not a checkpoint file: all ${bytes.length} bytes are zero (the size reached the disk but the data never did: a crash before fsync)`;
  }
  const newline = bytes.indexOf(0x0a);
  const end = newline < 0 ? Math.min(bytes.length, 120) : Math.min(newline, 200);
  const firstLine = Buffer.from(bytes.subarray(0, end)).toString("latin1");
  if (!firstLine.startsWith(`${MAGIC} `)) {
    return `not a checkpoint file (no "${MAGIC}" header line; starts with ${JSON.stringify(firstLine.slice(0, 24))}, ${bytes.length} bytes: overwritten or garbage)`;
  }
  // The version is read before anything else so that a future format can change the rest of the line.
  const versioned = /^pmta-ingest-checkpoint v(\d{1,9})(?: (.*))?$/.exec(firstLine);
  if (newline < 0 || versioned === null || versioned[1] === undefined) {
    return `not a checkpoint file (malformed or unterminated header line ${JSON.stringify(firstLine.slice(0, 80))})`;
  }
  const version = Number(versioned[1]);
  if (version !== CHECKPOINT_FORMAT_VERSION) {
    const newer =
      version > CHECKPOINT_FORMAT_VERSION
        ? `: format v${version} was written by a newer pmta-ingest; upgrade, or move the file away to fall back`
        : "";
    return `version ${version} is not supported by this release (expects ${CHECKPOINT_FORMAT_VERSION})${newer}`;
  }
  const declared = /^sha256=([0-9a-f]{64})$/.exec(versioned[2] ?? "")?.[1];
  if (declared === undefined) return `header line has no valid sha256 checksum: ${JSON.stringify(firstLine)}`;
  const body = bytes.subarray(newline + 1);
  const digest = createHash("sha256").update(body).digest("hex");
  let json: unknown;
  let parseError: string | undefined;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
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
  return validateSnapshot(json);
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

function validateSnapshot(json: unknown): CheckpointSnapshot | string {
  if (!isObject(json)) return `content is ${show(json)}, not an object`;
  if (json.version !== CHECKPOINT_FORMAT_VERSION) {
    return `version: the header says v${CHECKPOINT_FORMAT_VERSION} but the content says ${show(json.version)}`;
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
    if (keys.has(key)) return `files[${i}]: a second entry for file ${key}`;
    keys.add(key);
    files.push(entry);
  }
  return { generation: json.generation, writtenAt: json.writtenAt, files };
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
  return canonicalEntry(raw as unknown as FileCheckpoint);
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

function normaliseEntries(files: readonly FileCheckpoint[]): FileCheckpoint[] {
  // Validated before any I/O: a caller bug (NaN offset, duplicate key) must not produce a generation
  // that the loader would reject, which would silently fall back to an older one on the next start.
  const out: FileCheckpoint[] = [];
  // Inodes by device, as numbers: a string key per entry made 100,000 strings per save.
  const keys = new Map<number, Set<number>>();
  for (let i = 0; i < files.length; i++) {
    const f = files[i] as FileCheckpoint;
    let entry: FileCheckpoint | string = f;
    if (!canonical.has(f)) {
      entry = validateEntry(f, `files[${i}]`);
      if (typeof entry !== "string" && isCanonical(f)) {
        canonical.add(f);
        entry = f;
      }
    }
    if (typeof entry === "string") throw new TypeError(`checkpoint save refused: ${entry}`);
    let inodes = keys.get(entry.dev);
    if (inodes === undefined) {
      inodes = new Set();
      keys.set(entry.dev, inodes);
    }
    if (inodes.has(entry.ino)) {
      throw new TypeError(
        `checkpoint save refused: files[${i}] is a second entry for file ${entry.dev}:${entry.ino}`,
      );
    }
    inodes.add(entry.ino);
    out.push(entry);
  }
  return out;
}
