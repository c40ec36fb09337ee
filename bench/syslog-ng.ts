/**
 * syslog-ng side by side: the peer from /work/shared/reference/perf-peers.md, run with exactly the
 * config recorded there (csv-parser → format-json → http(), 4 workers, batches of 1000, the raised
 * flow-control windows) on the same file and the same receiver as our daemon.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { finish, type RunResult } from "./lib/catch-up.js";
import type { DataFile } from "./lib/data.js";
import { Measured } from "./lib/measured.js";
import { machineWindow } from "./lib/proc.js";
import type { Receiver } from "./lib/receiver-client.js";

const CANDIDATES = ["/usr/sbin/syslog-ng", "/usr/bin/syslog-ng", "/usr/local/sbin/syslog-ng"];

export const KNOBS = {
  workers: 4,
  batchLines: 1000,
  batchBytes: 4194304,
  iwSize: 20000,
  fetchLimit: 1000,
  fifoSize: 40000,
} as const;

/** perf-peers.md "bench/peers/syslog-ng.conf.in", @…@ fields filled in. */
export function syslogNgConfig(input: string, port: number): string {
  return `@version: 3.38
# Peer A of perf-peers.md: reads the file from the start, parses each line as CSV, maps it to a
# JSON event and POSTs batches (a JSON array per request) to the receiver.
# flags(escape-double-char) and not dialect(escape-double-char): in 3.38 the dialect() form splits
# quoted fields that hold doubled quotes.

options {
  threaded(yes);
  stats-freq(0);
  log-msg-size(65536);
};

source s_bounces {
  file("${input}"
    flags(no-parse)
    follow-freq(1)
    log-iw-size(${KNOBS.iwSize})
    log-fetch-limit(${KNOBS.fetchLimit})
  );
};

parser p_pmta_csv {
  csv-parser(
    columns("type", "timeQueued", "timeLogged", "orig", "rcpt", "bounceCat",
            "dsnStatus", "dsnAction", "dsnDiag", "dsnMta", "jobId", "vmta",
            "fblId")
    prefix(".pmta.")
    delimiters(chars(","))
    quote-pairs('""')
    flags(escape-double-char)
  );
};

# Drops the header line (and anything that is not a b or rb record).
filter f_bounce_records {
  "\${.pmta.type}" eq "b" or "\${.pmta.type}" eq "rb"
};

destination d_api {
  http(
    url("http://127.0.0.1:${port}/ingest")
    method("POST")
    headers("Content-Type: application/json")
    body-prefix("[")
    delimiter(",")
    body-suffix("]")
    body('$(format-json --scope none kind=$(if ("\${.pmta.type}" eq "b") "bounce" "remote_bounce") queued_at=\${.pmta.timeQueued} logged_at=\${.pmta.timeLogged} sender=\${.pmta.orig} recipient=\${.pmta.rcpt} category=\${.pmta.bounceCat} dsn_status=\${.pmta.dsnStatus} dsn_action=\${.pmta.dsnAction} dsn_diag=\${.pmta.dsnDiag} dsn_mta=\${.pmta.dsnMta} job_id=\${.pmta.jobId} vmta=\${.pmta.vmta} fbl_id=\${.pmta.fblId})')
    batch-lines(${KNOBS.batchLines})
    batch-bytes(${KNOBS.batchBytes})
    batch-timeout(100)
    workers(${KNOBS.workers})
    timeout(30)
    log-fifo-size(${KNOBS.fifoSize})
    persist-name("d_api")
  );
};

log {
  source(s_bounces);
  parser(p_pmta_csv);
  filter(f_bounce_records);
  destination(d_api);
  flags(flow-control);
};
`;
}

export type SyslogNgStatus =
  | { readonly ok: true; readonly bin: string; readonly version: string }
  | { readonly ok: false; readonly why: string };

/** Whether syslog-ng with the http() module can run the perf-peers config here. */
export function syslogNgStatus(scratch: string): SyslogNgStatus {
  const bin = CANDIDATES.find((c) => existsSync(c));
  if (bin === undefined) return { ok: false, why: "syslog-ng not installed" };
  mkdirSync(scratch, { recursive: true });
  const conf = join(scratch, "syntax-check.conf");
  writeFileSync(conf, syslogNgConfig(join(scratch, "none.csv"), 9));
  let version = "";
  try {
    version =
      /syslog-ng \d+ \(([\d.]+)\)/.exec(execFileSync(bin, ["--version"], { encoding: "utf8" }))?.[1] ?? "?";
    execFileSync(bin, ["--syntax-only", "-f", conf], { stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stderr?: Buffer };
    const msg = e.stderr?.toString().trim().split("\n").slice(0, 3).join(" ") ?? String(err);
    return {
      ok: false,
      why: `syslog-ng ${version} cannot load the perf-peers config (${msg}); install syslog-ng-mod-http`,
    };
  }
  return { ok: true, bin, version };
}

export async function runSyslogNgCatchUp(
  bin: string,
  data: DataFile,
  rx: Receiver,
  workRoot: string,
  name: string,
  timeoutMs = 600_000,
): Promise<RunResult> {
  const dir = join(workRoot, name);
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, "syslog-ng.conf");
  writeFileSync(conf, syslogNgConfig(data.path, rx.port));
  rx.reset(false);
  const rxCpu0 = (await rx.stats()).cpuSeconds;
  const window = machineWindow();
  const m = await Measured.start(
    name,
    bin,
    [
      "-F",
      "--no-caps",
      "-f",
      conf,
      "-R",
      join(dir, "syslog-ng.persist"),
      "-c",
      join(dir, "syslog-ng.ctl"),
      "-p",
      join(dir, "syslog-ng.pid"),
    ],
    dir,
  );
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    rx.waitFor(data.records),
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`syslog-ng: not all events in ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
    }),
    m.done.then(([code]) => {
      throw new Error(`syslog-ng exited early (code ${code}):\n${m.logs().slice(-3000)}`);
    }),
  ]);
  clearTimeout(timer);
  const wall = (performance.now() - m.startedAt) / 1000;
  return finish(`syslog-ng`, m, rx, rxCpu0, window, wall, wall, data.records);
}
