/**
 * Configuration of `pmta-ingest run`: /etc/pmta-ingest/config.yaml, overridden by command-line flags.
 *
 * Every problem stops start-up with ONE {@link ConfigError} whose message reads
 * `<source>: <key>: <problem>; <what to do>`, where the source is the config file (with line:column
 * when the key is in it) or "(flags)". Nothing is ignored: an unknown key is an error with a
 * "did you mean" suggestion, because a misspelt key silently falling back to its default is the
 * kind of mistake a postmaster only notices weeks later.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, unlink } from "node:fs/promises";
import { isIPv4, isIPv6 } from "node:net";
import { hostname as osHostname } from "node:os";
import { basename, dirname, extname, join, resolve } from "node:path";
import { type Document, isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import { formatDuration, formatSize, parseDuration, parseSize, UnitError } from "./units.js";

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
  readonly inputs: readonly InputConfig[];
  readonly stateDir: string;
  readonly startAt: StartAt;
  readonly output: OutputConfig;
  readonly host: string;
  readonly rules?: string;
  readonly maxRecordBytes: number;
  readonly batch: { readonly maxEvents: number; readonly maxBytes: number; readonly maxWaitMs: number };
  readonly inFlight: { readonly maxEvents: number; readonly maxBytes: number };
  readonly rescanIntervalMs: number;
  readonly sealAfterMs: number;
  readonly checkpointIntervalMs: number;
  readonly checkpointRetentionMs: number;
  readonly drainTimeoutMs: number;
  readonly maxOpenFiles: number;
  readonly deadLetterPath: string;
  readonly metrics: { readonly listen: string | "off" };
}

/**
 * A configuration the daemon must not start with. `key` is the full key path (`inputs[1].archive`),
 * empty when the file as a whole is the problem (unreadable, not YAML).
 */
export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(
    readonly source: string,
    readonly key: string,
    readonly problem: string,
    readonly hint: string,
  ) {
    super(`${source}: ${key === "" ? "" : `${key}: `}${problem}; ${hint}`);
  }
}

export interface LoadOptions {
  /** The YAML file; relative to the working directory. Absent: flags only. */
  readonly file?: string;
  /**
   * Config keys given as flags, nested the way yargs' dot notation nests them. yargs' own `_` and `$0`
   * and the kebab-case twins its camel-case expansion adds are dropped; the daemon's other options
   * (such as the one naming the config file) must not be passed here.
   */
  readonly flags?: Readonly<Record<string, unknown>>;
  /** For `${VAR}` expansion; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Default of `host`; default os.hostname(). */
  readonly hostname?: string;
}

/** Where the daemon looks when no file is named (not applied by the loader itself). */
export const DEFAULT_CONFIG_FILE = "/etc/pmta-ingest/config.yaml";

const MiB = 1024 * 1024;
const DEFAULTS = {
  stateDir: "/var/lib/pmta-ingest",
  outputFileName: "events.ndjson",
  outputMaxBytes: 256 * MiB,
  outputKeep: 5,
  maxRecordBytes: MiB,
  batchMaxEvents: 500,
  batchMaxBytes: MiB,
  batchMaxWaitMs: 1000,
  inFlightMaxEvents: 10_000,
  inFlightMaxBytes: 16 * MiB,
  // 500ms, not 1s: a new file is read within a second even when no watcher event arrives.
  rescanIntervalMs: 500,
  sealAfterMs: 60_000,
  checkpointIntervalMs: 1000,
  checkpointRetentionMs: 7 * 86_400_000,
  drainTimeoutMs: 10_000,
  maxOpenFiles: 64,
  deadLetterFileName: "dead-letter.ndjson",
  metricsListen: "127.0.0.1:9464",
} as const;

/** Node's timers fire at once for delays above 2^31-1 ms (~24.8 days), so values used as timer delays are capped. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const RECORD_TYPES = ["d", "b", "t", "tq", "r", "rb", "rs", "f"] as const;
const OUTPUT_KINDS = ["file", "stdout", "http"] as const;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const RELATIVE = "Relative: to the config file's directory (as a flag: to the working directory).";

/**
 * Every key the loader accepts, in the order the README lists them. The unknown-key check and the
 * "did you mean" suggestions are built from this table, so it cannot drift from what is accepted.
 * `type` starting with "list" marks list-valued keys (flags' numeric keys become list indices there).
 */
