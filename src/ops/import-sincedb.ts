import { open, readFile } from "node:fs/promises";
import { basename } from "node:path";
import {
  CheckpointStore,
  CheckpointStoreError,
  type FileCheckpoint,
} from "../checkpoint/checkpoint-store.js";
import { forgetStartedInputs } from "../checkpoint/start-policy.js";
import { lockStateDir, StateDirBusyError, type StateLock } from "../checkpoint/state-lock.js";
import type { RunConfig } from "../config/run-config.js";
import { contentMarks, identityKey } from "../tail/file-identity.js";
import { type InputFile, takeInventory } from "./inventory.js";
import { CONFIG_ERROR_EXIT, loadOpsConfig, type OpsConfigSource, type OpsStreams } from "./ops-config.js";
import { resumePointAt } from "./resume-point.js";
import { parseSincedb, type SincedbEntry } from "./sincedb.js";

/**
 * `pmta-ingest import-sincedb`: turns a Logstash sincedb into pmta-ingest checkpoints, so that the
 * switch-over neither re-sends what Logstash already shipped nor skips what it had not (T38).
 *
 * Each sincedb line is matched to a file of the configured inputs by (dev, ino) — Logstash keys its
 * lines by inode and device numbers, and PowerMTA's move-to rename keeps both, so a file Logstash was
 * reading in the live directory is found again in the archive. The entry written is the one the
 * daemon would have written at that offset: content marks hashed on the real file, decoder state from
 * decoding the file up to there, the offset moved back to a record boundary (see resume-point.ts).
 * Anything doubtful is skipped, never guessed: a skipped file is left to the start policy, which
 * re-sends (duplicates the backend can absorb) rather than loses.
 */

export interface ImportOptions extends OpsConfigSource, OpsStreams {
  readonly sincedb: string;
  readonly dryRun?: boolean;
  readonly force?: boolean;
  readonly json?: boolean;
  readonly now?: () => number;
}

export interface PlannedImport {
  readonly line: number;
  readonly input: string;
  readonly path: string;
  readonly live: boolean;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly logstashOffset: number;
  readonly offset: number;
  /** Bytes of a record Logstash had partly read, sent again. */
  readonly rewound: number;
  readonly unreadBytes: number;
}

export interface SkippedLine {
  readonly line: number;
  readonly text?: string;
  readonly reason:
    | "bad-line"
    | "stale"
    | "device-mismatch"
    | "inode-reused"
    | "beyond-size"
    | "duplicate"
    | "unreadable";
  readonly message: string;
}

export interface LeftToStartPolicy {
  readonly input: string;
  readonly path: string;
  readonly size: number;
  readonly message: string;
}

export interface ImportPlan {
  readonly sincedb: string;
  readonly stateDir: string;
  readonly imports: readonly PlannedImport[];
  readonly skipped: readonly SkippedLine[];
  readonly notInSincedb: readonly LeftToStartPolicy[];
  readonly entries: readonly FileCheckpoint[];
}

export interface ImportResult {
  readonly plan: ImportPlan;
  readonly written: boolean;
  readonly generation?: number;
  readonly refused?: string;
}

