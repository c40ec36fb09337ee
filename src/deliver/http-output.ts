import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { rootCertificates } from "node:tls";
import { gzipSync } from "node:zlib";
import { LineJoiner } from "../sink/join-lines.js";
import type { Envelope } from "./batcher.js";
import { HttpClient } from "./http-client.js";
import { idempotencyKey } from "./idempotency-key.js";
import type { Output } from "./output.js";

/**
 * The HTTP output: batches to a backend API over keep-alive connections (HttpClient). Its `send` resolves only
 * when every event of the batch was acknowledged (2xx) or, if the backend rejected it for good,
 * written to the dead-letter file — it never drops an event and never gives up:
 *
 * - network errors, timeouts, 408, 429, 5xx: retry the same request (same Idempotency-Key) without
 *   limit, capped exponential backoff with full jitter, `Retry-After` honoured;
 * - 401/403: nothing is dropped; an error names the output, retries continue slowly until the
 *   credentials work;
 * - 413: the batch is split and the halves sent;
 * - any other 4xx: the batch is bisected until the offending events are isolated; only those are
 *   dead-lettered (with status and the start of the response body), the rest is delivered.
 */
export type HttpFormat = "events" | "ndjson" | "octeth";

export interface HttpSettings {
  readonly url: URL;
  readonly format: HttpFormat;
  readonly token?: string;
  readonly octethSignature?: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly gzip: boolean;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  readonly maxBackoffMs: number;
  readonly authRetryMs: number;
}

export interface Rejection {
  readonly envelope: Envelope;
  readonly status: number;
  readonly body: string;
}

export interface HttpOutputHooks {
  readonly deadLetter: (rejected: Rejection) => Promise<void>;
  readonly log: (level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>) => void;
  readonly onRetry?: (cause: "network" | "5xx" | "429" | "408" | "auth", delayMs: number) => void;
  readonly onRequest?: (status: number | "error", events: number, ms: number) => void;
}

export class HttpSettingsError extends Error {
  override name = "HttpSettingsError";
}

const KNOWN = [
  "url",
  "format",
  "token",
  "tokenFile",
  "octethSignature",
  "headers",
  "gzip",
  "connectTimeout",
  "headersTimeout",
  "bodyTimeout",
  "caFile",
  "certFile",
  "keyFile",
  "maxBackoff",
];

