import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, it } from "node:test";
import { PmtaSimulator } from "../src/simulate/pmta-simulator.js";
import { makeWorkspace, startRun, tally, waitUntil } from "./support/run-harness.js";

const servers: Server[] = [];
const roots: string[] = [];
after(() => {
  for (const s of servers) s.close();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

interface Sample {
  recordType: string;
  recipient?: string;
  fields: Record<string, string>;
}

interface Got {
  seq: number;
  stream: string;
}

it("run → HTTP: survives a backend outage and a poison record; everything else arrives, the poison is dead-lettered", async () => {
  const got: Got[] = [];
  const samples: Sample[] = [];
  let up = false;
  let poisonSeq = -1;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (!up) {
        res.writeHead(503).end("maintenance");
        return;
      }
      const doc = JSON.parse(Buffer.concat(chunks).toString()) as {
        events: Array<Sample & { headers?: Record<string, string> }>;
      };
      samples.push(...doc.events.slice(0, 2));
      const seqs = doc.events.map((e) => ({
        seq: Number((e.headers?.["X-FBLId"] ?? "").split("-")[0]),
        stream: e.recordType === "f" ? "fbl" : "bounces",
      }));
      if (seqs.some((s) => s.seq === poisonSeq && s.stream === "bounces")) {
        res.writeHead(422).end('{"error":"unprocessable"}');
        return;
      }
      got.push(...seqs);
      res.writeHead(200).end();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const ws = makeWorkspace("pmta-http-", {
    output: { http: { url: `http://127.0.0.1:${port}/events`, maxBackoff: "200ms" } },
    batch: { maxEvents: 50, maxWait: "50ms" },
    eventFields: "unmapped",
  });
  roots.push(ws.root);
  const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 31 });
  await sim.writeRecords(120);
  poisonSeq = sim.records().find((r) => r.stream === "bounces" && r.seq > 40)?.seq ?? -1;
  const run = startRun(ws);
  await sim.rotate();
  await sim.writeRecords(80);
  await waitUntil(
    () => /output failed; retrying/.test(run.stderr()),
    10_000,
    () => run.stderr(),
  );
  up = true;
  const expected = () => sim.records().filter((r) => !(r.stream === "bounces" && r.seq === poisonSeq));
  await waitUntil(
    () =>
      tally(
        expected(),
        got.map((g) => ({ ...g, id: "", file: "", offset: 0 })),
      ).lost.length === 0,
    20_000,
    () => run.stderr().slice(-2000),
  );
  run.child.kill("SIGTERM");
  assert.equal((await run.exited).code, 0, run.stderr());
  const t = tally(
    expected(),
    got.map((g) => ({ ...g, id: "", file: "", offset: 0 })),
  );
  assert.equal(t.duplicates, 0);
  assert.equal(t.unexpected, 0, "the poison record was not delivered");
  // eventFields: unmapped reached the encoder: what other members carry is not repeated in fields.
  assert.ok(samples.some((e) => e.recipient !== undefined));
  for (const e of samples) {
    const { rcpt, type, timeLogged } = e.fields;
    assert.ok(rcpt === undefined && type === undefined && timeLogged === undefined, JSON.stringify(e));
  }
  const dl = readFileSync(ws.deadLetter, "utf8")
    .trim()
    .split("\n")
    .map(
      (l) =>
        JSON.parse(l) as {
          status: number;
          response: string;
          offset: number;
          file: string;
          event: { headers: Record<string, string> };
        },
    );
  assert.equal(dl.length, 1);
  assert.equal(dl[0]?.status, 422);
  assert.match(dl[0]?.response ?? "", /unprocessable/);
  assert.equal(Number(dl[0]?.event.headers["X-FBLId"]?.split("-")[0]), poisonSeq);
  assert.match(dl[0]?.file ?? "", /bounces-/);
  await sim.stop();
});

it("SIGTERM during an outage: stops after drainTimeout instead of retrying forever, and re-sends on start", async () => {
  // A port nobody listens on: every attempt is a refused connection.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const ws = makeWorkspace("pmta-http-stop-", {
    output: { http: { url: `http://127.0.0.1:${port}/events`, maxBackoff: "200ms" } },
    drainTimeout: "1s",
  });
  roots.push(ws.root);
  const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 8 });
  await sim.writeRecords(20);
  const run = startRun(ws);
  await waitUntil(
    () => /output failed; retrying/.test(run.stderr()),
    10_000,
    () => run.stderr(),
  );
  const t0 = performance.now();
  run.child.kill("SIGTERM");
  const exit = await Promise.race([
    run.exited,
    new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 8_000).unref()),
  ]);
  if (exit === "hung") {
    run.child.kill("SIGKILL");
    assert.fail(`still running 8 s after SIGTERM: ${run.stderr().slice(-1500)}`);
  }
  assert.equal(exit.code, 0, run.stderr());
  assert.ok(performance.now() - t0 < 8_000);
  assert.match(run.stderr(), /drain timeout: events not acknowledged will be read again on start/);
});
