import { join } from "node:path";
import type { StartAt } from "../config/run-config.js";
import { formatDuration } from "../config/units.js";
import { nodeStoreFs, type StoreFs } from "./store-fs.js";

/**
 * Which inputs `startAt` still applies to. It is meant for an input's first start: files with no
 * checkpoint entry then hold what was written before pmta-ingest read that input, which `startAt`
 * may skip. At any later start such files are new since the daemon stopped (rotated into the archive
 * during an outage) and must be read whole: skipping them by `startAt: 24h` after a two-day outage
 * lost every bounce of the first day.
 *
 * The inputs whose first start is complete are kept in `<stateDir>/inputs-started`, written (atomic,
 * fsynced) by the first save that covers every file present at a start. Until then, and for an input
 * added to the configuration later, startAt applies; also to every input when no usable checkpoint
 * is left, and after `import-sincedb`, which forgets the list: files its sincedb does not cover are
 * left to startAt. A first start killed while it still adopts a large archive (2,000 files a listing)
 * therefore keeps the policy for the files it had not reached.
 */
export const INPUTS_STARTED = "inputs-started";

interface StartedDocument {
  readonly version: 1;
  readonly inputs: readonly string[];
}

/**
 * The inputs whose first start is complete. Missing file: none. A file that cannot be parsed counts
 * as none too (startAt then applies, as before this list existed), and `problem` says so.
 */
export async function readStartedInputs(
  stateDir: string,
  fs: StoreFs = nodeStoreFs,
): Promise<{ readonly inputs: ReadonlySet<string>; readonly problem?: string }> {
  const path = join(stateDir, INPUTS_STARTED);
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { inputs: new Set() };
    throw err;
  }
  try {
    const doc = JSON.parse(Buffer.from(bytes).toString("utf8")) as Partial<StartedDocument>;
    if (doc.version === 1 && Array.isArray(doc.inputs) && doc.inputs.every((i) => typeof i === "string")) {
      return { inputs: new Set(doc.inputs) };
    }
  } catch {
    // Reported below like any other unreadable content.
  }
  return {
    inputs: new Set(),
    problem: `${path}: not a list of started inputs; startAt applies to files with no checkpoint entry at this start`,
  };
}

/**
 * readStartedInputs for the reports (status, doctor): a file that cannot be read (EACCES, EIO) is a
 * `problem` like one that cannot be parsed, not an error that ends the report.
 */
export async function readStartedInputsForReport(
  stateDir: string,
): Promise<{ readonly inputs: ReadonlySet<string>; readonly problem?: string }> {
  try {
    return await readStartedInputs(stateDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return {
      inputs: new Set(),
      problem: `${join(stateDir, INPUTS_STARTED)}: cannot be read (${code}); startAt applies to files with no checkpoint entry at this start`,
    };
  }
}

/**
 * The inputs startAt applies to at a start: every input when no usable checkpoint is left (none, or a
 * generation without its finished-files set), else those whose first start is not complete.
 */
export function inputsAtFirstStart(
  inputs: readonly string[],
  loaded: LoadedState,
  started: ReadonlySet<string>,
): Set<string> {
  const usable = hasUsableState(loaded);
  return new Set(inputs.filter((name) => !usable || !started.has(name)));
}

/** What a checkpoint load tells about the state (LoadResult). */
interface LoadedState {
  readonly source: string;
  readonly withoutSet?: boolean;
}

/** False when no usable checkpoint is left: none, or a generation without its finished-files set. */
export function hasUsableState(loaded: LoadedState): boolean {
  return loaded.source !== "none" && loaded.withoutSet !== true;
}

/** Replaces the list atomically: temp file fsynced, renamed, directory fsynced. */
export async function writeStartedInputs(
  stateDir: string,
  inputs: Iterable<string>,
  fs: StoreFs = nodeStoreFs,
): Promise<void> {
  const path = join(stateDir, INPUTS_STARTED);
  const doc: StartedDocument = { version: 1, inputs: [...new Set(inputs)].sort() };
  const handle = await fs.openForWrite(`${path}.tmp`);
  try {
    await handle.write(Buffer.from(`${JSON.stringify(doc)}\n`));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(`${path}.tmp`, path);
  await fs.fsyncDir(stateDir);
}

/** Forgets the list (import-sincedb), durably: startAt applies again to every input. */
export async function forgetStartedInputs(stateDir: string, fs: StoreFs = nodeStoreFs): Promise<void> {
  await fs.remove(join(stateDir, INPUTS_STARTED));
  await fs.fsyncDir(stateDir);
}

/** The policy in words, for status and doctor: "beginning", "end", "files modified within 24h". */
export function describeStartAt(s: StartAt): string {
  return s.kind === "max-age" ? `files modified within ${formatDuration(s.ms)}` : s.kind;
}