export const RUN_CONFIG_KEYS: readonly { key: string; type: string; default: string; description: string }[] = [
  {
    key: "inputs",
    type: "list of mappings",
    default: "required",
    description: "The accounting files to follow: at least one input.",
  },
  {
    key: "inputs[].name",
    type: "string",
    default: "stem of the file name (`bounces` for `bounces-*.csv`)",
    description: "Unique input name (letters, digits, `.`, `_`, `-`), used in logs and checkpoints.",
  },
  {
    key: "inputs[].path",
    type: "path glob",
    default: "required",
    description: `Live files, e.g. \`/var/log/pmta/bounces-*.csv\`; \`*\` and \`?\` in the file name only. A directory that does not exist yet is waited for and reported once. ${RELATIVE}`,
  },
  {
    key: "inputs[].archive",
    type: "path",
    default: "none",
    description: `The \`<acct-file>\` \`move-to\` directory (same file-name pattern): files moved there are read to their end. May not exist yet. ${RELATIVE}`,
  },
  {
    key: "inputs[].types",
    type: "list of record types",
    default: "all",
    description:
      "Record types to deliver, from `d`, `b`, `t`, `tq`, `r`, `rb`, `rs`, `f` (a list, or one string `b,rb`); others are skipped (and checkpointed).",
  },
  {
    key: "inputs[].fallbackColumns",
    type: "list of strings",
    default: "PowerMTA's default columns",
    description: "Columns for rows before any header line; must start with `type`.",
  },
  {
    key: "pmtaConfig",
    type: "path",
    default: "—",
    description: "Not supported yet in this version (rejected): list `inputs` instead.",
  },
  {
    key: "stateDir",
    type: "path",
    default: DEFAULTS.stateDir,
    description: `Checkpoints and dead letters; created if missing, must be writable by the service user. ${RELATIVE}`,
  },
  {
    key: "startAt",
    type: "`beginning`, `end` or duration",
    default: "beginning",
    description:
      "At the very first start, for files with no checkpoint: read them whole, skip what they hold, or skip files not modified within the duration (e.g. `24h`).",
  },
  {
    key: "output.file.path",
    type: "path",
    default: `<stateDir>/${DEFAULTS.outputFileName}`,
    description: `Output kind \`file\` (the default): events appended as NDJSON. \`output\` takes exactly one of \`file\`, \`stdout\`, \`http\`. ${RELATIVE}`,
  },
  {
    key: "output.file.maxBytes",
    type: "size",
    default: formatSize(DEFAULTS.outputMaxBytes),
    description: "Rotate the file at this size (`0`: never).",
  },
  {
    key: "output.file.keep",
    type: "count",
    default: String(DEFAULTS.outputKeep),
    description: "Rotated files kept (`events.ndjson.1`, …).",
  },
  {
    key: "output.stdout",
    type: "`{}`",
    default: "—",
    description: "Output kind `stdout`: events as NDJSON on standard output.",
  },
  {
    key: "output.http",
    type: "mapping",
    default: "—",
    description: 'Output kind `http`: delivery to your backend; its keys are checked at start-up too (see "Delivery to your backend").',
  },
  {
    key: "host",
    type: "string",
    default: "the host name",
    description: "`source.host` in events.",
  },
  {
    key: "rules",
    type: "path",
    default: "none",
    description: `Operator classification rules; must be readable at start-up. ${RELATIVE}`,
  },
  {
    key: "maxRecordBytes",
    type: "size",
    default: formatSize(DEFAULTS.maxRecordBytes),
    description: "Longer records are dead-lettered.",
  },
  {
    key: "batch.maxEvents",
    type: "count",
    default: String(DEFAULTS.batchMaxEvents),
    description: "A batch is sent when it holds this many events,",
  },
  {
    key: "batch.maxBytes",
    type: "size",
    default: formatSize(DEFAULTS.batchMaxBytes),
    description: "… this many bytes of events,",
  },
  {
    key: "batch.maxWait",
    type: "duration",
    default: formatDuration(DEFAULTS.batchMaxWaitMs),
    description: "… or when it has waited this long to fill (`0`: at once).",
  },
  {
    key: "inFlight.maxEvents",
    type: "count",
    default: String(DEFAULTS.inFlightMaxEvents),
    description:
      "Reading pauses while this many events are unacknowledged (at least `batch.maxEvents`); also the most records a crash can make us send again.",
  },
  {
    key: "inFlight.maxBytes",
    type: "size",
    default: formatSize(DEFAULTS.inFlightMaxBytes),
    description: "The same limit in bytes (at least `batch.maxBytes`).",
  },
  {
    key: "rescanInterval",
    type: "duration",
    default: formatDuration(DEFAULTS.rescanIntervalMs),
    description: "Directory listing period (new files are read within it even when no watcher event arrives).",
  },
  {
    key: "sealAfter",
    type: "duration",
    default: formatDuration(DEFAULTS.sealAfterMs),
    description: "Quiet time before a file PowerMTA no longer writes is finished.",
  },
  {
    key: "checkpointInterval",
    type: "duration",
    default: formatDuration(DEFAULTS.checkpointIntervalMs),
    description: "Minimum time between checkpoint writes (sooner when half the window waits for one).",
  },
  {
    key: "checkpointRetention",
    type: "duration",
    default: formatDuration(DEFAULTS.checkpointRetentionMs),
    description: "Checkpoint entries of files gone from disk this long are dropped.",
  },
  {
    key: "drainTimeout",
    type: "duration",
    default: formatDuration(DEFAULTS.drainTimeoutMs),
    description: "Delivery time allowed at shutdown.",
  },
  {
    key: "maxOpenFiles",
    type: "count",
    default: String(DEFAULTS.maxOpenFiles),
    description: "Accounting files held open at most.",
  },
  {
    key: "deadLetter.path",
    type: "path",
    default: `<stateDir>/${DEFAULTS.deadLetterFileName}`,
    description: `Records that could not be decoded or were rejected, with file and offset. ${RELATIVE}`,
  },
  {
    key: "metrics.listen",
    type: "`host:port` or `off`",
    default: DEFAULTS.metricsListen,
    description: "Metrics endpoint; IPv6 in brackets (`[::1]:9464`).",
  },
];

/** Reads, merges, expands and validates the configuration; throws {@link ConfigError} on the first problem. */
export async function loadRunConfig(options: LoadOptions): Promise<RunConfig> {
  const cwd = process.cwd();
  const file = options.file === undefined ? undefined : resolve(cwd, options.file);
  const parsed = file === undefined ? undefined : await readYaml(file);
  const ctx = new Ctx(file, parsed?.locate, options.env ?? process.env, cwd);

  const merged = ctx.merge(parsed?.value ?? {}, cleanFlags(options.flags ?? {}), []);
  const root = isMapping(merged) ? merged : {};
  checkKeys(ctx, root, KEY_TREE, []);
  if (root.pmtaConfig !== undefined) {
    ctx.fail(["pmtaConfig"], "not supported yet in this version", "list inputs instead");
  }
  const expanded = ctx.expandAll(root, []);
  const config = validate(ctx, isMapping(expanded) ? expanded : {}, options.hostname ?? osHostname());

  // File-system checks last, so a typo elsewhere is reported before anything is created on disk.
  if (config.rules !== undefined) await checkReadable(ctx, ["rules"], config.rules);
  await ensureWritableDir(ctx, ["stateDir"], config.stateDir);
  return deepFreeze(config);
}

