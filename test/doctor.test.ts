import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CheckpointStore } from "../src/checkpoint/checkpoint-store.js";
import { INPUTS_STARTED, writeStartedInputs } from "../src/checkpoint/start-policy.js";
import { type Check, runDoctor } from "../src/ops/doctor.js";
import { collect } from "./support/collect.js";
import { makeWorkspace, type Workspace } from "./support/run-harness.js";

const roots: string[] = [];
const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A real HTTP server on 127.0.0.1 answering every request with `status` (and `/healthz` too). */
async function backend(status: number, answer = ""): Promise<{ port: number; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      });
      res.writeHead(status, { "content-type": "text/plain" }).end(answer);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, received };
}

/** A port with nothing listening on it (bound, then released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function workspace(prefix: string, extra: Record<string, unknown> = {}): Workspace {
  const ws = makeWorkspace(prefix, extra);
  roots.push(ws.root);
  for (const stream of ["bounces", "fbl"])
    mkdirSync(join(ws.liveDir, "accounting", stream), { recursive: true });
  writeFileSync(
    join(ws.liveDir, "bounces-2025-01-15-0000.csv"),
    "type,timeLogged,rcpt\r\nb,2025-01-15 08:00:00+0000,a@example.net\r\n",
  );
  return ws;
}

async function doctor(ws: Workspace, flags: Record<string, unknown> = {}) {
  const io = collect();
  const code = await runDoctor({ config: ws.config, flags, ...io });
  const json = collect();
  const codeJson = await runDoctor({ config: ws.config, flags, json: true, ...json });
  assert.equal(codeJson, code, "--json exits like the human form");
  const doc = JSON.parse(json.stdout()) as { ok: boolean; checks: Check[] };
  assert.equal(doc.ok, code === 0);
  const byName = new Map(doc.checks.map((c) => [c.name, c]));
  return { code, text: io.stdout(), checks: doc.checks, byName };
}

describe("pmta-ingest doctor", () => {
  it("all checks pass against a backend answering 200; the test request is an empty events batch with our credentials", async () => {
    const api = await backend(200);
    const ws = workspace("pmta-doctor-ok-", {
      output: { http: { url: `http://127.0.0.1:${api.port}/pmta/events?tenant=7`, token: "s3cret-token" } },
    });
    chmodSync(ws.config, 0o640); // it holds the token: as the README's install step leaves it
    const { code, text, byName } = await doctor(ws);
    assert.equal(code, 0, text);
    for (const line of text.trimEnd().split("\n").slice(0, -1)) {
      assert.match(line, /^(PASS|FAIL|WARN) [a-z].* — /, "one line per check: STATUS name — detail");
    }
    assert.match(text, /^PASS config — .*config\.yaml is valid$/m);
    assert.match(text, /^PASS input bounces directory — .*\/pmta is listable/m);
    assert.match(text, /^PASS input bounces files — 1 matching files readable/m);
    assert.match(text, /^PASS input bounces same filesystem — .* are on one filesystem \(st_dev \d+\)/m);
    assert.match(text, /^WARN input fbl files — no file matches/m);
    assert.match(
      text,
      /^PASS stateDir — .*: write, fsync \(\d+\.\d ms\), rename and remove work; fsync of the directory works$/m,
    );
    assert.match(text, /^PASS checkpoint store — no checkpoint yet/m);
    assert.match(
      text,
      /^PASS startAt — at the next start, files with no checkpoint entry in every input are read whole \(startAt beginning\)$/m,
    );
    assert.match(text, /^PASS dead-letter — .*dead-letter\.ndjson does not exist yet and can be created/m);
    assert.match(
      text,
      /^PASS output — POST http:\/\/127\.0\.0\.1:\d+\/pmta\/events \(format events, empty batch pmta-ingest-doctor-\d+\) → HTTP 200 in \d+ ms$/m,
    );
    assert.match(text, /^PASS metrics — metrics\.listen is off$/m);
    assert.match(text, /^all \d+ checks passed \(1 warning\)$/m);
    assert.equal(byName.get("output")?.status, "PASS");
    // Two runs (human and --json): two requests, each an events batch with no events.
    assert.equal(api.received.length, 2);
    const req = api.received[0];
    assert.equal(req?.method, "POST");
    assert.equal(req?.url, "/pmta/events?tenant=7");
    assert.equal(req?.headers.authorization, "Bearer s3cret-token");
    assert.equal(req?.headers["content-type"], "application/json");
    const body = JSON.parse(req?.body ?? "") as { batchId: string; events: unknown[] };
    assert.match(body.batchId, /^pmta-ingest-doctor-\d+$/);
    assert.deepEqual(body.events, []);
    assert.equal(req?.headers["idempotency-key"], body.batchId);
    // The probe files are gone.
    assert.deepEqual(readdirSync(ws.stateDir), []);
    assert.equal(existsSync(ws.deadLetter), false, "the dead-letter file is not created by the check");
  });

  it("401 is reported as credentials refused, without printing the token; exit 1", async () => {
    const api = await backend(401, '{"error":"invalid token"}');
    const ws = workspace("pmta-doctor-401-", {
      output: { http: { url: `http://127.0.0.1:${api.port}/events`, token: "very-secret-value" } },
    });
    const { code, text, byName } = await doctor(ws);
    assert.equal(code, 1);
    assert.match(
      text,
      /^FAIL output — POST .* → HTTP 401 in \d+ ms: credentials refused: ".*invalid token.*" \(check output\.http\.token/m,
    );
    assert.equal(byName.get("output")?.status, "FAIL");
    // The config holding the token is world-readable (0644 from the default umask): warned, value not shown.
    assert.equal(byName.get("secrets")?.status, "WARN");
    assert.match(
      text,
      /^WARN secrets — .*config\.yaml \(mode 0644\) is readable by every user and holds output\.http\.token \(chmod 640/m,
    );
    assert.doesNotMatch(text, /very-secret-value/);
    assert.match(text, /^1 of \d+ checks failed$/m);
  });

  it("nothing listening: the network error code and what to do", async () => {
    const port = await freePort();
    const ws = workspace("pmta-doctor-refused-", {
      output: { http: { url: `http://127.0.0.1:${port}/events` } },
    });
    const { code, text } = await doctor(ws);
    assert.equal(code, 1);
    assert.match(
      text,
      /^FAIL output — POST http:\/\/127\.0\.0\.1:\d+\/events failed after \d+ ms: ECONNREFUSED .*\(nothing listens at that host and port/m,
    );
  });

  it("format ndjson sends an empty body (zero lines); format octeth sends nothing and only connects", async () => {
    const api = await backend(204);
    const nd = workspace("pmta-doctor-ndjson-", {
      output: { http: { url: `http://127.0.0.1:${api.port}/bulk`, format: "ndjson", gzip: true } },
    });
    const r1 = await doctor(nd);
    assert.equal(r1.code, 0, r1.text);
    assert.equal(api.received[0]?.headers["content-type"], "application/x-ndjson");
    assert.equal(api.received[0]?.headers["content-encoding"], "gzip");
    const before = api.received.length;
    const oc = workspace("pmta-doctor-octeth-", {
      output: { http: { url: `http://127.0.0.1:${api.port}/webhook?type=pmta`, format: "octeth" } },
    });
    const r2 = await doctor(oc);
    assert.equal(r2.code, 0, r2.text);
    assert.match(
      r2.text,
      /^WARN output — format octeth: test request skipped .*TCP connection to 127\.0\.0\.1:\d+ works/m,
    );
    assert.equal(api.received.length, before, "no request reached the Octeth endpoint");
  });

  it("stateDir not writable (a path under a regular file) and a missing config fail the config check", async () => {
    const ws = workspace("pmta-doctor-state-");
    const file = join(ws.root, "a-file");
    writeFileSync(file, "");
    const r = await doctor(ws, { stateDir: join(file, "state") });
    assert.equal(r.code, 1);
    assert.match(
      r.text,
      /^FAIL config — .*stateDir: .*a-file\/state is not a writable directory \(ENOTDIR\)/m,
    );
    const io = collect();
    assert.equal(await runDoctor({ config: join(ws.root, "missing.yaml"), ...io }), 1);
    assert.match(
      io.stdout(),
      /^FAIL config — .*missing\.yaml: cannot read the config file \(ENOENT\); check the path \(correct the config/m,
    );
  });

  it("live directory and archive on different filesystems: FAIL with the reason", async (t) => {
    const shm = "/dev/shm";
    if (!existsSync(shm) || statSync(shm).dev === statSync(roots[0] ?? "/tmp").dev) {
      t.skip("no second filesystem (/dev/shm) here");
      return;
    }
    const archive = mkdtempSync(join(shm, "pmta-doctor-archive-"));
    roots.push(archive);
    const probe = workspace("pmta-doctor-fs-");
    const ws = workspace("pmta-doctor-fs-", {
      inputs: [{ name: "bounces", path: join(probe.liveDir, "bounces-*.csv"), archive }],
    });
    const r = await doctor(ws);
    assert.equal(r.code, 1);
    assert.match(
      r.text,
      /^FAIL input bounces same filesystem — .* are on different filesystems: a move there is a copy plus delete, so every moved file gets a new inode.* \(put the move-to directory on the same volume/m,
    );
  });

  it("dead-letter and file output in a directory that does not exist; a missing live directory", async () => {
    const ws = workspace("pmta-doctor-paths-", {
      inputs: [{ name: "bounces", path: "/nonexistent-dir/pmta/bounces-*.csv" }],
      output: { file: { path: "/nonexistent-dir/events.ndjson" } },
      deadLetter: { path: "/nonexistent-dir/dead.ndjson" },
    });
    const r = await doctor(ws);
    assert.equal(r.code, 1);
    assert.match(
      r.text,
      /^FAIL dead-letter — \/nonexistent-dir\/dead\.ndjson does not exist and cannot be created in \/nonexistent-dir \(ENOENT\) \(create the directory/m,
    );
    assert.match(r.text, /^FAIL output — \/nonexistent-dir\/events\.ndjson does not exist/m);
    assert.match(
      r.text,
      /^FAIL input bounces directory — \/nonexistent-dir\/pmta does not exist \(create it or fix inputs\[\]\.path/m,
    );
    assert.match(r.text, /^WARN input bounces archive — no archive configured/m);
  });

  it("a damaged checkpoint store fails its check", async () => {
    const ws = workspace("pmta-doctor-ckpt-");
    mkdirSync(ws.stateDir, { recursive: true });
    writeFileSync(join(ws.stateDir, "checkpoints.json"), "pmta-ingest-checkpoint v1 sha256=00\n{}");
    const r = await doctor(ws);
    assert.equal(r.code, 1);
    assert.match(
      r.text,
      /^FAIL checkpoint store — damaged: .*checkpoints\.json: header line has no valid sha256 checksum/m,
    );
  });

  /**
   * startAt skips what files hold only at an input's first start; doctor tells which inputs that is
   * before the daemon starts (an input just added, or a list that cannot be read after a long stop).
   */
  it("startAt: which inputs it will apply to at the next start, and a warning when the list is unreadable", async () => {
    const ws = workspace("pmta-doctor-startat-", { startAt: "24h" });
    const first = await doctor(ws);
    assert.match(
      first.text,
      /^PASS startAt — at the next start, files with no checkpoint entry in every input are left to startAt \(files modified within 1d\): what they hold before then is not sent$/m,
    );

    // The bounces input has run; fbl was added to the config since.
    const live = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    const st = statSync(live);
    await new CheckpointStore(ws.stateDir).save([
      {
        dev: st.dev,
        ino: st.ino,
        input: "bounces",
        path: live,
        offset: st.size,
        headHash: "0".repeat(64),
        headLen: 64,
        anchorHash: "0".repeat(64),
        anchorLen: 64,
        finished: false,
        updatedAt: Date.now(),
      },
    ]);
    await writeStartedInputs(ws.stateDir, ["bounces"]);
    const added = await doctor(ws);
    assert.match(
      added.text,
      /^PASS startAt — .* no checkpoint entry in fbl are left to startAt \(files modified/m,
    );

    await writeStartedInputs(ws.stateDir, ["bounces", "fbl"]);
    const both = await doctor(ws);
    assert.match(
      both.text,
      /^PASS startAt — every input has completed its first start: a file with no checkpoint entry is read whole/m,
    );

    writeFileSync(join(ws.stateDir, INPUTS_STARTED), "{not json");
    const torn = await doctor(ws);
    assert.equal(torn.code, 0, torn.text);
    const check = torn.byName.get("startAt");
    assert.equal(check?.status, "WARN");
    assert.match(check?.detail ?? "", /inputs-started: not a list of started inputs.*applies to every input/);
    assert.match(check?.fix ?? "", /set startAt: beginning for the next start/);
  });

  it("metrics address: free passes; in use by a daemon answering /healthz passes; in use by something else fails", async () => {
    const free = await freePort();
    const ws = workspace("pmta-doctor-metrics-");
    const r1 = await doctor(ws, { metrics: { listen: `127.0.0.1:${free}` } });
    assert.match(r1.text, /^PASS metrics — 127\.0\.0\.1:\d+ is free/m);

    const healthy = await backend(200, "ok");
    const r2 = await doctor(ws, { metrics: { listen: `127.0.0.1:${healthy.port}` } });
    assert.match(
      r2.text,
      /^PASS metrics — 127\.0\.0\.1:\d+ is in use by a running daemon: GET \/healthz → 200 in \d+ ms \(ok\)/m,
    );
    assert.equal(healthy.received[0]?.url, "/healthz");

    const other = await backend(404, "not found");
    const r3 = await doctor(ws, { metrics: { listen: `127.0.0.1:${other.port}` } });
    assert.equal(r3.code, 1);
    assert.match(r3.text, /^FAIL metrics — 127\.0\.0\.1:\d+ is in use and GET \/healthz answers 404/m);
  });
  it("TLS: a self-signed backend fails verification with the code and the fix; with caFile it passes", async (t) => {
    const dir = mkdtempSync(join(roots[0] ?? "/tmp", "tls-"));
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    try {
      execFileSync(
        "openssl",
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1"].concat([
          "-subj",
          "/CN=127.0.0.1",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
        ]),
        { stdio: "ignore" },
      );
    } catch {
      t.skip("openssl is not available to make a test certificate");
      return;
    }
    let requests = 0;
    const server = createHttpsServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      requests++;
      req.resume().on("end", () => res.writeHead(200).end());
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
    const untrusted = await doctor(workspace("pmta-doctor-tls-", { output: { http: { url } } }));
    assert.equal(untrusted.code, 1);
    assert.match(
      untrusted.text,
      /^FAIL output — POST https:.* failed after \d+ ms: [A-Z_]*(SELF_SIGNED|CERT)[A-Z_]* .*set output\.http\.caFile/m,
    );
    assert.equal(requests, 0);
    const trusted = await doctor(workspace("pmta-doctor-tls-", { output: { http: { url, caFile: cert } } }));
    assert.equal(trusted.code, 0, trusted.text);
    assert.match(trusted.text, /^PASS output — POST https:\/\/127\.0\.0\.1:\d+\/events .* → HTTP 200/m);
  });
});
