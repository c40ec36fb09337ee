import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { loadRunConfig } from "../src/config/run-config.js";
import { parseDuration } from "../src/config/units.js";
import { parseHttpSettings } from "../src/deliver/http-output.js";
import { PmtaSimulator } from "../src/simulate/pmta-simulator.js";
import { reapOnExit } from "./support/reap.js";

/**
 * The single-file bundle (`npm run bundle` → dist/pmta-ingest.mjs) is what gets copied to a PowerMTA
 * host. These tests build it, copy only that file into an empty temp directory with no node_modules
 * above it, and run it there: any dependency esbuild failed to inline, or that reads files next to
 * its own source at run time, fails here and not on a customer's host.
 */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUILD_SCRIPT = join(ROOT, "scripts", "bundle.mjs");
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(
  args: string[],
  cwd: string,
  onStdout?: (text: string) => void,
): Promise<Exit> & { kill(): void } {
  const child = reapOnExit(spawn(process.execPath, args, { cwd, stdio: ["ignore", "pipe", "pipe"] }));
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
    onStdout?.(stdout);
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const done = new Promise<Exit>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return Object.assign(done, { kill: () => child.kill("SIGTERM") });
}

/** True when no directory from `dir` up to / holds a node_modules (where Node would find packages). */
function noNodeModulesAbove(dir: string): boolean {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, "node_modules"))) return false;
    if (dirname(d) === d) return true;
  }
}

const work = mkdtempSync(join(tmpdir(), "pmta-bundle-test-"));
const bundle = join(work, "pmta-ingest.mjs");
const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
  rmSync(work, { recursive: true, force: true });
});