/** Runs `import-sincedb`; exit 0 (imported, or dry run), 1 (refused, nothing to import, unreadable input), 2 (config). */
export async function runImportSincedb(opts: ImportOptions): Promise<number> {
  const loaded = await loadOpsConfig(opts);
  if (!loaded.ok) {
    opts.err.write(`pmta-ingest import-sincedb: ${loaded.message}\n`);
    return CONFIG_ERROR_EXIT;
  }
  const config = loaded.config;
  let text: string;
  try {
    text = await readFile(opts.sincedb, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    opts.err.write(
      `pmta-ingest import-sincedb: cannot read the sincedb ${opts.sincedb} (${code}); give the path from Logstash's file input (sincedb_path, or the .sincedb_* file under <path.data>/plugins/inputs/file/)\n`,
    );
    return 1;
  }
  // Writing checkpoints under a running daemon would be overwritten by its next save, or overwrite
  // its state: only with the state directory to ourselves (a dry run writes nothing).
  let lock: StateLock | undefined;
  if (opts.dryRun !== true) {
    try {
      lock = await lockStateDir(config.stateDir, "import-sincedb");
    } catch (err) {
      if (!(err instanceof StateDirBusyError)) throw err;
      opts.err.write(`pmta-ingest import-sincedb: ${err.message}\n`);
      return 1;
    }
  }
  try {
    return await importLocked(opts, config, text);
  } finally {
    await lock?.release();
  }
}

async function importLocked(opts: ImportOptions, config: RunConfig, text: string): Promise<number> {
  const store = new CheckpointStore(config.stateDir);
  let existing: string | undefined;
  try {
    const current = await store.load();
    if (current.source !== "none") {
      existing = `${config.stateDir} already holds pmta-ingest checkpoints (generation ${current.snapshot.generation}, written ${current.snapshot.writtenAt}, ${current.snapshot.files.length} files)`;
    } else if (current.problems.length > 0) {
      existing = `${config.stateDir} holds checkpoint files that cannot be read (${current.problems.join("; ")})`;
    }
  } catch (err) {
    if (!(err instanceof CheckpointStoreError)) throw err;
    opts.err.write(`pmta-ingest import-sincedb: cannot read the checkpoint store: ${err.message}\n`);
    return 1;
  }

  const now = (opts.now ?? Date.now)();
  const plan = await planImport(config, opts.sincedb, text, now);
  let result: ImportResult;
  if (opts.dryRun === true) {
    result = {
      plan,
      written: false,
      ...(existing !== undefined && opts.force !== true ? { refused: refusal(existing) } : {}),
    };
  } else if (plan.entries.length === 0) {
    result = {
      plan,
      written: false,
      refused:
        "no sincedb line matched a file of the configured inputs; nothing written. Check that the sincedb belongs to these files (same host, the Logstash input's path) and that the inputs' paths are right.",
    };
  } else if (existing !== undefined && opts.force !== true) {
    result = { plan, written: false, refused: refusal(existing) };
  } else {
    try {
      const snapshot = await store.save(plan.entries);
      // Files the sincedb does not cover are left to startAt at the daemon's next start, as at a
      // first start (start-policy.ts).
      await forgetStartedInputs(config.stateDir);
      result = { plan, written: true, generation: snapshot.generation };
    } catch (err) {
      if (!(err instanceof CheckpointStoreError)) throw err;
      opts.err.write(`pmta-ingest import-sincedb: ${err.message}\n`);
      return 1;
    }
  }
  if (opts.json === true) {
    // The entries themselves (hashes) are an implementation detail; the plan says what they mean.
    const { entries: _entries, ...plan } = result.plan;
    opts.out.write(`${JSON.stringify({ ...result, plan }, null, 2)}\n`);
  } else {
    opts.out.write(renderImport(result, store.path, opts.dryRun === true));
  }
  if (result.refused !== undefined && opts.dryRun !== true) {
    opts.err.write(`pmta-ingest import-sincedb: ${result.refused}\n`);
    return 1;
  }
  return 0;
}

function refusal(existing: string): string {
  return `${existing}: the daemon's own state is newer than any Logstash sincedb, so it is kept. To replace it anyway (a trial run you want to discard), stop pmta-ingest and run again with --force.`;
}

/** Matches every sincedb line to the files on disk and builds the checkpoint entries (no writes). */
export async function planImport(
  config: RunConfig,
  sincedbPath: string,
  text: string,
  now: number,
): Promise<ImportPlan> {
  const parsed = parseSincedb(text);
  const at = (line: number): string => `${sincedbPath}:${line}`;
  const skipped: SkippedLine[] = parsed.errors.map((e) => ({
    line: e.line,
    text: e.text,
    reason: "bad-line",
    message: `${at(e.line)}: ${e.problem}; line ignored (${JSON.stringify(e.text.slice(0, 80))})`,
  }));
  // Logstash keeps one line per (inode, major, minor); if a file has several, the last one counts, as
  // it would for Logstash reading the same file.
  const byKey = new Map<string, SincedbEntry>();
  for (const e of parsed.entries) {
    const key = identityKey(e.dev, e.ino);
    const earlier = byKey.get(key);
    if (earlier !== undefined) {
      skipped.push({
        line: earlier.line,
        reason: "duplicate",
        message: `${at(earlier.line)}: inode ${e.ino} on ${e.major}:${e.minor} appears again on line ${e.line}; the later line is used`,
      });
    }
    byKey.set(key, e);
  }
  const inventory = await takeInventory(config.inputs);
  const imports: PlannedImport[] = [];
  const entries: FileCheckpoint[] = [];
  const covered = new Set<string>();
  const policy = startPolicyText(config);
  for (const e of [...byKey.values()].sort((a, b) => a.line - b.line)) {
    const key = identityKey(e.dev, e.ino);
    const file = inventory.byKey.get(key);
    const where = `${at(e.line)}: inode ${e.ino} on device ${e.major}:${e.minor}${e.path === undefined ? "" : ` (${e.path})`}`;
    if (file === undefined) {
      const sameInode = inventory.files.filter((f) => f.ino === e.ino);
      if (sameInode.length > 0) {
        const f = sameInode[0] as InputFile;
        skipped.push({
          line: e.line,
          reason: "device-mismatch",
          message: `${where}: ${f.path} has this inode but device ${f.dev} (st_dev of ${e.major}:${e.minor} would be ${e.dev}); not imported, because an inode alone does not identify a file — if this sincedb really was written on this filesystem, that file is left to ${policy}`,
        });
      } else {
        skipped.push({
          line: e.line,
          reason: "stale",
          message: `${where}: no file with this device and inode in the inputs' directories (deleted since, or not an input of this config); nothing to import`,
        });
      }
      continue;
    }
    const outcome = await planOne(e, file, config, now, where, policy);
    if ("reason" in outcome) {
      skipped.push(outcome);
      continue;
    }
    covered.add(key);
    imports.push(outcome.plan);
    entries.push(outcome.entry);
  }
  const notInSincedb: LeftToStartPolicy[] = [];
  for (const f of inventory.files) {
    if (covered.has(identityKey(f.dev, f.ino))) continue;
    notInSincedb.push({
      input: f.input.name,
      path: f.path,
      size: f.size,
      message: `${f.path} (${f.input.name}, ${f.live ? "live" : "archive"}, ${f.size} bytes): no usable sincedb line; left to ${policy}: ${startPolicyEffect(config, f, now)}`,
    });
  }
  for (const p of inventory.problems) {
    if (p.code !== "missing") {
      skipped.push({
        line: 0,
        reason: "unreadable",
        message: `input ${p.input}: cannot list ${p.dir} (${p.code}); its files could not be matched — fix the permissions and run again`,
      });
    }
  }
  return { sincedb: sincedbPath, stateDir: config.stateDir, imports, skipped, notInSincedb, entries };
}

async function planOne(
  e: SincedbEntry,
  file: InputFile,
  config: RunConfig,
  now: number,
  where: string,
  policy: string,
): Promise<{ plan: PlannedImport; entry: FileCheckpoint } | SkippedLine> {
  if (e.path !== undefined && basename(e.path) !== file.name) {
    // PowerMTA's move-to keeps the name; a different name on the same inode is a reused inode.
    return {
      line: e.line,
      reason: "inode-reused",
      message: `${where}: the inode now holds ${file.path}, not a file named ${basename(e.path)}: the inode was reused by a newer file; not imported, ${file.path} is left to ${policy}`,
    };
  }
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file.path, "r");
  } catch (err) {
    return {
      line: e.line,
      reason: "unreadable",
      message: `${where}: cannot open ${file.path} (${(err as NodeJS.ErrnoException).code}); not imported — fix its permissions and run again`,
    };
  }
  try {
    const st = await handle.stat();
    if (st.dev !== file.dev || st.ino !== file.ino) {
      return {
        line: e.line,
        reason: "unreadable",
        message: `${where}: ${file.path} was renamed while we read it; not imported — run again when PowerMTA is not rotating`,
      };
    }
    // Birth time after Logstash last moved this line's offset: a newer file got the freed inode.
    if (e.lastActive !== undefined && st.birthtimeMs > 0 && st.birthtimeMs > e.lastActive * 1000 + 2000) {
      return {
        line: e.line,
        reason: "inode-reused",
        message: `${where}: ${file.path} was created ${new Date(st.birthtimeMs).toISOString()}, after Logstash last updated this line (${new Date(e.lastActive * 1000).toISOString()}): the inode was reused; not imported, the file is left to ${policy}`,
      };
    }
    if (e.offset > st.size) {
      return {
        line: e.line,
        reason: "beyond-size",
        message: `${where}: offset ${e.offset} is beyond the size of ${file.path} (${st.size} bytes): truncated or replaced since Logstash read it; not imported, the file is left to ${policy}`,
      };
    }
    const point = await resumePointAt(handle, e.offset, {
      maxRecordBytes: config.maxRecordBytes,
      ...(file.input.fallbackColumns === undefined ? {} : { fallbackColumns: file.input.fallbackColumns }),
    });
    const marks = await contentMarks(handle, st.size, point.offset);
    const entry: FileCheckpoint = {
      dev: file.dev,
      ino: file.ino,
      input: file.input.name,
      path: file.path,
      offset: point.offset,
      ...marks,
      ...(point.header === undefined ? {} : { header: point.header }),
      ...(point.fileKey === undefined ? {} : { fileKey: point.fileKey }),
      // The daemon marks a file finished only after sealing it; it re-checks an imported one itself.
      finished: false,
      updatedAt: now,
    };
    return {
      entry,
      plan: {
        line: e.line,
        input: file.input.name,
        path: file.path,
        live: file.live,
        dev: file.dev,
        ino: file.ino,
        size: st.size,
        logstashOffset: e.offset,
        offset: point.offset,
        rewound: point.rewound,
        unreadBytes: st.size - point.offset,
      },
    };
  } finally {
    await handle.close();
  }
}

