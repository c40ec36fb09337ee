import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  allowedSeriesNames,
  BUILTIN_VARIABLES,
  checkPromqlSyntax,
  type Dashboard,
  GRAFANA_DIR,
  type GridPos,
  type Json,
  jsonErrorOffset,
  loadDashboards,
  metricNamesInExpr,
  type PanelQuery,
  panelQueries,
  substituteVariables,
  variablesIn,
} from "./support/dashboards.js";

/**
 * Structural checks of every dashboard in grafana/dashboards: what Grafana needs to import and
 * provision them, and what keeps their queries honest (known metric names, valid PromQL, defined
 * variables, the instance filter everywhere). The queries are not run here; panelQueries() exists so
 * an end-to-end test can run them against a real Prometheus.
 */

const dashboards = loadDashboards();
const allowed = allowedSeriesNames();
// `${datasource}` (escaped: a Grafana variable, not a JS placeholder).
const DS_REF = { type: "prometheus", uid: `\${datasource}` };

function where(d: Dashboard, panelId?: number, title?: string): string {
  return panelId === undefined ? d.file : `${d.file} panel ${panelId} "${title ?? ""}"`;
}

function overlaps(a: GridPos, b: GridPos): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

const tmp = mkdtempSync(join(tmpdir(), "pmta-dash-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("Grafana dashboards (grafana/dashboards/*.json)", () => {
  it("contains the pipeline and deliverability dashboards with distinct uids and titles", () => {
    const uids = dashboards.map((d) => d.uid);
    assert.ok(uids.includes("pmta-ingest-pipeline"), `uids: ${uids.join(", ")}`);
    assert.ok(uids.includes("pmta-ingest-deliverability"), `uids: ${uids.join(", ")}`);
    assert.equal(new Set(uids).size, uids.length, `duplicate uid across dashboards: ${uids.join(", ")}`);
    const titles = dashboards.map((d) => d.title);
    assert.equal(new Set(titles).size, titles.length, `duplicate title: ${titles.join(", ")}`);
  });

  it("are importable through the UI and by file provisioning", () => {
    for (const d of dashboards) {
      const j = d.json;
      assert.match(d.uid, /^[A-Za-z0-9_-]{1,40}$/, `${d.file}: uid must be 1-40 characters [A-Za-z0-9_-]`);
      assert.ok(d.title.length > 0, `${d.file}: no title`);
      assert.ok(
        typeof j.schemaVersion === "number" && j.schemaVersion >= 39,
        `${d.file}: schemaVersion < 39`,
      );
      // A fixed numeric id would clash with another dashboard's database id on import.
      assert.equal(j.id, null, `${d.file}: "id" must be null`);
      const inputs = Array.isArray(j.__inputs) ? j.__inputs : [];
      assert.deepEqual(
        inputs.map((i) =>
          typeof i === "object" && i !== null && !Array.isArray(i) ? [i.name, i.type, i.pluginId] : i,
        ),
        [["DS_PROMETHEUS", "datasource", "prometheus"]],
        `${d.file}: __inputs must declare exactly the DS_PROMETHEUS datasource input`,
      );
      const ds = d.variables.find((v) => v.name === "datasource");
      assert.ok(ds, `${d.file}: no "datasource" template variable`);
      assert.equal(ds.type, "datasource", `${d.file}: variable datasource must be of type datasource`);
      assert.equal(ds.query, "prometheus", `${d.file}: variable datasource must list prometheus datasources`);
      // ${DS_PROMETHEUS} can only sit where an unresolved literal is harmless (see the README part):
      // in __inputs and as the datasource variable's initial value; never in a panel or query.
      const text =
        JSON.stringify(j.panels) + JSON.stringify(d.variables.filter((v) => v.name !== "datasource"));
      assert.ok(!text.includes("DS_PROMETHEUS"), `${d.file}: a panel or variable references DS_PROMETHEUS`);
    }
  });

  it("have unique panel ids", () => {
    for (const d of dashboards) {
      const seen = new Map<number, string>();
      for (const p of d.panels) {
        assert.ok(
          Number.isInteger(p.id) && p.id > 0,
          `${where(d, p.id, p.title)}: id must be a positive integer`,
        );
        assert.ok(
          !seen.has(p.id),
          `${d.file}: panel id ${p.id} used by "${seen.get(p.id)}" and "${p.title}"`,
        );
        seen.set(p.id, p.title);
      }
    }
  });

  it("lay panels out on the 24-column grid without overlaps", () => {
    for (const d of dashboards) {
      const placed: { id: number; title: string; pos: GridPos }[] = [];
      for (const p of d.panels) {
        if (p.nested) continue; // inside a collapsed row: positions are relative to the row
        const pos = p.gridPos;
        assert.ok(pos, `${where(d, p.id, p.title)}: no gridPos`);
        for (const k of ["x", "y", "w", "h"] as const) {
          assert.ok(
            Number.isInteger(pos[k]) && pos[k] >= 0,
            `${where(d, p.id, p.title)}: gridPos.${k} = ${pos[k]}`,
          );
        }
        assert.ok(pos.w >= 1 && pos.w <= 24, `${where(d, p.id, p.title)}: gridPos.w ${pos.w} not in 1..24`);
        assert.ok(pos.h >= 1, `${where(d, p.id, p.title)}: gridPos.h ${pos.h} < 1`);
        assert.ok(pos.x + pos.w <= 24, `${where(d, p.id, p.title)}: x + w = ${pos.x + pos.w} > 24`);
        for (const other of placed) {
          assert.ok(
            !overlaps(pos, other.pos),
            `${d.file}: panels ${other.id} "${other.title}" and ${p.id} "${p.title}" overlap: ${JSON.stringify(other.pos)} / ${JSON.stringify(pos)}`,
          );
        }
        placed.push({ id: p.id, title: p.title, pos });
      }
    }
  });

  it("point every panel, target and query variable at the $datasource variable", () => {
    for (const d of dashboards) {
      for (const p of d.panels) {
        if (p.type === "row") continue;
        assert.deepEqual(p.datasource, DS_REF, `${where(d, p.id, p.title)}: panel datasource`);
        for (const t of p.targets) {
          assert.deepEqual(t.datasource, DS_REF, `${where(d, p.id, p.title)} target ${t.refId}: datasource`);
        }
      }
      for (const v of d.variables.filter((x) => x.type === "query")) {
        assert.deepEqual(v.datasource, DS_REF, `${d.file}: variable ${v.name} datasource`);
      }
    }
  });

  it("give every panel a title, a description and targets with a refId and an expr", () => {
    for (const d of dashboards) {
      for (const p of d.panels) {
        if (p.type === "row") continue;
        assert.ok(p.title.length > 0, `${where(d, p.id)}: no title`);
        assert.ok(p.description.length >= 40, `${where(d, p.id, p.title)}: description missing or too short`);
        assert.ok(p.targets.length > 0, `${where(d, p.id, p.title)}: no targets`);
        const refIds = p.targets.map((t) => t.refId);
        assert.equal(new Set(refIds).size, refIds.length, `${where(d, p.id, p.title)}: duplicate refId`);
        for (const t of p.targets) {
          assert.match(t.refId, /^[A-Z]+$/, `${where(d, p.id, p.title)}: refId "${t.refId}"`);
          assert.ok(t.expr.trim().length > 0, `${where(d, p.id, p.title)} target ${t.refId}: empty expr`);
        }
      }
    }
  });

  it("set a unit on every time series and stat panel", () => {
    for (const d of dashboards) {
      for (const raw of flatPanels(d)) {
        if (raw.type !== "timeseries" && raw.type !== "stat") continue;
        const unit = getPath(raw, ["fieldConfig", "defaults", "unit"]);
        const textOnly = getPath(raw, ["options", "textMode"]) === "name";
        const mapped = (getPath(raw, ["fieldConfig", "defaults", "mappings"]) as Json[] | undefined)?.length;
        if (textOnly || mapped) continue; // shows a label or UP/DOWN, not a number
        if (
          getPath(raw, ["options", "textMode"]) === "value" &&
          getPath(raw, ["fieldConfig", "defaults", "decimals"]) === 0
        )
          continue; // a plain count
        assert.ok(
          typeof unit === "string" && unit.length > 0,
          `${d.file} panel ${raw.id} "${raw.title}": no unit`,
        );
      }
    }
  });

  it("use only metric names from grafana/metric-names.txt", () => {
    for (const d of dashboards) {
      for (const p of d.panels) {
        for (const t of p.targets) {
          for (const name of metricNamesInExpr(t.expr)) {
            assert.ok(
              allowed.has(name),
              `${where(d, p.id, p.title)} target ${t.refId}: unknown metric "${name}" in ${t.expr} (add it to grafana/metric-names.txt only if the daemon exports it)`,
            );
          }
        }
      }
      for (const v of d.variables.filter((x) => x.type === "query")) {
        const names = metricNamesInExpr(v.query);
        assert.ok(names.length > 0, `${d.file}: variable ${v.name} query "${v.query}" names no metric`);
        for (const name of names)
          assert.ok(allowed.has(name), `${d.file}: variable ${v.name}: unknown metric ${name}`);
      }
    }
  });

  it("filter every metric selector by $instance", () => {
    for (const d of dashboards) {
      for (const p of d.panels) {
        for (const t of p.targets) {
          for (const name of metricNamesInExpr(t.expr)) {
            const selector = new RegExp(`(?<![A-Za-z0-9_:])${name}(?![A-Za-z0-9_:])\\s*(\\{[^}]*\\})?`, "g");
            for (const m of t.expr.matchAll(selector)) {
              assert.ok(
                m[1]?.includes('instance=~"$instance"'),
                `${where(d, p.id, p.title)} target ${t.refId}: ${name} is not filtered by instance=~"$instance"`,
              );
            }
          }
        }
      }
    }
  });

  it("use $__rate_interval (or $__range) as the range of rate(), irate() and increase()", () => {
    for (const d of dashboards) {
      for (const p of d.panels) {
        for (const t of p.targets) {
          for (const m of t.expr.matchAll(/\b(rate|irate|increase)\((?:[^()[]|\([^()]*\))*\[([^\]]+)\]/g)) {
            assert.ok(
              m[2] === "$__rate_interval" || m[2] === "$__range",
              `${where(d, p.id, p.title)} target ${t.refId}: ${m[1]}() over [${m[2]}]; use [$__rate_interval] (or [$__range] in a stat)`,
            );
          }
        }
      }
    }
  });

  it("define every template variable they reference", () => {
    for (const d of dashboards) {
      const defined = new Set([...d.variables.map((v) => v.name), ...BUILTIN_VARIABLES]);
      const texts: [string, string][] = [];
      for (const p of d.panels) {
        texts.push([`${where(d, p.id, p.title)} datasource`, JSON.stringify(p.datasource ?? null)]);
        for (const t of p.targets) texts.push([`${where(d, p.id, p.title)} target ${t.refId}`, t.expr]);
      }
      for (const v of d.variables)
        if (v.type === "query") texts.push([`${d.file} variable ${v.name}`, v.query]);
      for (const [at, text] of texts) {
        for (const name of variablesIn(text)) {
          assert.ok(defined.has(name), `${at}: references $${name}, which the dashboard does not define`);
        }
      }
    }
  });

  it("offer instance (both), provider and vmta (deliverability) as multi-value variables with All", () => {
    const expected: Record<string, string[]> = {
      "pmta-ingest-pipeline": ["instance"],
      "pmta-ingest-deliverability": ["instance", "provider", "vmta"],
    };
    for (const d of dashboards) {
      for (const name of expected[d.uid] ?? []) {
        const v = d.variables.find((x) => x.name === name);
        assert.ok(v, `${d.file}: no $${name} variable`);
        assert.equal(v.type, "query", `${d.file}: $${name} must be a query variable`);
        assert.ok(v.multi && v.includeAll, `${d.file}: $${name} must be multi-value with All`);
      }
    }
    const pipeline = dashboards.find((d) => d.uid === "pmta-ingest-pipeline");
    assert.equal(
      pipeline?.variables.find((v) => v.name === "instance")?.query,
      "label_values(pmta_ingest_build_info, instance)",
    );
  });

  it("have valid PromQL (promtool check rules on every query, variables substituted)", () => {
    const queries = panelQueries({ instance: "127.0.0.1:9464" });
    assert.ok(queries.length >= 40, `only ${queries.length} queries found`);
    const r = checkPromqlSyntax(queries);
    assert.equal(r.status, 0, `promtool rejected a dashboard query:\n${r.output}`);
    assert.match(r.output, new RegExp(`SUCCESS: ${queries.length} rules found`));
  });

  it("match grafana/build-dashboards.mjs (edit the script, then regenerate)", () => {
    const r = spawnSync(process.execPath, [join(GRAFANA_DIR, "build-dashboards.mjs"), "--check"], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, `${r.stderr}${r.stdout}`);
  });
});

describe("dashboard test support (test/support/dashboards.ts)", () => {
  it("substitutes template variables into runnable PromQL", () => {
    const expr = `sum by (input) (rate(pmta_ingest_records_read_total{instance=~"$instance", vmta=~"\${vmta}"}[$__rate_interval]))`;
    assert.equal(
      substituteVariables(expr, { instance: "a:9464" }),
      'sum by (input) (rate(pmta_ingest_records_read_total{instance=~"a:9464", vmta=~".*"}[1m]))',
    );
    assert.equal(substituteVariables(`x[$__range] $__range_s \${__interval:raw}`), "x[5m] 300 30s");
    assert.throws(
      () => substituteVariables('up{instance=~"$host"}'),
      /no value for template variable \$host/,
    );
    const all: PanelQuery[] = panelQueries();
    assert.ok(
      all.every((q) => !q.expr.includes("$")),
      "a substituted query still contains $",
    );
  });

  it("finds metric names in PromQL, not label names, functions, keywords or durations", () => {
    assert.deepEqual(
      metricNamesInExpr(
        'histogram_quantile(0.99, sum by (output, le) (rate(a_bucket{x="rate(b)"}[5m]))) / on (instance) group_left (version) c offset 10m > 1e6 and d',
      ),
      ["a_bucket", "c", "d"],
    );
    assert.deepEqual(
      metricNamesInExpr('label_values(pmta_ingest_mail_events_total{instance=~"$instance"}, vmta)'),
      ["pmta_ingest_mail_events_total"],
    );
    assert.deepEqual(metricNamesInExpr("time() - max by (instance) (e) * 60"), ["e"]);
  });

  it("reports a broken dashboard file by name and line", () => {
    const dir = join(tmp, "broken");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "bad.json"), '{\n  "uid": "x",\n  "panels": [,]\n}\n');
    assert.throws(
      () => loadDashboards(dir),
      /bad\.json: not valid JSON at line 3, column 14 .*build-dashboards\.mjs/s,
    );
    assert.equal(jsonErrorOffset('{"a": [1, 2]}'), -1);
    assert.equal(jsonErrorOffset('{"a": 1,}'), 8);
    assert.equal(jsonErrorOffset('{"a": "x\\"y"}'), -1);
    assert.equal(jsonErrorOffset("[1] 2"), 4);
  });

  it("makes promtool name the dashboard panel whose query is invalid", () => {
    const bad: PanelQuery = {
      file: "x.json",
      uid: "pmta-ingest-pipeline",
      panelId: 7,
      panelTitle: "typo",
      refId: "B",
      rawExpr: "sum(rate(up[1m])",
      expr: "sum(rate(up[1m])",
      instant: false,
    };
    const r = checkPromqlSyntax([bad]);
    assert.notEqual(r.status, 0, r.output);
    assert.match(r.output, /dashboard:pmta_ingest_pipeline:panel7_B/);
  });
});

// Raw panel objects (for options the typed view does not carry).
function flatPanels(d: Dashboard): { [key: string]: Json }[] {
  const out: { [key: string]: Json }[] = [];
  const panels = Array.isArray(d.json.panels) ? d.json.panels : [];
  for (const p of panels) {
    if (typeof p !== "object" || p === null || Array.isArray(p)) continue;
    out.push(p);
    const inner = Array.isArray(p.panels) ? p.panels : [];
    for (const q of inner) if (typeof q === "object" && q !== null && !Array.isArray(q)) out.push(q);
  }
  return out;
}

function getPath(obj: Json | undefined, path: string[]): Json | undefined {
  let cur: Json | undefined = obj;
  for (const k of path) {
    if (typeof cur !== "object" || cur === null || Array.isArray(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}
