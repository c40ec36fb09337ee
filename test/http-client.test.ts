import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { HttpClient } from "../src/deliver/http-client.js";

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.closeAllConnections();
  for (const s of servers) s.close();
});

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
): Promise<{ origin: URL; connections: () => number }> {
  let connections = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handler(req, res, Buffer.concat(chunks)));
  });
  server.on("connection", () => connections++);
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return { origin: new URL(`http://127.0.0.1:${port}`), connections: () => connections };
}

const client = (origin: URL, ms = 300): HttpClient =>
  new HttpClient({ origin, connectTimeoutMs: ms, headersTimeoutMs: ms, bodyTimeoutMs: ms });

describe("HttpClient", () => {
  it("posts the body with its length and headers, and reuses one connection for sequential posts", async () => {
    const got: Array<{ path: string; length: string; type: string; bytes: number }> = [];
    const s = await serve((req, res, body) => {
      got.push({
        path: req.url ?? "",
        length: req.headers["content-length"] ?? "",
        type: req.headers["content-type"] ?? "",
        bytes: body.length,
      });
      res.writeHead(201, { "retry-after": "3" }).end("créé");
    });
    const c = client(s.origin);
    for (let i = 0; i < 3; i++) {
      const a = await c.post(
        "/events?x=1",
        { "content-type": "application/json" },
        Buffer.alloc(700_000, 0x61),
      );
      assert.equal(a.statusCode, 201);
      assert.equal(a.body, "créé");
      assert.equal(a.headers["retry-after"], "3");
    }
    c.destroy();
    assert.deepEqual(got[2], {
      path: "/events?x=1",
      length: "700000",
      type: "application/json",
      bytes: 700_000,
    });
    assert.equal(s.connections(), 1, "keep-alive");
  });

  it("keeps the first 64 KiB of a long answer and can still use the connection", async () => {
    const s = await serve((_req, res) => res.writeHead(400).end("x".repeat(1_000_000)));
    const c = client(s.origin);
    const a = await c.post("/", {}, Buffer.from("{}"));
    assert.equal(a.statusCode, 400);
    assert.equal(a.body.length, 64 * 1024);
    assert.equal((await c.post("/", {}, Buffer.from("{}"))).statusCode, 400);
    c.destroy();
    assert.equal(s.connections(), 1);
  });

  it("resolves an early answer only once its body is out, so the caller can reuse the body buffer", async () => {
    // The backend answers before reading the request, then checks every byte of it: a body buffer
    // overwritten while still being sent would show up as a bad request body.
    const bad: number[] = [];
    let n = 0;
    const server = createServer((req, res) => {
      const mark = n++ % 256;
      res.writeHead(200).end("early");
      let at = 0;
      req.on("data", (c: Buffer) => {
        for (const b of c) if (b !== (at++ === 0 ? 0x7b : mark)) bad.push(mark);
      });
    });
    servers.push(server);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    const c = client(new URL(`http://127.0.0.1:${port}`), 5_000);
    const body = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < 6; i++) {
      body.fill(i % 256);
      body[0] = 0x7b;
      const a = await c.post("/", {}, body);
      assert.equal(a.body, "early");
    }
    c.destroy();
    assert.deepEqual(bad.slice(0, 5), []);
  });

  it("fails with HEADERS_TIMEOUT when the backend never answers, BODY_TIMEOUT when its answer stalls", async () => {
    const silent = await serve(() => {});
    const c1 = client(silent.origin, 200);
    await assert.rejects(c1.post("/", {}, Buffer.from("{}")), { code: "HEADERS_TIMEOUT" });
    c1.destroy();
    const stalls = await serve((_req, res) => {
      res.writeHead(200, { "content-length": "10" });
      res.write("abc");
    });
    const c2 = client(stalls.origin, 200);
    await assert.rejects(c2.post("/", {}, Buffer.from("{}")), { code: "BODY_TIMEOUT" });
    c2.destroy();
  });

  it("fails with the socket's code when nothing listens, and after destroy() at once", async () => {
    const s = await serve((_req, res) => res.end());
    const port = s.origin.port;
    const gone = servers.pop() as Server;
    gone.close();
    await once(gone, "close");
    const c = client(new URL(`http://127.0.0.1:${port}`));
    await assert.rejects(c.post("/", {}, Buffer.from("{}")), { code: "ECONNREFUSED" });
    c.destroy();
    await assert.rejects(c.post("/", {}, Buffer.from("{}")), { code: "CLIENT_CLOSED" });
  });

  it("destroy() fails a request in flight instead of waiting for a backend that hangs", async () => {
    const s = await serve(() => {});
    const c = client(s.origin, 60_000);
    const pending = c.post("/", {}, Buffer.from("{}"));
    setImmediate(() => c.destroy());
    await assert.rejects(pending, { code: "CLIENT_CLOSED" });
  });
});