function startPolicyText(config: RunConfig): string {
  const s = config.startAt;
  return s.kind === "max-age"
    ? `the start policy (startAt ${s.ms} ms)`
    : `the start policy (startAt ${s.kind})`;
}

function startPolicyEffect(config: RunConfig, f: InputFile, now: number): string {
  const s = config.startAt;
  if (s.kind === "beginning") return "read from 0";
  if (s.kind === "end") return "skipped to its end (nothing of it is sent)";
  return now - f.mtimeMs > s.ms
    ? "older than startAt: skipped to its end"
    : "read from 0 (modified within startAt)";
}

function renderImport(result: ImportResult, storePath: string, dryRun: boolean): string {
  const { plan } = result;
  const lines: string[] = [];
  lines.push(
    `sincedb ${plan.sincedb}: ${plan.imports.length} file(s) to import, ${plan.skipped.length} line(s) skipped, ${plan.notInSincedb.length} file(s) not in the sincedb`,
  );
  for (const p of plan.imports) {
    const mid =
      p.rewound > 0
        ? `; Logstash's offset ${p.logstashOffset} is inside a record: resume at its start, ${p.offset} (that record is sent again)`
        : "";
    lines.push(
      `IMPORT ${plan.sincedb}:${p.line} → ${p.path} (${p.input}, ${p.live ? "live" : "archive"}, ${p.dev}:${p.ino}): resume at ${p.offset} of ${p.size}, ${p.unreadBytes} bytes left to read${mid}`,
    );
  }
  for (const s of plan.skipped) lines.push(`SKIP   ${s.message}`);
  for (const n of plan.notInSincedb) lines.push(`START  ${n.message}`);
  if (dryRun) {
    lines.push(
      result.refused === undefined
        ? `dry run: nothing written; without --dry-run ${plan.entries.length} checkpoint entr${plan.entries.length === 1 ? "y" : "ies"} would be written to ${storePath}`
        : `dry run: nothing written; without --dry-run the import would be refused: ${result.refused}`,
    );
  } else if (result.written) {
    lines.push(
      `imported ${plan.entries.length} checkpoint entr${plan.entries.length === 1 ? "y" : "ies"} into ${storePath} (generation ${result.generation}); start pmta-ingest on this stateDir and check with pmta-ingest status`,
    );
  } else if (result.refused !== undefined) {
    lines.push(`not written: ${result.refused}`);
  }
  return `${lines.join("\n")}\n`;
}
