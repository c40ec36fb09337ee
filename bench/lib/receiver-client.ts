import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import type { FromReceiver, ReceiverStats } from "./receiver-protocol.js";

const RECEIVER = fileURLToPath(new URL("../receiver.js", import.meta.url));

/** Handle on the receiver process (bench/receiver.ts): reset, stats, wait for N events, close. */
export class Receiver {
  private nextId = 1;
  private readonly pending = new Map<number, (s: ReceiverStats) => void>();

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.on("message", (m: FromReceiver) => {
      if (m.kind === "stats" || m.kind === "reached") {
        const resolve = this.pending.get(m.id);
        this.pending.delete(m.id);
        resolve?.(m.stats);
      }
    });
  }

  static async start(): Promise<Receiver> {
    const child = fork(RECEIVER, [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const [m] = (await Promise.race([
      once(child, "message"),
      once(child, "exit").then(() => {
        throw new Error(`the receiver (${RECEIVER}) exited at start; run npm run build first`);
      }),
    ])) as [FromReceiver];
    if (m.kind !== "ready") throw new Error(`receiver: unexpected first message ${JSON.stringify(m)}`);
    return new Receiver(child, m.port);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  reset(latency = false): void {
    this.child.send({ cmd: "reset", latency });
  }

  stats(): Promise<ReceiverStats> {
    const id = this.nextId++;
    this.child.send({ cmd: "stats", id });
    return new Promise((resolve) => this.pending.set(id, resolve));
  }

  /** Resolves once `events` events have arrived in total since the last reset. */
  waitFor(events: number): Promise<ReceiverStats> {
    const id = this.nextId++;
    this.child.send({ cmd: "wait", id, events });
    return new Promise((resolve) => this.pending.set(id, resolve));
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = once(this.child, "exit");
    this.child.send({ cmd: "close" });
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}