// ---------------------------------------------------------------------------------------------------
// Context: error sources, flag provenance, merging and ${VAR} expansion

type Path = readonly (string | number)[];

function formatPath(path: Path): string {
  let out = "";
  for (const seg of path) out += typeof seg === "number" ? `[${seg}]` : out === "" ? seg : `.${seg}`;
  return out;
}

/** `inputs[3].types` → `inputs[].types`: the form RUN_CONFIG_KEYS uses. */
function shapeOf(path: Path): string {
  return formatPath(path.map((s) => (typeof s === "number" ? -1 : s))).replaceAll("[-1]", "[]");
}

const LIST_SHAPES = new Set(RUN_CONFIG_KEYS.filter((k) => k.type.startsWith("list")).map((k) => k.key));

class Ctx {
  /** Key paths whose value came from a flag (a whole list when a flag gave the list). */
  private readonly flagPaths = new Set<string>();

  constructor(
    readonly file: string | undefined,
    private readonly locate: ((path: Path) => string | undefined) | undefined,
    private readonly env: Readonly<Record<string, string | undefined>>,
    readonly cwd: string,
  ) {}

  fromFlags(path: Path): boolean {
    if (this.file === undefined) return true;
    const p = formatPath(path);
    for (const f of this.flagPaths) {
      if (p === f || p.startsWith(`${f}.`) || p.startsWith(`${f}[`)) return true;
    }
    return false;
  }

  /** Relative paths: against the config file's directory, or the working directory for flags. */
  baseDir(path: Path): string {
    return this.file === undefined || this.fromFlags(path) ? this.cwd : dirname(this.file);
  }

  fail(path: Path, problem: string, hint: string, forceFlags = false): never {
    let source: string;
    if (forceFlags || this.fromFlags(path) || this.file === undefined) source = "(flags)";
    else {
      const at = this.locate?.(path);
      source = at === undefined ? this.file : `${this.file}:${at}`;
    }
    throw new ConfigError(source, formatPath(path), problem, hint);
  }

  /**
   * Flags over file values: mappings merge key by key; a flag mapping with numeric keys at a list
   * key (`--inputs.0.archive`) changes that list entry; anything else replaces.
   */
  merge(base: unknown, over: unknown, path: Path): unknown {
    if (!isMapping(over)) {
      this.flagPaths.add(formatPath(path));
      return over;
    }
    const keys = Object.keys(over);
    if (
      LIST_SHAPES.has(shapeOf(path)) &&
      keys.length > 0 &&
      keys.every((k) => /^(0|[1-9]\d{0,8})$/.test(k)) &&
      (base === undefined || base === null || Array.isArray(base))
    ) {
      const list: unknown[] = Array.isArray(base) ? [...base] : [];
      for (const i of keys.map(Number).sort((a, b) => a - b)) {
        if (i > list.length) {
          this.fail(
            [...path, i],
            `there is no ${formatPath([...path, list.length])} before it`,
            "number list entries from 0 without gaps",
            true,
          );
        }
        list[i] = this.merge(list[i], over[String(i)], [...path, i]);
      }
      return list;
    }
    let start: Record<string, unknown> = isMapping(base) ? base : {};
    // A flag choosing another output kind replaces the file's choice instead of adding a second kind.
    if (shapeOf(path) === "output" && !keys.some((k) => k in start)) start = {};
    const out: Record<string, unknown> = { ...start };
    for (const k of keys) out[k] = this.merge(start[k], over[k], [...path, k]);
    return out;
  }

  expandAll(value: unknown, path: Path): unknown {
    if (typeof value === "string") return this.expand(value, path);
    if (Array.isArray(value)) return value.map((v, i) => this.expandAll(v, [...path, i]));
    if (isMapping(value)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = this.expandAll(v, [...path, k]);
      return out;
    }
    return value;
  }

  /**
   * `${VAR}`, `${VAR:-default}` (default when unset or empty), `$${` for a literal `${`. Expanded in
   * values after parsing, not in the YAML text, so a secret holding `:` `#` or quotes cannot break
   * the document.
   */
  private expand(text: string, path: Path): string {
    const hint =
      "write ${NAME} or ${NAME:-default} (NAME: letters, digits, _), or $${ for a literal ${";
    let out = "";
    let i = 0;
    while (i < text.length) {
      const j = text.indexOf("$", i);
      if (j < 0) {
        out += text.slice(i);
        break;
      }
      out += text.slice(i, j);
      if (text.startsWith("$${", j)) {
        out += "${";
        i = j + 3;
        continue;
      }
      if (text[j + 1] !== "{") {
        out += "$";
        i = j + 1;
        continue;
      }
      const end = text.indexOf("}", j + 2);
      if (end < 0) this.fail(path, "a ${ is not closed by }", hint);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(:-([^]*))?$/.exec(text.slice(j + 2, end));
      if (m === null) this.fail(path, `\${${text.slice(j + 2, end)}} is not a variable reference`, hint);
      const name = m[1] ?? "";
      const value = this.env[name];
      if (m[2] !== undefined && (value === undefined || value === "")) out += m[3] ?? "";
      else if (value !== undefined) out += value;
      else {
        this.fail(
          path,
          `environment variable ${name} is not set`,
          `set it in the service's environment (systemd Environment= or EnvironmentFile=), or give a default: \${${name}:-value}`,
        );
      }
      i = end + 1;
    }
    return out;
  }
}

