import { constants } from "node:fs";
import { access, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname as osHostname } from "node:os";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import type { FieldsMode } from "../event/build-event.js";
import { parseDuration, parseSize } from "./units.js";

/**
 * `pmta-ingest run` configuration: a YAML file, every key also settable as a flag (`--stateDir`,
 * `--batch.maxEvents`), `${VAR}` / `${VAR:-default}` expanded from the environment. A mistake stops
 * start-up with one message naming the key, what is wrong and what to do; unknown keys are errors.
 */
export interface InputConfig {
  readonly name: string;
  readonly path: string;
  readonly dir: string;
  readonly pattern: RegExp;
  readonly archive?: string;
  readonly types?: readonly string[];
  readonly fallbackColumns?: readonly string[];
}
export type StartAt =
  | { readonly kind: "beginning" }
  | { readonly kind: "end" }
  | { readonly kind: "max-age"; readonly ms: number };
export type OutputConfig =
  | { readonly kind: "file"; readonly path: string; readonly maxBytes: number; readonly keep: number }
  | { readonly kind: "stdout" }
  | { readonly kind: "http"; readonly settings: Readonly<Record<string, unknown>> };
export interface RunConfig {
  readonly source: string;
  /** Things worth a log line at start (e.g. pmtaConfig warnings); not errors. */
  readonly warnings: readonly string[];
  readonly inputs: readonly InputConfig[];
  readonly stateDir: string;
  readonly startAt: StartAt;
  readonly output: OutputConfig;
  readonly host: string;
  /** What events' `fields` member holds (see FieldsMode). */
  readonly eventFields: FieldsMode;
  readonly rules?: string;
  readonly maxRecordBytes: number;
  readonly batch: { readonly maxEvents: number; readonly maxBytes: number; readonly maxWaitMs: number };
  readonly inFlight: { readonly maxEvents: number; readonly maxBytes: number };
  readonly rescanIntervalMs: number;
  readonly sealAfterMs: number;
  /** How often finished archived files are stat'ed again (other listings only read the directory). */
  readonly archiveRecheckMs: number;
  readonly checkpointIntervalMs: number;
  readonly checkpointRetentionMs: number;
  /** 2 (default): finished files' entries in a set of their own from 1,000 on; 1: every generation whole. */
  readonly checkpointFormat: 1 | 2;
  readonly drainTimeoutMs: number;
  readonly maxOpenFiles: number;
  readonly deadLetterPath: string;
  readonly metrics: {
    /** `host:port`, or "off". */
    readonly listen: string;
    readonly maxVmtaLabels: number;
    readonly maxJobLabels: number;
  };
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface LoadOptions {
  readonly file?: string;
  readonly flags?: Readonly<Record<string, unknown>>;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly hostname?: string;
  /**
   * Create stateDir and prove it writable (default true). Off for the read-only commands (`status`):
   * they must work, and write nothing, on a state directory the operator can only read.
   */
  readonly probeStateDir?: boolean;
}

export const RUN_CONFIG_KEYS: readonly { key: string; type: string; default: string; description: string }[] =
  [
    {
      key: "pmtaConfig",
      type: "path",
      default: "none",
      description:
        "take inputs from PowerMTA's <acct-file> blocks (b, rb, f records) instead of listing them",
    },
    {
      key: "inputs[].name",
      type: "string",
      default: "stem of path",
      description: "input name (logs, checkpoints)",
    },
    {
      key: "inputs[].path",
      type: "path glob",
      default: "—",
      description: "live files, wildcards in the file name only",
    },
    { key: "inputs[].archive", type: "path", default: "none", description: "the move-to directory" },
    {
      key: "inputs[].types",
      type: "list",
      default: "all",
      description: "record types to deliver, e.g. [b, rb]",
    },
    {
      key: "inputs[].fallbackColumns",
      type: "list",
      default: "PowerMTA defaults",
      description: "columns for rows before any header",
    },
    {
      key: "stateDir",
      type: "path",
      default: "/var/lib/pmta-ingest",
      description: "checkpoints, dead letters",
    },
    {
      key: "startAt",
      type: "beginning | end | duration",
      default: "beginning",
      description: "files with no checkpoint at first start",
    },
    {
      key: "output",
      type: "file | stdout",
      default: "file: <stateDir>/events.ndjson",
      description: "where events go",
    },
    { key: "host", type: "string", default: "hostname", description: "source.host in events" },
    {
      key: "eventFields",
      type: "all | unmapped",
      default: "all",
      description:
        "event `fields`: every column, or only those no other member carries (smaller events; not with format octeth)",
    },
    { key: "rules", type: "path", default: "none", description: "operator classification rules" },
    { key: "maxRecordBytes", type: "size", default: "1MiB", description: "longer records are dead-lettered" },
    {
      key: "batch.maxEvents / maxBytes / maxWait",
      type: "int / size / duration",
      default: "500 / 1MiB / 1s",
      description: "batch limits",
    },
    {
      key: "inFlight.maxEvents / maxBytes",
      type: "int / size",
      default: "20000 / 16MiB",
      description: "reading pauses above this",
    },
    { key: "rescanInterval", type: "duration", default: "1s", description: "directory listing period" },
    {
      key: "sealAfter",
      type: "duration",
      default: "60s",
      description: "quiet time before a retired file is finished",
    },
    {
      key: "archiveRecheck",
      type: "duration",
      default: "10m",
      description:
        "how often finished archived files are stat'ed again (a file replaced under its name is noticed then)",
    },
    {
      key: "checkpointInterval",
      type: "duration",
      default: "1s",
      description: "minimum time between checkpoint writes",
    },
    {
      key: "checkpointRetention",
      type: "duration",
      default: "7d",
      description: "forget files gone this long",
    },
    {
      key: "checkpointFormat",
      type: "1 | 2",
      default: "2",
      description:
        "2: from 1,000 finished files on, their entries go into a set written once; 1: every checkpoint whole, the format releases without that set read (set 1 before going back to one)",
    },
    {
      key: "drainTimeout",
      type: "duration",
      default: "10s",
      description: "delivery time allowed at shutdown",
    },
    { key: "maxOpenFiles", type: "int", default: "64", description: "descriptors held at most" },
    {
      key: "deadLetter.path",
      type: "path",
      default: "<stateDir>/dead-letter.ndjson",
      description: "dead-letter file",
    },
    {
      key: "metrics.listen",
      type: "host:port | off",
      default: "127.0.0.1:9464",
      description: "serves /metrics, /healthz, /readyz; keep it on loopback or firewall it",
    },
    {
      key: "metrics.maxVmtaLabels",
      type: "int",
      default: "50",
      description: "distinct vmta label values before the rest count as `other`",
    },
    {
      key: "metrics.maxJobLabels",
      type: "int",
      default: "50",
      description: "distinct job label values before the rest count as `other`",
    },
  ];

type Obj = Record<string, unknown>;

const TOP_KEYS = [
  "inputs",
  "pmtaConfig",
  "stateDir",
  "startAt",
  "output",
  "host",
  "eventFields",
  "rules",
  "maxRecordBytes",
  "batch",
  "inFlight",
  "rescanInterval",
  "sealAfter",
  "archiveRecheck",
  "checkpointInterval",
  "checkpointRetention",
  "checkpointFormat",
  "drainTimeout",
  "maxOpenFiles",
  "deadLetter",
  "metrics",
];
const INPUT_KEYS = ["name", "path", "archive", "types", "fallbackColumns"];
const RECORD_TYPES = ["d", "b", "t", "tq", "r", "rb", "rs", "f"];

export async function loadRunConfig(options: LoadOptions): Promise<RunConfig> {
  const source = options.file ?? "(flags)";
  const fail = (key: string, problem: string): never => {
    throw new ConfigError(`${source}: ${key}: ${problem}`);
  };
  let fileDoc: Obj = {};
  let base = process.cwd();
  if (options.file !== undefined) {
    base = dirname(resolve(options.file));
    let text: string;
    try {
      text = await readFile(options.file, "utf8");
    } catch (err) {
      throw new ConfigError(
        `${source}: cannot read the config file (${(err as NodeJS.ErrnoException).code}); check the path`,
      );
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      const e = err as { linePos?: Array<{ line: number; col: number }>; message: string };
      const at = e.linePos?.[0];
      throw new ConfigError(
        `${source}${at ? `:${at.line}:${at.col}` : ""}: not valid YAML: ${e.message.split("\n")[0]}`,
      );
    }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== "object" || Array.isArray(doc))
        fail("(top)", "expected a mapping of keys (inputs, stateDir, ...)");
      fileDoc = doc as Obj;
    }
  }
  const merged = deepMerge(fileDoc, arrayify(options.flags ?? {}) as Obj);
  const env = options.env ?? process.env;
  const doc = expand(merged, "", env, fail) as Obj;

  checkKeys(doc, TOP_KEYS, "", fail);
  const abs = (key: string, v: unknown): string => {
    if (typeof v !== "string" || v === "") return fail(key, "expected a path");
    return isAbsolute(v) ? v : resolve(base, v);
  };
  const num = (key: string, v: unknown, dflt: number): number => {
    if (v === undefined) return dflt;
    const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n <= 0)
      return fail(key, `expected a positive whole number (got ${JSON.stringify(v)})`);
    return n;
  };
  const dur = (key: string, v: unknown, dflt: number): number => {
    if (v === undefined) return dflt;
    try {
      return parseDuration(v);
    } catch (err) {
      return fail(key, `${(err as Error).message}; write e.g. 500ms, 10s, 5m, 24h, 7d`);
    }
  };
  const positiveDur = (key: string, ms: number): number =>
    ms > 0 ? ms : fail(key, "must be longer than 0, e.g. 500ms");
  const size = (key: string, v: unknown, dflt: number): number => {
    if (v === undefined) return dflt;
    try {
      return parseSize(v);
    } catch (err) {
      return fail(key, `${(err as Error).message}; write e.g. 64KiB, 1MiB`);
    }
  };
  const obj = (key: string, v: unknown, keys: string[]): Obj => {
    if (v === undefined) return {};
    if (v === null || typeof v !== "object" || Array.isArray(v)) return fail(key, "expected a mapping");
    checkKeys(v as Obj, keys, `${key}.`, fail);
    return v as Obj;
  };

  // inputs, listed or taken from the PowerMTA config's <acct-file> blocks
  const warnings: string[] = [];
  if (doc.pmtaConfig !== undefined) {
    if (doc.inputs !== undefined)
      fail(
        "pmtaConfig",
        "give either pmtaConfig or inputs, not both (inputs would override what PowerMTA writes)",
      );
    const pmtaPath = abs("pmtaConfig", doc.pmtaConfig);
    const { inputsFromPmtaConfig } = await import("../pmta/check-pmta.js");
    const found = await inputsFromPmtaConfig(pmtaPath);
    const where = (p: { file?: string; line?: number }): string =>
      p.file === undefined ? pmtaPath : `${p.file}${p.line === undefined ? "" : `:${p.line}`}`;
    const errors = found.problems.filter((p) => p.severity === "error");
    if (errors.length > 0) {
      fail(
        "pmtaConfig",
        errors.map((p) => `${where(p)}: ${p.message} (${p.fix})`).join("; ") +
          "; run `pmta-ingest check-pmta` for the full report",
      );
    }
    for (const p of found.problems)
      if (p.severity === "warn") warnings.push(`${where(p)}: ${p.message} (${p.fix})`);
    if (found.inputs.length === 0) {
      fail(
        "pmtaConfig",
        `${pmtaPath} has no <acct-file> with records b, rb or f; add one (see pmta/acct-bounces.conf) or list inputs`,
      );
    }
    doc.inputs = found.inputs.map((i) => ({ ...i }));
  }
  if (!Array.isArray(doc.inputs) || doc.inputs.length === 0) {
    fail(
      "inputs",
      "at least one input is needed, e.g. inputs: [{ path: /var/log/pmta/bounces-*.csv, archive: /var/log/pmta/accounting/bounces }]",
    );
  }
  const inputs: InputConfig[] = [];
  const names = new Set<string>();
  (doc.inputs as unknown[]).forEach((raw, i) => {
    const key = `inputs[${i}]`;
    const o = obj(key, raw, INPUT_KEYS);
    const path = abs(`${key}.path`, o.path);
    const dir = dirname(path);
    const file = basename(path);
    if (/[*?[]/.test(dir))
      fail(`${key}.path`, "wildcards are allowed in the file name only, not in the directory");
    const pattern = new RegExp(
      `^${file
        .replace(/[.+^${}()|\\]/g, "\\$&")
        .replace(/\*/g, ".*")
        .replace(/\?/g, ".")}$`,
    );
    const name = o.name === undefined ? (file.split(/[-*?.]/)[0] ?? file) : String(o.name);
    if (names.has(name)) fail(`${key}.name`, `"${name}" is used by another input; names must be unique`);
    names.add(name);
    const types = o.types === undefined ? undefined : list(`${key}.types`, o.types, fail);
    for (const t of types ?? [])
      if (!RECORD_TYPES.includes(t))
        fail(`${key}.types`, `"${t}" is not a record type (${RECORD_TYPES.join(", ")})`);
    const fallbackColumns =
      o.fallbackColumns === undefined ? undefined : list(`${key}.fallbackColumns`, o.fallbackColumns, fail);
    if (fallbackColumns !== undefined && fallbackColumns[0] !== "type")
      fail(`${key}.fallbackColumns`, 'must start with "type"');
    inputs.push({
      name,
      path,
      dir,
      pattern,
      ...(o.archive === undefined ? {} : { archive: abs(`${key}.archive`, o.archive) }),
      ...(types === undefined ? {} : { types }),
      ...(fallbackColumns === undefined ? {} : { fallbackColumns }),
    });
  });

  const stateDir = doc.stateDir === undefined ? "/var/lib/pmta-ingest" : abs("stateDir", doc.stateDir);
  try {
    if (options.probeStateDir ?? true) {
      await mkdir(stateDir, { recursive: true });
      const probe = join(stateDir, `.write-test-${process.pid}`);
      await writeFile(probe, "");
      await rm(probe);
    }
  } catch (err) {
    fail(
      "stateDir",
      `${stateDir} is not a writable directory (${(err as NodeJS.ErrnoException).code}); create it and give the service user write access, or use systemd StateDirectory=`,
    );
  }

  let startAt: StartAt = { kind: "beginning" };
  if (doc.startAt !== undefined) {
    if (doc.startAt === "beginning") startAt = { kind: "beginning" };
    else if (doc.startAt === "end") startAt = { kind: "end" };
    else startAt = { kind: "max-age", ms: dur("startAt", doc.startAt, 0) };
  }

  const out = obj("output", doc.output, ["file", "stdout", "http"]);
  const kinds = Object.keys(out);
  if (kinds.length > 1) fail("output", `give exactly one of file, stdout, http (got ${kinds.join(", ")})`);
  let output: OutputConfig;
  if (out.stdout !== undefined) output = { kind: "stdout" };
  else if (out.http !== undefined) output = { kind: "http", settings: out.http as Obj };
  else {
    const f = obj("output.file", out.file, ["path", "maxBytes", "keep"]);
    output = {
      kind: "file",
      path: f.path === undefined ? join(stateDir, "events.ndjson") : abs("output.file.path", f.path),
      maxBytes: size("output.file.maxBytes", f.maxBytes, 256 * 1024 * 1024),
      keep: num("output.file.keep", f.keep, 5),
    };
  }

  const checkpointFormat = doc.checkpointFormat === undefined ? 2 : doc.checkpointFormat;
  if (checkpointFormat !== 1 && checkpointFormat !== 2)
    fail("checkpointFormat", `expected 1 or 2, got ${JSON.stringify(checkpointFormat)}`);
  const eventFields = doc.eventFields === undefined ? "all" : doc.eventFields;
  if (eventFields !== "all" && eventFields !== "unmapped")
    fail("eventFields", `expected all or unmapped, got ${JSON.stringify(eventFields)}`);
  if (eventFields === "unmapped" && output.kind === "http" && output.settings.format === "octeth")
    fail(
      "eventFields",
      "format octeth posts every column of the record; remove eventFields (or set it to all) for this output",
    );

  let rules: string | undefined;
  if (doc.rules !== undefined) {
    rules = abs("rules", doc.rules);
    await access(rules, constants.R_OK).catch((err: NodeJS.ErrnoException) =>
      fail("rules", `cannot read ${rules} (${err.code}); fix the path or its permissions`),
    );
  }

  const batch = obj("batch", doc.batch, ["maxEvents", "maxBytes", "maxWait"]);
  const inFlight = obj("inFlight", doc.inFlight, ["maxEvents", "maxBytes"]);
  const deadLetter = obj("deadLetter", doc.deadLetter, ["path"]);
  const metrics = obj("metrics", doc.metrics, ["listen", "maxVmtaLabels", "maxJobLabels"]);
  const listen = metrics.listen === undefined ? "127.0.0.1:9464" : String(metrics.listen);
  if (listen !== "off" && parseListen(listen) === undefined)
    fail(
      "metrics.listen",
      `expected host:port (e.g. 127.0.0.1:9464 or [::1]:9464) or "off", got "${listen}"`,
    );

  return {
    source,
    warnings,
    inputs,
    stateDir,
    startAt,
    output,
    host: doc.host === undefined ? (options.hostname ?? osHostname()) : String(doc.host),
    eventFields: eventFields as FieldsMode,
    ...(rules === undefined ? {} : { rules }),
    maxRecordBytes: size("maxRecordBytes", doc.maxRecordBytes, 1024 * 1024),
    batch: {
      maxEvents: num("batch.maxEvents", batch.maxEvents, 500),
      maxBytes: size("batch.maxBytes", batch.maxBytes, 1024 * 1024),
      maxWaitMs: dur("batch.maxWait", batch.maxWait, 1000),
    },
    inFlight: {
      maxEvents: num("inFlight.maxEvents", inFlight.maxEvents, 20_000),
      maxBytes: size("inFlight.maxBytes", inFlight.maxBytes, 16 * 1024 * 1024),
    },
    // Zero would make the daemon loop spin (it waits min(rescanInterval, checkpointInterval)).
    rescanIntervalMs: positiveDur("rescanInterval", dur("rescanInterval", doc.rescanInterval, 1000)),
    sealAfterMs: dur("sealAfter", doc.sealAfter, 60_000),
    archiveRecheckMs: dur("archiveRecheck", doc.archiveRecheck, 600_000),
    checkpointIntervalMs: positiveDur(
      "checkpointInterval",
      dur("checkpointInterval", doc.checkpointInterval, 1000),
    ),
    checkpointRetentionMs: dur("checkpointRetention", doc.checkpointRetention, 7 * 24 * 3600 * 1000),
    checkpointFormat: checkpointFormat as 1 | 2,
    drainTimeoutMs: dur("drainTimeout", doc.drainTimeout, 10_000),
    maxOpenFiles: num("maxOpenFiles", doc.maxOpenFiles, 64),
    deadLetterPath:
      deadLetter.path === undefined
        ? join(stateDir, "dead-letter.ndjson")
        : abs("deadLetter.path", deadLetter.path),
    metrics: {
      listen,
      maxVmtaLabels: num("metrics.maxVmtaLabels", metrics.maxVmtaLabels, 50),
      maxJobLabels: num("metrics.maxJobLabels", metrics.maxJobLabels, 50),
    },
  };
}