/** Validates `output.http` (already ${VAR}-expanded); errors name the key. */
export function parseHttpSettings(
  raw: Readonly<Record<string, unknown>>,
  parseDuration: (v: unknown) => number,
): HttpSettings {
  const fail = (key: string, problem: string): never => {
    throw new HttpSettingsError(`output.http.${key}: ${problem}`);
  };
  for (const k of Object.keys(raw))
    if (!KNOWN.includes(k)) fail(k, `unknown key; known keys: ${KNOWN.join(", ")}`);
  let url: URL;
  try {
    url = new URL(String(raw.url ?? ""));
  } catch {
    return fail("url", "expected an http:// or https:// URL, e.g. https://backend.example.com/pmta/events");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    fail("url", "expected an http:// or https:// URL");
  const format = (raw.format ?? "events") as HttpFormat;
  if (!["events", "ndjson", "octeth"].includes(format)) fail("format", "expected events, ndjson or octeth");
  let token = raw.token === undefined ? undefined : String(raw.token);
  if (raw.tokenFile !== undefined) {
    try {
      token = readFileSync(String(raw.tokenFile), "utf8").trim();
    } catch (err) {
      fail(
        "tokenFile",
        `cannot read ${String(raw.tokenFile)} (${(err as NodeJS.ErrnoException).code}); check the path and permissions`,
      );
    }
  }
  const headers: Record<string, string> = {};
  if (raw.headers !== undefined) {
    if (raw.headers === null || typeof raw.headers !== "object")
      fail("headers", "expected a mapping of header: value");
    for (const [k, v] of Object.entries(raw.headers as Record<string, unknown>))
      headers[k.toLowerCase()] = String(v);
  }
  const dur = (key: string, dflt: number): number => {
    if (raw[key] === undefined) return dflt;
    try {
      return parseDuration(raw[key]);
    } catch (err) {
      return fail(key, (err as Error).message);
    }
  };
  for (const key of ["caFile", "certFile", "keyFile"]) {
    if (raw[key] === undefined) continue;
    try {
      readFileSync(String(raw[key]));
    } catch (err) {
      fail(
        key,
        `cannot read ${String(raw[key])} (${(err as NodeJS.ErrnoException).code}); check the path and permissions`,
      );
    }
  }
  if ((raw.certFile === undefined) !== (raw.keyFile === undefined))
    fail("certFile", "a client certificate needs both certFile and keyFile");
  return {
    url,
    format,
    ...(token === undefined || token === "" ? {} : { token }),
    ...(raw.octethSignature === undefined ? {} : { octethSignature: String(raw.octethSignature) }),
    headers,
    gzip: raw.gzip === true || raw.gzip === "true",
    connectTimeoutMs: dur("connectTimeout", 5_000),
    headersTimeoutMs: dur("headersTimeout", 30_000),
    bodyTimeoutMs: dur("bodyTimeout", 30_000),
    ...(raw.caFile === undefined ? {} : { caFile: String(raw.caFile) }),
    ...(raw.certFile === undefined ? {} : { certFile: String(raw.certFile), keyFile: String(raw.keyFile) }),
    maxBackoffMs: dur("maxBackoff", 60_000),
    authRetryMs: 30_000,
  };
}

type Outcome =
  | { readonly kind: "ok" }
  | {
      readonly kind: "retry";
      readonly cause: "network" | "5xx" | "429" | "408";
      readonly retryAfterMs?: number;
      readonly detail: string;
    }
  | { readonly kind: "auth"; readonly status: number; readonly body: string }
  | { readonly kind: "too-large" }
  | { readonly kind: "reject"; readonly status: number; readonly body: string };

/** The client's TLS material from the settings: an extra CA is added to the system ones, not put in their place. */
export function tlsOptions(settings: HttpSettings): { ca?: string[]; cert?: Buffer; key?: Buffer } {
  return {
    ...(settings.caFile === undefined
      ? {}
      : { ca: [...rootCertificates, readFileSync(settings.caFile, "utf8")] }),
    ...(settings.certFile === undefined || settings.keyFile === undefined
      ? {}
      : { cert: readFileSync(settings.certFile), key: readFileSync(settings.keyFile) }),
  };
}

/** Thrown by a send still retrying when the output is closed (shutdown after the drain timeout). */
export class OutputClosedError extends Error {
  override name = "OutputClosedError";
  constructor(output: string) {
    super(
      `${output}: closed while retrying; the events are not acknowledged and will be read again on start`,
    );
  }
}

export class HttpOutput implements Output {
  readonly name: string;
  private readonly client: HttpClient;
  /** Request bodies are built in one reused buffer: requests go one at a time (see HttpClient.post). */
  private readonly joiner = new LineJoiner();
  /** Aborted by close(): a retry loop waiting out a backoff during an outage must not keep the process alive. */
  private readonly closing = new AbortController();
  private readonly path: string;
  requests = 0;

  constructor(
    private readonly settings: HttpSettings,
    private readonly hooks: HttpOutputHooks,
  ) {
    // The URL without credentials or query: safe to log.
    this.name = `http:${settings.url.origin}${settings.url.pathname}`;
    this.path = `${settings.url.pathname}${settings.url.search}`;
    this.client = new HttpClient({
      origin: settings.url,
      connectTimeoutMs: settings.connectTimeoutMs,
      headersTimeoutMs: settings.headersTimeoutMs,
      bodyTimeoutMs: settings.bodyTimeoutMs,
      ...tlsOptions(settings),
    });
  }

  async send(batch: readonly Envelope[]): Promise<void> {
    if (this.oneEventPerRequest) {
      for (const e of batch) await this.deliver([e]);
      return;
    }
    await this.deliver(batch);
  }

  /** Octeth's `?type=pmta` webhook takes one event per request (what Logstash posted). */
  private get oneEventPerRequest(): boolean {
    return this.settings.format === "octeth" && this.settings.url.searchParams.get("type") === "pmta";
  }

  async sync(): Promise<void> {}

  async close(): Promise<void> {
    this.closing.abort();
    // Destroyed, not drained: a backend that never answers must not hold up the exit. Whatever is
    // still in flight here was not acknowledged and is read again on start.
    this.client.destroy();
  }

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.closing.signal }).catch(() => undefined);
  }

  /** Delivers `batch`: retries until accepted; a rejected batch goes to `isolate`. */
  private async deliver(batch: readonly Envelope[]): Promise<void> {
    if (batch.length === 0) return;
    const outcome = await this.postUntilDecided(batch);
    if (outcome.kind === "ok") return;
    if (outcome.kind === "too-large") {
      if (batch.length === 1) {
        await this.hooks.deadLetter({
          envelope: batch[0] as Envelope,
          status: 413,
          body: "request too large even for a single event",
        });
        return;
      }
      const mid = Math.ceil(batch.length / 2);
      await this.deliver(batch.slice(0, mid));
      await this.deliver(batch.slice(mid));
      return;
    }
    await this.isolate(batch, outcome);
  }

  /**
   * `bad` was rejected as a whole. Probe its left half alone, one request per level: accepted → the
   * culprit is in the right half; rejected → it is in the left half, and the right half is set aside
   * to be sent once at the end. One poison event in a batch of n thus costs ⌈log2 n⌉ probes plus one
   * request for what was set aside; the event left over is dead-lettered with the rejection of the
   * smallest batch that contained it. More poison events are found the same way when the set-aside
   * events are delivered, so any number of them is handled.
   */
  private async isolate(
    bad: readonly Envelope[],
    rejection: Extract<Outcome, { kind: "reject" }>,
  ): Promise<void> {
    const setAside: Envelope[] = [];
    let last = rejection;
    while (bad.length > 1) {
      const mid = Math.ceil(bad.length / 2);
      const left = bad.slice(0, mid);
      const right = bad.slice(mid);
      const outcome = await this.postUntilDecided(left);
      if (outcome.kind === "ok") {
        bad = right;
      } else if (outcome.kind === "reject") {
        bad = left;
        last = outcome;
        setAside.push(...right);
      } else {
        // 413 on a smaller batch than was rejected: give up on bisection, deliver the parts normally.
        await this.deliver(left);
        await this.deliver(right);
        await this.deliver(setAside);
        return;
      }
    }
    await this.deliver(setAside);
    await this.hooks.deadLetter({ envelope: bad[0] as Envelope, status: last.status, body: last.body });
  }

  /** One request, repeated while the answer is "try again" (network, 408, 429, 5xx, 401/403). */
  private async postUntilDecided(
    batch: readonly Envelope[],
  ): Promise<Exclude<Outcome, { kind: "retry" | "auth" }>> {
    for (let attempt = 1; ; attempt++) {
      if (this.closing.signal.aborted) throw new OutputClosedError(this.name);
      const outcome = await this.post(batch);
      if (outcome.kind === "retry") {
        const delay = Math.max(outcome.retryAfterMs ?? 0, backoff(attempt, this.settings.maxBackoffMs));
        this.hooks.onRetry?.(outcome.cause, delay);
        if (attempt === 1 || attempt % 10 === 0) {
          this.hooks.log("warn", "output failed; retrying", {
            output: this.name,
            cause: outcome.cause,
            detail: outcome.detail,
            attempt,
            delayMs: delay,
          });
        }
        await this.pause(delay);
        continue;
      }
      if (outcome.kind === "auth") {
        this.hooks.onRetry?.("auth", this.settings.authRetryMs);
        this.hooks.log(
          "error",
          "the backend refuses our credentials; nothing is dropped, retrying until they work",
          {
            output: this.name,
            status: outcome.status,
            body: outcome.body.slice(0, 200),
            hint: "check output.http.token / tokenFile / octethSignature",
          },
        );
        await this.pause(this.settings.authRetryMs);
        continue;
      }
      return outcome;
    }
  }

  private async post(batch: readonly Envelope[]): Promise<Outcome> {
    const key = idempotencyKey(batch);
    const { body, contentType } = this.body(batch, key);
    const headers: Record<string, string> = {
      ...this.settings.headers,
      "content-type": contentType,
      "idempotency-key": key,
      "user-agent": "pmta-ingest",
    };
    if (this.settings.token !== undefined) headers.authorization = `Bearer ${this.settings.token}`;
    if (this.settings.octethSignature !== undefined)
      headers["x-octeth-signature"] = this.settings.octethSignature;
    let payload: Buffer = body;
    if (this.settings.gzip) {
      payload = gzipSync(payload);
      headers["content-encoding"] = "gzip";
    }
    const t0 = performance.now();
    this.requests++;
    try {
      const res = await this.client.post(this.path, headers, payload);
      const text = res.body;
      this.hooks.onRequest?.(res.statusCode, batch.length, performance.now() - t0);
      const s = res.statusCode;
      if (s >= 200 && s < 300) return { kind: "ok" };
      const snippet = text.slice(0, 1024);
      if (s === 401 || s === 403) return { kind: "auth", status: s, body: snippet };
      if (s === 413) return { kind: "too-large" };
      if (s === 408) return { kind: "retry", cause: "408", detail: `HTTP ${s}` };
      if (s === 429 || s >= 500) {
        const ra = retryAfterMs(res.headers["retry-after"]);
        return {
          kind: "retry",
          cause: s === 429 ? "429" : "5xx",
          detail: `HTTP ${s}`,
          ...(ra === undefined ? {} : { retryAfterMs: ra }),
        };
      }
      if (s >= 400) return { kind: "reject", status: s, body: snippet };
      return { kind: "retry", cause: "5xx", detail: `unexpected HTTP ${s}` };
    } catch (err) {
      this.hooks.onRequest?.("error", batch.length, performance.now() - t0);
      const e = err as NodeJS.ErrnoException;
      return { kind: "retry", cause: "network", detail: e.code ?? e.message };
    }
  }

  private body(batch: readonly Envelope[], key: string): { body: Buffer; contentType: string } {
    switch (this.settings.format) {
      case "ndjson":
        return {
          body: this.joiner.joinEvents(batch, "", "\n", "\n"),
          contentType: "application/x-ndjson",
        };
      case "octeth":
        return {
          body: Buffer.from(
            this.oneEventPerRequest
              ? JSON.stringify(octethRecord(batch[0] as Envelope))
              : JSON.stringify(batch.map(octethRecord)),
          ),
          contentType: "application/json",
        };
      default:
        return {
          body: this.joiner.joinEvents(batch, `{"batchId":"${key}","events":[`, ",", "]}"),
          contentType: "application/json",
        };
    }
  }
}

/**
 * The field names Octeth's Logstash pipeline posts (pmta-format.md §8), but every column taken by
 * its header name — which fixes the `rb` column shift of the positional Logstash config.
 */
function octethRecord(e: Envelope): Record<string, string> {
  const fields = (JSON.parse(e.data.toString()) as { fields?: Record<string, string> }).fields ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) out[k === "type" ? "logType" : k] = v;
  return out;
}

function backoff(attempt: number, capMs: number): number {
  const cap = Math.min(capMs, 250 * 2 ** Math.min(attempt - 1, 20));
  return Math.round(Math.random() * cap);
}

function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
