import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { PipelineMetrics } from "./metrics.js";

/** One line of `/readyz`: what was checked, whether it passed, and why not. */
export interface ReadinessCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface MetricsServerOptions {
  readonly host: string;
  readonly port: number;
  readonly metrics: PipelineMetrics;
  readonly readiness: () => Promise<readonly ReadinessCheck[]>;
}

export interface MetricsServer {
  /** `host:port` actually bound (port 0 in tests picks a free one). */
  readonly address: string;
  close(): Promise<void>;
}

export class MetricsListenError extends Error {
  override name = "MetricsListenError";
}

/**
 * `/metrics` (Prometheus text format), `/healthz` (the process answers: for a liveness probe or
 * systemd watchdog script) and `/readyz` (inputs readable and the output answering: for a
 * load-balancer-style check or `doctor`). Plain node:http: three routes do not need a framework,
 * and the server must cost nothing between scrapes.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    void handle(req, res, options).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end(`internal error: ${String(err)}\n`);
    });
  });
  // A scraper that opens a connection and goes silent must not hold a socket forever.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;
  await listen(server, options.host, options.port);
  const a = server.address() as AddressInfo;
  const host = a.family === "IPv6" ? `[${a.address}]` : a.address;
  return {
    address: `${host}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
      const why =
        err.code === "EADDRINUSE"
          ? "the address is in use (is another pmta-ingest or exporter running?)"
          : err.code === "EADDRNOTAVAIL"
            ? "this host has no such address"
            : err.code === "EACCES"
              ? "permission denied (ports below 1024 need privileges)"
              : (err.code ?? err.message);
      reject(
        new MetricsListenError(
          `metrics.listen ${where}: cannot listen: ${why}; set metrics.listen to a free host:port, or "off"`,
        ),
      );
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.removeListener("error", onError);
      resolve();
    });
  });
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  options: MetricsServerOptions,
): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
    res.end("method not allowed\n");
    return;
  }
  switch (path) {
    case "/metrics": {
      const body = await options.metrics.render();
      res.writeHead(200, { "content-type": options.metrics.contentType });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    case "/healthz":
      res.writeHead(200, { "content-type": "application/json" });
      res.end(req.method === "HEAD" ? undefined : `${JSON.stringify({ status: "ok" })}\n`);
      return;
    case "/readyz": {
      const checks = await options.readiness();
      const ready = checks.every((c) => c.ok);
      res.writeHead(ready ? 200 : 503, { "content-type": "application/json" });
      res.end(req.method === "HEAD" ? undefined : `${JSON.stringify({ ready, checks }, null, 2)}\n`);
      return;
    }
    case "/":
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(
        '<html><body><h1>pmta-ingest</h1><a href="/metrics">/metrics</a> · <a href="/healthz">/healthz</a> · <a href="/readyz">/readyz</a></body></html>\n',
      );
      return;
    default:
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end("not found: try /metrics, /healthz or /readyz\n");
  }
}
