import assert from "node:assert/strict";
import { execSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { parseDuration } from "../src/config/units.js";
import type { Envelope } from "../src/deliver/batcher.js";
import {
  HttpOutput,
  type HttpSettings,
  parseHttpSettings,
  type Rejection,
} from "../src/deliver/http-output.js";
import type { PmtaEvent } from "../src/event/event.js";

/** A real HTTP receiver on 127.0.0.1 whose answer to each request is decided by `handler`. */
interface Received {
  readonly headers: IncomingMessage["headers"];
  readonly body: Buffer;
  readonly at: number;
}
type Handler = (r: Received, res: ServerResponse, n: number) => void;

const servers: Array<Server | import("node:https").Server> = [];
after(() => {
  for (const s of servers) s.close();
});

async function receiver(handler: Handler): Promise<{ url: string; got: Received[]; server: Server }> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r = { headers: req.headers, body: Buffer.concat(chunks), at: performance.now() };
      got.push(r);
      handler(r, res, got.length);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/pmta/events`, got, server };
}

function envelopes(n: number, poison: ReadonlySet<number> = new Set()): Envelope[] {
  return Array.from({ length: n }, (_, i) => {
    const event = {
      id: `k:${i}`,
      kind: "bounce",
      recordType: i % 5 === 0 ? "rb" : "b",
      time: "2026-11-23T10:00:00Z",
      fields: {
        type: i % 5 === 0 ? "rb" : "b",
        rcpt: poison.has(i) ? "POISON@x.com" : `u${i}@x.com`,
        timeLogged: "2026-11-23 10:00:00+0000",
      },
      source: { host: "h", file: "/f", offset: i * 100 },
    } as unknown as PmtaEvent;
    const data = Buffer.from(JSON.stringify(event));
    return {
      data,
      ack: () => {},
      id: event.id,
      origin: { input: "bounces", file: "/f", dev: 1, ino: 2, offset: i * 100, end: i * 100 + 100 },
    };
  });
}

function settings(url: string, extra: Record<string, unknown> = {}): HttpSettings {
  return {
    ...parseHttpSettings({ url, maxBackoff: "200ms", headersTimeout: "500ms", ...extra }, parseDuration),
    authRetryMs: 100,
  };
}

function output(s: HttpSettings, dead: Rejection[] = []) {
  const retries: string[] = [];
  const out = new HttpOutput(s, {
    deadLetter: async (r) => {
      dead.push(r);
    },
    log: () => {},
    onRetry: (cause) => retries.push(cause),
  });
  return { out, retries, dead };
}

function ids(r: Received): string[] {
  const doc = JSON.parse(r.body.toString()) as { events: Array<{ id: string }> };
  return doc.events.map((e) => e.id);
}

describe("HTTP output", () => {
  it("posts {batchId, events} with a stable Idempotency-Key, bearer token and optional gzip", async () => {
    const rx = await receiver((_r, res) => res.writeHead(200).end("ok"));
    const { out } = output(settings(rx.url, { token: "s3cret", gzip: true, headers: { "X-Tenant": "7" } }));
    const batch = envelopes(3);
    await out.send(batch);
    await out.send(batch);
    await out.close();
    const [a, b] = rx.got as [Received, Received];
    assert.equal(a.headers.authorization, "Bearer s3cret");
    assert.equal(a.headers["x-tenant"], "7");
    assert.equal(a.headers["content-encoding"], "gzip");
    const doc = JSON.parse(gunzipSync(a.body).toString()) as {
      batchId: string;
      events: Array<{ id: string }>;
    };
    assert.deepEqual(
      doc.events.map((e) => e.id),
      ["k:0", "k:1", "k:2"],
    );
    assert.equal(doc.batchId, a.headers["idempotency-key"]);
    assert.equal(a.headers["idempotency-key"], b.headers["idempotency-key"], "same events, same key");
  });

  it("retries 5xx, 408 and network errors until accepted, honouring Retry-After on 429", async () => {
    const plan = [500, 502, 408, 503, 429, 200];
    const rx = await receiver((_r, res, n) => {
      const status = plan[n - 1] ?? 200;
      res.writeHead(status, status === 429 ? { "retry-after": "1" } : {}).end();
    });
    const { out, retries } = output(settings(rx.url));
    await out.send(envelopes(4));
    await out.close();
    assert.equal(rx.got.length, 6);
    assert.deepEqual(retries, ["5xx", "5xx", "408", "5xx", "429"]);
    const wait = (rx.got[5] as Received).at - (rx.got[4] as Received).at;
    assert.ok(wait >= 950, `waited ${wait.toFixed(0)} ms after Retry-After: 1`);
  });

  it("keeps retrying while the backend is unreachable, and delivers once it is back", async () => {
    const rx = await receiver((_r, res) => res.writeHead(200).end());
    const url = rx.url;
    rx.server.close();
    await new Promise((r) => setTimeout(r, 50));
    const { out, retries } = output(settings(url));
    const sending = out.send(envelopes(2));
    while (retries.length < 3) await new Promise((r) => setTimeout(r, 20));
    const port = Number(new URL(url).port);
    const back = createServer((req, res) => {
      req.resume();
      req.on("end", () => res.writeHead(200).end());
    });
    servers.push(back);
    await new Promise<void>((resolve) => back.listen(port, "127.0.0.1", resolve));
    await sending;
    await out.close();
    assert.ok(retries.every((c) => c === "network"));
  });

  it("times out a backend that accepts and never answers, then retries", async () => {
    const rx = await receiver((_r, res, n) => {
      if (n > 1) res.writeHead(200).end();
    });
    const { out, retries } = output(settings(rx.url));
    await out.send(envelopes(1));
    await out.close();
    assert.equal(retries[0], "network");
    assert.equal(rx.got.length, 2);
  });

  it("keeps retrying on 401 without dropping or dead-lettering anything", async () => {
    const rx = await receiver((_r, res, n) =>
      res.writeHead(n <= 3 ? 401 : 200).end(n <= 3 ? "bad token" : ""),
    );
    const { out, retries, dead } = output(settings(rx.url));
    await out.send(envelopes(5));
    await out.close();
    assert.deepEqual(retries, ["auth", "auth", "auth"]);
    assert.equal(dead.length, 0);
    assert.deepEqual(ids(rx.got[3] as Received), ["k:0", "k:1", "k:2", "k:3", "k:4"]);
  });

  it("splits batches on 413 until they fit", async () => {
    const rx = await receiver((r, res) => res.writeHead(r.body.length > 900 ? 413 : 200).end());
    const { out, dead } = output(settings(rx.url));
    await out.send(envelopes(16));
    await out.close();
    const accepted = rx.got.filter((r) => r.body.length <= 900).flatMap(ids);
    assert.deepEqual(
      accepted.sort((a, b) => Number(a.slice(2)) - Number(b.slice(2))),
      Array.from({ length: 16 }, (_, i) => `k:${i}`),
    );
    assert.equal(dead.length, 0);
  });

  it("isolates a poison event by bisection, dead-letters only it and delivers the rest once", async (t) => {
    const rx = await receiver((r, res) => {
      const poisoned = r.body.includes("POISON");
      res.writeHead(poisoned ? 400 : 200).end(poisoned ? '{"error":"invalid recipient field"}' : "");
    });
    const { out, dead } = output(settings(rx.url));
    const n = 500;
    await out.send(envelopes(n, new Set([37])));
    await out.close();
    assert.equal(dead.length, 1);
    assert.equal(dead[0]?.envelope.id, "k:37");
    t.diagnostic(`isolating 1 poison event in a batch of ${n}: ${rx.got.length - 1} extra requests`);
    assert.equal(dead[0]?.status, 400);
    assert.match(dead[0]?.body ?? "", /invalid recipient/);
    const delivered = rx.got.filter((r) => !r.body.includes("POISON")).flatMap(ids);
    assert.equal(delivered.length, n - 1, "every other event delivered exactly once");
    assert.equal(new Set(delivered).size, n - 1);
    const extra = rx.got.length - 1;
    assert.ok(extra <= Math.ceil(Math.log2(n)) + 1, `${extra} extra requests to isolate one poison in ${n}`);
  });

  it("isolates several poison events in one batch", async () => {
    const rx = await receiver((r, res) => res.writeHead(r.body.includes("POISON") ? 400 : 200).end());
    const { out, dead } = output(settings(rx.url));
    await out.send(envelopes(100, new Set([0, 50, 99])));
    await out.close();
    assert.deepEqual(dead.map((d) => d.envelope.id).sort(), ["k:0", "k:50", "k:99"]);
    const delivered = rx.got.filter((r) => !r.body.includes("POISON")).flatMap(ids);
    assert.equal(delivered.length, 97);
    assert.equal(new Set(delivered).size, 97);
  });

  it("re-sends a batch whose acknowledgement was lost, with the same Idempotency-Key", async () => {
    const rx = await receiver((_r, res, n) => {
      if (n === 1)
        res.socket?.destroy(); // the backend stored it, then the connection died
      else res.writeHead(200).end();
    });
    const { out } = output(settings(rx.url));
    await out.send(envelopes(3));
    await out.close();
    assert.equal(rx.got.length, 2);
    assert.equal(rx.got[0]?.headers["idempotency-key"], rx.got[1]?.headers["idempotency-key"]);
  });

  it("posts Octeth's field names taken by header name (no rb column shift)", async () => {
    const rx = await receiver((_r, res) => res.writeHead(200).end());
    const { out } = output(settings(rx.url, { format: "octeth", octethSignature: "abc" }));
    await out.send(envelopes(2));
    await out.close();
    const got = rx.got[0] as Received;
    assert.equal(got.headers["x-octeth-signature"], "abc");
    const arr = JSON.parse(got.body.toString()) as Array<Record<string, string>>;
    assert.deepEqual(arr[0], { logType: "rb", rcpt: "u0@x.com", timeLogged: "2026-11-23 10:00:00+0000" });
  });

  it("posts one Octeth record per request to the ?type=pmta webhook", async () => {
    const rx = await receiver((_r, res) => res.writeHead(200).end());
    const { out } = output(settings(`${rx.url}?type=pmta`, { format: "octeth" }));
    await out.send(envelopes(3));
    await out.close();
    assert.equal(rx.got.length, 3);
    const first = JSON.parse((rx.got[0] as Received).body.toString()) as Record<string, string>;
    assert.equal(first.logType, "rb");
    assert.equal(first.rcpt, "u0@x.com");
  });

  it("speaks TLS with an extra CA file and a client certificate", async (t) => {
    const d = mkdtempSync(join(tmpdir(), "pmta-tls-"));
    t.after(() => rmSync(d, { recursive: true, force: true }));
    const ssl = (args: string) => execSync(`openssl ${args}`, { cwd: d, stdio: "pipe" });
    ssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca");
    ssl("req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1");
    writeFileSync(join(d, "san.ext"), "subjectAltName=IP:127.0.0.1\n");
    ssl(
      "x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile san.ext",
    );
    ssl("req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr -subj /CN=pmta-ingest");
    ssl("x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cli.pem -days 2");
    let clientCn = "";
    const server = createHttpsServer(
      {
        key: readFileSync(join(d, "srv.key")),
        cert: readFileSync(join(d, "srv.pem")),
        ca: readFileSync(join(d, "ca.pem")),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        clientCn = String(
          (req.socket as import("node:tls").TLSSocket).getPeerCertificate().subject?.CN ?? "",
        );
        req.resume();
        req.on("end", () => res.writeHead(200).end());
      },
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const { out } = output(
      settings(`https://127.0.0.1:${port}/events`, {
        caFile: join(d, "ca.pem"),
        certFile: join(d, "cli.pem"),
        keyFile: join(d, "cli.key"),
      }),
    );
    await out.send(envelopes(2));
    await out.close();
    assert.equal(clientCn, "pmta-ingest");
  });

  it("rejects bad settings naming the key", () => {
    assert.throws(
      () => parseHttpSettings({ url: "ftp://x" }, parseDuration),
      /output\.http\.url: expected an http/,
    );
    assert.throws(
      () => parseHttpSettings({ url: "http://x", format: "xml" }, parseDuration),
      /output\.http\.format/,
    );
    assert.throws(
      () => parseHttpSettings({ url: "http://x", tokenFile: "/nope" }, parseDuration),
      /output\.http\.tokenFile: cannot read \/nope \(ENOENT\)/,
    );
    assert.throws(
      () => parseHttpSettings({ url: "http://x", tokn: "a" }, parseDuration),
      /output\.http\.tokn: unknown key/,
    );
  });
});
