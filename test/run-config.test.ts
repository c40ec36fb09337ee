import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError, loadRunConfig } from "../src/config/run-config.js";

const dir = mkdtempSync(join(tmpdir(), "pmta-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** `${NAME}` written without a template-looking string literal. */
const envRef = (name: string): string => `$${"{"}${name}}`;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

async function rejects(text: string, pattern: RegExp, flags: Record<string, unknown> = {}): Promise<void> {
  const path = file(`bad-${Math.random().toString(36).slice(2)}.yaml`, text);
  await assert.rejects(loadRunConfig({ file: path, flags, env: {} }), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.message, pattern);
    return true;
  });
}

describe("run configuration", () => {
  const state = join(dir, "state");

  it("reads a full file and fills defaults", async () => {
    const path = file(
      "full.yaml",
      `inputs:
  - name: bounces
    path: /var/log/pmta/bounces-*.csv
    archive: /var/log/pmta/accounting/bounces
    types: [b, rb]
  - path: /var/log/pmta/fbl-*.csv
stateDir: ${state}
startAt: 24h
batch: { maxEvents: 100, maxWait: 250ms }
inFlight: { maxBytes: 8MiB }
`,
    );
    const c = await loadRunConfig({ file: path, env: {}, hostname: "mta1" });
    assert.equal(c.inputs.length, 2);
    assert.equal(c.inputs[0]?.dir, "/var/log/pmta");
    assert.ok(c.inputs[0]?.pattern.test("bounces-2026-11-23-0001.csv"));
    assert.ok(!c.inputs[0]?.pattern.test("fbl-2026-11-23-0001.csv"));
    assert.deepEqual(c.inputs[0]?.types, ["b", "rb"]);
    assert.equal(c.inputs[1]?.name, "fbl");
    assert.deepEqual(c.startAt, { kind: "max-age", ms: 24 * 3600 * 1000 });
    assert.deepEqual(c.batch, { maxEvents: 100, maxBytes: 1024 * 1024, maxWaitMs: 250 });
    assert.equal(c.inFlight.maxBytes, 8 * 1024 * 1024);
    assert.deepEqual(c.output, {
      kind: "file",
      path: join(state, "events.ndjson"),
      maxBytes: 256 * 1024 * 1024,
      keep: 5,
    });
    assert.equal(c.host, "mta1");
    assert.equal(c.sealAfterMs, 60_000);
    assert.equal(c.eventFields, "all");
    assert.equal(c.checkpointFormat, 2);
    assert.equal(c.deadLetterPath, join(state, "dead-letter.ndjson"));
  });

  it("lets flags override the file, arrays by index, and expands environment references", async () => {
    const path = file(
      "base.yaml",
      `inputs: [{ path: "\${LOGS:-/var/log/pmta}/bounces-*.csv" }]\nstateDir: ${state}\n`,
    );
    const c = await loadRunConfig({
      file: path,
      flags: {
        batch: { maxEvents: 7 },
        inputs: { "0": { archive: "/archive" } },
        host: envRef("HOSTNAME_OVERRIDE"),
      },
      env: { HOSTNAME_OVERRIDE: "edge-7", LOGS: "/srv/pmta" },
    });
    assert.equal(c.batch.maxEvents, 7);
    assert.equal(c.inputs[0]?.path, "/srv/pmta/bounces-*.csv");
    assert.equal(c.inputs[0]?.archive, "/archive");
    assert.equal(c.host, "edge-7");
  });

  it("resolves relative paths against the config file's directory", async () => {
    mkdirSync(join(dir, "etc"), { recursive: true });
    const path = file("etc/rel.yaml", "inputs: [{ path: logs/bounces-*.csv }]\nstateDir: ../state-rel\n");
    const c = await loadRunConfig({ file: path, env: {} });
    assert.equal(c.inputs[0]?.dir, join(dir, "etc", "logs"));
    assert.equal(c.stateDir, join(dir, "state-rel"));
  });

  it("names the key and the fix for every kind of mistake", async () => {
    const base = `stateDir: ${state}\n`;
    const input = "inputs: [{ path: /x/bounces-*.csv }]\n";
    await rejects(
      `${base}${input}batch: { maxEventz: 5 }\n`,
      /batch\.maxEventz: unknown key \(did you mean "batch\.maxEvents"\?\)/,
    );
    await rejects(`${base}${input}stateDri: /tmp\n`, /stateDri: unknown key \(did you mean "stateDir"\?\)/);
    await rejects(
      `${base}${input}batch: { maxEvents: -3 }\n`,
      /batch\.maxEvents: expected a positive whole number/,
    );
    await rejects(`${base}${input}sealAfter: soon\n`, /sealAfter: .*write e\.g\. 500ms/);
    await rejects(`${base}${input}archiveRecheck: hourly\n`, /archiveRecheck: .*write e\.g\. 500ms/);
    await rejects(`${base}${input}eventFields: some\n`, /eventFields: expected all or unmapped, got "some"/);
    await rejects(`${base}${input}checkpointFormat: 3\n`, /checkpointFormat: expected 1 or 2, got 3/);
    await rejects(`${base}${input}checkpointFormat: "2"\n`, /checkpointFormat: expected 1 or 2, got "2"/);
    await rejects(
      `${base}${input}eventFields: unmapped\noutput: { http: { url: "http://127.0.0.1:1/x", format: octeth } }\n`,
      /eventFields: format octeth posts every column .*set it to all/,
    );
    await rejects(`${base}${input}maxRecordBytes: lots\n`, /maxRecordBytes: .*write e\.g\. 64KiB/);
    await rejects(
      `${base}inputs: [{ path: /x/*/bounces-*.csv }]\n`,
      /inputs\[0\]\.path: wildcards are allowed in the file name only/,
    );
    await rejects(
      `${base}inputs: [{ path: /x/a-*.csv, name: a }, { path: /y/a-*.csv, name: a }]\n`,
      /inputs\[1\]\.name: "a" is used by another input/,
    );
    await rejects(base, /inputs: at least one input is needed/);
    await rejects(
      `${base}${input}output: { file: { path: /tmp/x }, stdout: {} }\n`,
      /output: give exactly one of file, stdout, http/,
    );
    await rejects(
      `${base}${input}rules: /nonexistent/rules.txt\n`,
      /rules: cannot read \/nonexistent\/rules\.txt \(ENOENT\)/,
    );
    await rejects(
      `stateDir: ${file("plain-file", "x")}/sub\n${input}`,
      /stateDir: .* is not a writable directory \(ENOTDIR\)/,
    );
    await rejects(
      `${base}${input}pmtaConfig: /etc/pmta/config\n`,
      /pmtaConfig: give either pmtaConfig or inputs/,
    );
    await rejects(`${base}${input}host: \${NOPE}\n`, /host: environment variable NOPE is not set/);
    await rejects(`${base}${input}types: [b\n`, /:\d+:\d+: not valid YAML/);
    await rejects(
      `${base}inputs: [{ path: /x/b-*.csv, types: [b, x] }]\n`,
      /inputs\[0\]\.types: "x" is not a record type/,
    );
    await rejects(
      `${base}inputs: [{ path: /x/b-*.csv, fallbackColumns: [rcpt, type] }]\n`,
      /fallbackColumns: must start with "type"/,
    );
    await assert.rejects(
      loadRunConfig({ file: join(dir, "missing.yaml"), env: {} }),
      /cannot read the config file \(ENOENT\)/,
    );
  });
});

