import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CheckpointStore } from "../../src/checkpoint/checkpoint-store.js";
import { Measured } from "./measured.js";

/**
 * The real daemon as the benchmark runs it: `node <flags> dist/src/cli/main.js run --config
 * <generated>` (or the script in PMTA_INGEST_BENCH_SCRIPT, e.g. the bundle), with the Node flags and
 * environment the shipped systemd unit gives it and default settings except
 * what a benchmark must pin (paths, the receiver's URL, host, and the metrics listener off so that
 * parallel runs never fight over its port).
 */
export const CLI =
  process.env.PMTA_INGEST_BENCH_SCRIPT || fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

const UNIT = fileURLToPath(new URL("../../../pmta/systemd/pmta-ingest.service", import.meta.url));

/** The Node flags of the unit's ExecStart (`/usr/bin/node <flags> <script> run ...`). */
export function unitNodeFlags(): string[] {
  const exec = /^ExecStart=\S+\/node((?: --\S+)*) /m.exec(readFileSync(UNIT, "utf8"));
  if (exec === null) throw new Error(`${UNIT}: no "ExecStart=/usr/bin/node ..." line`);
  return (exec[1] ?? "").split(" ").filter((f) => f !== "");
}

/**
 * The unit's `Environment=NAME=value` lines (one assignment a line, no quoting: the unit keeps them
 * that simple), so the benchmark's daemon runs with the allocator settings it ships with.
 */
export function unitEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of readFileSync(UNIT, "utf8").matchAll(/^Environment=([A-Za-z_][A-Za-z0-9_]*)=(\S*)$/gm))
    env[m[1] as string] = m[2] as string;
  return env;
}

export interface DaemonWorkspace {
  readonly dir: string;
  readonly liveDir: string;
  readonly archiveDir: string;
  readonly stateDir: string;
  readonly config: string;
}

/**
 * Settings merged into every generated daemon config, for A/B runs of one setting:
 * PMTA_INGEST_BENCH_CONFIG='{"batch":{"maxEvents":2000}}' npm run bench
 */
function benchOverrides(): Record<string, unknown> {
  const raw = process.env.PMTA_INGEST_BENCH_CONFIG;
  if (raw === undefined || raw === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new Error(
      `PMTA_INGEST_BENCH_CONFIG is not JSON (${(err as Error).message}); give an object such as '{"batch":{"maxEvents":2000}}'`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Error(`PMTA_INGEST_BENCH_CONFIG must be a JSON object of config keys, got ${raw}`);
  return parsed as Record<string, unknown>;
}

export function daemonWorkspace(
  dir: string,
  url: string,
  extra: Readonly<Record<string, unknown>> = {},
): DaemonWorkspace {
  const liveDir = join(dir, "live");
  const archiveDir = join(dir, "archive");
  const stateDir = join(dir, "state");
  for (const d of [liveDir, archiveDir, stateDir]) mkdirSync(d, { recursive: true });
  const config = join(dir, "pmta-ingest.yaml");
  const doc = {
    inputs: [{ name: "bounces", path: join(liveDir, "bounces-*.csv"), archive: archiveDir }],
    stateDir,
    startAt: "beginning",
    output: { http: { url, format: "events" } },
    host: "bench",
    metrics: { listen: "off" },
    ...extra,
    ...benchOverrides(),
  };
  writeFileSync(config, `${JSON.stringify(doc, null, 2)}\n`); // JSON is YAML
  return { dir, liveDir, archiveDir, stateDir, config };
}

export function startDaemon(
  ws: DaemonWorkspace,
  name = "daemon",
  nodeArgs: readonly string[] = [],
  useTime = true,
): Promise<Measured> {
  const args = [...unitNodeFlags(), ...nodeArgs, CLI, "run", "--config", ws.config];
  return Measured.start(name, process.execPath, args, ws.dir, {
    useTime,
    env: { ...process.env, ...unitEnvironment() },
  });
}

/** Checkpointed offset per file path (the newest generation on disk; read-only). */
export async function checkpointOffsets(stateDir: string): Promise<Map<string, number>> {
  const { snapshot } = await new CheckpointStore(stateDir).load();
  const out = new Map<string, number>();
  for (const f of snapshot.files) out.set(f.path, Math.max(out.get(f.path) ?? 0, f.offset));
  return out;
}

/** The counters of the daemon's "stopped" log line (JSON, on stderr or stdout), if it wrote one. */
export function stoppedCounters(logs: string): Record<string, number> | undefined {
  for (const line of logs.split("\n").reverse()) {
    if (!line.includes('"stopped"')) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      if (o.msg !== "stopped" && o.message !== "stopped") continue;
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(o))
        if (typeof v === "number" && k !== "level" && k !== "pid") out[k] = v;
      return out;
    } catch {
      // not JSON: skip
    }
  }
  return undefined;
}

/** Log lines at warn or above (pino levels 40+ or "warn"/"error") and lines that are not JSON. */
export function problems(logs: string, max = 5): string[] {
  const out: string[] = [];
  for (const line of logs.split("\n")) {
    if (line === "" || line.startsWith("[")) continue; // "[pid:0x…] … Scavenge …": --trace-gc output
    try {
      const o = JSON.parse(line) as { level?: unknown };
      const l = o.level;
      if (l === "warn" || l === "error" || l === "fatal" || (typeof l === "number" && l >= 40))
        out.push(line);
    } catch {
      out.push(line);
    }
    if (out.length >= max) break;
  }
  return out;
}
