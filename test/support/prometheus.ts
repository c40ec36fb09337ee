import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { reapOnExit } from "./reap.js";

/**
 * A real Prometheus (Debian package `prometheus`, installed by .ci/run) on 127.0.0.1 scraping the
 * given targets every second, with the given rule files loaded. The tests ask it through its HTTP
 * API exactly what Grafana panels and alerting would ask.
 */
export interface Prometheus {
  readonly url: string;
  query(expr: string): Promise<PromResult>;
  /** Resolves once every target has been scraped successfully at least `scrapes` times. */
  waitForScrapes(scrapes: number, timeoutMs: number): Promise<void>;
  alerts(): Promise<Array<{ name: string; state: string; labels: Record<string, string> }>>;
  stop(): Promise<void>;
  log(): string;
}

export interface PromResult {
  readonly resultType: string;
  readonly result: Array<{ metric: Record<string, string>; value?: [number, string] }>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export async function startPrometheus(
  targets: readonly string[],
  ruleFiles: readonly string[] = [],
  evaluationInterval = "1s",
): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), "pmta-prom-"));
  const port = await freePort();
  const config = join(dir, "prometheus.yml");
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: "1s", evaluation_interval: evaluationInterval },
      rule_files: ruleFiles,
      scrape_configs: [{ job_name: "pmta-ingest", static_configs: [{ targets }] }],
    }),
  );
  let out = "";
  const child: ChildProcess = spawn(
    "prometheus",
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--web.enable-lifecycle",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  reapOnExit(child);
  const spawned = new Promise<void>((resolve, reject) => {
    child.once("spawn", () => resolve());
    child.once("error", (err) =>
      reject(new Error(`cannot start prometheus (${err.message}): install the Debian package prometheus`)),
    );
  });
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await spawned;
  const url = `http://127.0.0.1:${port}`;

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  };
  // Ready when the HTTP API answers (the TSDB opens in well under a second on an empty dir).
  const deadline = performance.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (child.exitCode !== null) throw new Error(`prometheus exited: ${out}`);
    if (performance.now() > deadline) throw new Error(`prometheus not ready after 30 s: ${out}`);
    await sleep(100);
  }

  return {
    url,
    log: () => out,
    query: (expr) => api<PromResult>(`/api/v1/query?query=${encodeURIComponent(expr)}`),
    async waitForScrapes(scrapes, timeoutMs) {
      const end = performance.now() + timeoutMs;
      for (;;) {
        const r = await api<PromResult>(
          `/api/v1/query?query=${encodeURIComponent('count_over_time(up{job="pmta-ingest"}[1m])')}`,
        );
        const counts = r.result.map((x) => Number(x.value?.[1] ?? 0));
        const up = await api<PromResult>(
          `/api/v1/query?query=${encodeURIComponent('up{job="pmta-ingest"}')}`,
        );
        const allUp = up.result.length === targets.length && up.result.every((x) => x.value?.[1] === "1");
        if (counts.length === targets.length && counts.every((c) => c >= scrapes) && allUp) return;
        if (performance.now() > end) {
          throw new Error(
            `targets not scraped ${scrapes} times in ${timeoutMs} ms: ${JSON.stringify(up.result)}`,
          );
        }
        await sleep(250);
      }
    },
    async alerts() {
      const data = await api<{ alerts: Array<{ labels: Record<string, string>; state: string }> }>(
        "/api/v1/alerts",
      );
      return data.alerts.map((a) => ({ name: a.labels.alertname ?? "", state: a.state, labels: a.labels }));
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