describe("metrics configuration", () => {
  const base = `inputs: [{ path: /var/log/pmta/bounces-*.csv }]\nstateDir: ${join(dir, "state-m")}\n`;

  it("takes host:port, [v6]:port and off; caps default to 50", async () => {
    for (const [listen, want] of [
      ["127.0.0.1:9464", "127.0.0.1:9464"],
      ['"[::1]:9464"', "[::1]:9464"],
      ["off", "off"],
    ] as const) {
      const c = await loadRunConfig({
        file: file(`m-${want.length}.yaml`, `${base}metrics: { listen: ${listen} }\n`),
        env: {},
      });
      assert.equal(c.metrics.listen, want);
      assert.equal(c.metrics.maxVmtaLabels, 50);
    }
    const c = await loadRunConfig({
      file: file("m-caps.yaml", `${base}metrics: { maxVmtaLabels: 200, maxJobLabels: 10 }\n`),
      env: {},
    });
    assert.deepEqual(c.metrics, { listen: "127.0.0.1:9464", maxVmtaLabels: 200, maxJobLabels: 10 });
  });

  it("rejects a bad listen address or cap with the key named", async () => {
    await rejects(`${base}metrics: { listen: 9464 }\n`, /metrics\.listen: expected host:port .* got "9464"/);
    await rejects(`${base}metrics: { listen: "localhost:99999" }\n`, /metrics\.listen: expected host:port/);
    await rejects(
      `${base}metrics: { maxVmtaLabels: -1 }\n`,
      /metrics\.maxVmtaLabels: expected a positive whole number/,
    );
    await rejects(`${base}metrics: { listn: x }\n`, /metrics/);
  });
});

