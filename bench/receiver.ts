/**
 * The benchmark's sink: an HTTP server on 127.0.0.1 in its own process (started by bench/pipeline.ts
 * with fork()). It accepts any POST, counts the events in the body without JSON.parse (a scan for a
 * key every event has exactly once), answers 200 and reports counts over IPC; `wait` is answered as
 * soon as the count reaches the asked number, so the benchmark never polls.
 *
 * Body formats: the daemon's `events` format `{"batchId":"…","events":[{"id":"…",…},…]}` (one
 * `{"id":"` per event: JSON.stringify puts id first and escapes every quote inside values) and
 * syslog-ng's `[{…},…]` built by the perf-peers config (one `"logged_at":"` per event).
 *
 * Latency mode: every record the benchmark appends carries `<seq>-<append time, epoch µs>-0` in its
 * X-FBLId column, which arrives as `"X-FBLId":"…"` (daemon) or `"fbl_id":"…"` (syslog-ng). The
 * acknowledgement time is when this receiver has read the whole request body and answers 200 — the
 * moment the shipper gets its acknowledgement, less one loopback round trip.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { FromReceiver, LatencySummary, ReceiverStats, ToReceiver } from "./lib/receiver-protocol.js";

const DAEMON_EVENT = Buffer.from('{"id":"');
const SYSLOG_EVENT = Buffer.from('"logged_at":"');
const STAMP = /"(?:X-FBLId|fbl_id)":"(\d+)-(\d+)-/g;

let events = 0;
let requests = 0;
let bodyBytes = 0;
let formats: Record<string, number> = {};
let latencyOn = false;
let seen = new Set<number>();
let maxSeq = 0;
let latencies: number[] = [];
const waiters: { id: number; events: number }[] = [];

function send(m: FromReceiver): void {
  process.send?.(m);
}

function countOf(body: Buffer, needle: Buffer): number {
  let n = 0;
  let at = body.indexOf(needle);
  while (at >= 0) {
    n++;
    at = body.indexOf(needle, at + needle.length);
  }
  return n;
}

/** Slow path, should the event layout change (id no longer first): parse and count. */
function parsedCount(body: Buffer, daemon: boolean): number {
  try {
    const doc = JSON.parse(body.toString("utf8")) as { events?: unknown[] } | unknown[];
    if (Array.isArray(doc)) return doc.length;
    return daemon && Array.isArray(doc.events) ? doc.events.length : 0;
  } catch {
    return 0;
  }
}

function nowUs(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

function summary(): LatencySummary | undefined {
  if (latencies.length === 0) return undefined;
  const s = Float64Array.from(latencies).sort();
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number;
  return { samples: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s[s.length - 1] as number };
}

function stats(): ReceiverStats {
  const cpu = process.cpuUsage();
  const lat = summary();
  return {
    events,
    requests,
    bodyBytes,
    formats,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    distinct: seen.size,
    maxSeq,
    ...(lat === undefined ? {} : { latency: lat }),
  };
}

function onBody(body: Buffer): void {
  const at = nowUs();
  requests++;
  bodyBytes += body.length;
  const daemon = body[0] === 0x7b; // "{"
  const format = daemon ? "events" : "json-array";
  formats[format] = (formats[format] ?? 0) + 1;
  let n = countOf(body, daemon ? DAEMON_EVENT : SYSLOG_EVENT);
  if (n === 0 && body.length > 2) n = parsedCount(body, daemon);
  events += n;
  if (latencyOn) {
    const text = body.toString("utf8");
    for (const m of text.matchAll(STAMP)) {
      const seq = Number(m[1]);
      if (seen.has(seq)) continue;
      seen.add(seq);
      if (seq > maxSeq) maxSeq = seq;
      latencies.push((at - Number(m[2])) / 1000);
    }
  }
  for (let i = waiters.length - 1; i >= 0; i--) {
    const w = waiters[i] as { id: number; events: number };
    if (events >= w.events) {
      waiters.splice(i, 1);
      send({ kind: "reached", id: w.id, stats: stats() });
    }
  }
}

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    if (req.method === "POST") onBody(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
});
server.keepAliveTimeout = 60_000;

process.on("message", (m: ToReceiver) => {
  switch (m.cmd) {
    case "reset":
      events = 0;
      requests = 0;
      bodyBytes = 0;
      formats = {};
      latencyOn = m.latency;
      seen = new Set();
      maxSeq = 0;
      latencies = [];
      break;
    case "stats":
      send({ kind: "stats", id: m.id, stats: stats() });
      break;
    case "wait":
      if (events >= m.events) send({ kind: "reached", id: m.id, stats: stats() });
      else waiters.push({ id: m.id, events: m.events });
      break;
    case "close":
      server.closeAllConnections();
      server.close();
      process.disconnect();
      break;
  }
});

server.listen(0, "127.0.0.1", () => send({ kind: "ready", port: (server.address() as AddressInfo).port }));
