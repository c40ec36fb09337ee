import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { parse as parseYaml } from "yaml";
import {
  alertRules,
  allowedSeriesNames,
  metricNamesInExpr,
  PROMETHEUS_CONFIG,
  RULES_FILE,
  RULES_TEST_FILE,
  runPromtool,
} from "./support/dashboards.js";

/**
 * The Prometheus alert rules (grafana/alerts/pmta-ingest.rules.yml) are checked and unit-tested by
 * promtool itself; promtool missing is a failure, not a skip (`apt-get install prometheus`).
 */

const EXPECTED_ALERTS = [
  "PmtaIngestDown",
  "PmtaIngestOutputFailing",
  "PmtaIngestLagGrowing",
  "PmtaIngestOldestUnackedAge",
  "PmtaIngestDeadLetters",
  "PmtaIngestCheckpointFailing",
  "PmtaIngestCheckpointInvalidated",
  "PmtaIngestLostBytes",
  "PmtaIngestHardBounceSpike",
  "PmtaIngestComplaintSpike",
  "PmtaIngestBlocklisted",
];

const tmp = mkdtempSync(join(tmpdir(), "pmta-rules-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("Prometheus alert rules (grafana/alerts)", () => {
  it("pass promtool check rules", () => {
    const r = runPromtool(["check", "rules", RULES_FILE]);
    assert.equal(r.status, 0, `promtool check rules ${RULES_FILE} failed:\n${r.output}`);
    assert.match(r.output, new RegExp(`SUCCESS: ${EXPECTED_ALERTS.length} rules found`), r.output);
  });

  it("pass their promtool unit tests (promtool test rules)", () => {
    const r = runPromtool(["test", "rules", RULES_TEST_FILE]);
    assert.equal(r.status, 0, `promtool test rules ${RULES_TEST_FILE} failed:\n${r.output}`);
    assert.match(r.output, /SUCCESS/);
  });

  it("are loaded by the example prometheus.yml (promtool check config)", () => {
    const r = runPromtool(["check", "config", PROMETHEUS_CONFIG]);
    assert.equal(r.status, 0, `promtool check config ${PROMETHEUS_CONFIG} failed:\n${r.output}`);
    assert.match(r.output, /SUCCESS: 1 rule files found/);
  });

  it("define exactly the expected alerts in group pmta-ingest", () => {
    const rules = alertRules();
    assert.deepEqual(rules.map((r) => r.alert).sort(), [...EXPECTED_ALERTS].sort());
    for (const r of rules) assert.equal(r.group, "pmta-ingest", `${r.alert}: group ${r.group}`);
    const down = rules.find((r) => r.alert === "PmtaIngestDown");
    assert.equal(down?.for, "2m");
    assert.match(down?.expr ?? "", /absent\(up\{job="pmta-ingest"\}\)/);
  });

  it("give every alert a severity, a summary and a description with a runbook", () => {
    for (const r of alertRules()) {
      assert.ok(
        ["critical", "warning", "info"].includes(r.labels.severity ?? ""),
        `${r.alert}: severity label "${r.labels.severity}" must be critical, warning or info`,
      );
      assert.ok((r.annotations.summary ?? "").length > 10, `${r.alert}: no summary annotation`);
      assert.match(r.annotations.description ?? "", /Runbook:/, `${r.alert}: description has no "Runbook:"`);
    }
    const dead = alertRules().find((r) => r.alert === "PmtaIngestDeadLetters");
    assert.match(dead?.annotations.description ?? "", /<stateDir>\/dead-letter\.ndjson/);
  });

  it("use only metric names from grafana/metric-names.txt", () => {
    const allowed = allowedSeriesNames();
    for (const r of alertRules()) {
      const names = metricNamesInExpr(r.expr);
      assert.ok(names.length > 0, `${r.alert}: no metric found in ${r.expr}`);
      for (const name of names) {
        assert.ok(allowed.has(name), `${r.alert}: unknown metric "${name}" in ${r.expr}`);
      }
    }
  });

  it("are unit-tested both firing and not firing, for every alert", () => {
    interface Case {
      alertname?: unknown;
      exp_alerts?: unknown;
    }
    const doc = parseYaml(readFileSync(RULES_TEST_FILE, "utf8")) as {
      tests?: { alert_rule_test?: Case[] }[];
    };
    const fires = new Set<string>();
    const silent = new Set<string>();
    for (const group of doc.tests ?? []) {
      for (const c of group.alert_rule_test ?? []) {
        const name = String(c.alertname);
        const expected = Array.isArray(c.exp_alerts) ? c.exp_alerts : [];
        (expected.length > 0 ? fires : silent).add(name);
      }
    }
    for (const alert of EXPECTED_ALERTS) {
      assert.ok(fires.has(alert), `${RULES_TEST_FILE}: no case where ${alert} fires`);
      assert.ok(
        silent.has(alert),
        `${RULES_TEST_FILE}: no case where ${alert} must not fire (exp_alerts: [])`,
      );
    }
  });

  it("reports a broken rule with promtool's explanation", () => {
    const bad = join(tmp, "bad.rules.yml");
    writeFileSync(
      bad,
      "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: rate(pmta_ingest_rotations_total[5m]\n",
    );
    const r = runPromtool(["check", "rules", bad]);
    assert.notEqual(r.status, 0, r.output);
    assert.match(r.output, /bad\.rules\.yml/);
    assert.match(r.output, /Broken|parse/);
  });

  it("fails with an install hint, not a skip, when promtool is missing", () => {
    assert.throws(
      () => runPromtool(["--version"], join(tmp, "no-such-promtool")),
      /promtool not found .*apt-get install prometheus/,
    );
  });
});