/** `host:port` or `[v6]:port` → parts; undefined when malformed or the port is out of range. */
export function parseListen(listen: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(listen);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? "", port };
}

function list(key: string, v: unknown, fail: (k: string, p: string) => never): string[] {
  const arr = typeof v === "string" ? v.split(",").map((s) => s.trim()) : v;
  if (!Array.isArray(arr) || !arr.every((x) => typeof x === "string"))
    return fail(key, "expected a list of strings");
  return arr as string[];
}

function checkKeys(o: Obj, allowed: string[], prefix: string, fail: (k: string, p: string) => never): void {
  for (const k of Object.keys(o)) {
    if (allowed.includes(k)) continue;
    const near = allowed
      .map((a) => [a, distance(a.toLowerCase(), k.toLowerCase())] as const)
      .sort((a, b) => a[1] - b[1])[0];
    const hint = near !== undefined && near[1] <= 3 ? ` (did you mean "${prefix}${near[0]}"?)` : "";
    fail(`${prefix}${k}`, `unknown key${hint}; known keys: ${allowed.join(", ")}`);
  }
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) (d[0] as number[])[j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      row[j] = Math.min(
        (prev[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}

/** yargs turns `--inputs.0.path` into `{inputs: {"0": {...}}}`; make such objects arrays again. */
function arrayify(v: unknown): unknown {
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(arrayify);
  const o = v as Obj;
  const keys = Object.keys(o);
  if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) {
    const arr: unknown[] = [];
    for (const k of keys) arr[Number(k)] = arrayify(o[k]);
    return arr;
  }
  return Object.fromEntries(keys.map((k) => [k, arrayify(o[k])]));
}

function deepMerge(a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (Array.isArray(a) && Array.isArray(b)) {
    const out = [...a];
    b.forEach((v, i) => {
      if (v !== undefined) out[i] = deepMerge(a[i], v);
    });
    return out;
  }
  if (
    a !== null &&
    typeof a === "object" &&
    !Array.isArray(a) &&
    b !== null &&
    typeof b === "object" &&
    !Array.isArray(b)
  ) {
    const out: Obj = { ...(a as Obj) };
    for (const [k, v] of Object.entries(b as Obj)) out[k] = deepMerge((a as Obj)[k], v);
    return out;
  }
  return b;
}

function expand(
  v: unknown,
  key: string,
  env: Readonly<Record<string, string | undefined>>,
  fail: (k: string, p: string) => never,
): unknown {
  if (typeof v === "string") {
    return v.replace(
      /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
      (_m, name: string, dflt: string | undefined) => {
        const value = env[name];
        if (value !== undefined && value !== "") return value;
        if (dflt !== undefined) return dflt;
        return fail(
          key || "(top)",
          `environment variable ${name} is not set (write \${${name}:-default} for a default)`,
        );
      },
    );
  }
  if (Array.isArray(v)) return v.map((x, i) => expand(x, `${key}[${i}]`, env, fail));
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v as Obj).map(([k, x]) => [k, expand(x, key ? `${key}.${k}` : k, env, fail)]),
    );
  }
  return v;
}