/** Drops what yargs adds besides the config keys: `_`, `$0`, and `state-dir` next to `stateDir`. */
function cleanFlags(flags: Readonly<Record<string, unknown>>, top = true): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) {
    if (top && (k === "_" || k === "$0")) continue;
    if (k.includes("-") && camelCase(k) in flags) continue;
    out[k] = isMapping(v) ? cleanFlags(v, false) : v;
  }
  return out;
}

function camelCase(s: string): string {
  return s.replace(/-+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

// ---------------------------------------------------------------------------------------------------
// The YAML file

interface ParsedFile {
  readonly value: Record<string, unknown>;
  readonly locate: (path: Path) => string | undefined;
}

async function readYaml(file: string): Promise<ParsedFile> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = errnoOf(err);
    const hint =
      code === "ENOENT"
        ? `check the path (the daemon's default is ${DEFAULT_CONFIG_FILE})`
        : code === "EACCES" || code === "EPERM"
          ? "make it readable by the service user"
          : code === "EISDIR"
            ? "name the YAML file, not its directory"
            : "check the file";
    throw new ConfigError(file, "", `cannot read the config file (${code})`, hint);
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const at = (pos: number | undefined): string => {
    if (pos === undefined || pos < 0) return file;
    const { line, col } = lc.linePos(pos);
    return `${file}:${line}:${col}`;
  };
  // Warnings (an unknown !tag, say) would change what a value means without saying so: errors too.
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    throw new ConfigError(
      at(problem.pos[0]),
      "",
      `not valid YAML: ${problem.message}`,
      "fix the syntax at that line and column (indent with spaces, put a space after the colon, close quotes and brackets)",
    );
  }
  // A file of nothing but comments is an empty configuration; flags may still supply everything.
  if (doc.contents === null) return { value: {}, locate: () => undefined };
  if (!isMap(doc.contents)) {
    throw new ConfigError(
      at(doc.contents.range?.[0]),
      "",
      `the file is ${isSeq(doc.contents) ? "a list" : "a single value"}, not a mapping of settings`,
      'write "key: value" lines at the top level, starting with "inputs:"',
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(file, "", `cannot use the YAML: ${(err as Error).message}`, "simplify anchors and aliases");
  }
  return { value: isMapping(value) ? value : {}, locate: (path) => locateIn(doc, lc, path) };
}

/** line:column of a key path in the document: the key itself, or the nearest enclosing entry. */
function locateIn(doc: Document, lc: LineCounter, path: Path): string | undefined {
  let node: unknown = doc.contents;
  let pos: number | undefined;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (pair === undefined) break;
      if (isNode(pair.key)) pos = pair.key.range?.[0] ?? pos;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg];
      if (!isNode(item)) break;
      pos = item.range?.[0] ?? pos;
      node = item;
    } else break;
    if (isAlias(node)) break;
  }
  if (pos === undefined) return undefined;
  const { line, col } = lc.linePos(pos);
  return `${line}:${col}`;
}

// ---------------------------------------------------------------------------------------------------
// Unknown keys

interface KeyNode {
  readonly children: Map<string, KeyNode>;
  /** For a list of mappings: the keys of each entry. */
  item?: KeyNode;
}

const KEY_TREE: KeyNode = buildKeyTree();

function buildKeyTree(): KeyNode {
  const root: KeyNode = { children: new Map() };
  for (const { key } of RUN_CONFIG_KEYS) {
    let node = root;
    for (const part of key.split(".")) {
      const list = part.endsWith("[]");
      const name = list ? part.slice(0, -2) : part;
      let child = node.children.get(name);
      if (child === undefined) {
        child = { children: new Map() };
        node.children.set(name, child);
      }
      if (list) {
        child.item ??= { children: new Map() };
        node = child.item;
      } else node = child;
    }
  }
  return root;
}

/** Every documented key path, for "did you mean batch.maxEvents?" when a key sits at the wrong level. */
const ALL_KEYS = RUN_CONFIG_KEYS.map((k) => k.key);

const DERIVED: Readonly<Record<string, string>> = {
  "inputs[].dir": "dir is derived from path",
  "inputs[].pattern": "pattern is derived from path",
};

function checkKeys(ctx: Ctx, value: unknown, node: KeyNode, path: Path): void {
  if (node.item !== undefined && Array.isArray(value)) {
    value.forEach((v, i) => {
      checkKeys(ctx, v, node.item as KeyNode, [...path, i]);
    });
    return;
  }
  // Leaves (including output.http, whose settings belong to the delivery code) are not descended into.
  if (node.children.size === 0 || !isMapping(value)) return;
  for (const [k, v] of Object.entries(value)) {
    const child = node.children.get(k);
    if (child !== undefined) {
      checkKeys(ctx, v, child, [...path, k]);
      continue;
    }
    const here = [...node.children.keys()];
    const derived = DERIVED[shapeOf([...path, k])];
    const near = closest(k, here);
    const elsewhere = near === undefined ? closestPaths(k) : [];
    const where = path.length === 0 ? "at the top level" : `in ${formatPath(path)}`;
    const guesses = near !== undefined ? [formatPath([...path, near])] : elsewhere;
    const problem =
      derived !== undefined
        ? `unknown key (${derived})`
        : guesses.length > 0
          ? `unknown key (did you mean ${guesses.map((g) => `"${g}"`).join(" or ")}?)`
          : "unknown key";
    ctx.fail([...path, k], problem, derived !== undefined ? "remove it" : `keys ${where}: ${here.join(", ")}`);
  }
}

