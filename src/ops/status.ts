import { open, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import {
  CheckpointStore,
  CheckpointStoreError,
  type FileCheckpoint,
  type LoadResult,
} from "../checkpoint/checkpoint-store.js";
import {
  describeStartAt,
  inputsAtFirstStart,
  readStartedInputsForReport,
} from "../checkpoint/start-policy.js";
import type { RunConfig } from "../config/run-config.js";
import { identityKey, verifyMarks } from "../tail/file-identity.js";
import { type DirProblem, type InputFile, type Inventory, takeInventory } from "./inventory.js";
import { CONFIG_ERROR_EXIT, loadOpsConfig, type OpsConfigSource, type OpsStreams } from "./ops-config.js";
import { formatBytes, formatTable } from "./text.js";

/**
 * `pmta-ingest status`: what the daemon has read of every file, from its checkpoint and the disk.
 *
 * Read-only with respect to the daemon: it loads the checkpoint store with CheckpointStore.load()
 * (plain reads; the store has no lock file, so nothing can block a running daemon) and opens the
 * accounting files read-only to run the same content check the daemon runs before trusting an offset.
 * A save in progress may leave a torn `.tmp` next to a valid current file; that is reported as a note,
 * not as damage, because the daemon itself ignores it.
 */

export type FileState = "live" | "archived" | "gone" | "identity-mismatch" | "unreadable" | "untracked";

export interface StatusFile {
  readonly input: string;
  readonly state: FileState;
  /** The path recorded in the checkpoint (for an untracked file: where it is on disk). */
  readonly path: string;
  /** Where the file is now, if it was found; equal to `path` when it has not moved. */
  readonly currentPath: string | null;
  /** How the file was found: at the recorded path, by (dev, ino) elsewhere in the input's directories, or not at all. */
  readonly found: "at-recorded-path" | "moved" | "not-found";
  readonly dev: number;
  readonly ino: number;
  readonly size: number | null;
  /** Checkpoint offset: every byte before it was delivered and acknowledged. Null when untracked. */
  readonly offset: number | null;
  /** Bytes the daemon still has to read: size − offset, the whole size when it will re-read from 0, null when gone. */
  readonly unreadBytes: number | null;
  readonly finished: boolean;
  /**
   * The entry's updatedAt: when the daemon last saw the file on disk, as of the last checkpoint
   * write. It writes a checkpoint only when something changed; files being read get the stamp of
   * that write, finished ones have it renewed by a listing once it is an hour old.
   */
  readonly updatedAt: string | null;
  readonly detail?: string;
}

export interface InputTotals {
  readonly input: string;
  readonly files: number;
  readonly tracked: number;
  readonly untracked: number;
  readonly gone: number;
  readonly identityMismatch: number;
  readonly unreadBytes: number;
}

export interface CheckpointInfo {
  readonly path: string;
  /** Which file the snapshot came from ("none": no valid checkpoint). */
  readonly source: LoadResult["source"];
  readonly generation: number;
  readonly writtenAt: string | null;
  /** Rejected candidate files that matter (current/previous, or every one when none is valid). */
  readonly damage: readonly string[];
  /** Rejected candidates that do not matter on their own (a torn `.tmp` of a save in progress). */
  readonly notes: readonly string[];
}

export interface StatusReport {
  readonly config: string;
  readonly stateDir: string;
  readonly checkpoint: CheckpointInfo;
  readonly files: readonly StatusFile[];
  readonly totals: readonly InputTotals[];
  readonly directories: readonly DirProblem[];
  readonly startAt: string;
  /** The inputs startAt applies to at the daemon's next start (their first start is not complete). */
  readonly startAtInputs: readonly string[];
}

export interface StatusOptions extends OpsConfigSource, OpsStreams {
  readonly json?: boolean;
  /** Clock for "ago" in the human output (tests). */
  readonly now?: () => number;
}

/** Runs `status`; returns the exit code: 0, 1 (damaged or unreadable checkpoint store), 2 (config). */
export async function runStatus(opts: StatusOptions): Promise<number> {
  const loaded = await loadOpsConfig(opts, true);
  if (!loaded.ok) {
    opts.err.write(`pmta-ingest status: ${loaded.message}\n`);
    return CONFIG_ERROR_EXIT;
  }
  let report: StatusReport;
  try {
    report = await collectStatus(loaded.config);
  } catch (err) {
    if (err instanceof CheckpointStoreError) {
      opts.err.write(`pmta-ingest status: cannot read the checkpoint store: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const now = opts.now ?? Date.now;
  opts.out.write(opts.json === true ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report, now()));
  if (report.checkpoint.damage.length === 0) return 0;
  const fallback =
    report.checkpoint.source === "none"
      ? "no valid generation is left: the daemon will apply startAt to every file"
      : `the daemon uses generation ${report.checkpoint.generation} from the ${report.checkpoint.source} file`;
  opts.err.write(
    `pmta-ingest status: the checkpoint store is damaged (${fallback}):\n${report.checkpoint.damage.map((d) => `  ${d}\n`).join("")}move the damaged file away to keep it for analysis; the daemon writes a new one at its next checkpoint\n`,
  );
  return 1;
}

/** Builds the report (throws CheckpointStoreError when the state directory cannot be read). */
export async function collectStatus(config: RunConfig): Promise<StatusReport> {
  const store = new CheckpointStore(config.stateDir);
  const loaded = await store.load();
  const tmpPrefix = `${store.path}.tmp:`;
  const damage: string[] = [];
  const notes: string[] = [];
  for (const p of loaded.problems) {
    // A torn .tmp beside a valid snapshot is what a save in progress (or killed) leaves: harmless.
    if (p.startsWith(tmpPrefix) && loaded.source !== "none") notes.push(p);
    else damage.push(p);
  }
  const started = await readStartedInputsForReport(config.stateDir);
  const firstStart = inputsAtFirstStart(
    config.inputs.map((i) => i.name),
    loaded,
    started.inputs,
  );
  if (started.problem !== undefined) notes.push(started.problem);
  const inventory = await takeInventory(config.inputs);
  const files: StatusFile[] = [];
  const tracked = new Set<string>();
  for (const entry of loaded.snapshot.files) {
    tracked.add(identityKey(entry.dev, entry.ino));
    files.push(await describeEntry(entry, inventory, config));
  }
  for (const f of inventory.files) {
    if (tracked.has(identityKey(f.dev, f.ino))) continue;
    files.push({
      input: f.input.name,
      state: "untracked",
      path: f.path,
      currentPath: f.path,
      found: "at-recorded-path",
      dev: f.dev,
      ino: f.ino,
      size: f.size,
      offset: null,
      unreadBytes: f.size,
      finished: false,
      updatedAt: null,
      detail: firstStart.has(f.input.name)
        ? `no checkpoint entry yet: left to startAt (${describeStartAt(config.startAt)}), the first start of ${f.input.name} is not complete`
        : "no checkpoint entry yet: read from 0 when the daemon finds it (new since it last ran)",
    });
  }
  const order = new Map(config.inputs.map((input, i) => [input.name, i]));
  // By input in config order, then by file name: PowerMTA's names sort by day and sequence.
  files.sort(
    (a, b) =>
      (order.get(a.input) ?? order.size) - (order.get(b.input) ?? order.size) ||
      basename(a.currentPath ?? a.path).localeCompare(basename(b.currentPath ?? b.path)),
  );
  return {
    config: config.source,
    stateDir: config.stateDir,
    checkpoint: {
      path: store.path,
      source: loaded.source,
      generation: loaded.snapshot.generation,
      writtenAt: loaded.snapshot.writtenAt === "" ? null : loaded.snapshot.writtenAt,
      damage,
      notes,
    },
    files,
    totals: totalsOf(files, config),
    directories: inventory.problems,
    startAt: describeStartAt(config.startAt),
    startAtInputs: [...firstStart],
  };
}

async function describeEntry(
  entry: FileCheckpoint,
  inventory: Inventory,
  config: RunConfig,
): Promise<StatusFile> {
  const base = {
    input: entry.input,
    path: entry.path,
    dev: entry.dev,
    ino: entry.ino,
    offset: entry.offset,
    finished: entry.finished,
    updatedAt: new Date(entry.updatedAt).toISOString(),
  };
  const where = await locate(entry, inventory, config);
  if (where === undefined) {
    return {
      ...base,
      state: "gone",
      currentPath: null,
      found: "not-found",
      size: null,
      unreadBytes: null,
      detail: entry.finished
        ? "read to the end, then removed; the entry is kept until checkpointRetention"
        : `not on disk (neither at its path nor by dev:ino in the input's directories); ${entry.offset} bytes had been delivered`,
    };
  }
  const found = where.path === entry.path ? "at-recorded-path" : "moved";
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(where.path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return {
      ...base,
      state: "unreadable",
      currentPath: where.path,
      found,
      size: where.size,
      unreadBytes: null,
      detail: `cannot open it (${code}); the daemon cannot read it either: fix its permissions`,
    };
  }
  try {
    const st = await handle.stat();
    if (st.dev !== entry.dev || st.ino !== entry.ino) {
      // Renamed between the listing and the open: report what was listed, the next run sees it right.
      return {
        ...base,
        state: where.live ? "live" : "archived",
        currentPath: where.path,
        found,
        size: where.size,
        unreadBytes: Math.max(0, where.size - entry.offset),
        detail: "the file was being renamed while status ran; run it again",
      };
    }
    const verdict = await verifyMarks(handle, st.size, entry.offset, entry);
    if (verdict !== "same") {
      return {
        ...base,
        state: "identity-mismatch",
        currentPath: where.path,
        found,
        size: st.size,
        unreadBytes: st.size,
        detail: `content check failed (${verdict}): the inode now holds another file or the file was truncated/rewritten; the daemon reads it again from 0`,
      };
    }
    return {
      ...base,
      state: where.live ? "live" : "archived",
      currentPath: where.path,
      found,
      size: st.size,
      unreadBytes: Math.max(0, st.size - entry.offset),
    };
  } finally {
    await handle.close();
  }
}

/** The file an entry names: by (dev, ino) among the inputs' files, else at its recorded path if the inode matches. */
async function locate(
  entry: FileCheckpoint,
  inventory: Inventory,
  config: RunConfig,
): Promise<{ path: string; live: boolean; size: number } | undefined> {
  const listed: InputFile | undefined = inventory.byKey.get(identityKey(entry.dev, entry.ino));
  if (listed !== undefined) return { path: listed.path, live: listed.live, size: listed.size };
  // Not listed (input renamed or pattern changed since): the recorded path may still be the file.
  const st = await stat(entry.path).catch(() => undefined);
  if (st === undefined || !st.isFile() || st.dev !== entry.dev || st.ino !== entry.ino) return undefined;
  const input = config.inputs.find((i) => i.name === entry.input);
  return { path: entry.path, live: input !== undefined && dirname(entry.path) === input.dir, size: st.size };
}

function totalsOf(files: readonly StatusFile[], config: RunConfig): InputTotals[] {
  const names = [...new Set([...config.inputs.map((i) => i.name), ...files.map((f) => f.input)])];
  return names.map((input) => {
    const mine = files.filter((f) => f.input === input);
    return {
      input,
      files: mine.length,
      tracked: mine.filter((f) => f.state !== "untracked").length,
      untracked: mine.filter((f) => f.state === "untracked").length,
      gone: mine.filter((f) => f.state === "gone").length,
      identityMismatch: mine.filter((f) => f.state === "identity-mismatch").length,
      unreadBytes: mine.reduce((sum, f) => sum + (f.unreadBytes ?? 0), 0),
    };
  });
}

function ago(iso: string, now: number): string {
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 0) return "in the future: clock stepped back?";
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/** The human table. */
export function renderStatus(r: StatusReport, now: number): string {
  const lines: string[] = [];
  const c = r.checkpoint;
  if (c.source === "none" && c.damage.length === 0) {
    lines.push(
      `checkpoint: none yet in ${r.stateDir} — pmta-ingest has not saved progress here; at its first start it reads the files below per startAt (${r.startAt}).`,
    );
  } else if (c.source === "none") {
    lines.push(`checkpoint: DAMAGED, no valid generation in ${r.stateDir}`);
  } else {
    const written = c.writtenAt === null ? "" : `, written ${c.writtenAt} (${ago(c.writtenAt, now)})`;
    const file = c.source === "current" ? c.path : `${c.path}.${c.source === "temp" ? "tmp" : "prev"}`;
    const from =
      c.source === "previous"
        ? " — the previous generation, kept because the current file is not valid"
        : c.source === "temp"
          ? " — left by an interrupted save; the daemon moves it into place at its next checkpoint"
          : "";
    lines.push(`checkpoint: ${file} generation ${c.generation}${written}${from}`);
    if (r.startAtInputs.length > 0) {
      lines.push(
        `  startAt (${r.startAt}) still applies to files with no entry in: ${r.startAtInputs.join(", ")} (first start not complete)`,
      );
    }
  }
  for (const d of c.damage) lines.push(`  DAMAGED ${d}`);
  for (const n of c.notes) lines.push(`  note: ${n}`);
  lines.push("");
  const rows: string[][] = [["INPUT", "STATE", "DEV:INO", "SIZE", "OFFSET", "UNREAD", "UPDATED", "FILE"]];
  for (const f of r.files) {
    let file = f.currentPath ?? f.path;
    if (f.found === "moved") file += ` (moved from ${f.path})`;
    if (f.state === "gone") file += " (not found)";
    rows.push([
      f.input,
      f.finished && f.state !== "gone" && f.unreadBytes === 0 ? `${f.state}, done` : f.state,
      `${f.dev}:${f.ino}`,
      f.size === null ? "-" : String(f.size),
      f.offset === null ? "-" : String(f.offset),
      f.unreadBytes === null ? "-" : String(f.unreadBytes),
      f.updatedAt ?? "-",
      file,
    ]);
  }
  if (r.files.length === 0) lines.push("no files tracked or found for the configured inputs");
  else lines.push(...formatTable(rows));
  const details = r.files.filter((f) => f.detail !== undefined && f.state !== "untracked");
  if (details.length > 0) {
    lines.push("");
    for (const f of details) lines.push(`${f.state} ${f.currentPath ?? f.path}: ${f.detail}`);
  }
  if (r.files.some((f) => f.state === "untracked")) {
    lines.push("");
    lines.push(
      "untracked: no checkpoint entry yet; read from 0 when the daemon finds it (startAt applies only at an input's first start)",
    );
  }
  lines.push("");
  lines.push("totals:");
  for (const t of r.totals) {
    lines.push(
      `  ${t.input}: ${t.files} files (${t.tracked} tracked, ${t.untracked} untracked, ${t.gone} gone, ${t.identityMismatch} identity mismatch), ${t.unreadBytes} bytes unread (${formatBytes(t.unreadBytes)})`,
    );
  }
  for (const d of r.directories) {
    const what = d.code === "missing" ? "does not exist (yet)" : `cannot be listed (${d.code})`;
    lines.push(`warning: input ${d.input}: ${d.dir} ${what}`);
  }
  return `${lines.join("\n")}\n`;
}
