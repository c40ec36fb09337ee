import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { LogLevel } from "../src/cli/log.js";
import { loadRunConfig } from "../src/config/run-config.js";
import { findExposedSecrets, warnExposedSecrets } from "../src/config/secret-permissions.js";
import { reapOnExit } from "./support/reap.js";
import { CLI_PATH } from "./support/run-cli.js";

const LOG_MODULE = new URL("../src/cli/log.js", import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), "pmta-logging-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Out {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `script` (an ES module body with `log` and `setLogDestination` in scope) in a child process. */
function runScript(script: string, env: Record<string, string> = {}): Promise<Out> {
  const body = `import { log, setLogDestination } from ${JSON.stringify(LOG_MODULE)};\n${script}`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", body], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PMTA_INGEST_LOG_LEVEL: "", ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

type Line = { level: string; time: string; msg: string } & Record<string, unknown>;

function lines(text: string): Line[] {
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Line);
}

describe("log (pino)", () => {
  it("writes JSON lines to stderr: level as a label, ISO time, msg, the fields", async () => {
    const r = await runScript(
      `log("info", "file replayed", { file: "/x.csv", records: 3 }); log("error", "boom");`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "");
    const [a, b, ...rest] = lines(r.stderr);
    assert.deepEqual(rest, []);
    assert.deepEqual(
      { ...a, time: "" },
      { level: "info", time: "", msg: "file replayed", file: "/x.csv", records: 3 },
    );
    assert.match(a?.time ?? "", /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(b?.level, "error");
    assert.equal(b?.msg, "boom");
  });

  it("takes its threshold from PMTA_INGEST_LOG_LEVEL (default info) and names a bad value", async () => {
    const script = `for (const l of ["debug", "info", "warn", "error"]) log(l, l);`;
    const levels = async (env: Record<string, string>): Promise<string[]> =>
      lines((await runScript(script, env)).stderr).map((l) => l.msg);
    assert.deepEqual(await levels({}), ["info", "warn", "error"]);
    assert.deepEqual(await levels({ PMTA_INGEST_LOG_LEVEL: "debug" }), ["debug", "info", "warn", "error"]);
    assert.deepEqual(await levels({ PMTA_INGEST_LOG_LEVEL: "WARN" }), ["warn", "error"]);
    assert.deepEqual(await levels({ PMTA_INGEST_LOG_LEVEL: "silent" }), []);
    const bad = lines((await runScript(script, { PMTA_INGEST_LOG_LEVEL: "verbose" })).stderr);
    assert.equal(bad[0]?.level, "warn");
    assert.match(bad[0]?.msg ?? "", /PMTA_INGEST_LOG_LEVEL is not a log level; logging at info/);
    assert.equal(bad[0]?.PMTA_INGEST_LOG_LEVEL, "verbose");
    assert.deepEqual(
      bad.slice(1).map((l) => l.msg),
      ["info", "warn", "error"],
    );
  });

  it("redacts credentials at the top level and one object deep", async () => {
    const r = await runScript(
      `log("warn", "sending", {
        token: "S3CRET-token", authorization: "Bearer S3CRET-a", password: "S3CRET-p",
        octethSignature: "S3CRET-sig",
        headers: { authorization: "Bearer S3CRET-h", "x-tenant": "7" },
        output: { url: "https://b.example/x", token: "S3CRET-nested", headers: { Authorization: "Bearer S3CRET-H" } },
      });`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /S3CRET/);
    const [line] = lines(r.stderr);
    assert.equal(line?.token, "[Redacted]");
    assert.equal(line?.authorization, "[Redacted]");
    assert.equal(line?.password, "[Redacted]");
    assert.equal(line?.octethSignature, "[Redacted]");
    assert.deepEqual(line?.headers, { authorization: "[Redacted]", "x-tenant": "7" });
    assert.deepEqual(line?.output, {
      url: "https://b.example/x",
      token: "[Redacted]",
      headers: { Authorization: "[Redacted]" },
    });
  });

  it("switches to stdout on request", async () => {
    const r = await runScript(`log("info", "before"); setLogDestination("stdout"); log("info", "after");`);
    assert.deepEqual(
      lines(r.stderr).map((l) => l.msg),
      ["before"],
    );
    assert.deepEqual(
      lines(r.stdout).map((l) => l.msg),
      ["after"],
    );
  });

  it("is synchronous: 20,000 lines through a pipe, then process.exit, none lost", async () => {
    const r = await runScript(
      `setLogDestination("stdout"); for (let i = 0; i < 20000; i++) log("info", "line", { i, pad: "x".repeat(60) }); log("error", "last words"); process.exit(3);`,
    );
    assert.equal(r.code, 3);
    const got = lines(r.stdout);
    assert.equal(got.length, 20_001);
    assert.equal(got.at(-1)?.msg, "last words");
  });
});

describe("secret permission check", () => {
  const stateDir = join(dir, "state");
  mkdirSync(stateDir);
  let n = 0;
  async function configWith(
    http: string,
    mode: number,
    inputDir = dir,
  ): Promise<{ file: string; config: Awaited<ReturnType<typeof loadRunConfig>> }> {
    const file = join(dir, `config-${n++}.yaml`);
    writeFileSync(
      file,
      `inputs:\n  - path: ${inputDir}/bounces-*.csv\nstateDir: ${stateDir}\noutput:\n  http:\n${http}`,
    );
    chmodSync(file, mode);
    const config = await loadRunConfig({ file, env: { PMTA_TOKEN: "from-env" } });
    return { file, config };
  }

  it("flags a world-readable config that holds a token, with the fix", async () => {
    const { file, config } = await configWith("    url: https://b.example/x\n    token: abc123\n", 0o644);
    assert.deepEqual(await findExposedSecrets(file, config), [
      {
        file,
        keys: ["output.http.token"],
        mode: "0644",
        fix: `chmod 640 ${file}; chown root:pmta-ingest ${file}`,
      },
    ]);
  });

  it("names every literal secret: octethSignature and an Authorization header", async () => {
    const { file, config } = await configWith(
      '    url: https://b.example/x\n    octethSignature: sig\n    headers: { Authorization: "Bearer q", X-Tenant: "7" }\n',
      0o604,
    );
    const [found] = await findExposedSecrets(file, config);
    assert.deepEqual(found?.keys, ["output.http.octethSignature", "output.http.headers.Authorization"]);
  });

  it("is quiet when the file is not world-readable, or its secrets come from the environment", async () => {
    const closed = await configWith("    url: https://b.example/x\n    token: abc123\n", 0o640);
    assert.deepEqual(await findExposedSecrets(closed.file, closed.config), []);
    const fromEnv = await configWith(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a ${VAR} reference in YAML, not a template
      '    url: https://b.example/x\n    token: ${PMTA_TOKEN}\n    headers: { authorization: "Bearer ${PMTA_TOKEN}" }\n',
      0o644,
    );
    assert.deepEqual(await findExposedSecrets(fromEnv.file, fromEnv.config), []);
    const noSecret = await configWith("    url: https://b.example/x\n", 0o644);
    assert.deepEqual(await findExposedSecrets(noSecret.file, noSecret.config), []);
  });

  it("checks the tokenFile it points to as well", async () => {
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "abc123\n");
    chmodSync(tokenFile, 0o644);
    const { file, config } = await configWith(
      `    url: https://b.example/x\n    tokenFile: ${tokenFile}\n`,
      0o640,
    );
    const found = await findExposedSecrets(file, config);
    assert.deepEqual(
      found.map((f) => [f.file, f.keys]),
      [[tokenFile, ["output.http.tokenFile"]]],
    );
  });

  it("logs a warning naming the file and the fix, never the secret", async () => {
    const { file, config } = await configWith(
      "    url: https://b.example/x\n    token: abc123-secret\n",
      0o644,
    );
    const logged: Array<{ level: LogLevel; msg: string; fields: Record<string, unknown> }> = [];
    await warnExposedSecrets(file, config, (level, msg, fields) => logged.push({ level, msg, fields }));
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.level, "warn");
    assert.equal(logged[0]?.fields.file, file);
    assert.equal(logged[0]?.fields.fix, `chmod 640 ${file}; chown root:pmta-ingest ${file}`);
    assert.doesNotMatch(JSON.stringify(logged), /abc123-secret/);
  });

  it("`run` warns at start-up, on stdout with its other logs", async () => {
    // The input directory is missing: its warning comes after the daemon handles SIGTERM.
    const { file } = await configWith(
      "    url: http://127.0.0.1:9/x\n    token: abc123-secret\n",
      0o644,
      join(dir, "missing"),
    );
    const child = reapOnExit(
      spawn(process.execPath, [CLI_PATH, "run", "--config", file, "--metrics.listen", "off"], {
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
    let stdout = "";
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        stdout += d;
        if (stdout.includes("directory does not exist yet")) resolve();
      });
      child.on("exit", () => resolve());
    });
    child.kill("SIGTERM");
    const code = await closed;
    assert.equal(code, 0, stderr);
    const warn = lines(stdout).find((l) => l.level === "warn" && l.file === file);
    assert.equal(warn?.file, file);
    assert.match(String(warn?.fix), /^chmod 640 .*; chown root:pmta-ingest /);
    assert.doesNotMatch(stdout + stderr, /abc123-secret/);
    assert.equal(stderr, "");
  });
});