describe("pmtaConfig: inputs from PowerMTA's <acct-file> blocks", () => {
  const state = join(dir, "state-p");
  const pmtaDir = join(dir, "etc-pmta");
  mkdirSync(pmtaDir, { recursive: true });
  const acct = readFileSync(new URL("../../pmta/acct-bounces.conf", import.meta.url), "utf8");
  const fbl = readFileSync(new URL("../../pmta/acct-fbl.conf", import.meta.url), "utf8");

  it("turns the shipped bounces and fbl blocks into two inputs with their archives and types", async () => {
    writeFileSync(join(pmtaDir, "config"), `# main config\nhttp-mgmt-port 8080\n${acct}\n${fbl}\n`);
    const c = await loadRunConfig({
      file: file("p-ok.yaml", `pmtaConfig: ${join(pmtaDir, "config")}\nstateDir: ${state}\n`),
      env: {},
    });
    const byName = new Map(c.inputs.map((i) => [i.name, i]));
    assert.deepEqual([...byName.keys()].sort(), ["bounces", "fbl"]);
    assert.equal(byName.get("bounces")?.path, "/var/log/pmta/bounces-*.csv");
    assert.equal(byName.get("bounces")?.archive, "/var/log/pmta/archive");
    assert.deepEqual(byName.get("bounces")?.types, ["b", "rb"]);
    assert.deepEqual(byName.get("fbl")?.types, ["f"]);
    assert.ok(byName.get("bounces")?.pattern.test("bounces-2026-11-23-0001.csv"));
  });

  it("stops start-up on an error in the PowerMTA config, naming its file and line", async () => {
    writeFileSync(join(pmtaDir, "broken"), `<acct-file /var/log/pmta/bounces.csv>\n  records b\n`);
    await rejects(
      `pmtaConfig: ${join(pmtaDir, "broken")}\nstateDir: ${state}\n`,
      /pmtaConfig: .*broken:1: .*acct-file/,
    );
  });

  it("refuses pmtaConfig together with inputs, a config with nothing for us, and a missing file", async () => {
    await rejects(
      `pmtaConfig: ${join(pmtaDir, "config")}\ninputs: [{ path: /x/b-*.csv }]\nstateDir: ${state}\n`,
      /give either pmtaConfig or inputs/,
    );
    writeFileSync(
      join(pmtaDir, "deliveries-only"),
      "<acct-file /var/log/pmta/acct.csv>\n  records d\n</acct-file>\n",
    );
    await rejects(`pmtaConfig: ${join(pmtaDir, "deliveries-only")}\nstateDir: ${state}\n`, /pmtaConfig: /);
    await rejects(`pmtaConfig: ${join(pmtaDir, "nope")}\nstateDir: ${state}\n`, /pmtaConfig: .*nope/);
  });
});