function normalizeKey(s: string): string {
  return s.toLowerCase().replace(/[-_]/g, "");
}

function closeEnough(a: string, b: string): boolean {
  const x = normalizeKey(a);
  return editDistance(x, normalizeKey(b)) <= Math.max(1, Math.floor(x.length / 3));
}

function closest(key: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(normalizeKey(key), normalizeKey(c));
    if (d < bestD && closeEnough(key, c)) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

function closestPaths(key: string): string[] {
  return ALL_KEYS.filter((p) => closeEnough(key, p.slice(p.lastIndexOf(".") + 1)));
}

/** Optimal string alignment distance: Levenshtein plus adjacent transpositions ("maxEvnets"). */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) rows.push(Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : 0)));
  const at = (i: number, j: number): number => rows[i]?.[j] ?? 0;
  for (let i = 1; i <= a.length; i++) {
    const row = rows[i] as number[];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, at(i - 2, j - 2) + 1);
      row[j] = d;
    }
  }
  return at(a.length, b.length);
}

// ---------------------------------------------------------------------------------------------------
// Values

function isMapping(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** An empty YAML value (`archive:`) means "not set", the same as leaving the key out. */
function get(obj: Readonly<Record<string, unknown>>, key: string): unknown {
  const v = obj[key];
  return v === null ? undefined : v;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return "an empty value";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return String(v);
}

function mapping(ctx: Ctx, obj: Readonly<Record<string, unknown>>, key: string, path: Path) {
  const v = get(obj, key);
  if (v === undefined) return {};
  if (!isMapping(v)) {
    ctx.fail(
      [...path, key],
      `expected a mapping of settings, got ${describe(v)}`,
      `write the settings indented under ${key}: (see the README's Configuration table)`,
    );
  }
  return v;
}

function text(ctx: Ctx, v: unknown, path: Path, example: string): string {
  // A YAML number such as `name: 2024` is meant as text.
  const s = typeof v === "number" && Number.isFinite(v) ? String(v) : v;
  if (typeof s !== "string" || s.trim() === "") {
    ctx.fail(path, `expected a non-empty string, got ${describe(v)}`, `write e.g. ${example}`);
  }
  return s.trim();
}

function count(ctx: Ctx, v: unknown, path: Path, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < min) {
    const what = min === 1 ? "a positive whole number" : `a whole number of at least ${min}`;
    ctx.fail(path, `expected ${what}, got ${describe(v)}`, `write e.g. ${dflt}`);
  }
  return n;
}

function size(ctx: Ctx, v: unknown, path: Path, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = unit(ctx, parseSize, v, path);
  if (n < min) {
    ctx.fail(path, `${describe(v)} is less than ${min} byte`, `give a size such as ${formatSize(dflt)}`);
  }
  return n;
}

function duration(ctx: Ctx, v: unknown, path: Path, dflt: number, min = 1, max?: number): number {
  if (v === undefined) return dflt;
  const n = unit(ctx, parseDuration, v, path);
  if (n < min) {
    ctx.fail(
      path,
      `${describe(v)} is too short (at least ${min}ms)`,
      `give a duration such as ${formatDuration(dflt)}`,
    );
  }
  if (max !== undefined && n > max) {
    ctx.fail(path, `${describe(v)} is longer than Node's timers allow (about 24 days)`, "give a shorter duration");
  }
  return n;
}

function unit(ctx: Ctx, parse: (v: unknown) => number, v: unknown, path: Path): number {
  try {
    return parse(v);
  } catch (err) {
    if (err instanceof UnitError) ctx.fail(path, err.problem, err.hint);
    throw err;
  }
}

function absolutePath(ctx: Ctx, v: unknown, path: Path, example: string): string {
  if (typeof v !== "string" || v.trim() === "") {
    ctx.fail(path, `expected a path, got ${describe(v)}`, `write e.g. ${example}`);
  }
  return resolve(ctx.baseDir(path), v);
}

/** A list of strings, or one string with commas (what a single flag gives). */
function stringList(ctx: Ctx, v: unknown, path: Path, example: string): string[] {
  const list = typeof v === "string" ? v.split(",").map((s) => s.trim()) : v;
  if (!Array.isArray(list)) ctx.fail(path, `expected a list, got ${describe(v)}`, `write e.g. ${example}`);
  if (list.length === 0) ctx.fail(path, "the list is empty", `list at least one, e.g. ${example}, or remove the key`);
  return list.map((item, i) => {
    if (typeof item !== "string" || item === "") {
      ctx.fail([...path, i], `expected a non-empty string, got ${describe(item)}`, `write e.g. ${example}`);
    }
    return item;
  });
}

