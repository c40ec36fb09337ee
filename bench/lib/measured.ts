import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  childrenOf,
  haveGnuTime,
  type ProcSample,
  parseTimeFile,
  procSample,
  TIME_BIN,
  TIME_FORMAT,
  type TimeResult,
} from "./proc.js";

/**
 * A shipper process measured from outside: started under `/usr/bin/time` when it is installed (so CPU
 * and peak RSS come from the kernel's accounting of the reaped process, start-up and shutdown
 * included), and sampled through /proc while it runs. stdout and stderr go to files in `dir` (not
 * pipes: a slow reader must not throttle the shipper), and both are searched for log lines, since
 * the daemon's logs may move from stderr to stdout.
 */
export interface StopResult {
  /** /proc just before SIGTERM (CPU so far, VmHWM so far). */
  readonly atStop: ProcSample | undefined;
  /** From spawn to the process having exited, as seen by the benchmark. */
  readonly wallExitSeconds: number;
  /** `/usr/bin/time`'s view of the whole process, when available. */
  readonly time: TimeResult | undefined;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/**
 * Processes started and not yet seen to exit. If the benchmark itself dies (an exception, a workspace
 * deleted under it) they are killed with it: a daemon left behind would skew every later measurement.
 */
const running = new Set<number>();
process.once("exit", () => {
  for (const pid of running) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

export class Measured {
  readonly startedAt: number;
  private readonly exited: Promise<[number | null, NodeJS.Signals | null]>;

  private constructor(
    private readonly wrapper: ChildProcess,
    readonly name: string,
    readonly pid: number,
    readonly dir: string,
    private readonly timeFile: string | undefined,
    startedAt: number,
  ) {
    this.startedAt = startedAt;
    this.exited = once(wrapper, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
  }

  static async start(
    name: string,
    command: string,
    args: readonly string[],
    dir: string,
    options: { cwd?: string; env?: NodeJS.ProcessEnv; useTime?: boolean } = {},
  ): Promise<Measured> {
    const out = openSync(join(dir, `${name}.stdout.log`), "w");
    const err = openSync(join(dir, `${name}.stderr.log`), "w");
    const timed = (options.useTime ?? true) && haveGnuTime();
    const timeFile = timed ? join(dir, `${name}.time`) : undefined;
    const startedAt = performance.now();
    const child = timed
      ? spawn(TIME_BIN, ["-f", TIME_FORMAT, "-o", timeFile as string, command, ...args], {
          cwd: options.cwd ?? dir,
          env: options.env ?? process.env,
          stdio: ["ignore", out, err],
        })
      : spawn(command, args, {
          cwd: options.cwd ?? dir,
          env: options.env ?? process.env,
          stdio: ["ignore", out, err],
        });
    closeSync(out);
    closeSync(err);
    let pid = child.pid as number;
    if (timed) {
      // The measured process is time's only child; it shows up once time has forked.
      for (let i = 0; ; i++) {
        const kids = childrenOf(child.pid as number);
        if (kids.length > 0) {
          pid = kids[0] as number;
          break;
        }
        if (child.exitCode !== null || i > 5000) throw new Error(`${name}: ${command} did not start`);
        await sleep(1);
      }
    }
    running.add(pid);
    child.once("exit", () => running.delete(pid));
    return new Measured(child, name, pid, dir, timeFile, startedAt);
  }

  get running(): boolean {
    return this.wrapper.exitCode === null && this.wrapper.signalCode === null;
  }

  /** Resolves (with exit code, signal) when the process exits on its own. */
  get done(): Promise<[number | null, NodeJS.Signals | null]> {
    return this.exited;
  }

  sample(): ProcSample | undefined {
    return procSample(this.pid);
  }

  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(this.pid, sig);
    } catch {
      // already gone
    }
  }

  /** Everything the process wrote to stdout and stderr so far. */
  logs(): string {
    const read = (f: string) => {
      try {
        return readFileSync(join(this.dir, f), "utf8");
      } catch {
        return "";
      }
    };
    return `${read(`${this.name}.stdout.log`)}${read(`${this.name}.stderr.log`)}`;
  }

  /** SIGTERM (then SIGKILL after `graceMs`) and the final accounting. */
  async stop(graceMs = 30_000): Promise<StopResult> {
    const atStop = this.sample();
    this.signal("SIGTERM");
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    const [code, signal] = await this.exited;
    clearTimeout(timer);
    const wallExitSeconds = (performance.now() - this.startedAt) / 1000;
    return {
      atStop,
      wallExitSeconds,
      time: this.timeFile === undefined ? undefined : parseTimeFile(this.timeFile),
      code,
      signal,
    };
  }
}
