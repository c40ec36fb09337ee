import { spawnSync } from "node:child_process";

/** One sample of the Prometheus text format. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the text exposition format (enough of it for our own output: no timestamps, no escapes beyond \" \\ \n). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? "";
    for (const l of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] as string] = (l[2] as string).replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
    }
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples of `name` whose labels include `match`. */
export function sum(samples: readonly Sample[], name: string, match: Record<string, string> = {}): number {
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

export async function scrape(address: string, path = "/metrics"): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${address}${path}`);
  return { status: res.status, body: await res.text() };
}

/**
 * `promtool check metrics` on a scrape. Returns its complaints, minus the three prom-client's own
 * default metrics always earn (`nodejs_active_*_total` are gauges named like counters).
 */
export function promtoolCheckMetrics(body: string): string[] {
  const r = spawnSync("promtool", ["check", "metrics"], { input: body, encoding: "utf8" });
  if (r.error !== undefined) {
    throw new Error(`promtool not runnable (${r.error.message}): install the Debian package prometheus`);
  }
  return `${r.stdout}${r.stderr}`
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^nodejs_active_(handles|requests|resources)_total\b/.test(l));
}
