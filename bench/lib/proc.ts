import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";

/**
 * What the operating system says about a process and the machine, read from /proc (Linux): CPU time
 * (user + system, all threads), current and peak resident set size. The benchmark measures the daemon
 * from outside, like `/usr/bin/time` would, so the figures include everything the process costs.
 */

let clockTicks: number | undefined;

/** USER_HZ, the unit of utime/stime in /proc/<pid>/stat (100 on every common Linux build). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export interface ProcSample {
  /** utime + stime of the process (all threads; reaped children not included), seconds. */
  readonly cpuSeconds: number;
  readonly rssMiB: number;
  /** VmHWM: the peak RSS so far. */
  readonly hwmMiB: number;
  /** Bytes the process sent to storage so far (/proc/<pid>/io write_bytes; NaN where not readable). */
  readonly writeBytes: number;
}

/** undefined once the process is gone. */
export function procSample(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name may hold spaces and parentheses: fields start after the last ") ".
    const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    let writeBytes = Number.NaN;
    try {
      writeBytes = Number(
        /write_bytes:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, "utf8"))?.[1] ?? Number.NaN,
      );
    } catch {
      // /proc/<pid>/io needs the same user (or CAP_SYS_PTRACE)
    }
    return {
      cpuSeconds: ticks / ticksPerSecond(),
      rssMiB: kb("VmRSS") / 1024,
      hwmMiB: kb("VmHWM") / 1024,
      writeBytes,
    };
  } catch {
    return undefined;
  }
}

/** Direct children of `pid` (needs /proc/<pid>/task/<tid>/children, present on current kernels). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/)) {
      if (tid !== "") out.push(Number(tid));
    }
  } catch {
    // gone
  }
  return out;
}

/** Whole-machine CPU: busy and total jiffies since boot, from the first line of /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  const first = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const v = first.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / ticksPerSecond(), total: total / ticksPerSecond() };
}

export interface MachineLoad {
  readonly cores: number;
  /** 1-minute load average at the end of the window. */
  readonly loadavg1: number;
  /** CPU used by the whole machine during the window, in cores (0..cores). */
  readonly busyCores: number;
  /** busyCores minus what the measured processes used: other helpers, the kernel, the bench itself. */
  readonly otherCores: number;
}

/** Measures the machine's load over a window: call start(), then end(cpu seconds of our processes). */
export function machineWindow(): { end: (ourCpuSeconds: number) => MachineLoad } {
  const a = machineCpu();
  const t0 = performance.now();
  return {
    end: (ours) => {
      const b = machineCpu();
      const wall = (performance.now() - t0) / 1000;
      const busyCores = wall > 0 ? (b.busy - a.busy) / wall : 0;
      return {
        cores: cpus().length,
        loadavg1: loadavg()[0] ?? 0,
        busyCores,
        otherCores: Math.max(0, busyCores - (wall > 0 ? ours / wall : 0)),
      };
    },
  };
}

export const TIME_BIN = "/usr/bin/time";

export function haveGnuTime(): boolean {
  return existsSync(TIME_BIN);
}

export interface TimeResult {
  readonly wallSeconds: number;
  readonly cpuSeconds: number;
  /** The kernel's share of cpuSeconds: page faults of a growing heap and syscalls show here. */
  readonly sysSeconds: number;
  readonly maxRssMiB: number;
}

/** Format we pass to `/usr/bin/time -f`, parsed by parseTimeFile. */
export const TIME_FORMAT = "BENCHTIME %e %U %S %M";

/** The last BENCHTIME line of a `/usr/bin/time -o` file (GNU time's %M is in KiB). */
export function parseTimeFile(path: string): TimeResult | undefined {
  if (!existsSync(path)) return undefined;
  const line = readFileSync(path, "utf8")
    .split("\n")
    .reverse()
    .find((l) => l.startsWith("BENCHTIME "));
  if (line === undefined) return undefined;
  const [, e, u, s, m] = line.split(" ").map(Number);
  return {
    wallSeconds: e ?? 0,
    cpuSeconds: (u ?? 0) + (s ?? 0),
    sysSeconds: s ?? 0,
    maxRssMiB: (m ?? 0) / 1024,
  };
}
