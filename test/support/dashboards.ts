import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";

/**
 * Reads the Grafana dashboards and Prometheus alert rules under grafana/ into plain typed records, and
 * turns panel queries into PromQL Prometheus can run (template variables substituted). Shared by
 * test/grafana-dashboards.test.ts, test/alert-rules.test.ts and any test that evaluates every panel
 * query or alert expression against a real Prometheus scraping a real pipeline run.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export const REPO_ROOT = findRepoRoot();
export const GRAFANA_DIR = join(REPO_ROOT, "grafana");
export const DASHBOARD_DIR = join(GRAFANA_DIR, "dashboards");
export const RULES_FILE = join(GRAFANA_DIR, "alerts", "pmta-ingest.rules.yml");
export const RULES_TEST_FILE = join(GRAFANA_DIR, "alerts", "pmta-ingest.rules.test.yml");
export const PROMETHEUS_CONFIG = join(GRAFANA_DIR, "prometheus", "prometheus.yml");
export const METRIC_NAMES_FILE = join(GRAFANA_DIR, "metric-names.txt");

/** Grafana's own variables the dashboards may use without defining them. */
export const BUILTIN_VARIABLES: ReadonlySet<string> = new Set([
  "__rate_interval",
  "__interval",
  "__interval_ms",
  "__range",
  "__range_s",
  "__range_ms",
]);

