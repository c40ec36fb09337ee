import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";

/**
 * A keep-alive HTTP/1.1 client for one origin, on Node's own http/https modules: POST a body, get
 * the status, headers and the start of the answer.
 *
 * Why not undici (which the design named): measured here, loading it costs the daemon ~17 MiB of
 * resident memory before the first request, and ~20–28 MiB more than node:http after 1,500 posts of
 * 750 KB, at ~0.2 ms more CPU per request (0.70 vs 0.51 ms). The daemon sends one batch at a time,
 * so a pool's throughput features buy nothing; memory on a host shared with the MTA does count.
 *
 * Timeouts are the three the configuration names: connect (TCP connect), headers (from the request
 * written until the status line and headers), body (longest silence while the answer's body arrives).
 * Each fails the request with an Error whose `code` says which (CONNECT_TIMEOUT, HEADERS_TIMEOUT,
 * BODY_TIMEOUT); network errors keep Node's codes (ECONNREFUSED, ECONNRESET, …).
 */
export interface HttpClientOptions {
  /** `http://host:port` or `https://host:port`. */
  readonly origin: URL;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  /** Trusted CAs (replaces the default list: pass the system ones too to add one). */
  readonly ca?: readonly string[];
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** Sockets kept open at most (default 4). */
  readonly maxSockets?: number;
}

export interface HttpAnswer {
  readonly statusCode: number;
  readonly headers: IncomingHttpHeaders;
  /** The body as UTF-8, cut at `maxBodyBytes`; the rest is read and dropped so the socket stays usable. */
  readonly body: string;
}

/** Enough of an answer body for any log line or dead-letter entry. */
const MAX_BODY_BYTES = 64 * 1024;

export class HttpClient {
  private readonly agent: HttpAgent;
  private readonly https: boolean;
  private readonly requests = new Set<ClientRequest>();
  private destroyed = false;

  constructor(private readonly options: HttpClientOptions) {
    this.https = options.origin.protocol === "https:";
    const common = {
      keepAlive: true,
      maxSockets: options.maxSockets ?? 4,
      maxFreeSockets: 4,
      timeout: 10_000,
    };
    this.agent = this.https
      ? new HttpsAgent({
          ...common,
          ...(options.ca === undefined ? {} : { ca: [...options.ca] }),
          ...(options.cert === undefined ? {} : { cert: options.cert }),
          ...(options.key === undefined ? {} : { key: options.key }),
        })
      : new HttpAgent(common);
  }

  /**
   * Resolves once the answer is complete and the body was handed to the kernel (or its socket is
   * gone), so the caller may overwrite `body` afterwards: a backend may answer before it has read
   * the whole request.
   */
  post(path: string, headers: Readonly<Record<string, string>>, body: Buffer): Promise<HttpAnswer> {
    if (this.destroyed) return Promise.reject(codedError("client closed", "CLIENT_CLOSED"));
    const { origin, connectTimeoutMs, headersTimeoutMs, bodyTimeoutMs } = this.options;
    return new Promise<HttpAnswer>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const arm = (ms: number, what: string, code: string): void => {
        clearTimeout(timer);
        timer = setTimeout(() => req.destroy(codedError(`${what} after ${ms} ms`, code)), ms);
      };
      const settle = (): void => {
        clearTimeout(timer);
        this.requests.delete(req);
      };
      let answer: HttpAnswer | undefined;
      let flushed = false;
      const done = (): void => {
        if (answer === undefined || !flushed) return;
        settle();
        resolve(answer);
      };
      const req = (this.https ? httpsRequest : httpRequest)({
        protocol: origin.protocol,
        hostname: origin.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: origin.port === "" ? undefined : Number(origin.port),
        method: "POST",
        path,
        headers: { ...headers, "content-length": String(body.length) },
        agent: this.agent,
      });
      this.requests.add(req);
      req.on("socket", (socket) => {
        // A reused keep-alive socket is already connected: only a new one gets the connect timeout.
        if (!socket.connecting) return;
        arm(connectTimeoutMs, "no connection", "CONNECT_TIMEOUT");
        socket.once("connect", () => clearTimeout(timer));
      });
      let responded = false;
      req.on("finish", () => {
        flushed = true;
        if (!responded) arm(headersTimeoutMs, "no answer", "HEADERS_TIMEOUT");
        else done();
      });
      // Closed with the answer in hand but the body not all written: nothing reads it any more.
      req.on("close", () => {
        flushed = true;
        done();
      });
      req.on("error", (err) => {
        // The answer is what counts; a socket error while the rest of the body was still going out
        // (a backend that answered early and hung up) does not undo it.
        if (answer !== undefined) {
          flushed = true;
          done();
          return;
        }
        settle();
        reject(err);
      });
      req.on("response", (res) => {
        responded = true;
        const chunks: Buffer[] = [];
        let kept = 0;
        arm(bodyTimeoutMs, "answer body stalled", "BODY_TIMEOUT");
        res.on("data", (chunk: Buffer) => {
          arm(bodyTimeoutMs, "answer body stalled", "BODY_TIMEOUT");
          if (kept < MAX_BODY_BYTES) {
            chunks.push(chunk);
            kept += chunk.length;
          }
        });
        res.on("end", () => {
          clearTimeout(timer);
          answer = {
            statusCode: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString("utf8"),
          };
          done();
        });
        // An answer cut short (the socket died, or a timeout above destroyed the request).
        res.on("error", (err) => {
          settle();
          reject(err);
        });
        res.on("aborted", () => {
          settle();
          reject(codedError("answer cut short", "ECONNRESET"));
        });
      });
      req.end(body);
    });
  }

  /** Fails whatever is in flight and closes every socket (nothing waits for a backend that hangs). */
  destroy(): void {
    this.destroyed = true;
    for (const req of this.requests) req.destroy(codedError("client closed", "CLIENT_CLOSED"));
    this.requests.clear();
    this.agent.destroy();
  }
}

function codedError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}
