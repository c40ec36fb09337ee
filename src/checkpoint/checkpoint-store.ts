import { createHash } from "node:crypto";
import { join } from "node:path";
import { crashPoint } from "./crash-point.js";
import { nodeStoreFs, type StoreFs } from "./store-fs.js";

/**
 * The durable record of how far each file was acknowledged. One small file, versioned and
 * checksummed, written temp → fsync → rename(current → prev) → rename(temp → current) → fsync(dir).
 *
 * Why every crash leaves a usable generation that is never ahead of what was acknowledged:
 * - before the temp file is fsynced, `current` (or `prev`) is untouched;
 * - between the renames, `current` may be missing but `prev` holds the old generation and `temp`
 *   the complete, fsynced new one — load takes the valid candidate with the highest generation;
 * - a torn or zeroed file (power loss before fsync) fails its checksum and is skipped.
 * The content itself is only ever an acknowledged offset, so whichever generation survives, records
 * after it are re-read (duplicates at worst), never skipped.
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
  readonly problems: readonly string[];
}

export class CheckpointStoreError extends Error {
  override name = "CheckpointStoreError";
}

const MAGIC = "pmta-ingest-checkpoint";
const VERSION = 1;

export class CheckpointStore {
  readonly path: string;
  private readonly fs: StoreFs;
  private generation = 0;

  constructor(
    private readonly dir: string,
    options: { fs?: StoreFs; fileName?: string } = {},
  ) {
    this.fs = options.fs ?? nodeStoreFs;
    this.path = join(dir, options.fileName ?? "checkpoints.json");
  }

  async load(): Promise<LoadResult> {
    const problems: string[] = [];
    let best: { snapshot: CheckpointSnapshot; source: LoadSource } | undefined;
    const candidates: Array<[string, LoadSource]> = [
      [this.path, "current"],
      [`${this.path}.tmp`, "temp"],
      [`${this.path}.prev`, "previous"],
    ];
    for (const [path, source] of candidates) {
      let bytes: Uint8Array;
      try {
        bytes = await this.fs.readFile(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") continue;
        if (code === "ENOTDIR" || code === "EACCES") throw this.unusable(err);
        problems.push(`${path}: cannot read (${code ?? String(err)})`);
        continue;
      }
      const parsed = parseSnapshot(Buffer.from(bytes).toString("utf8"));
      if (typeof parsed === "string") {
        // A leftover temp file from a crash before its fsync is expected, not a problem to report.
        if (source !== "temp") problems.push(`${path}: ${parsed}`);
        continue;
      }
      if (best === undefined || parsed.generation > best.snapshot.generation)
        best = { snapshot: parsed, source };
    }
    const result: LoadResult = best
      ? { ...best, problems }
      : { snapshot: { generation: 0, writtenAt: "", files: [] }, source: "none", problems };
    this.generation = result.snapshot.generation;
    return result;
  }

  async save(files: readonly FileCheckpoint[]): Promise<CheckpointSnapshot> {
    const snapshot: CheckpointSnapshot = {
      generation: this.generation + 1,
      writtenAt: new Date().toISOString(),
      files,
    };
    const body = JSON.stringify({ version: VERSION, ...snapshot });
    const text = `${MAGIC} v${VERSION} sha256=${sha256(body)}\n${body}`;
    const tmp = `${this.path}.tmp`;
    try {
      await this.fs.mkdir(this.dir);
      const handle = await this.fs.openForWrite(tmp);
      try {
        await handle.write(Buffer.from(text));
        crashPoint("ckpt-after-temp-write");
        await handle.sync();
      } finally {
        await handle.close();
      }
      crashPoint("ckpt-after-fsync");
      await this.fs.rename(this.path, `${this.path}.prev`).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") throw err;
      });
      await this.fs.rename(tmp, this.path);
      crashPoint("ckpt-after-rename");
      await this.fs.fsyncDir(this.dir);
    } catch (err) {
      throw this.unusable(err);
    }
    this.generation = snapshot.generation;
    return snapshot;
  }

  expire(
    files: readonly FileCheckpoint[],
    retentionMs: number,
    now: number,
    present: (c: FileCheckpoint) => boolean,
  ): FileCheckpoint[] {
    return files.filter((c) => present(c) || now - c.updatedAt <= retentionMs);
  }

  private unusable(err: unknown): CheckpointStoreError {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return new CheckpointStoreError(
      `checkpoint store ${this.dir}: ${code}; make the state directory writable by the service user (systemd StateDirectory=) or free space on its volume`,
    );
  }
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** A snapshot, or a sentence saying what is wrong with the text. */
function parseSnapshot(text: string): CheckpointSnapshot | string {
  const nl = text.indexOf("\n");
  if (nl < 0) return "not a checkpoint file (no header line: truncated, zeroed or overwritten?)";
  const m = /^pmta-ingest-checkpoint v(\d+) sha256=([0-9a-f]{64})$/.exec(text.slice(0, nl));
  if (m === null) return "not a checkpoint file (bad header line; zeroed or overwritten?)";
  if (Number(m[1]) !== VERSION)
    return `version ${m[1]} is not supported by this release (expects ${VERSION})`;
  const body = text.slice(nl + 1);
  if (sha256(body) !== m[2]) return "checksum mismatch (torn or corrupted write)";
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return "invalid JSON";
  }
  if (!isSnapshot(doc)) return "unexpected content (a field is missing or of the wrong type)";
  return { generation: doc.generation, writtenAt: doc.writtenAt, files: doc.files };
}

function isSnapshot(doc: unknown): doc is CheckpointSnapshot {
  if (doc === null || typeof doc !== "object") return false;
  const d = doc as Record<string, unknown>;
  return (
    typeof d.generation === "number" &&
    typeof d.writtenAt === "string" &&
    Array.isArray(d.files) &&
    d.files.every(
      (f: unknown) =>
        f !== null &&
        typeof f === "object" &&
        typeof (f as FileCheckpoint).dev === "number" &&
        typeof (f as FileCheckpoint).ino === "number" &&
        typeof (f as FileCheckpoint).offset === "number" &&
        typeof (f as FileCheckpoint).headHash === "string" &&
        typeof (f as FileCheckpoint).anchorHash === "string",
    )
  );
}