// ---------------------------------------------------------------------------------------------------
// Validation

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function validate(ctx: Ctx, root: Readonly<Record<string, unknown>>, defaultHost: string): RunConfig {
  const inputs = validateInputs(ctx, root);
  const stateDir =
    get(root, "stateDir") === undefined
      ? DEFAULTS.stateDir
      : absolutePath(ctx, get(root, "stateDir"), ["stateDir"], DEFAULTS.stateDir);
  const startAt = validateStartAt(ctx, get(root, "startAt"));
  const output = validateOutput(ctx, root, stateDir);
  const host = get(root, "host") === undefined ? defaultHost : text(ctx, get(root, "host"), ["host"], "mta1.example.com");
  if (/\s/.test(host)) ctx.fail(["host"], `${describe(host)} contains white space`, "give a host name such as mta1.example.com");
  const rulesValue = get(root, "rules");
  const rules =
    rulesValue === undefined ? undefined : absolutePath(ctx, rulesValue, ["rules"], "/etc/pmta-ingest/rules.txt");
  const maxRecordBytes = size(ctx, get(root, "maxRecordBytes"), ["maxRecordBytes"], DEFAULTS.maxRecordBytes);

  const b = mapping(ctx, root, "batch", []);
  const batch = {
    maxEvents: count(ctx, get(b, "maxEvents"), ["batch", "maxEvents"], DEFAULTS.batchMaxEvents),
    maxBytes: size(ctx, get(b, "maxBytes"), ["batch", "maxBytes"], DEFAULTS.batchMaxBytes),
    maxWaitMs: duration(ctx, get(b, "maxWait"), ["batch", "maxWait"], DEFAULTS.batchMaxWaitMs, 0, MAX_TIMER_MS),
  };
  const f = mapping(ctx, root, "inFlight", []);
  const inFlight = {
    maxEvents: count(ctx, get(f, "maxEvents"), ["inFlight", "maxEvents"], DEFAULTS.inFlightMaxEvents),
    maxBytes: size(ctx, get(f, "maxBytes"), ["inFlight", "maxBytes"], DEFAULTS.inFlightMaxBytes),
  };
  // Reading pauses at the in-flight limit, so a limit below one batch would never let a full batch form.
  if (inFlight.maxEvents < batch.maxEvents) {
    ctx.fail(
      ["inFlight", "maxEvents"],
      `${inFlight.maxEvents} is less than batch.maxEvents (${batch.maxEvents})`,
      "raise inFlight.maxEvents or lower batch.maxEvents",
    );
  }
  if (inFlight.maxBytes < batch.maxBytes) {
    ctx.fail(
      ["inFlight", "maxBytes"],
      `${formatSize(inFlight.maxBytes)} is less than batch.maxBytes (${formatSize(batch.maxBytes)})`,
      "raise inFlight.maxBytes or lower batch.maxBytes",
    );
  }

  const dl = mapping(ctx, root, "deadLetter", []);
  const deadLetterPath =
    get(dl, "path") === undefined
      ? join(stateDir, DEFAULTS.deadLetterFileName)
      : absolutePath(ctx, get(dl, "path"), ["deadLetter", "path"], "/var/lib/pmta-ingest/dead-letter.ndjson");
  const m = mapping(ctx, root, "metrics", []);

  const config: Mutable<RunConfig> = {
    source: ctx.file ?? "(flags)",
    inputs,
    stateDir,
    startAt,
    output,
    host,
    maxRecordBytes,
    batch,
    inFlight,
    // Timer delays are capped (MAX_TIMER_MS); the seal and retention ages are compared with file times.
    rescanIntervalMs: duration(ctx, get(root, "rescanInterval"), ["rescanInterval"], DEFAULTS.rescanIntervalMs, 1, MAX_TIMER_MS),
    sealAfterMs: duration(ctx, get(root, "sealAfter"), ["sealAfter"], DEFAULTS.sealAfterMs),
    // Not 0: the daemon's idle wait is min(rescanInterval, checkpointInterval), so 0 would spin.
    checkpointIntervalMs: duration(
      ctx,
      get(root, "checkpointInterval"),
      ["checkpointInterval"],
      DEFAULTS.checkpointIntervalMs,
      1,
      MAX_TIMER_MS,
    ),
    checkpointRetentionMs: duration(
      ctx,
      get(root, "checkpointRetention"),
      ["checkpointRetention"],
      DEFAULTS.checkpointRetentionMs,
    ),
    drainTimeoutMs: duration(ctx, get(root, "drainTimeout"), ["drainTimeout"], DEFAULTS.drainTimeoutMs, 0, MAX_TIMER_MS),
    maxOpenFiles: count(ctx, get(root, "maxOpenFiles"), ["maxOpenFiles"], DEFAULTS.maxOpenFiles),
    deadLetterPath,
    metrics: { listen: validateListen(ctx, get(m, "listen"), ["metrics", "listen"]) },
  };
  if (rules !== undefined) config.rules = rules;
  return config;
}

function validateInputs(ctx: Ctx, root: Readonly<Record<string, unknown>>): InputConfig[] {
  const raw = get(root, "inputs");
  if (raw === undefined || (Array.isArray(raw) && raw.length === 0)) {
    ctx.fail(
      ["inputs"],
      "at least one input is needed",
      "add one, e.g. inputs: [{ path: /var/log/pmta/bounces-*.csv, archive: /var/log/pmta/accounting/bounces }] (flag: --inputs.0.path)",
    );
  }
  if (!Array.isArray(raw)) {
    ctx.fail(
      ["inputs"],
      `expected a list of inputs, got ${describe(raw)}`,
      'write each input as a list item ("- path: /var/log/pmta/bounces-*.csv"); flags: --inputs.0.path',
    );
  }
  const inputs: InputConfig[] = [];
  const byName = new Map<string, number>();
  const byPath = new Map<string, number>();
  raw.forEach((item, i) => {
    const path: Path = ["inputs", i];
    if (!isMapping(item)) {
      ctx.fail(path, `expected a mapping with at least path, got ${describe(item)}`, 'write "- path: /var/log/pmta/bounces-*.csv"');
    }
    const input = validateInput(ctx, item, path);
    const sameName = byName.get(input.name);
    if (sameName !== undefined) {
      const given = get(item, "name") !== undefined;
      ctx.fail(
        [...path, "name"],
        `"${input.name}"${given ? "" : " (derived from path)"} is used by another input (inputs[${sameName}])`,
        given ? "give each input a distinct name" : `set inputs[${i}].name to a distinct name`,
      );
    }
    const samePath = byPath.get(input.path);
    if (samePath !== undefined) {
      ctx.fail(
        [...path, "path"],
        `the same files as inputs[${samePath}].path`,
        "remove the duplicate input: each file must be read by one input only",
      );
    }
    byName.set(input.name, i);
    byPath.set(input.path, i);
    inputs.push(input);
  });
  return inputs;
}

