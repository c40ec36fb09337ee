import { setTimeout as sleep } from "node:timers/promises";
import { crashPoint } from "../checkpoint/crash-point.js";
import type { Output } from "./output.js";

/** One serialised event on its way out; `ack` is called once the output has acknowledged it. */
export interface Envelope {
  /**
   * The event's JSON as UTF-8, without a line ending. Bytes, not a string: a window of 10,000 events
   * then lives outside the JS heap (nothing for the GC to trace or copy), non-ASCII text costs one
   * byte a character rather than doubling the string, and a request body is one Buffer.concat.
   */
  readonly data: Buffer;
  /** data.length, known without making `data` (RecordEnvelope makes it only when asked). */
  readonly size?: number;
  /**
   * `data` is `slab[start, start + size)`: a join copies consecutive events of one slab that lie
   * separated by its separator byte (EventWriter's `separator`) as one run, without their views.
   */
  readonly slab?: Buffer;
  readonly start?: number;
  /** The output has it (the batcher calls this once per acknowledged send). */
  ack(): void;
  /** The event id (idempotency keys) and where the record came from (dead letters). The event object
   * itself is not kept: `data` has it, and holding both would double the window's memory. */
  readonly id?: string;
  /**
   * The id's two parts when it is `<idFileKey>:<idOffset>` (events read from a file): the batch's
   * idempotency key is then written from them without making `id`.
   */
  readonly idFileKey?: string;
  readonly idOffset?: number;
  readonly origin?: EnvelopeOrigin;
}

export interface EnvelopeOrigin {
  readonly input: string;
  readonly file: string;
  readonly dev: number;
  readonly ino: number;
  readonly offset: number;
  readonly end: number;
}

export interface BatcherOptions {
  readonly maxEvents: number;
  readonly maxBytes: number;
  readonly maxWaitMs: number;
  /** Called after every failed attempt (for logs and metrics). */
  readonly onRetry?: (attempt: number, error: unknown, delayMs: number) => void;
  /** Called whenever events were acknowledged (the tailer resumes reading, checkpoints advance). */
  readonly onAcked?: (events: number) => void;
  /** Called once per batch when it is cut (batch-size metrics). */
  readonly onBatch?: (events: number, bytes: number) => void;
  /** Called after each attempt to send a batch, with its duration (latency metrics). */
  readonly onAttempt?: (ok: boolean, ms: number) => void;
}

interface QueuedBatch {
  readonly events: Envelope[];
  /** performance.now() when its first event was pushed. */
  readonly since: number;
}

/**
 * Groups events into batches (by count, bytes and time) and sends them one batch at a time, in
 * order, retrying a failed send without limit (capped exponential backoff with full jitter): an
 * event is never dropped here. Everything between `push` and the acknowledgement counts against the
 * in-flight window the tailer checks before it reads more, so memory stays bounded while the output
 * is down.
 */
export class Batcher {
  private current: Envelope[] = [];
  private currentBytes = 0;
  private currentSince = 0;
  private readonly queue: QueuedBatch[] = [];
  private sendingSince: number | undefined;
  private sending = false;
  private timer: NodeJS.Timeout | undefined;
  private events = 0;
  private bytes = 0;
  private idleWaiters: Array<() => void> = [];
  private stopped = false;

  constructor(
    private readonly output: Output,
    private readonly options: BatcherOptions,
  ) {}

  /** Events handed over and not yet acknowledged. */
  get inFlightEvents(): number {
    return this.events;
  }

  get inFlightBytes(): number {
    return this.bytes;
  }

  /** performance.now() when the oldest event not yet acknowledged was pushed; undefined when none. */
  get oldestUnackedSince(): number | undefined {
    if (this.sendingSince !== undefined) return this.sendingSince;
    if (this.queue.length > 0) return this.queue[0]?.since;
    return this.current.length > 0 ? this.currentSince : undefined;
  }

  push(envelope: Envelope): void {
    if (this.current.length === 0) this.currentSince = performance.now();
    this.current.push(envelope);
    const size = envelope.size ?? envelope.data.length;
    this.currentBytes += size;
    this.events++;
    this.bytes += size;
    if (this.current.length >= this.options.maxEvents || this.currentBytes >= this.options.maxBytes) {
      this.cut();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.cut(), this.options.maxWaitMs);
    }
  }

  /** Sends what is collected now, without waiting for the batch to fill. */
  flush(): void {
    if (this.current.length > 0) this.cut();
  }

  /** Resolves once every event pushed so far is acknowledged, or after `timeoutMs` (false). */
  async drain(timeoutMs: number): Promise<boolean> {
    this.flush();
    if (this.events === 0) return true;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const timeout = sleep(timeoutMs, false, { ref: false });
    return Promise.race([idle, timeout]);
  }

  /** Stops retrying (shutdown after the drain timeout); unacknowledged events are re-read on start. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }

  private cut(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.current.length === 0) return;
    this.options.onBatch?.(this.current.length, this.currentBytes);
    this.queue.push({ events: this.current, since: this.currentSince });
    this.current = [];
    this.currentBytes = 0;
    if (!this.sending) void this.sendLoop();
  }

  private async sendLoop(): Promise<void> {
    this.sending = true;
    try {
      for (
        let queued = this.queue.shift();
        queued !== undefined && !this.stopped;
        queued = this.queue.shift()
      ) {
        const batch = queued.events;
        this.sendingSince = queued.since;
        await this.sendWithRetry(batch);
        this.sendingSince = undefined;
        if (this.stopped) return;
        crashPoint("after-send");
        let bytes = 0;
        for (const e of batch) {
          e.ack();
          bytes += e.size ?? e.data.length;
        }
        this.events -= batch.length;
        this.bytes -= bytes;
        this.options.onAcked?.(batch.length);
        if (this.events === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const w of waiters) w();
        }
      }
    } finally {
      this.sending = false;
    }
  }

  private async sendWithRetry(batch: Envelope[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const t0 = performance.now();
      try {
        await this.output.send(batch);
        this.options.onAttempt?.(true, performance.now() - t0);
        return;
      } catch (err) {
        this.options.onAttempt?.(false, performance.now() - t0);
        if (this.stopped) return;
        const cap = Math.min(30_000, 100 * 2 ** Math.min(attempt, 20));
        const delay = Math.round(Math.random() * cap);
        this.options.onRetry?.(attempt, err, delay);
        await sleep(delay);
      }
    }
  }
}