describe("single-file bundle", () => {
  before(async () => {
    const built = await run([BUILD_SCRIPT], ROOT);
    assert.equal(built.code, 0, built.stderr);
    copyFileSync(join(ROOT, "dist", "pmta-ingest.mjs"), bundle);
    assert.ok(noNodeModulesAbove(work), `${work} has a node_modules above it; the test would prove nothing`);
  });

  it("is one executable file with a shebang", () => {
    const st = statSync(join(ROOT, "dist", "pmta-ingest.mjs"));
    assert.ok((st.mode & 0o111) !== 0, "executable bits");
    assert.ok(readFileSync(bundle, "utf8").startsWith("#!/usr/bin/env node\n"));
  });

  it("keeps our modules eager and their top-level constants `const` (each var cost the hot loops ~11 %)", () => {
    const text = readFileSync(bundle, "utf8");
    // A lazy `__esm` initialiser would declare a module's bindings as `var` and assign them later.
    assert.doesNotMatch(text, /__esm\(\{\s*"src\//);
    // yargs is still loaded only when a command needs it: the daemon's plain `run --config FILE` does
    // not, and would otherwise keep its ~13 MiB for its whole life.
    assert.match(text, /__esm\(\{\s*"node_modules\/yargs\/index\.mjs"/);
    for (const name of ["FNV_PRIME", "CHECK_SEED", "mixCheck"])
      assert.match(text, new RegExp(`^const ${name} = `, "m"));
    assert.doesNotMatch(text, /^var (FNV_PRIME|CHECK_SEED|mixCheck) = /m);
  });

  it("answers --version with the package version and --help with every command", async () => {
    const v = await run([bundle, "--version"], work);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), VERSION);
    const h = await run([bundle, "--help"], work);
    assert.equal(h.code, 0, h.stderr);
    for (const command of ["classify", "replay", "run", "demo"])
      assert.match(h.stdout, new RegExp(`${command}\\b`));
  });

  it("runs the demo with nothing but Node.js: every simulated record arrives", async () => {
    const dir = join(work, "demo");
    const r = await run([bundle, "demo", "--records", "300", "--rate", "2000", "--dir", dir], work);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /OK: every simulated record arrived as an event/);
    const written = Number(/records written by the simulator: (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(written >= 300, r.stdout);
    const events = readFileSync(join(dir, "events.ndjson"), "utf8").trim().split("\n");
    assert.equal(events.length, written);
  });

  it("runs the daemon against an HTTP backend (yaml, pino, prom-client inside the bundle)", async () => {
    const records = 60;
    let received = 0;
    let allArrived: () => void = () => {};
    const arrived = new Promise<void>((resolve) => {
      allArrived = resolve;
    });
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received += (JSON.parse(Buffer.concat(chunks).toString()) as { events: unknown[] }).events.length;
        res.writeHead(200).end();
        if (received >= records) allArrived();
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const liveDir = join(work, "pmta");
    mkdirSync(liveDir);
    const sim = new PmtaSimulator({ liveDir, seed: 3 });
    await sim.writeRecords(records);
    const config = join(work, "config.yaml");
    writeFileSync(
      config,
      [
        "inputs:",
        `  - path: ${join(liveDir, "bounces-*.csv")}`,
        `  - path: ${join(liveDir, "fbl-*.csv")}`,
        `stateDir: ${join(work, "state")}`,
        "output:",
        "  http:",
        `    url: http://127.0.0.1:${port}/events`,
        "batch: { maxWait: 50ms }",
        "metrics: { listen: off }",
        "",
      ].join("\n"),
    );
    const daemon = run([bundle, "run", "--config", config], work);
    await arrived;
    daemon.kill();
    const exit = await daemon;
    assert.equal(exit.code, 0, `${exit.stdout}\n${exit.stderr}`);
    assert.equal(received, sim.records().length);
    // With an HTTP output the daemon logs JSON lines to stdout.
    const lines = exit.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { level: string; time: string; msg: string });
    assert.deepEqual(
      lines.map((l) => l.msg),
      ["starting", "stopping", "stopped"],
    );
    for (const l of lines) {
      assert.equal(l.level, "info");
      assert.ok(!Number.isNaN(Date.parse(l.time)) && l.time.endsWith("Z"), l.time);
    }
    assert.equal(exit.stderr, "");
  });

  it("the README's install path: check-pmta on PowerMTA's config with the shipped blocks, run with pmtaConfig, events at the backend, /readyz ready", async () => {
    // /var/log/pmta of the shipped blocks becomes a temp dir; everything else is pasted as shipped.
    const host = join(work, "host");
    const logDir = join(host, "var-log-pmta");
    const archive = join(logDir, "archive");
    mkdirSync(archive, { recursive: true });
    const pmtaConfig = join(host, "pmta-config");
    const blocks = ["acct-bounces.conf", "acct-fbl.conf"]
      .map((f) => readFileSync(join(ROOT, "pmta", f), "utf8").replaceAll("/var/log/pmta", logDir))
      .join("\n");
    writeFileSync(
      pmtaConfig,
      `# PowerMTA config of a test host\nhttp-mgmt-port 8080\n<bounce-processor>\n  deliver-unmatched-email no\n</bounce-processor>\n<feedback-loop-processor>\n  deliver-unmatched-email no\n</feedback-loop-processor>\n${blocks}\n`,
    );
    const check = await run([bundle, "check-pmta", pmtaConfig, "--json"], work);
    assert.equal(check.code, 0, `${check.stdout}\n${check.stderr}`);
    const report = JSON.parse(check.stdout) as { inputs: Array<{ name: string; archive?: string }> };
    assert.deepEqual(report.inputs.map((i) => [i.name, i.archive]).sort(), [
      ["bounces", archive],
      ["fbl", archive],
    ]);

    let received = 0;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received += (JSON.parse(Buffer.concat(chunks).toString()) as { events: unknown[] }).events.length;
        res.writeHead(200).end();
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const config = join(host, "config.yaml");
    writeFileSync(
      config,
      [
        `pmtaConfig: ${pmtaConfig}`,
        `stateDir: ${join(host, "state")}`,
        "startAt: beginning",
        "output:",
        "  http:",
        `    url: http://127.0.0.1:${port}/events`,
        "batch: { maxWait: 50ms }",
        "metrics: { listen: 127.0.0.1:0 }",
        "",
      ].join("\n"),
    );
    const sim = new PmtaSimulator({ liveDir: logDir, seed: 4, archiveDir: () => archive });
    await sim.writeRecords(80);
    let address = "";
    const daemon = run([bundle, "run", "--config", config], work, (out) => {
      address ||= /"address":"([^"]+)"/.exec(out)?.[1] ?? "";
    });
    await sim.rotate();
    await sim.writeRecords(40);
    const deadline = performance.now() + 20_000;
    while (received < sim.records().length || address === "") {
      assert.ok(performance.now() < deadline, `received ${received}/${sim.records().length}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const ready = await fetch(`http://${address}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    const metrics = await (await fetch(`http://${address}/metrics`)).text();
    assert.match(metrics, /^pmta_ingest_records_read_total\{input="bounces",type="b"\} \d+/m);
    daemon.kill();
    const exit = await daemon;
    assert.equal(exit.code, 0, `${exit.stdout}\n${exit.stderr}`);
    assert.equal(received, sim.records().length);
  });

  it("can carry prom-client (the metrics endpoint's library) with the same build options", async () => {
    const { build } = await import("esbuild");
    const { bundleOptions } = (await import(pathToFileURL(BUILD_SCRIPT).href)) as {
      bundleOptions: Record<string, unknown>;
    };
    const probe = join(work, "prom-probe.mjs");
    await build({
      ...bundleOptions,
      stdin: {
        contents: [
          'import client from "prom-client";',
          "const registry = new client.Registry();",
          "client.collectDefaultMetrics({ register: registry });",
          'const c = new client.Counter({ name: "probe_events_total", help: "probe", registers: [registry] });',
          "c.inc(3);",
          "process.stdout.write(await registry.metrics());",
        ].join("\n"),
        resolveDir: ROOT,
        sourcefile: "prom-probe.mjs",
        loader: "js",
      },
      outfile: probe,
    });
    const r = await run([probe], work);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^probe_events_total 3$/m);
    assert.match(r.stdout, /^process_cpu_user_seconds_total /m);
    assert.match(r.stdout, /^nodejs_eventloop_lag_seconds /m);
  });
});

describe("restoreConsts (the bundle's post-processing)", () => {
  it("turns back to const only what the section's own source declares const at top level", async () => {
    const { restoreConsts } = (await import(pathToFileURL(BUILD_SCRIPT).href)) as {
      restoreConsts: (text: string, read: (file: string) => string) => { text: string; restored: number };
    };
    const sources: Record<string, string> = {
      "src/a.ts":
        "export const A = 1;\nconst B = 2;\nlet C = 3;\nconst D = 4;\nfunction f() { const E = 5; }\n",
      "src/b.ts": "const A = 9;\n",
    };
    const bundled = [
      "// node_modules/dep/index.js",
      "var A = 0;",
      "// src/a.ts",
      "var A = 1;",
      "var B = 2;",
      "var C = 3;",
      "var D2 = 4;",
      "  var E = 5;",
      "// src/b.ts",
      "var A2 = 9;",
      "var B = {",
      "};",
    ].join("\n");
    const { text, restored } = restoreConsts(bundled, (file) => sources[file] ?? "");
    assert.equal(restored, 2);
    assert.deepEqual(text.split("\n"), [
      "// node_modules/dep/index.js",
      "var A = 0;", // a dependency's: untouched
      "// src/a.ts",
      "const A = 1;",
      "const B = 2;",
      "var C = 3;", // let in the source
      "var D2 = 4;", // renamed by esbuild: not provably the same binding
      "  var E = 5;", // not top level
      "// src/b.ts",
      "var A2 = 9;",
      "var B = {", // b.ts declares no B
      "};",
    ]);
  });
});

describe("install files (pmta/)", () => {
  const example = join(ROOT, "pmta", "pmta-ingest.example.yaml");
  const unit = join(ROOT, "pmta", "systemd", "pmta-ingest.service");

  it("the example config loads with the real loader and its HTTP output settings are valid", async () => {
    const tokenFile = join(work, "token");
    writeFileSync(tokenFile, "t0ken\n");
    const config = await loadRunConfig({
      file: example,
      // The host paths stay as written; only what the loader must create or read is redirected.
      flags: { stateDir: join(work, "example-state"), output: { http: { tokenFile } } },
      env: {},
      hostname: "mta1.example.com",
    });
    assert.deepEqual(
      config.inputs.map((i) => [i.name, i.path, i.archive, i.types]),
      [
        ["bounces", "/var/log/pmta/bounces-*.csv", "/var/log/pmta/archive", ["b", "rb"]],
        ["fbl", "/var/log/pmta/fbl-*.csv", "/var/log/pmta/archive", undefined],
      ],
    );
    assert.deepEqual(config.startAt, { kind: "max-age", ms: 24 * 3600 * 1000 });
    assert.equal(config.metrics.listen, "127.0.0.1:9464");
    assert.equal(config.output.kind, "http");
    if (config.output.kind !== "http") return;
    const http = parseHttpSettings(config.output.settings, parseDuration);
    assert.equal(http.url.href, "https://backend.example.com/pmta/events");
    assert.equal(http.token, "t0ken");
    assert.ok(
      readFileSync(example, "utf8").includes("stateDir: /var/lib/pmta-ingest"),
      "the example keeps the StateDirectory= path",
    );
  });

  it("the unit runs the bundle with the example config path and stops after drainTimeout", async () => {
    const text = readFileSync(unit, "utf8");
    const value = (key: string): string | undefined => new RegExp(`^${key}=(.*)$`, "m").exec(text)?.[1];
    assert.equal(
      value("ExecStart"),
      "/usr/bin/node --max-semi-space-size=8 --heap-growing-percent=30 /opt/pmta-ingest/pmta-ingest.mjs run --config /etc/pmta-ingest/config.yaml",
    );
    assert.equal(value("StateDirectory"), "pmta-ingest");
    // The allocator settings the benchmark measured (bench/lib/daemon.ts reads them from here).
    assert.deepEqual(
      [...text.matchAll(/^Environment=(.*)$/gm)].map((m) => m[1]),
      ["MALLOC_ARENA_MAX=1", "MALLOC_MMAP_THRESHOLD_=65536"],
    );
    const config = await loadRunConfig({
      file: example,
      flags: { stateDir: join(work, "example-state") },
      env: {},
    });
    assert.ok(
      Number(value("TimeoutStopSec")) * 1000 > config.drainTimeoutMs + 5000,
      "TimeoutStopSec > drainTimeout",
    );
  });

  it("the unit passes systemd-analyze verify", async () => {
    const verify = spawn("systemd-analyze", ["verify", unit], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const collect = (d: string): void => {
      out += d;
    };
    verify.stdout.setEncoding("utf8").on("data", collect);
    verify.stderr.setEncoding("utf8").on("data", collect);
    const result = await new Promise<number | null | "missing">((resolve) => {
      verify.on("error", () => resolve("missing"));
      verify.on("close", resolve);
    });
    assert.notEqual(
      result,
      "missing",
      "systemd-analyze not found: install the Debian package systemd (.ci/run does)",
    );
    assert.equal(result, 0, out);
    // verify exits 0 even for unknown keys; it only prints them.
    assert.equal(out.trim(), "", "no warnings (unknown keys, bad values)");
  });
});