// The compiled file runs from dist/test/support, the source from test/support: walk up instead of
// guessing how deep we are.
function findRepoRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "grafana"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no directory with package.json and grafana/ above ${start}`);
    dir = parent;
  }
}

export interface GridPos {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

export interface DashboardTarget {
  readonly refId: string;
  readonly expr: string;
  readonly instant: boolean;
  readonly datasource: Json | undefined;
}

export interface DashboardPanel {
  readonly id: number;
  readonly title: string;
  readonly type: string;
  readonly description: string;
  readonly gridPos: GridPos | undefined;
  readonly datasource: Json | undefined;
  readonly targets: readonly DashboardTarget[];
  /** Panels inside a row; empty unless the row is collapsed. */
  readonly nested: boolean;
}

export interface TemplateVariable {
  readonly name: string;
  readonly type: string;
  /** The PromQL or label_values(...) query of a query variable; "" otherwise. */
  readonly query: string;
  readonly multi: boolean;
  readonly includeAll: boolean;
  readonly datasource: Json | undefined;
}

export interface Dashboard {
  /** Path relative to the repository root. */
  readonly file: string;
  readonly uid: string;
  readonly title: string;
  readonly json: JsonObject;
  readonly variables: readonly TemplateVariable[];
  /** Every panel, rows included, panels of collapsed rows flattened in. */
  readonly panels: readonly DashboardPanel[];
}

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: Json | undefined): string {
  return typeof v === "string" ? v : "";
}

function num(v: Json | undefined): number {
  return typeof v === "number" ? v : Number.NaN;
}

function arr(v: Json | undefined): Json[] {
  return Array.isArray(v) ? v : [];
}

function gridPosOf(v: Json | undefined): GridPos | undefined {
  if (!isObject(v)) return undefined;
  return { x: num(v.x), y: num(v.y), w: num(v.w), h: num(v.h) };
}

function panelOf(p: JsonObject, nested: boolean): DashboardPanel {
  return {
    id: num(p.id),
    title: str(p.title),
    type: str(p.type),
    description: str(p.description),
    gridPos: gridPosOf(p.gridPos),
    datasource: p.datasource,
    targets: arr(p.targets)
      .filter(isObject)
      .map((t) => ({
        refId: str(t.refId),
        expr: str(t.expr),
        instant: t.instant === true,
        datasource: t.datasource,
      })),
    nested,
  };
}

function variableOf(v: JsonObject): TemplateVariable {
  const q = v.query;
  return {
    name: str(v.name),
    type: str(v.type),
    query: isObject(q) ? str(q.query) : str(q),
    multi: v.multi === true,
    includeAll: v.includeAll === true,
    datasource: v.datasource,
  };
}

class JsonSyntaxAt extends Error {
  constructor(readonly offset: number) {
    super(`JSON syntax error at offset ${offset}`);
  }
}

/**
 * Offset of the first JSON syntax error in `text`, -1 if none. Node 20's JSON.parse does not say
 * where the error is, and a person fixing a 2,000-line dashboard needs the line.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const fail = (): never => {
    throw new JsonSyntaxAt(i);
  };
  const ws = (): void => {
    while (i < text.length && " \t\n\r".includes(text.charAt(i))) i++;
  };
  const string = (): void => {
    i++;
    while (i < text.length && text.charAt(i) !== '"') {
      if (text.charCodeAt(i) < 0x20) fail();
      i += text.charAt(i) === "\\" ? 2 : 1;
    }
    if (i >= text.length) fail();
    i++;
  };
  const value = (): void => {
    ws();
    const c = text.charAt(i);
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      i++;
      ws();
      if (text.charAt(i) === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === "{") {
          ws();
          if (text.charAt(i) !== '"') fail();
          string();
          ws();
          if (text.charAt(i) !== ":") fail();
          i++;
        }
        value();
        ws();
        if (text.charAt(i) === ",") {
          i++;
          continue;
        }
        if (text.charAt(i) === close) {
          i++;
          return;
        }
        fail();
      }
    }
    if (c === '"') {
      string();
      return;
    }
    const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
    if (m === null) fail();
    else i += m[0].length;
  };
  try {
    value();
    ws();
    if (i < text.length) fail();
    return -1;
  } catch (err) {
    if (err instanceof JsonSyntaxAt) return err.offset;
    throw err;
  }
}

/** " at line L, column C" of the first JSON syntax error, "" if it cannot be located. */
function jsonErrorLocation(text: string): string {
  const offset = jsonErrorOffset(text);
  if (offset < 0) return "";
  const before = text.slice(0, offset).split("\n");
  return ` at line ${before.length}, column ${(before.at(-1)?.length ?? 0) + 1}`;
}

/** Every `*.json` in `dir` (default grafana/dashboards), parsed; a broken file throws naming it. */
export function loadDashboards(dir: string = DASHBOARD_DIR): Dashboard[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort();
  return files.map((name) => {
    const path = join(dir, name);
    const file = path.startsWith(REPO_ROOT) ? path.slice(REPO_ROOT.length + 1) : path;
    const text = readFileSync(path, "utf8");
    let json: Json;
    try {
      json = JSON.parse(text) as Json;
    } catch (err) {
      throw new Error(
        `${file}: not valid JSON${jsonErrorLocation(text)} (${String(err)}); fix the file or regenerate it with node grafana/build-dashboards.mjs`,
      );
    }
    if (!isObject(json)) throw new Error(`${file}: expected a JSON object (a Grafana dashboard model)`);
    const panels: DashboardPanel[] = [];
    for (const p of arr(json.panels).filter(isObject)) {
      panels.push(panelOf(p, false));
      for (const inner of arr(p.panels).filter(isObject)) panels.push(panelOf(inner, true));
    }
    const templating = json.templating;
    const variables = isObject(templating) ? arr(templating.list).filter(isObject).map(variableOf) : [];
    return { file, uid: str(json.uid), title: str(json.title), json, variables, panels };
  });
}

export interface VariableValues {
  /** Regex for `$instance` (default `.+`: every instance). */
  readonly instance?: string;
  readonly provider?: string;
  readonly vmta?: string;
  readonly datasource?: string;
  /** `$__rate_interval` (default 1m: four 15 s scrapes). */
  readonly rateInterval?: string;
  /** `$__range` (default 5m). */
  readonly range?: string;
  /** `$__interval` (default 30s). */
  readonly interval?: string;
}

function durationSeconds(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d);
  if (m?.[1] === undefined || m[2] === undefined) throw new Error(`unsupported duration ${d}`);
  const unit: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  return Number(m[1]) * (unit[m[2]] ?? 1);
}

/**
 * Replaces `$name`, `${name}` and `${name:format}` in `text`. Unknown variables throw, naming them:
 * a query PromQL cannot run is better reported here than as an empty panel.
 */
export function substituteVariables(text: string, values: VariableValues = {}): string {
  const range = values.range ?? "5m";
  const interval = values.interval ?? "30s";
  const table: Record<string, string> = {
    instance: values.instance ?? ".+",
    provider: values.provider ?? ".*",
    vmta: values.vmta ?? ".*",
    datasource: values.datasource ?? "prometheus",
    __rate_interval: values.rateInterval ?? "1m",
    __range: range,
    __range_s: String(durationSeconds(range)),
    __range_ms: String(durationSeconds(range) * 1000),
    __interval: interval,
    __interval_ms: String(durationSeconds(interval) * 1000),
  };
  return text.replace(
    /\$\{(\w+)(?::[^}]*)?\}|\$(\w+)/g,
    (whole, braced: string | undefined, bare: string | undefined) => {
      const name = braced ?? bare ?? "";
      const value = table[name];
      if (value === undefined) throw new Error(`no value for template variable ${whole} in: ${text}`);
      return value;
    },
  );
}

/** Every Grafana variable name referenced as `$name` / `${name}` / `${name:fmt}` in `text`. */
export function variablesIn(text: string): string[] {
  const names = new Set<string>();
  for (const m of text.matchAll(/\$\{(\w+)(?::[^}]*)?\}|\$(\w+)/g)) names.add(m[1] ?? m[2] ?? "");
  return [...names];
}

export interface PanelQuery {
  readonly file: string;
  readonly uid: string;
  readonly panelId: number;
  readonly panelTitle: string;
  readonly refId: string;
  /** The expression as stored in the dashboard. */
  readonly rawExpr: string;
  /** Runnable PromQL: template variables substituted. */
  readonly expr: string;
  /** Grafana runs it as an instant query (a stat or table over `$__range`) rather than a range query. */
  readonly instant: boolean;
}

/** Every panel query of every dashboard, with template variables substituted (see VariableValues). */
export function panelQueries(
  values: VariableValues = {},
  dashboards: Dashboard[] = loadDashboards(),
): PanelQuery[] {
  const out: PanelQuery[] = [];
  for (const d of dashboards) {
    for (const p of d.panels) {
      for (const t of p.targets) {
        out.push({
          file: d.file,
          uid: d.uid,
          panelId: p.id,
          panelTitle: p.title,
          refId: t.refId,
          rawExpr: t.expr,
          expr: substituteVariables(t.expr, values),
          instant: t.instant,
        });
      }
    }
  }
  return out;
}

export interface AlertRule {
  readonly group: string;
  readonly alert: string;
  readonly expr: string;
  /** As written (`2m`), "0s" when the rule has no `for`. */
  readonly for: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

function stringRecord(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof v !== "object" || v === null) return out;
  for (const [k, val] of Object.entries(v)) if (typeof val === "string") out[k] = val;
  return out;
}

/** The alerting rules of grafana/alerts/pmta-ingest.rules.yml (or `file`). */
export function alertRules(file: string = RULES_FILE): AlertRule[] {
  const doc: unknown = parseYaml(readFileSync(file, "utf8"));
  const groups = (doc as { groups?: unknown }).groups;
  if (!Array.isArray(groups)) throw new Error(`${file}: expected a top-level "groups" list`);
  const out: AlertRule[] = [];
  for (const g of groups as { name?: unknown; rules?: unknown }[]) {
    if (!Array.isArray(g.rules)) continue;
    for (const r of g.rules as Record<string, unknown>[]) {
      if (typeof r.alert !== "string") continue;
      out.push({
        group: String(g.name),
        alert: r.alert,
        expr: String(r.expr),
        for: typeof r.for === "string" ? r.for : "0s",
        labels: stringRecord(r.labels),
        annotations: stringRecord(r.annotations),
      });
    }
  }
  return out;
}

export type MetricType = "counter" | "gauge" | "histogram" | "summary";

/** grafana/metric-names.txt: `<name> <type>` per line, `#` comments. */
export function metricNames(file: string = METRIC_NAMES_FILE): ReadonlyMap<string, MetricType> {
  const out = new Map<string, MetricType>();
  readFileSync(file, "utf8")
    .split("\n")
    .forEach((raw, i) => {
      const line = raw.replace(/#.*/, "").trim();
      if (line === "") return;
      const [name, type, extra] = line.split(/\s+/);
      if (
        name === undefined ||
        !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name) ||
        extra !== undefined ||
        (type !== "counter" && type !== "gauge" && type !== "histogram" && type !== "summary")
      ) {
        throw new Error(
          `${file}:${i + 1}: expected "<metric_name> <counter|gauge|histogram|summary>", got "${raw}"`,
        );
      }
      out.set(name, type);
    });
  return out;
}