function validateInput(ctx: Ctx, item: Readonly<Record<string, unknown>>, path: Path): InputConfig {
  const example = "/var/log/pmta/bounces-*.csv";
  const pathKey = [...path, "path"];
  const rawPath = get(item, "path");
  if (rawPath === undefined) ctx.fail(pathKey, "is missing", `every input needs a path pattern such as ${example}`);
  if (typeof rawPath !== "string" || rawPath.trim() === "") {
    ctx.fail(pathKey, `expected a path pattern, got ${describe(rawPath)}`, `write e.g. ${example}`);
  }
  const given = rawPath.trim();
  const slash = given.lastIndexOf("/");
  const rawName = given.slice(slash + 1);
  if (rawName === "" || rawName === "." || rawName === "..") {
    ctx.fail(
      pathKey,
      `"${given}" names a directory, not files in it`,
      `add a file-name pattern, e.g. ${given.replace(/\/*$/, "")}/bounces-*.csv`,
    );
  }
  if (/[*?]/.test(given.slice(0, Math.max(slash, 0)))) {
    ctx.fail(
      pathKey,
      `wildcards are allowed in the file name only, not in the directory (${given.slice(0, slash)})`,
      "use one input per directory, e.g. /var/log/pmta/bounces-*.csv",
    );
  }
  if (/[[\]{}]/.test(rawName)) {
    ctx.fail(
      pathKey,
      `"${rawName}" uses [ ] or { }, which are not wildcards here`,
      "use only * and ? in the file name, or one input per pattern",
    );
  }
  const full = resolve(ctx.baseDir(pathKey), given);
  const dir = dirname(full);
  const fileName = basename(full);

  const nameValue = get(item, "name");
  let name: string;
  if (nameValue !== undefined) {
    name = text(ctx, nameValue, [...path, "name"], "bounces");
    if (!NAME_RE.test(name)) {
      ctx.fail(
        [...path, "name"],
        `"${name}" contains characters other than letters, digits, ".", "_" and "-"`,
        "use a name such as bounces or fbl-main",
      );
    }
  } else {
    name = defaultName(fileName, dir);
    if (!NAME_RE.test(name)) {
      ctx.fail([...path, "name"], `cannot derive a name from ${full}`, `set ${formatPath(path)}.name, e.g. bounces`);
    }
  }

  const input: Mutable<InputConfig> = { name, path: full, dir, pattern: globToRegExp(fileName) };

  const archiveValue = get(item, "archive");
  if (archiveValue !== undefined) {
    const key = [...path, "archive"];
    const archive = absolutePath(ctx, archiveValue, key, "/var/log/pmta/archive");
    if (/[*?]/.test(archive)) {
      ctx.fail(key, `"${archive}" has a wildcard`, "give the move-to directory itself; the file-name pattern of path applies there");
    }
    if (archive === dir) {
      ctx.fail(key, `is the input's own directory (${dir})`, "give the move-to directory of the <acct-file>, or remove archive");
    }
    input.archive = archive;
  }

  const typesValue = get(item, "types");
  if (typesValue !== undefined) {
    const key = [...path, "types"];
    const types = stringList(ctx, typesValue, key, "[b, rb]");
    types.forEach((t) => {
      if (!(RECORD_TYPES as readonly string[]).includes(t)) {
        ctx.fail(key, `"${t}" is not a record type`, `use some of ${RECORD_TYPES.join(", ")}`);
      }
    });
    input.types = [...new Set(types)];
  }

  const columnsValue = get(item, "fallbackColumns");
  if (columnsValue !== undefined) {
    const key = [...path, "fallbackColumns"];
    const columns = stringList(ctx, columnsValue, key, "[type, timeLogged, orig, rcpt, dsnStatus, dsnDiag]");
    if (columns[0] !== "type") {
      ctx.fail(
        key,
        `must start with "type" (it starts with "${columns[0]}")`,
        "put type first: PowerMTA writes the record type first in every row",
      );
    }
    input.fallbackColumns = columns;
  }
  return input;
}

/** `bounces-*.csv` → "bounces", `*-fbl.csv` → "fbl", `acct.csv` → "acct"; else the directory's name. */
function defaultName(fileName: string, dir: string): string {
  const ext = extname(fileName);
  const stem = ext === "" ? fileName : fileName.slice(0, -ext.length);
  const pieces = stem
    .split(/[*?]+/)
    .map((p) => p.replace(/^[-_. ]+|[-_. ]+$/g, ""))
    .filter((p) => p !== "");
  const name = pieces.length > 0 ? pieces.join("-") : basename(dir);
  return name.replace(/[^A-Za-z0-9._-]+/g, "-");
}

/** File-name glob → anchored RegExp: `*` any run, `?` one character, everything else literal. */
function globToRegExp(glob: string): RegExp {
  let source = "";
  for (const ch of glob) {
    if (ch === "*") source += ".*";
    else if (ch === "?") source += ".";
    else source += ch.replace(/[\\^$.|+()[\]{}]/g, "\\$&");
  }
  // As in the shell, a leading wildcard does not match a dot file (editor swap files, rsync temporaries).
  const hidden = glob.startsWith("*") || glob.startsWith("?") ? "(?!\\.)" : "";
  return new RegExp(`^${hidden}${source}$`, "s");
}

function validateStartAt(ctx: Ctx, v: unknown): StartAt {
  if (v === undefined || v === "beginning") return { kind: "beginning" };
  if (v === "end") return { kind: "end" };
  const hint = "write beginning, end, or a maximum age such as 24h";
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch (err) {
    if (err instanceof UnitError) ctx.fail(["startAt"], `${describe(v)} is neither beginning, end nor a duration`, hint);
    throw err;
  }
  if (ms === 0) ctx.fail(["startAt"], "a maximum age of 0 would skip everything", hint);
  return { kind: "max-age", ms };
}

