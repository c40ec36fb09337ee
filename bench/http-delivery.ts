/**
 * HTTP delivery figures for the delivery issue: `npm run bench:http [-- --records N]` and
 * `npm run bench:http -- --outage-seconds S` (default off).
 *
 * 1. Throughput: a generated bounces file (seeded) is delivered by the real daemon (`pmta-ingest run`,
 *    default batch settings) to a receiver in a separate process on 127.0.0.1; prints events/s and the
 *    daemon's CPU seconds and peak RSS (from /proc).
 * 2. Outage (with --outage-seconds): the receiver answers 503 for S seconds while the simulator keeps
 *    writing and rotating; prints the daemon's RSS over the outage, then the catch-up time and whether
 *    every record arrived. Prints numbers only.
 */
import { fork, spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { PmtaSimulator } from "../src/simulate/pmta-simulator.js";
import { generateBouncesFile } from "../src/simulate/record-generator.js";
import { CLI, makeWorkspace } from "../test/support/run-harness.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

// --- receiver mode (a separate process, so its CPU is not the daemon's) ---------------------------
if (process.argv.includes("--receiver")) {
  let count = 0;
  let down = process.argv.includes("--down");
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (down) {
        res.writeHead(503).end();
        return;
      }
      // Count events without parsing: each event starts with {"id":
      const body = Buffer.concat(chunks).toString();
      let at = body.indexOf('{"id":');
      while (at >= 0) {
        count++;
        at = body.indexOf('{"id":', at + 6);
      }
      res.writeHead(200).end();
    });
  });
  server.listen(0, "127.0.0.1", () => process.send?.({ port: (server.address() as AddressInfo).port }));
  process.on("message", (m: { up?: boolean; count?: boolean }) => {
    if (m.up) down = false;
    if (m.count) process.send?.({ count });
  });
} else {
  await main();
}

function procStat(pid: number): { cpuSeconds: number; rssMiB: number; hwmMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  const ticks = Number(stat[11]) + Number(stat[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / 100, rssMiB: kb("VmRSS") / 1024, hwmMiB: kb("VmHWM") / 1024 };
}

async function startReceiver(down: boolean) {
  const self = fileURLToPath(import.meta.url);
  const child = fork(self, ["--receiver", ...(down ? ["--down"] : [])], { stdio: "inherit" });
  const [msg] = (await once(child, "message")) as [{ port: number }];
  const count = async (): Promise<number> => {
    child.send({ count: true });
    const [m] = (await once(child, "message")) as [{ count: number }];
    return m.count;
  };
  return { child, port: msg.port, count, up: () => child.send({ up: true }) };
}

async function main(): Promise<void> {
  const records = arg("records", 200_000);
  const outage = arg("outage-seconds", 0);
  const rx = await startReceiver(outage > 0);
  const ws = makeWorkspace("pmta-httpbench-", {
    output: { http: { url: `http://127.0.0.1:${rx.port}/events` } },
    // Default batch, window and timing settings, except what the harness must set for the test dirs.
    batch: {},
    rescanInterval: "500ms",
    sealAfter: "60s",
    checkpointInterval: "1s",
  });
  try {
    if (outage === 0) {
      const file = join(ws.liveDir, "bounces-2026-11-23-0000.csv");
      const out = createWriteStream(file);
      for (const chunk of generateBouncesFile(7, records)) if (!out.write(chunk)) await once(out, "drain");
      out.end();
      await once(out, "finish");
      const t0 = performance.now();
      const run = spawn(process.execPath, [CLI, "run", "--config", ws.config], {
        stdio: ["ignore", "ignore", "inherit"],
      });
      const pid = run.pid as number;
      let peak = 0;
      let last = procStat(pid);
      while ((await rx.count()) < records) {
        await sleep(100);
        last = procStat(pid);
        peak = Math.max(peak, last.hwmMiB);
      }
      const seconds = (performance.now() - t0) / 1000;
      run.kill("SIGTERM");
      await once(run, "exit");
      console.log(
        JSON.stringify(
          {
            records,
            seconds: Number(seconds.toFixed(2)),
            eventsPerSecond: Math.round(records / seconds),
            daemonCpuSeconds: last.cpuSeconds,
            daemonCpuSecondsPerMillion: Number(((last.cpuSeconds / records) * 1e6).toFixed(1)),
            daemonPeakRssMiB: Math.round(peak),
            note: "wall time includes daemon start-up; default batch (500 events / 1 MiB / 1 s), one batch in flight",
          },
          null,
          2,
        ),
      );
    } else {
      const sim = new PmtaSimulator({
        liveDir: ws.liveDir,
        seed: 5,
        recordsPerSecond: 200,
        rotateEveryMs: 5000,
        keepRecords: false,
      });
      const run = spawn(process.execPath, [CLI, "run", "--config", ws.config], {
        stdio: ["ignore", "ignore", "ignore"],
      });
      const pid = run.pid as number;
      sim.start();
      const rss: number[] = [];
      const t0 = performance.now();
      while (performance.now() - t0 < outage * 1000) {
        await sleep(5000);
        rss.push(Math.round(procStat(pid).rssMiB));
      }
      await sim.stop();
      const written = sim.written.bounces + sim.written.fbl;
      rx.up();
      const t1 = performance.now();
      while ((await rx.count()) < written) await sleep(200);
      const catchUp = (performance.now() - t1) / 1000;
      run.kill("SIGTERM");
      await once(run, "exit");
      writeFileSync(join(ws.root, "done"), "");
      console.log(
        JSON.stringify(
          {
            outageSeconds: outage,
            recordsWrittenDuringOutage: written,
            rotations: sim.rotations.bounces + sim.rotations.fbl,
            daemonRssMiB: {
              min: Math.min(...rss),
              max: Math.max(...rss),
              first: rss[0],
              last: rss[rss.length - 1],
              samples: rss.length,
            },
            catchUpSeconds: Number(catchUp.toFixed(1)),
            delivered: await rx.count(),
            lost: Math.max(0, written - (await rx.count())),
          },
          null,
          2,
        ),
      );
    }
  } finally {
    rx.child.kill();
    rmSync(ws.root, { recursive: true, force: true });
  }
}