/** Series names a query may select: the metrics plus `_bucket/_sum/_count` of histograms and summaries. */
export function allowedSeriesNames(names: ReadonlyMap<string, MetricType> = metricNames()): Set<string> {
  const out = new Set<string>();
  for (const [name, type] of names) {
    out.add(name);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) out.add(name + s);
    if (type === "summary") for (const s of ["_sum", "_count"]) out.add(name + s);
  }
  return out;
}

const PROMQL_KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
  "inf",
  "nan",
  "atan2",
]);

/**
 * Metric names selected by a PromQL expression (a lexer, not a parser: strings, label matchers,
 * ranges and grouping labels are blanked out, then every identifier not followed by "(" and not a
 * keyword is a metric name). Also accepts Grafana's `label_values(metric{...}, label)`.
 */
export function metricNamesInExpr(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, " ")
    .replace(/\blabel_values\s*\(([^,)]*),[^)]*\)/g, " $1 ");
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![A-Za-z0-9_:.])[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const rest = s.slice((m.index ?? 0) + word.length);
    if (/^\s*\(/.test(rest)) continue;
    if (PROMQL_KEYWORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}

export interface PromtoolResult {
  readonly status: number;
  /** stdout and stderr together, for assertion messages. */
  readonly output: string;
}

/**
 * Runs promtool. A missing binary throws (the tests must not silently skip): Prometheus 2.42's
 * promtool comes with the Debian package `prometheus`.
 */
export function runPromtool(
  args: readonly string[],
  binary: string = process.env.PROMTOOL ?? "promtool",
): PromtoolResult {
  const r = spawnSync(binary, args, { encoding: "utf8", timeout: 120_000 });
  if (r.error !== undefined) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new Error(
        `promtool not found (tried "${binary}"): install it with \`apt-get install prometheus\` (Debian/Ubuntu) or put Prometheus' promtool on PATH / in $PROMTOOL`,
      );
    }
    throw new Error(`promtool ${args.join(" ")} failed to run: ${String(r.error)}`);
  }
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

/** Recording-rule name for a query, so promtool's error names the dashboard, panel and refId. */
function recordName(q: PanelQuery): string {
  return `dashboard:${q.uid.replace(/[^A-Za-z0-9_]/g, "_")}:panel${q.panelId}_${q.refId.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

/**
 * Checks the PromQL syntax of `queries` with `promtool check rules` (Prometheus 2.42 has no
 * parse-only command): each query becomes a recording rule in a temporary rule file.
 */
export function checkPromqlSyntax(queries: readonly PanelQuery[]): PromtoolResult {
  const dir = mkdtempSync(join(tmpdir(), "pmta-promql-"));
  try {
    const file = join(dir, "dashboard-queries.rules.yml");
    const rules = queries.map((q) => ({ record: recordName(q), expr: q.expr }));
    // JSON is YAML: no quoting rules to get wrong.
    writeFileSync(file, JSON.stringify({ groups: [{ name: "dashboard-queries", rules }] }, null, 2));
    return runPromtool(["check", "rules", file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
