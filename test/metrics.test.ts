import assert from "node:assert/strict";
import { readFileSync, renameSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import type { PmtaEvent } from "../src/event/event.js";
import { LabelCap } from "../src/observe/label-cap.js";
import { PipelineMetrics } from "../src/observe/metrics.js";
import { MetricsListenError, startMetricsServer } from "../src/observe/metrics-server.js";
import { PmtaSimulator } from "../src/simulate/pmta-simulator.js";
import { VERSION } from "../src/version.js";
import { parseMetrics, promtoolCheckMetrics, scrape, sum } from "./support/metrics-scrape.js";
import { makeWorkspace, type Running, startRun, waitUntil } from "./support/run-harness.js";

const cleanup: Array<() => void | Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

function event(over: Partial<PmtaEvent> & Pick<PmtaEvent, "kind" | "recordType">): PmtaEvent {
  return { id: "k:0", time: null, fields: {}, source: { host: "h", file: "f", offset: 0 }, ...over };
}

const hardBounce = (vmta?: string, jobId?: string): PmtaEvent =>
  event({
    kind: "bounce",
    recordType: "b",
    ...(vmta === undefined ? {} : { vmta }),
    ...(jobId === undefined ? {} : { jobId }),
    bounce: {
      hard: true,
      permanent: true,
      reason: "invalid_mailbox",
      action: "suppress",
      scope: "recipient",
      evidence: "5.1.1",
      confidence: "high",
      provider: "gmail",
    },
  });

function metrics(over: Partial<ConstructorParameters<typeof PipelineMetrics>[0]> = {}): PipelineMetrics {
  return new PipelineMetrics({
    version: VERSION,
    output: "http",
    inputs: ["bounces", "fbl"],
    inFlightLimit: 1000,
    maxVmtaLabels: 2,
    maxJobLabels: 2,
    processMetrics: false,
    ...over,
  });
}

describe("LabelCap", () => {
  it("keeps the first N values, sends the rest to other, absent to none, and truncates long values", () => {
    const cap = new LabelCap(2);
    assert.equal(cap.label("vmta-a"), "vmta-a");
    assert.equal(cap.label("vmta-b"), "vmta-b");
    assert.equal(cap.label("vmta-c"), "other");
    assert.equal(cap.label("vmta-a"), "vmta-a", "a kept value stays itself after the cap is reached");
    assert.equal(cap.label(undefined), "none");
    assert.equal(cap.label(""), "none");
    const long = new LabelCap(5);
    const v = "x".repeat(300);
    assert.equal(long.label(v).length, 64);
    assert.equal(long.label(v), "x".repeat(64), "the same long value maps to the same label every time");
    assert.equal(long.size, 1);
  });
});

describe("PipelineMetrics", () => {
  it("tallies per-record counts off the hot path and hands exact totals to each scrape", async () => {
    const m = metrics();
    const slot = m.eventRead("bounces", hardBounce("vmta-a", "job-1"));
    m.eventRead("bounces", hardBounce("vmta-b", "job-2"));
    m.eventRead("bounces", hardBounce("vmta-c", "job-3"));
    m.eventRead(
      "fbl",
      event({
        kind: "complaint",
        recordType: "f",
        recipientDomain: "hotmail.com",
        warnings: ["time: no timeLogged"],
      }),
    );
    slot.n++;
    m.bytesRead("bounces", 1234);
    let s = parseMetrics(await m.render());
    assert.equal(sum(s, "pmta_ingest_records_read_total", { input: "bounces", type: "b" }), 3);
    assert.equal(sum(s, "pmta_ingest_records_read_total", { input: "fbl", type: "f" }), 1);
    assert.equal(sum(s, "pmta_ingest_events_delivered_total", { input: "bounces", kind: "bounce" }), 1);
    assert.equal(sum(s, "pmta_ingest_bytes_read_total", { input: "bounces" }), 1234);
    assert.equal(
      sum(s, "pmta_ingest_mail_events_total", { kind: "bounce", hard: "true", provider: "gmail" }),
      3,
    );
    assert.equal(
      sum(s, "pmta_ingest_mail_events_total", { vmta: "other" }),
      1,
      "third vmta over the cap of 2",
    );
    assert.equal(
      sum(s, "pmta_ingest_mail_events_total", {
        kind: "complaint",
        reason: "complaint",
        provider: "microsoft",
        vmta: "none",
      }),
      1,
    );
    assert.equal(sum(s, "pmta_ingest_job_events_total", { job_id: "other" }), 1);
    assert.equal(sum(s, "pmta_ingest_decode_warnings_total", { input: "fbl", warning: "time" }), 1);
    // A second scrape with nothing new must not count anything twice.
    slot.n++;
    s = parseMetrics(await m.render());
    assert.equal(sum(s, "pmta_ingest_records_read_total"), 4);
    assert.equal(sum(s, "pmta_ingest_events_delivered_total"), 2);
    assert.equal(sum(s, "pmta_ingest_build_info", { version: VERSION }), 1);
  });

  it("counts one shared classification under each kind it arrives with", async () => {
    const m = metrics();
    // The classifier hands out one result object for replies that classify alike, a bounce's and a
    // deferral's included: the labels memoised for it must follow the event's kind.
    const shared = hardBounce().bounce;
    for (let i = 0; i < 10; i++) {
      const kind = i % 3 === 0 ? "deferral" : "bounce";
      m.eventRead("bounces", event({ kind, recordType: kind === "bounce" ? "b" : "t", bounce: shared }));
    }
    const s = parseMetrics(await m.render());
    assert.equal(sum(s, "pmta_ingest_mail_events_total", { kind: "bounce", reason: "invalid_mailbox" }), 6);
    assert.equal(sum(s, "pmta_ingest_mail_events_total", { kind: "deferral", reason: "invalid_mailbox" }), 4);
    assert.equal(sum(s, "pmta_ingest_job_events_total", { kind: "deferral" }), 4);
  });

  it("exports the series alerts compare against before anything happened (zeros, output up)", async () => {
    const s = parseMetrics(await metrics().render());
    for (const name of [
      "pmta_ingest_checkpoint_writes_total",
      "pmta_ingest_checkpoint_write_failures_total",
      "pmta_ingest_rotations_total",
      "pmta_ingest_lost_bytes_total",
      "pmta_ingest_checkpoint_invalidations_total",
      "pmta_ingest_dead_letters_total",
      "pmta_ingest_output_retries_total",
    ]) {
      assert.ok(
        s.some((x) => x.name === name),
        `${name} present from the start`,
      );
    }
    assert.equal(sum(s, "pmta_ingest_output_up", { output: "http" }), 1);
    assert.equal(sum(s, "pmta_ingest_oldest_unacked_age_seconds"), 0);
  });

  it("is clean under promtool check metrics (prom-client's nodejs_active_* aside)", async () => {
    const m = metrics({ processMetrics: true });
    m.eventRead("bounces", hardBounce("vmta-a"));
    m.request("success", 0.01);
    m.batch(10, 4000);
    m.retry("server_error");
    assert.deepEqual(promtoolCheckMetrics(await m.render()), []);
  });
});

describe("metrics server", () => {
  it("serves /metrics, /healthz, /readyz; 404 and 405 otherwise", async () => {
    let ready = true;
    const server = await startMetricsServer({
      host: "127.0.0.1",
      port: 0,
      metrics: metrics(),
      readiness: async () => [
        { name: "input bounces: /x", ok: ready, detail: ready ? "readable" : "ENOENT" },
      ],
    });
    cleanup.push(() => server.close());
    const m = await scrape(server.address);
    assert.equal(m.status, 200);
    assert.match(m.body, /^# HELP pmta_ingest_/m);
    assert.deepEqual(JSON.parse((await scrape(server.address, "/healthz")).body), { status: "ok" });
    let r = await scrape(server.address, "/readyz");
    assert.equal(r.status, 200);
    ready = false;
    r = await scrape(server.address, "/readyz");
    assert.equal(r.status, 503);
    assert.equal((JSON.parse(r.body) as { checks: Array<{ detail: string }> }).checks[0]?.detail, "ENOENT");
    assert.equal((await scrape(server.address, "/nope")).status, 404);
    const post = await fetch(`http://${server.address}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
  });

  it("a taken port is a clear start-up error naming the key and the way out", async () => {
    const first = await startMetricsServer({
      host: "127.0.0.1",
      port: 0,
      metrics: metrics(),
      readiness: async () => [],
    });
    cleanup.push(() => first.close());
    const port = Number(first.address.split(":").pop());
    await assert.rejects(
      startMetricsServer({ host: "127.0.0.1", port, metrics: metrics(), readiness: async () => [] }),
      (err: unknown) =>
        err instanceof MetricsListenError &&
        /metrics\.listen 127\.0\.0\.1:\d+: cannot listen: the address is in use/.test(err.message) &&
        /"off"/.test(err.message),
    );
  });
});

/** A backend that can be switched between accepting and failing; counts hard bounces it accepted. */
async function backend(): Promise<{
  url: string;
  setUp: (up: boolean) => void;
  accepted: () => { events: number; hard: number };
}> {
  let up = false;
  let events = 0;
  let hard = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (!up) {
        res.writeHead(503).end("down for maintenance");
        return;
      }
      const doc = JSON.parse(Buffer.concat(chunks).toString()) as {
        events: Array<{ bounce?: { hard: boolean } }>;
      };
      events += doc.events.length;
      hard += doc.events.filter((e) => e.bounce?.hard === true).length;
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/events`,
    setUp: (u) => (up = u),
    accepted: () => ({ events, hard }),
  };
}

async function metricsAddress(run: Running): Promise<string> {
  let address = "";
  await waitUntil(
    () => {
      for (const line of run.stderr().split("\n")) {
        if (!line.includes("metrics endpoint listening")) continue;
        address = (JSON.parse(line) as { address: string }).address;
      }
      return address !== "";
    },
    10_000,
    () => run.stderr(),
  );
  return address;
}

describe("pmta-ingest run with metrics", () => {
  it("counts what it read and delivered, shows the output down and not ready, then recovers", async () => {
    const api = await backend();
    const ws = makeWorkspace("pmta-metrics-", {
      output: { http: { url: api.url, maxBackoff: "100ms" } },
      metrics: { listen: "127.0.0.1:0", maxVmtaLabels: 3 },
    });
    cleanup.push(() => rmSync(ws.root, { recursive: true, force: true }));
    const sim = new PmtaSimulator({ liveDir: ws.liveDir, seed: 5 });
    await sim.writeRecords(150);
    const run = startRun(ws);
    cleanup.push(() => {
      run.child.kill("SIGKILL");
    });
    const address = await metricsAddress(run);

    // Backend down from the start: retries counted, output down, not ready (never succeeded).
    await waitUntil(
      () => /output failed; retrying/.test(run.stderr()),
      10_000,
      () => run.stderr(),
    );
    let s = parseMetrics((await scrape(address)).body);
    assert.equal(sum(s, "pmta_ingest_output_up", { output: "http" }), 0);
    assert.ok(sum(s, "pmta_ingest_output_retries_total", { cause: "server_error" }) >= 1);
    assert.ok(sum(s, "pmta_ingest_in_flight_events") > 0);
    assert.ok(sum(s, "pmta_ingest_oldest_unacked_age_seconds") > 0);
    let ready = await scrape(address, "/readyz");
    assert.equal(ready.status, 503, ready.body);
    assert.match(ready.body, /last attempt failed \(5xx\); last success never/);

    api.setUp(true);
    await sim.rotate();
    await sim.writeRecords(100);
    const total = sim.records().length;
    await waitUntil(
      () => api.accepted().events >= total,
      20_000,
      () => `${api.accepted().events}/${total} ${run.stderr().slice(-1000)}`,
    );
    // The acknowledgement and the checkpoint land a moment after the backend counted the batch.
    let body = "";
    const settled = async (): Promise<boolean> => {
      body = (await scrape(address)).body;
      const x = parseMetrics(body);
      return (
        sum(x, "pmta_ingest_events_delivered_total") === total &&
        sum(x, "pmta_ingest_in_flight_events") === 0 &&
        sum(x, "pmta_ingest_unread_bytes") === 0
      );
    };
    const deadline = performance.now() + 10_000;
    while (!(await settled())) {
      assert.ok(performance.now() < deadline, `metrics did not settle: ${body}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    s = parseMetrics(body);
    const byStream = (stream: string) => sim.records().filter((r) => r.stream === stream).length;
    assert.equal(sum(s, "pmta_ingest_records_read_total", { input: "bounces" }), byStream("bounces"));
    assert.equal(sum(s, "pmta_ingest_records_read_total", { input: "fbl" }), byStream("fbl"));
    assert.equal(
      sum(s, "pmta_ingest_events_delivered_total", { input: "fbl", kind: "complaint" }),
      byStream("fbl"),
    );
    assert.equal(sum(s, "pmta_ingest_mail_events_total"), total);
    assert.equal(
      sum(s, "pmta_ingest_mail_events_total", { kind: "bounce", hard: "true" }),
      api.accepted().hard,
    );
    assert.ok(api.accepted().hard > 0, "the simulator writes hard bounces");
    const vmtas = new Set(
      s.filter((x) => x.name === "pmta_ingest_mail_events_total").map((x) => x.labels.vmta),
    );
    assert.ok(vmtas.size <= 3 + 2, `vmta capped at 3 (+ other, none): ${[...vmtas].join(",")}`);
    assert.equal(sum(s, "pmta_ingest_rotations_total"), 2, "one rotation per stream");
    assert.ok(sum(s, "pmta_ingest_bytes_read_total") > 0);
    assert.equal(sum(s, "pmta_ingest_output_up"), 1);
    assert.ok(sum(s, "pmta_ingest_checkpoint_writes_total") >= 1);
    assert.ok(sum(s, "pmta_ingest_output_request_duration_seconds_count", { outcome: "success" }) >= 1);
    assert.ok(sum(s, "pmta_ingest_batch_events_count") >= 1);
    assert.equal(sum(s, "pmta_ingest_batch_events_sum"), total);
    assert.ok(sum(s, "process_resident_memory_bytes") > 0, "default process metrics");
    assert.deepEqual(promtoolCheckMetrics(body), []);
    ready = await scrape(address, "/readyz");
    assert.equal(ready.status, 200, ready.body);

    // An input directory that disappears makes the daemon not ready, naming it.
    const archive = JSON.parse(readFileSync(ws.config, "utf8")).inputs[1].archive as string;
    renameSync(archive, `${archive}.away`);
    ready = await scrape(address, "/readyz");
    assert.equal(ready.status, 503);
    const failed = (
      JSON.parse(ready.body) as { checks: Array<{ name: string; ok: boolean; detail: string }> }
    ).checks.filter((c) => !c.ok);
    assert.deepEqual(
      failed.map((c) => [c.name, c.detail]),
      [[`input fbl: ${archive}`, "cannot list: ENOENT"]],
    );
    renameSync(`${archive}.away`, archive);

    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());
  });

  it("refuses to start when the metrics port is taken, exit 2 with the key named", async () => {
    const taken = await startMetricsServer({
      host: "127.0.0.1",
      port: 0,
      metrics: metrics(),
      readiness: async () => [],
    });
    cleanup.push(() => taken.close());
    const ws = makeWorkspace("pmta-metrics-port-", { metrics: { listen: taken.address } });
    cleanup.push(() => rmSync(ws.root, { recursive: true, force: true }));
    const run = startRun(ws);
    const { code } = await run.exited;
    assert.equal(code, 2, run.stderr());
    assert.match(run.stderr(), /metrics\.listen 127\.0\.0\.1:\d+: cannot listen: the address is in use/);
  });
});