function validateOutput(ctx: Ctx, root: Readonly<Record<string, unknown>>, stateDir: string): OutputConfig {
  const defaultPath = join(stateDir, DEFAULTS.outputFileName);
  const raw = get(root, "output");
  if (raw === undefined) {
    return { kind: "file", path: defaultPath, maxBytes: DEFAULTS.outputMaxBytes, keep: DEFAULTS.outputKeep };
  }
  const give = "give exactly one of file, stdout, http";
  const example = "e.g. output: { file: { path: /var/lib/pmta-ingest/events.ndjson } }, output: { stdout: {} }";
  if (!isMapping(raw)) ctx.fail(["output"], `${give} (got ${describe(raw)})`, example);
  const kinds = OUTPUT_KINDS.filter((k) => k in raw);
  if (kinds.length === 0) ctx.fail(["output"], `${give} (got none)`, example);
  if (kinds.length > 1) ctx.fail(["output"], `${give} (got ${kinds.join(" and ")})`, "remove all but one");
  const kind = kinds[0];
  const value = raw[kind as string];
  const path: Path = ["output", kind as string];
  if (kind === "stdout") {
    // `stdout: {}` in YAML, `stdout:` (null), or the bare flag --output.stdout (true).
    if (value === null || value === true || (isMapping(value) && Object.keys(value).length === 0)) {
      return { kind: "stdout" };
    }
    ctx.fail(path, `stdout takes no settings, got ${describe(value)}`, "write stdout: {}");
  }
  if (kind === "http") {
    if (value === null) return { kind: "http", settings: {} };
    if (!isMapping(value)) {
      ctx.fail(path, `expected a mapping of delivery settings, got ${describe(value)}`, "write the settings indented under http:");
    }
    return { kind: "http", settings: value };
  }
  const file = mapping(ctx, raw, "file", ["output"]);
  return {
    kind: "file",
    path:
      get(file, "path") === undefined
        ? defaultPath
        : absolutePath(ctx, get(file, "path"), [...path, "path"], "/var/lib/pmta-ingest/events.ndjson"),
    maxBytes: size(ctx, get(file, "maxBytes"), [...path, "maxBytes"], DEFAULTS.outputMaxBytes, 0),
    keep: count(ctx, get(file, "keep"), [...path, "keep"], DEFAULTS.outputKeep),
  };
}

function validateListen(ctx: Ctx, v: unknown, path: Path): string {
  if (v === undefined) return DEFAULTS.metricsListen;
  const hint = "write host:port such as 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464, or off";
  if (typeof v !== "string") ctx.fail(path, `expected host:port or off, got ${describe(v)}`, hint);
  if (v === "off") return v;
  const m = /^(\[([^\]]*)\]|[^:[\]]*):(\d{1,5})$/.exec(v);
  if (m === null) {
    const ipv6 = isIPv6(v.replace(/:\d+$/, ""));
    ctx.fail(path, `${describe(v)} is not host:port`, ipv6 ? "put an IPv6 address in brackets: [::1]:9464" : hint);
  }
  const port = Number(m[3]);
  if (port < 1 || port > 65535) ctx.fail(path, `port ${m[3]} is out of range`, "use a port from 1 to 65535");
  const host = m[2] ?? m[1] ?? "";
  const hostOk =
    m[2] !== undefined
      ? isIPv6(host)
      : isIPv4(host) || /^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host);
  if (!hostOk) {
    ctx.fail(path, `"${host}" is not a host name or IP address`, host === "" ? "to listen on every interface write 0.0.0.0:9464" : hint);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------
// File-system checks

function errnoOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : String(err);
}

async function checkReadable(ctx: Ctx, path: Path, file: string): Promise<void> {
  let code: string | undefined;
  try {
    const handle = await open(file, "r");
    try {
      // open() succeeds on a directory; reading it would fail later, so say so now.
      if (!(await handle.stat()).isFile()) code = "EISDIR";
    } finally {
      await handle.close();
    }
  } catch (err) {
    code = errnoOf(err);
  }
  if (code === undefined) return;
  const where = ctx.fromFlags(path) ? "the working directory" : "the config file's directory";
  const hint =
    code === "EACCES" || code === "EPERM"
      ? "make it readable by the service user"
      : code === "EISDIR"
        ? "name the rules file, not a directory"
        : `check the path (a relative path is resolved against ${where})`;
  ctx.fail(path, `cannot read ${file} (${code})`, hint);
}

/** mkdir -p, then create and delete a file: permissions, read-only mounts and ACLs all show up here. */
async function ensureWritableDir(ctx: Ctx, path: Path, dir: string): Promise<void> {
  const service = "create it and give the service user write access, or use systemd StateDirectory=pmta-ingest";
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    const code = errnoOf(err);
    const hint =
      code === "ENOTDIR"
        ? `part of the path is a regular file, not a directory: choose another stateDir, or ${service}`
        : code === "EEXIST"
          ? `it is a file, not a directory: choose another stateDir, or ${service}`
          : service;
    ctx.fail(path, `${dir} is not a writable directory (${code})`, hint);
  }
  const probe = join(dir, `.write-probe-${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    const handle = await open(probe, "wx");
    await handle.close();
    await unlink(probe);
  } catch (err) {
    ctx.fail(path, `${dir} is not a writable directory (${errnoOf(err)})`, service);
  }
}

function deepFreeze<T>(value: T): T {
  if (Array.isArray(value) || isMapping(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
