import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { CheckpointStore } from "../../src/checkpoint/checkpoint-store.js";
import { seqOf } from "../../src/simulate/record-generator.js";
import { reapOnExit } from "./reap.js";

/**
 * Drives the real `pmta-ingest run` as a child process against files written by the simulator, and
 * reads back what it delivered — the shared harness of the tailer tests and `npm run chaos`.
 */
export const CLI = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export interface Workspace {
  readonly root: string;
  readonly liveDir: string;
  readonly stateDir: string;
  readonly output: string;
  readonly deadLetter: string;
  readonly config: string;
}

export function makeWorkspace(prefix: string, extra: Record<string, unknown> = {}): Workspace {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const liveDir = join(root, "pmta");
  const stateDir = join(root, "state");
  mkdirSync(liveDir, { recursive: true });
  const output = join(root, "events.ndjson");
  const deadLetter = join(stateDir, "dead-letter.ndjson");
  const config = join(root, "config.yaml");
  const doc = {
    inputs: [
      {
        name: "bounces",
        path: join(liveDir, "bounces-*.csv"),
        archive: join(liveDir, "accounting", "bounces"),
      },
      { name: "fbl", path: join(liveDir, "fbl-*.csv"), archive: join(liveDir, "accounting", "fbl") },
    ],
    stateDir,
    output: { file: { path: output } },
    rescanInterval: "200ms",
    sealAfter: "300ms",
    checkpointInterval: "100ms",
    drainTimeout: "5s",
    batch: { maxEvents: 200, maxWait: "50ms" },
    metrics: { listen: "off" },
    ...extra,
  };
  writeFileSync(config, JSON.stringify(doc, null, 2)); // JSON is YAML
  return { root, liveDir, stateDir, output, deadLetter, config };
}

export interface Running {
  readonly child: ChildProcess;
  /**
   * Everything the process printed: its stderr and its stdout, where `run` writes its log lines
   * when events go to a file or HTTP (the harness always uses a file output).
   */
  readonly stderr: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function startRun(ws: Workspace, env: Record<string, string> = {}, args: string[] = []): Running {
  const child = reapOnExit(
    spawn(process.execPath, [CLI, "run", "--config", ws.config, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    }),
  );
  let err = "";
  const collect = (d: string): void => {
    err += d;
  };
  child.stdout?.setEncoding("utf8").on("data", collect);
  child.stderr?.setEncoding("utf8").on("data", collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  return { child, stderr: () => err, exited };
}

export interface Delivered {
  readonly id: string;
  readonly seq: number;
  readonly stream: string;
  readonly file: string;
  readonly offset: number;
}

const SEQ_COLUMN = ["type", "header_X-FBLId"];

/** Every event in the output file (and its rotated siblings), with the simulator's sequence number. */
export function readDelivered(ws: Workspace): Delivered[] {
  const out: Delivered[] = [];
  const files = existsSync(ws.output) ? [ws.output] : [];
  const dir = join(ws.root);
  for (const name of readdirSync(dir)) if (name.startsWith("events.ndjson.")) files.push(join(dir, name));
  for (const f of files) {
    const lines = readFileSync(f, "utf8").split("\n");
    // The daemon may be mid-write: the last segment is complete only when the file ends in "\n".
    lines.pop();
    for (const line of lines) {
      if (line === "") continue;
      const e = JSON.parse(line) as {
        id: string;
        headers?: Record<string, string>;
        source: { file: string; offset: number };
        recordType: string;
      };
      const seq = seqOf(["", e.headers?.["X-FBLId"] ?? ""], SEQ_COLUMN);
      out.push({
        id: e.id,
        seq: seq ?? -1,
        stream: e.recordType === "f" ? "fbl" : "bounces",
        file: e.source.file,
        offset: e.source.offset,
      });
    }
  }
  return out;
}

/** Polls `check` (cheap, file-based) until it holds; throws with `describe()` after the deadline. */
export async function waitUntil(
  check: () => boolean,
  timeoutMs: number,
  describe: () => string,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await sleep(25);
  }
}

export interface Tally {
  readonly lost: Array<[string, number]>;
  readonly duplicates: number;
  readonly unexpected: number;
}

/** Compares delivered events with the simulator's ground truth (stream, seq) pairs. */
export function tally(
  expected: ReadonlyArray<{ stream: string; seq: number }>,
  delivered: readonly Delivered[],
): Tally {
  const want = new Set(expected.map((r) => `${r.stream}:${r.seq}`));
  const seen = new Map<string, number>();
  for (const d of delivered) {
    const k = `${d.stream}:${d.seq}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  const lost: Array<[string, number]> = [];
  for (const k of want) {
    if (!seen.has(k)) {
      const [stream, seq] = k.split(":") as [string, string];
      lost.push([stream, Number(seq)]);
    }
  }
  let duplicates = 0;
  let unexpected = 0;
  for (const [k, n] of seen) {
    if (n > 1) duplicates += n - 1;
    if (!want.has(k)) unexpected += n;
  }
  return { lost, duplicates, unexpected };
}

/** Checkpoint entries whose offset is not a record boundary (or 0) of the file they name. */
export async function offBoundaryCheckpoints(
  ws: Workspace,
  records: ReadonlyArray<{ ino: number; offset: number; length: number }>,
): Promise<{ checked: number; off: string[] }> {
  const boundaries = new Map<number, Set<number>>();
  for (const r of records) {
    const set = boundaries.get(r.ino) ?? new Set<number>([0]);
    set.add(r.offset);
    set.add(r.offset + r.length);
    boundaries.set(r.ino, set);
  }
  const { snapshot } = await new CheckpointStore(ws.stateDir).load();
  const off: string[] = [];
  for (const cp of snapshot.files) {
    const set = boundaries.get(cp.ino);
    if (set !== undefined && !set.has(cp.offset)) off.push(`${cp.path}@${cp.offset}`);
  }
  return { checked: snapshot.files.length, off };
}
