import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  ConfigError,
  editDistance,
  type LoadOptions,
  loadRunConfig,
  RUN_CONFIG_KEYS,
} from "../src/config/run-config.js";
import { formatDuration, formatSize, parseDuration, parseSize, UnitError } from "../src/config/units.js";

const root = mkdtempSync(join(tmpdir(), "pmta-cfg-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** `${NAME}` / `${NAME:-dflt}` without template-looking string literals (Biome flags those). */
const ref = (name: string, dflt?: string): string =>
  `$${"{"}${name}${dflt === undefined ? "" : `:-${dflt}`}}`;

let seq = 0;
/** A fresh directory with config.yaml holding `text`; returns the file's path. */
function configFile(text: string, name = "config.yaml"): string {
  const dir = join(root, `case-${++seq}`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const state = join(root, "state");
const INPUT = "inputs:\n  - path: /var/log/pmta/bounces-*.csv\n";

/** Loads and expects a ConfigError whose message matches every pattern; returns the message. */
async function fails(options: LoadOptions, ...patterns: RegExp[]): Promise<string> {
  let message = "";
  await assert.rejects(loadRunConfig({ env: {}, ...options }), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    message = err.message;
    return true;
  });
  assert.ok(!message.includes("\n"), `one line: ${message}`);
  for (const p of patterns) assert.match(message, p);
  return message;
}

/** A file with a valid stateDir and one input plus `extra`; expects the error patterns. */
async function fileFails(extra: string, ...patterns: RegExp[]): Promise<string> {
  return fails({ file: configFile(`stateDir: ${state}\n${INPUT}${extra}`) }, ...patterns);
}

describe("units", () => {
  it("parses durations", () => {
    const table: [unknown, number][] = [
      ["500ms", 500],
      ["10s", 10_000],
      ["5m", 300_000],
      ["24h", 86_400_000],
      ["7d", 604_800_000],
      ["1h30m", 5_400_000],
      ["1h 30m", 5_400_000],
      ["1.5s", 1500],
      [" 10 s ", 10_000],
      ["10S", 10_000],
      [250, 250],
      [0, 0],
      ["750", 750],
    ];
    for (const [input, ms] of table) assert.equal(parseDuration(input), ms, JSON.stringify(input));
  });

  it("rejects what is not a duration, with the forms to write", () => {
    for (const bad of [
      "soon",
      "",
      "-5s",
      "5x",
      "5 minutes",
      "1e3s",
      "s",
      "5s5",
      1.5,
      -1,
      Number.NaN,
      true,
      null,
      [],
      {},
    ]) {
      assert.throws(
        () => parseDuration(bad),
        (err: unknown) =>
          err instanceof UnitError && /write e\.g\. 500ms, 10s, 5m, 24h, 7d/.test(err.message),
        JSON.stringify(bad),
      );
    }
    assert.throws(() => parseDuration("99999999999999999d"), /too large/);
  });

  it("parses sizes", () => {
    const table: [unknown, number][] = [
      ["1MiB", 1024 * 1024],
      ["512KiB", 512 * 1024],
      ["1MB", 1_000_000],
      ["64k", 65_536],
      ["64K", 65_536],
      ["64kB", 64_000],
      ["2GiB", 2 * 1024 ** 3],
      ["1.5MiB", 1_572_864],
      ["10B", 10],
      ["1 MiB", 1024 * 1024],
      ["100", 100],
      [4096, 4096],
      [0, 0],
    ];
    for (const [input, bytes] of table) assert.equal(parseSize(input), bytes, JSON.stringify(input));
  });

  it("rejects what is not a size, with the forms to write", () => {
    for (const bad of ["lots", "1XB", "-1", "1 MiBs", "MiB", "", 1.5, -4, false, {}, ["1MiB"]]) {
      assert.throws(
        () => parseSize(bad),
        (err: unknown) => err instanceof UnitError && /write e\.g\. 64KiB, 1MiB/.test(err.message),
        JSON.stringify(bad),
      );
    }
    assert.throws(() => parseSize("1XB"), /unknown size unit "XB"/);
  });

  it("formats defaults the way they are documented", () => {
    assert.equal(formatSize(256 * 1024 * 1024), "256MiB");
    assert.equal(formatSize(1500), "1500B");
    assert.equal(formatDuration(60_000), "60s");
    assert.equal(formatDuration(500), "500ms");
    assert.equal(formatDuration(7 * 86_400_000), "7d");
    assert.equal(formatDuration(5_400_000), "90m");
  });
});

describe("loadRunConfig", () => {
  it("reads every field of a full file", async () => {
    const rules = configFile("550 5.1.1 ==> Hard\n", "rules.txt");
    const file = configFile(`# a complete configuration
inputs:
  - name: bounces
    path: /var/log/pmta/bounces-*.csv
    archive: /var/log/pmta/accounting/bounces
    types: [b, rb]
    fallbackColumns: [type, timeLogged, orig, rcpt, dsnStatus, dsnDiag]
  - path: /var/log/pmta/fbl-????.csv
    types: f
stateDir: ${state}
startAt: 24h
output:
  file: { path: ${join(root, "out", "events.ndjson")}, maxBytes: 64MiB, keep: 3 }
host: mta1.example.com
rules: ${rules}
maxRecordBytes: 512KiB
batch: { maxEvents: 100, maxBytes: 2MiB, maxWait: 250ms }
inFlight: { maxEvents: 5000, maxBytes: 8MiB }
rescanInterval: 2s
sealAfter: 5m
checkpointInterval: 3s
checkpointRetention: 14d
drainTimeout: 30s
maxOpenFiles: 128
deadLetter: { path: /var/lib/dl.ndjson }
metrics: { listen: "[::1]:9100" }
`);
    const c = await loadRunConfig({ file, env: {}, hostname: "ignored" });
    assert.deepEqual(c, {
      source: file,
      inputs: [
        {
          name: "bounces",
          path: "/var/log/pmta/bounces-*.csv",
          dir: "/var/log/pmta",
          pattern: /^bounces-.*\.csv$/s,
          archive: "/var/log/pmta/accounting/bounces",
          types: ["b", "rb"],
          fallbackColumns: ["type", "timeLogged", "orig", "rcpt", "dsnStatus", "dsnDiag"],
        },
        {
          name: "fbl",
          path: "/var/log/pmta/fbl-????.csv",
          dir: "/var/log/pmta",
          pattern: /^fbl-....\.csv$/s,
          types: ["f"],
        },
      ],
      stateDir: state,
      startAt: { kind: "max-age", ms: 86_400_000 },
      output: { kind: "file", path: join(root, "out", "events.ndjson"), maxBytes: 64 * 1024 * 1024, keep: 3 },
      host: "mta1.example.com",
      rules,
      maxRecordBytes: 512 * 1024,
      batch: { maxEvents: 100, maxBytes: 2 * 1024 * 1024, maxWaitMs: 250 },
      inFlight: { maxEvents: 5000, maxBytes: 8 * 1024 * 1024 },
      rescanIntervalMs: 2000,
      sealAfterMs: 300_000,
      checkpointIntervalMs: 3000,
      checkpointRetentionMs: 14 * 86_400_000,
      drainTimeoutMs: 30_000,
      maxOpenFiles: 128,
      deadLetterPath: "/var/lib/dl.ndjson",
      metrics: { listen: "[::1]:9100" },
    });
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.inputs[0]) && Object.isFrozen(c.batch));
    // The write probe leaves nothing behind.
    assert.deepEqual(readdirSync(state), []);
  });

  it("fills every default from a minimal file", async () => {
    const file = configFile(INPUT);
    // stateDir comes from a flag: its default (/var/lib/pmta-ingest) would be created on this machine.
    const c = await loadRunConfig({ file, flags: { stateDir: state }, env: {}, hostname: "mta9" });
    const { inputs, ...rest } = c;
    assert.equal(inputs.length, 1);
    assert.equal(inputs[0]?.name, "bounces");
    assert.equal(inputs[0]?.archive, undefined);
    assert.equal(inputs[0]?.types, undefined);
    assert.equal(inputs[0]?.fallbackColumns, undefined);
    assert.deepEqual(rest, {
      source: file,
      stateDir: state,
      startAt: { kind: "beginning" },
      output: { kind: "file", path: join(state, "events.ndjson"), maxBytes: 256 * 1024 * 1024, keep: 5 },
      host: "mta9",
      maxRecordBytes: 1024 * 1024,
      batch: { maxEvents: 500, maxBytes: 1024 * 1024, maxWaitMs: 1000 },
      inFlight: { maxEvents: 10_000, maxBytes: 16 * 1024 * 1024 },
      rescanIntervalMs: 500,
      sealAfterMs: 60_000,
      checkpointIntervalMs: 1000,
      checkpointRetentionMs: 7 * 86_400_000,
      drainTimeoutMs: 10_000,
      maxOpenFiles: 64,
      deadLetterPath: join(state, "dead-letter.ndjson"),
      metrics: { listen: "127.0.0.1:9464" },
    });
    assert.equal(RUN_CONFIG_KEYS.find((k) => k.key === "stateDir")?.default, "/var/lib/pmta-ingest");
  });

  it("derives names and anchored file-name patterns from the path", async () => {
    const file = configFile(`stateDir: ${state}
inputs:
  - path: /v/bounces-*.csv
  - path: /v/*-fbl.csv
  - path: /v/acct.csv
  - path: /v/pmta2/*.csv
  - path: /v/x/rb_*
`);
    const c = await loadRunConfig({ file, env: {} });
    assert.deepEqual(
      c.inputs.map((i) => i.name),
      ["bounces", "fbl", "acct", "pmta2", "rb"],
    );
    const [bounces, , acct, any] = c.inputs;
    assert.ok(bounces?.pattern.test("bounces-2024-05-01-0000.csv"));
    assert.ok(!bounces?.pattern.test("old-bounces-2024.csv"));
    assert.ok(!bounces?.pattern.test("bounces-2024.csv.gz"));
    assert.ok(acct?.pattern.test("acct.csv") && !acct.pattern.test("acctXcsv"));
    // Like the shell, a leading * does not match dot files (editor and rsync temporaries).
    assert.ok(any?.pattern.test("b.csv") && !any.pattern.test(".b.csv.swp.csv"));
  });

  it("lets flags override the file: nested keys, list entries by index, the output kind", async () => {
    const file = configFile(`stateDir: /nonexistent-will-be-overridden
inputs:
  - path: /v/bounces-*.csv
  - path: /v/fbl-*.csv
    archive: /v/old
batch: { maxEvents: 10, maxBytes: 64KiB }
output: { file: { path: /tmp/x.ndjson } }
`);
    const c = await loadRunConfig({
      file,
      env: {},
      flags: {
        _: [],
        $0: "pmta-ingest",
        stateDir: state,
        "state-dir": state, // yargs' kebab-case twin
        batch: { maxEvents: 100 },
        inputs: { "1": { archive: "/v/archive" }, "2": { path: "/v/new-*.csv", types: ["b", "rb"] } },
        output: { stdout: true },
      },
    });
    assert.equal(c.source, file);
    assert.equal(c.stateDir, state);
    assert.deepEqual(c.batch, { maxEvents: 100, maxBytes: 64 * 1024, maxWaitMs: 1000 });
    assert.deepEqual(
      c.inputs.map((i) => [i.name, i.archive, i.types]),
      [
        ["bounces", undefined, undefined],
        ["fbl", "/v/archive", undefined],
        ["new", undefined, ["b", "rb"]],
      ],
    );
    assert.deepEqual(c.output, { kind: "stdout" });
  });

  it("takes flags alone, resolving relative paths against the working directory", async () => {
    const c = await loadRunConfig({
      flags: { inputs: { "0": { path: "logs/bounces-*.csv", types: "b,rb" } }, stateDir: state },
      env: {},
    });
    assert.equal(c.source, "(flags)");
    assert.equal(c.inputs[0]?.dir, join(process.cwd(), "logs"));
    assert.deepEqual(c.inputs[0]?.types, ["b", "rb"]);
  });

  it("expands ${VAR} and ${VAR:-default} in values, including the http settings", async () => {
    const file = configFile(`stateDir: ${state}
inputs:
  - path: "${ref("LOGS", "/var/log/pmta")}/bounces-*.csv"
  - path: "${ref("OTHER", "/srv/pmta")}/fbl-*.csv"
host: "${ref("EMPTY", "fallback-host")}"
output:
  http:
    url: https://backend.example.com/events
    token: ${ref("API_TOKEN")}
    headers: { X-Literal: "$$${"{"}kept}", X-Dollar: "a$b" }
    timeouts: [1s, 2s]
batch: { maxEvents: "${ref("BATCH")}" }
`);
    const c = await loadRunConfig({
      file,
      env: { OTHER: "/opt/pmta", EMPTY: "", API_TOKEN: "s3cr:et#1", BATCH: "42" },
    });
    assert.equal(c.inputs[0]?.path, "/var/log/pmta/bounces-*.csv"); // unset: default
    assert.equal(c.inputs[1]?.path, "/opt/pmta/fbl-*.csv"); // set: value
    assert.equal(c.host, "fallback-host"); // set but empty: default
    assert.equal(c.batch.maxEvents, 42);
    assert.deepEqual(c.output, {
      kind: "http",
      settings: {
        url: "https://backend.example.com/events",
        token: "s3cr:et#1",
        headers: { "X-Literal": `${"$"}{kept}`, "X-Dollar": "a$b" },
        timeouts: ["1s", "2s"],
      },
    });
    const message = await fails(
      { file, env: {} },
      /config\.yaml:\d+:\d+: output\.http\.token: environment variable API_TOKEN is not set; .*EnvironmentFile=.*API_TOKEN:-/,
    );
    assert.ok(!message.includes("s3cr"));
  });

  it("resolves relative paths against the config file's directory", async () => {
    const file = configFile(`inputs:
  - path: logs/bounces-*.csv
    archive: ../archive
stateDir: state
rules: rules.txt
output: { file: { path: out/events.ndjson } }
deadLetter: { path: dl.ndjson }
`);
    const dir = join(file, "..");
    writeFileSync(join(dir, "rules.txt"), "");
    const c = await loadRunConfig({ file, env: {} });
    assert.equal(c.inputs[0]?.path, join(dir, "logs", "bounces-*.csv"));
    assert.equal(c.inputs[0]?.dir, join(dir, "logs"));
    assert.equal(c.inputs[0]?.archive, join(dir, "..", "archive"));
    assert.equal(c.stateDir, join(dir, "state"));
    assert.equal(c.rules, join(dir, "rules.txt"));
    assert.deepEqual(c.output, {
      kind: "file",
      path: join(dir, "out", "events.ndjson"),
      maxBytes: 256 * 1024 * 1024,
      keep: 5,
    });
    assert.equal(c.deadLetterPath, join(dir, "dl.ndjson"));
    // A relative path given as a flag is the working directory's, even with a config file.
    const d = await loadRunConfig({ file, env: {}, flags: { deadLetter: { path: "dl2.ndjson" } } });
    assert.equal(d.deadLetterPath, join(process.cwd(), "dl2.ndjson"));
  });

  it("accepts missing input and archive directories (the daemon waits for them)", async () => {
    const c = await loadRunConfig({
      file: configFile(
        `stateDir: ${state}\ninputs: [{ path: /does/not/exist/b-*.csv, archive: /nor/this }]\n`,
      ),
      env: {},
    });
    assert.equal(c.inputs[0]?.dir, "/does/not/exist");
    assert.equal(c.inputs[0]?.archive, "/nor/this");
  });
});

describe("configuration errors name the key, the problem and the fix", () => {
  it("unknown keys, with a suggestion", async () => {
    await fileFails(
      "batch: { maxEvnets: 5 }\n",
      /config\.yaml:4:10: batch\.maxEvnets: unknown key \(did you mean "batch\.maxEvents"\?\); keys in batch: maxEvents, maxBytes, maxWait$/,
    );
    await fileFails(
      "stateDri: /tmp\n",
      /: stateDri: unknown key \(did you mean "stateDir"\?\); keys at the top level: inputs, /,
    );
    await fileFails("state_dir: /tmp\n", /: state_dir: unknown key \(did you mean "stateDir"\?\)/);
    await fileFails("sealAfterMs: 5s\n", /: sealAfterMs: unknown key \(did you mean "sealAfter"\?\)/);
    await fileFails(
      "maxEvents: 5\n",
      /: maxEvents: unknown key \(did you mean "batch\.maxEvents" or "inFlight\.maxEvents"\?\)/,
    );
    await fails(
      {
        file: configFile(
          `stateDir: ${state}\ninputs: [{ path: /v/b-*.csv }, { path: /v/f-*.csv, archiv: /a }]\n`,
        ),
      },
      /: inputs\[1\]\.archiv: unknown key \(did you mean "inputs\[1\]\.archive"\?\); keys in inputs\[1\]: name, path, archive, types, fallbackColumns$/,
    );
    await fails(
      { file: configFile(`stateDir: ${state}\ninputs: [{ path: /v/b-*.csv, dir: /v }]\n`) },
      /inputs\[0\]\.dir: unknown key \(dir is derived from path\); remove it/,
    );
    await fileFails(
      "colour: blue\n",
      /: colour: unknown key; keys at the top level: inputs, pmtaConfig, stateDir/,
    );
    await fails(
      { file: configFile(`stateDir: ${state}\n${INPUT}`), flags: { batch: { maxEvnts: 1 } } },
      /^\(flags\): batch\.maxEvnts: unknown key \(did you mean "batch\.maxEvents"\?\)/,
    );
  });

  it("wrong types", async () => {
    await fileFails(
      "batch: 5\n",
      /: batch: expected a mapping of settings, got 5; write the settings indented under batch:/,
    );
    await fileFails(
      "maxOpenFiles: lots\n",
      /config\.yaml:4:1: maxOpenFiles: expected a positive whole number, got "lots"; write e\.g\. 64$/,
    );
    await fileFails(
      "batch: { maxEvents: -3 }\n",
      /: batch\.maxEvents: expected a positive whole number, got -3;/,
    );
    await fileFails(
      "output: { file: { keep: 0 } }\n",
      /: output\.file\.keep: expected a positive whole number, got 0;/,
    );
    await fileFails("host: [a, b]\n", /: host: expected a non-empty string, got a list; write e\.g\. mta1/);
    await fails(
      { file: configFile(`stateDir: ${state}\ninputs: /var/log/pmta/bounces-*.csv\n`) },
      /: inputs: expected a list of inputs, got "\/var\/log\/pmta\/bounces-\*\.csv"; write each input as a list item/,
    );
    await fails(
      { file: configFile(`stateDir: ${state}\ninputs: [{ archive: /a }]\n`) },
      /: inputs\[0\]\.path: is missing; every input needs a path pattern/,
    );
    await fileFails(
      "metrics: { listen: 9464 }\n",
      /: metrics\.listen: expected host:port or off, got 9464; write host:port such as 127\.0\.0\.1:9464/,
    );
    await fileFails(
      'metrics: { listen: "::1:9464" }\n',
      /: metrics\.listen: .* is not host:port; put an IPv6 address in brackets/,
    );
    await fileFails(
      'metrics: { listen: ":9464" }\n',
      /: metrics\.listen: "" is not a host name or IP address; to listen on every interface write 0\.0\.0\.0:9464/,
    );
    await fileFails(
      'metrics: { listen: "localhost:70000" }\n',
      /: metrics\.listen: port 70000 is out of range/,
    );
    await fileFails(
      "batch: { maxEvents: 600 }\ninFlight: { maxEvents: 500 }\n",
      /: inFlight\.maxEvents: 500 is less than batch\.maxEvents \(600\); raise inFlight\.maxEvents or lower batch\.maxEvents/,
    );
    await fileFails(
      "startAt: yesterday\n",
      /: startAt: "yesterday" is neither beginning, end nor a duration; write beginning, end, or a maximum age such as 24h/,
    );
  });

  it("bad durations and sizes", async () => {
    await fileFails(
      "sealAfter: soon\n",
      /config\.yaml:4:1: sealAfter: "soon" is not a duration; write e\.g\. 500ms, 10s, 5m, 24h, 7d/,
    );
    await fileFails(
      "rescanInterval: 0s\n",
      /: rescanInterval: "0s" is too short \(at least 1ms\); give a duration such as 500ms/,
    );
    await fileFails("drainTimeout: 30d\n", /: drainTimeout: "30d" is longer than Node's timers allow/);
    await fileFails(
      "maxRecordBytes: 1XB\n",
      /: maxRecordBytes: "1XB": unknown size unit "XB"; write e\.g\. 64KiB, 1MiB/,
    );
    await fileFails(
      "batch: { maxBytes: lots }\n",
      /: batch\.maxBytes: "lots" is not a size; write e\.g\. 64KiB/,
    );
    await fileFails(
      "maxRecordBytes: 0\n",
      /: maxRecordBytes: 0 is less than 1 byte; give a size such as 1MiB/,
    );
  });

  it("bad paths and globs", async () => {
    const bad = async (path: string, ...patterns: RegExp[]) =>
      fails({ file: configFile(`stateDir: ${state}\ninputs: [{ path: "${path}" }]\n`) }, ...patterns);
    await bad(
      "/var/log/*/bounces-*.csv",
      /: inputs\[0\]\.path: wildcards are allowed in the file name only, not in the directory \(\/var\/log\/\*\); use one input per directory/,
    );
    await bad(
      "/var/log/pmta/",
      /: inputs\[0\]\.path: "\/var\/log\/pmta\/" names a directory, not files in it; add a file-name pattern, e.g\. \/var\/log\/pmta\/bounces-\*\.csv/,
    );
    await bad(
      "/var/log/pmta/b-[0-9].csv",
      /: inputs\[0\]\.path: "b-\[0-9\]\.csv" uses \[ \] or \{ \}, which are not wildcards here/,
    );
    await fails(
      { file: configFile(`stateDir: ${state}\ninputs: [{ path: /v/b-*.csv, archive: /v }]\n`) },
      /: inputs\[0\]\.archive: is the input's own directory \(\/v\); give the move-to directory/,
    );
    await fails(
      { file: configFile(`stateDir: ${state}\ninputs: [{ path: /v/b-*.csv, name: "my input" }]\n`) },
      /: inputs\[0\]\.name: "my input" contains characters other than/,
    );
  });

  it("duplicate input names and paths", async () => {
    await fails(
      {
        file: configFile(
          `stateDir: ${state}\ninputs: [{ path: /x/a-*.csv, name: a }, { path: /y/b-*.csv, name: a }]\n`,
        ),
      },
      /config\.yaml:2:61: inputs\[1\]\.name: "a" is used by another input \(inputs\[0\]\); give each input a distinct name/,
    );
    await fails(
      {
        file: configFile(
          `stateDir: ${state}\ninputs: [{ path: /x/bounces-*.csv }, { path: /y/bounces-*.csv }]\n`,
        ),
      },
      /: inputs\[1\]\.name: "bounces" \(derived from path\) is used by another input \(inputs\[0\]\); set inputs\[1\]\.name to a distinct name/,
    );
    await fails(
      {
        file: configFile(
          `stateDir: ${state}\ninputs: [{ path: /x/b-*.csv, name: one }, { path: /x/b-*.csv, name: two }]\n`,
        ),
      },
      /: inputs\[1\]\.path: the same files as inputs\[0\]\.path; remove the duplicate input/,
    );
  });

  it("no inputs", async () => {
    await fails(
      { file: configFile(`stateDir: ${state}\n`) },
      /config\.yaml: inputs: at least one input is needed; add one, e\.g\. inputs: \[\{ path: \/var\/log\/pmta\/bounces-\*\.csv/,
    );
    await fails(
      { file: configFile(`stateDir: ${state}\ninputs: []\n`) },
      /: inputs: at least one input is needed/,
    );
    await fails({}, /^\(flags\): inputs: at least one input is needed; .*--inputs\.0\.path/);
    await fails(
      {
        file: configFile(`stateDir: ${state}\n${INPUT}`),
        flags: { inputs: { "3": { path: "/v/x-*.csv" } } },
      },
      /^\(flags\): inputs\[3\]: there is no inputs\[1\] before it; number list entries from 0 without gaps$/,
    );
  });

  it("output with two kinds, or none", async () => {
    await fileFails(
      "output: { file: { path: /tmp/x }, stdout: {} }\n",
      /config\.yaml:4:1: output: give exactly one of file, stdout, http \(got file and stdout\); remove all but one$/,
    );
    await fileFails(
      "output: {}\n",
      /: output: give exactly one of file, stdout, http \(got none\); e\.g\. output:/,
    );
    await fileFails(
      "output: { stdout: { pretty: true } }\n",
      /: output\.stdout: stdout takes no settings, got a mapping; write stdout: \{\}/,
    );
    await fileFails(
      "output: { http: https://x }\n",
      /: output\.http: expected a mapping of delivery settings/,
    );
  });

  it("an unreadable rules file", async () => {
    await fileFails(
      "rules: /nonexistent/rules.txt\n",
      /config\.yaml:4:1: rules: cannot read \/nonexistent\/rules\.txt \(ENOENT\); check the path \(a relative path is resolved against the config file's directory\)/,
    );
    await fileFails(
      `rules: ${root}\n`,
      /: rules: cannot read .* \(EISDIR\); name the rules file, not a directory/,
    );
  });

  it("an unreadable rules file (permissions)", {
    skip: process.getuid?.() === 0 && "root reads everything",
  }, async () => {
    const rules = configFile("x\n", "rules.txt");
    chmodSync(rules, 0o000);
    await fileFails(
      `rules: ${rules}\n`,
      /: rules: cannot read .* \(EACCES\); make it readable by the service user/,
    );
  });

  it("a stateDir that cannot be created or written", async () => {
    const plain = configFile("not a directory\n", "plain-file");
    await fails(
      { file: configFile(`stateDir: ${plain}/sub\n${INPUT}`) },
      /config\.yaml:1:1: stateDir: .*plain-file\/sub is not a writable directory \(ENOTDIR\); part of the path is a regular file, not a directory: choose another stateDir, or create it and give the service user write access, or use systemd StateDirectory=/,
    );
    await fails(
      { file: configFile(`stateDir: ${plain}\n${INPUT}`) },
      /: stateDir: .* is not a writable directory \(EEXIST\); it is a file, not a directory/,
    );
  });

  it("a stateDir that is read-only", {
    skip: process.getuid?.() === 0 && "root writes everywhere",
  }, async () => {
    const ro = join(root, "read-only");
    mkdirSync(ro, { recursive: true });
    chmodSync(ro, 0o500);
    await fails(
      { file: configFile(`stateDir: ${ro}\n${INPUT}`) },
      /: stateDir: .* is not a writable directory \(EACCES\); create it and give the service user write access/,
    );
  });

  it("a config file that is unreadable, not YAML, or not a mapping", async () => {
    await fails(
      { file: join(root, "missing.yaml") },
      /missing\.yaml: cannot read the config file \(ENOENT\); check the path/,
    );
    await fails(
      { file: root },
      /: cannot read the config file \(EISDIR\); name the YAML file, not its directory/,
    );
    await fails(
      { file: configFile(`stateDir: ${state}\ninputs:\n  - path: /x/b-*.csv\n    types: [b\n`) },
      /config\.yaml:5:1: not valid YAML: Flow sequence in block collection .*; fix the syntax at that line and column/,
    );
    await fails(
      { file: configFile(`stateDir: ${state}\nstateDir: /x\n`) },
      /config\.yaml:2:1: not valid YAML: Map keys must be unique/,
    );
    await fails(
      { file: configFile("host: !secret x\n") },
      /config\.yaml:1:7: not valid YAML: Unresolved tag: !secret/,
    );
    await fails(
      { file: configFile("- inputs\n- stateDir\n") },
      /config\.yaml:1:1: the file is a list, not a mapping of settings; write "key: value" lines/,
    );
    // Only comments: an empty configuration, so the first thing missing is reported.
    await fails(
      { file: configFile("# nothing yet\n") },
      /config\.yaml: inputs: at least one input is needed/,
    );
  });

  it("pmtaConfig, which is not supported yet", async () => {
    await fileFails(
      "pmtaConfig: /etc/pmta/config\n",
      /config\.yaml:4:1: pmtaConfig: not supported yet in this version; list inputs instead$/,
    );
  });

  it("type lists and fallback columns", async () => {
    await fails(
      { file: configFile(`stateDir: ${state}\ninputs: [{ path: /x/b-*.csv, types: [b, x] }]\n`) },
      /: inputs\[0\]\.types: "x" is not a record type; use some of d, b, t, tq, r, rb, rs, f/,
    );
    await fails(
      { file: configFile(`stateDir: ${state}\ninputs: [{ path: /x/b-*.csv, types: [] }]\n`) },
      /: inputs\[0\]\.types: the list is empty; list at least one, e\.g\. \[b, rb\], or remove the key/,
    );
    await fails(
      {
        file: configFile(
          `stateDir: ${state}\ninputs: [{ path: /x/b-*.csv, fallbackColumns: [rcpt, type] }]\n`,
        ),
      },
      /: inputs\[0\]\.fallbackColumns: must start with "type" \(it starts with "rcpt"\); put type first/,
    );
  });

  it("an unset environment variable, and a malformed reference", async () => {
    await fileFails(
      `host: ${ref("NOPE")}\n`,
      /: host: environment variable NOPE is not set; set it in the service's environment/,
    );
    await fileFails(
      `host: "${"$"}{NOPE"\n`,
      /: host: a \$\{ is not closed by \}; write \$\{NAME\} or \$\{NAME:-default\}/,
    );
    await fileFails(`host: "${"$"}{1x}"\n`, /: host: \$\{1x\} is not a variable reference/);
  });
});

describe("RUN_CONFIG_KEYS", () => {
  it("documents each key once, and every key it lists is accepted", async () => {
    const keys = RUN_CONFIG_KEYS.map((k) => k.key);
    assert.equal(new Set(keys).size, keys.length);
    for (const k of RUN_CONFIG_KEYS) {
      assert.ok(k.type !== "" && k.default !== "" && k.description !== "", k.key);
    }
    // The documented defaults are the loader's defaults.
    const byKey = new Map(RUN_CONFIG_KEYS.map((k) => [k.key, k.default]));
    assert.equal(byKey.get("rescanInterval"), "500ms");
    assert.equal(byKey.get("sealAfter"), "60s");
    assert.equal(byKey.get("checkpointRetention"), "7d");
    assert.equal(byKey.get("output.file.maxBytes"), "256MiB");
    assert.equal(byKey.get("inFlight.maxBytes"), "16MiB");
  });

  it("suggests by edit distance, counting a swap of neighbours as one edit", () => {
    assert.equal(editDistance("maxEvents", "maxEvents"), 0);
    assert.equal(editDistance("maxEvnets", "maxEvents"), 1);
    assert.equal(editDistance("kitten", "sitting"), 3);
    assert.equal(editDistance("", "abc"), 3);
  });
});
