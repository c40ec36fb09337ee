import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { providerOf } from "../classify/providers.js";
import { isReason, REASON_INFO } from "../classify/taxonomy.js";
import { ownString } from "../decode/own-string.js";
import type { EncodedEvent } from "../event/encode-event.js";
import { KeyedMemo } from "../event/keyed-memo.js";
import { LabelCap } from "./label-cap.js";

/**
 * Every Prometheus metric pmta-ingest exports (README "Metrics" lists them; the dashboards and
 * alert rules in grafana/ are written against these names).
 *
 * Per-record counts do not go through prom-client on the hot path: `Counter.inc(labels)` hashes
 * the label object on every call, which at 100k records/s is a measurable share of a core. They are
 * tallied in plain slots keyed by a joined string and handed to prom-client when Prometheus
 * scrapes (the `collect` hooks), so a scrape sees exact totals and reading costs a map lookup.
 */
export type OutputKind = "http" | "file" | "stdout";
export type RequestOutcome = "success" | "retry" | "rejected" | "error";
export type RetryCause = "network" | "server_error" | "rate_limited" | "timeout" | "auth" | "error";
export type CheckpointInvalidationCause = "identity_mismatch" | "truncation";

/** Gauges read at scrape time from the running pipeline. */
export interface PipelineSample {
  readonly inputs: ReadonlyMap<string, { tracked: number; open: number; unread: number }>;
  readonly inFlightEvents: number;
  readonly inFlightBytes: number;
  /** performance.now() of the oldest event not yet acknowledged, if any. */
  readonly oldestUnackedSince: number | undefined;
}

export interface MetricsOptions {
  readonly version: string;
  readonly output: OutputKind;
  readonly inputs: readonly string[];
  readonly inFlightLimit: number;
  readonly maxVmtaLabels: number;
  readonly maxJobLabels: number;
  /** Add Node's process metrics (default true; tests running several daemons in one process turn it off). */
  readonly processMetrics?: boolean;
}

/** What the metrics read of an event: the event itself, or what encodeEvent reports next to its bytes. */
export interface EventFacts {
  readonly kind: EncodedEvent["kind"];
  readonly recordType: string;
  readonly recipientDomain?: string | undefined;
  readonly vmta?: string | undefined;
  readonly jobId?: string | undefined;
  readonly warnings?: readonly string[] | undefined;
  readonly bounce?: Pick<NonNullable<EncodedEvent["bounce"]>, "reason" | "hard" | "action" | "provider">;
}

/** A per-(input, kind) tally the caller bumps when the output acknowledged an event. */
export interface DeliveredSlot {
  n: number;
}

interface Slot {
  readonly labels: Record<string, string>;
  n: number;
  /** Handed to prom-client at least once: a slot made with 0 still shows as a 0 series. */
  exported: boolean;
}

const RECORD_TYPES = new Set(["d", "b", "t", "tq", "r", "rb", "rs", "f"]);
const MS_PER_S = 1000;

class Tally {
  private readonly slots = new Map<string, Slot>();
  /** The same slots by (a, b): the per-record path finds its slot without joining a key string. */
  private readonly pairs = new Map<string, Map<string, Slot>>();

  add(key: string, labels: () => Record<string, string>, by = 1): void {
    this.slot(key, labels).n += by;
  }

  /** The slot `${a}|${b}`, if it exists yet (then pairSlot() makes it). */
  pair(a: string, b: string): Slot | undefined {
    return this.pairs.get(a)?.get(b);
  }

  pairSlot(a: string, b: string, labels: () => Record<string, string>): Slot {
    const slot = this.slot(`${a}|${b}`, labels);
    let inner = this.pairs.get(a);
    if (inner === undefined) {
      inner = new Map();
      this.pairs.set(a, inner);
    }
    inner.set(b, slot);
    return slot;
  }

  slot(key: string, labels: () => Record<string, string>): Slot {
    let slot = this.slots.get(key);
    if (slot === undefined) {
      slot = { labels: labels(), n: 0, exported: false };
      this.slots.set(key, slot);
    }
    return slot;
  }

  /** Moves what accumulated since the last scrape into the prom-client counter. */
  flushInto(counter: Counter<string>): void {
    for (const s of this.slots.values()) {
      if (s.n === 0 && s.exported) continue;
      counter.inc(s.labels, s.n);
      s.n = 0;
      s.exported = true;
    }
  }
}

export class PipelineMetrics {
  readonly registry = new Registry();
  private sampler: (() => PipelineSample) | undefined;
  private readonly vmta: LabelCap;
  private readonly job: LabelCap;
  private readonly outputLabel: { output: OutputKind };

  /**
   * Per classification, the labels by kind: the classifier shares one result among all replies that
   * classify alike, a bounce's and a deferral's included, so one kind's labels would be rebuilt at
   * every turn between the two.
   */
  private readonly mailByClassification = new KeyedMemo<object, string, MailLabels>(16);
  private readonly mailByKind = new Map<string, MailLabels>();
  private readonly providerByDomain = new Map<string, string>();
  private readonly recordsTally = new Tally();
  private readonly bytesTally = new Tally();
  private readonly deliveredTally = new Tally();
  private readonly mailTally = new Tally();
  private readonly jobTally = new Tally();
  private readonly warningTally = new Tally();

  private readonly rotations: Counter<"input">;
  private readonly invalidations: Counter<"input" | "cause">;
  private readonly lostBytes: Counter<"input">;
  private readonly checkpointWrites: Counter<string>;
  private readonly checkpointFailures: Counter<string>;
  private readonly checkpointLastSuccess: Gauge<string>;
  private readonly deadLetters: Counter<"input" | "reason">;
  private readonly batchEvents: Histogram<"output">;
  private readonly batchBytes: Histogram<"output">;
  private readonly requestDuration: Histogram<"output" | "outcome">;
  private readonly retries: Counter<"output" | "cause">;
  private readonly outputUp: Gauge<"output">;
  private readonly outputLastSuccess: Gauge<"output">;

  constructor(options: MetricsOptions) {
    const registers = [this.registry];
    this.vmta = new LabelCap(options.maxVmtaLabels);
    this.job = new LabelCap(options.maxJobLabels);
    this.outputLabel = { output: options.output };
    // The event-loop lag monitor samples on a native timer: at prom-client's default of every 10 ms it
    // was most of an idle daemon's CPU (1.3 % of a core). Every 100 ms still shows the stalls that matter.
    if (options.processMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    const self = this;
    const sample = (): PipelineSample | undefined => self.sampler?.();

    new Gauge({
      name: "pmta_ingest_build_info",
      help: "Version of pmta-ingest and of Node.js running it (always 1).",
      labelNames: ["version", "node_version"],
      registers,
    }).set({ version: options.version, node_version: process.version }, 1);
    new Gauge({
      name: "pmta_ingest_start_time_seconds",
      help: "Unix time the daemon started.",
      registers,
    }).set(Date.now() / MS_PER_S);

    new Counter({
      name: "pmta_ingest_records_read_total",
      help: "Accounting records decoded, by input and PowerMTA record type.",
      labelNames: ["input", "type"],
      registers,
      collect() {
        self.recordsTally.flushInto(this);
      },
    });
    new Counter({
      name: "pmta_ingest_bytes_read_total",
      help: "Bytes read from accounting files.",
      labelNames: ["input"],
      registers,
      collect() {
        self.bytesTally.flushInto(this);
      },
    });
    new Counter({
      name: "pmta_ingest_events_delivered_total",
      help: "Events acknowledged by the output (events rejected by the backend are counted in pmta_ingest_dead_letters_total instead).",
      labelNames: ["input", "kind"],
      registers,
      collect() {
        self.deliveredTally.flushInto(this);
      },
    });
    new Counter({
      name: "pmta_ingest_mail_events_total",
      help: "Classified events as read: kind, normalized reason, hard or not, action, recipient provider, vmta (capped).",
      labelNames: ["kind", "reason", "hard", "action", "provider", "vmta"],
      registers,
      collect() {
        self.mailTally.flushInto(this);
      },
    });
    new Counter({
      name: "pmta_ingest_job_events_total",
      help: "Classified events per PowerMTA job id (capped; the rest count as job=other).",
      labelNames: ["job_id", "kind", "hard"],
      registers,
      collect() {
        self.jobTally.flushInto(this);
      },
    });
    new Counter({
      name: "pmta_ingest_decode_warnings_total",
      help: "Records delivered with a warning (quoting, encoding, columns, type, time, bounce).",
      labelNames: ["input", "warning"],
      registers,
      collect() {
        self.warningTally.flushInto(this);
      },
    });

    const perInput = (
      name: string,
      help: string,
      pick: (s: { tracked: number; open: number; unread: number }) => number,
    ): void => {
      new Gauge({
        name,
        help,
        labelNames: ["input"],
        registers,
        collect() {
          const s = sample();
          if (s === undefined) return;
          for (const [input, stats] of s.inputs) this.set({ input }, pick(stats));
        },
      });
    };
    perInput(
      "pmta_ingest_unread_bytes",
      "Bytes written by PowerMTA and not read yet (the lag).",
      (s) => s.unread,
    );
    perInput(
      "pmta_ingest_files_tracked",
      "Accounting files with state (live and archived).",
      (s) => s.tracked,
    );
    perInput("pmta_ingest_files_open", "Open file descriptors on accounting files.", (s) => s.open);

    new Gauge({
      name: "pmta_ingest_oldest_unacked_age_seconds",
      help: "Age of the oldest event read but not yet acknowledged by the output; 0 when none.",
      registers,
      collect() {
        const since = sample()?.oldestUnackedSince;
        this.set(since === undefined ? 0 : Math.max(0, (performance.now() - since) / MS_PER_S));
      },
    });
    new Gauge({
      name: "pmta_ingest_in_flight_events",
      help: "Events handed to the output and not yet acknowledged.",
      registers,
      collect() {
        this.set(sample()?.inFlightEvents ?? 0);
      },
    });
    new Gauge({
      name: "pmta_ingest_in_flight_bytes",
      help: "Bytes of the events in flight.",
      registers,
      collect() {
        this.set(sample()?.inFlightBytes ?? 0);
      },
    });
    new Gauge({
      name: "pmta_ingest_in_flight_limit_events",
      help: "Configured in-flight window (inFlight.maxEvents): reading pauses when it is full.",
      registers,
    }).set(options.inFlightLimit);

    this.rotations = new Counter({
      name: "pmta_ingest_rotations_total",
      help: "Live accounting files moved to the archive or replaced.",
      labelNames: ["input"],
      registers,
    });
    this.invalidations = new Counter({
      name: "pmta_ingest_checkpoint_invalidations_total",
      help: "Checkpoints that no longer matched their file (inode reused, file rewritten or truncated); the file is read from the start.",
      labelNames: ["input", "cause"],
      registers,
    });
    this.lostBytes = new Counter({
      name: "pmta_ingest_lost_bytes_total",
      help: "Unread bytes of files deleted before pmta-ingest could open them.",
      labelNames: ["input"],
      registers,
    });
    this.checkpointWrites = new Counter({
      name: "pmta_ingest_checkpoint_writes_total",
      help: "Checkpoints written (fsynced).",
      registers,
    });
    this.checkpointFailures = new Counter({
      name: "pmta_ingest_checkpoint_write_failures_total",
      help: "Checkpoint writes that failed (retried; reading goes on, a crash would re-send more).",
      registers,
    });
    this.checkpointLastSuccess = new Gauge({
      name: "pmta_ingest_checkpoint_last_success_timestamp_seconds",
      help: "Unix time of the last checkpoint written.",
      registers,
    });
    this.deadLetters = new Counter({
      name: "pmta_ingest_dead_letters_total",
      help: "Records set aside in the dead-letter file, by reason.",
      labelNames: ["input", "reason"],
      registers,
    });
    this.batchEvents = new Histogram({
      name: "pmta_ingest_batch_events",
      help: "Events per batch handed to the output.",
      labelNames: ["output"],
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
      registers,
    });
    this.batchBytes = new Histogram({
      name: "pmta_ingest_batch_bytes",
      help: "Bytes per batch handed to the output.",
      labelNames: ["output"],
      buckets: [1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216],
      registers,
    });
    this.requestDuration = new Histogram({
      name: "pmta_ingest_output_request_duration_seconds",
      help: "Duration of one request (http) or write (file, stdout) to the output, by outcome.",
      labelNames: ["output", "outcome"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.retries = new Counter({
      name: "pmta_ingest_output_retries_total",
      help: "Failed deliveries that will be retried, by cause (network, server_error, rate_limited, timeout, auth, error).",
      labelNames: ["output", "cause"],
      registers,
    });
    this.outputUp = new Gauge({
      name: "pmta_ingest_output_up",
      help: "1 if the last attempt to deliver succeeded, 0 if it failed.",
      labelNames: ["output"],
      registers,
    });
    this.outputLastSuccess = new Gauge({
      name: "pmta_ingest_output_last_success_timestamp_seconds",
      help: "Unix time of the last batch the output acknowledged.",
      labelNames: ["output"],
      registers,
    });

    // Series that alerts compare against exist from the first scrape, not only after the first event.
    this.outputUp.set(this.outputLabel, 1);
    this.checkpointWrites.inc(0);
    this.checkpointFailures.inc(0);
    for (const input of options.inputs) {
      this.rotations.inc({ input }, 0);
      this.lostBytes.inc({ input }, 0);
      for (const cause of ["identity_mismatch", "truncation"] as const)
        this.invalidations.inc({ input, cause }, 0);
      for (const reason of ["partial-record", "record-too-long", "unterminated-quote"]) {
        this.deadLetters.inc({ input, reason }, 0);
      }
      this.bytesTally.add(input, () => ({ input }), 0);
      for (const warning of ["quoting", "encoding", "columns", "type", "time", "bounce"]) {
        this.warningTally.add(`${input}|${warning}`, () => ({ input, warning }), 0);
      }
    }
    for (const cause of ["network", "server_error", "rate_limited", "timeout", "auth", "error"] as const) {
      this.retries.inc({ ...this.outputLabel, cause }, 0);
    }
  }

  /** Gauges (lag, files, in flight, oldest unacknowledged) are read from this at every scrape. */
  sample(sampler: () => PipelineSample): void {
    this.sampler = sampler;
  }

  /** One record decoded and classified. Returns the slot to bump once the output acknowledged it. */
  eventRead(input: string, event: EventFacts): DeliveredSlot {
    const type = RECORD_TYPES.has(event.recordType) ? event.recordType : "other";
    (this.recordsTally.pair(input, type) ?? this.recordsTally.pairSlot(input, type, () => ({ input, type })))
      .n++;

    const kind = event.kind;
    const mail = this.mailLabels(event);
    const vmta = this.vmta.label(event.vmta);
    (
      this.mailTally.pair(mail.key, vmta) ??
      this.mailTally.pairSlot(mail.key, vmta, () => ({ ...mail.labels, vmta }))
    ).n++;
    const job = this.job.label(event.jobId);
    const hard = mail.labels.hard;
    const kindHard = mail.kindHard;
    // `job_id`, not `job`: Prometheus owns `job` (the scrape job) and would rename ours.
    (
      this.jobTally.pair(job, kindHard) ??
      this.jobTally.pairSlot(job, kindHard, () => ({ job_id: job, kind, hard }))
    ).n++;

    if (event.warnings !== undefined) {
      for (const w of event.warnings) {
        const colon = w.indexOf(":");
        const warning = colon > 0 && colon <= 16 ? w.slice(0, colon) : "other";
        this.warningTally.add(`${input}|${warning}`, () => ({ input, warning }));
      }
    }
    return (
      this.deliveredTally.pair(input, kind) ??
      this.deliveredTally.pairSlot(input, kind, () => ({ input, kind }))
    );
  }

  /**
   * The mail_events labels but vmta, and their joined key. A bounce's come from its classification,
   * which the classifier hands out once per distinct reply, so they are worked out once per reply;
   * other kinds' depend on the kind and the recipient domain's provider.
   */
  private mailLabels(event: EventFacts): MailLabels {
    const b = event.bounce;
    const kind = event.kind;
    if (b !== undefined) {
      const known = this.mailByClassification.get(b, kind);
      if (known !== undefined) return known;
      const made = mailLabels(kind, b.reason, b.hard, b.action, b.provider);
      this.mailByClassification.set(b, kind, made);
      return made;
    }
    const domain = event.recipientDomain ?? "";
    let provider = this.providerByDomain.get(domain);
    if (provider === undefined) {
      provider = providerOf(undefined, event.recipientDomain);
      if (this.providerByDomain.size >= 10_000) this.providerByDomain.clear();
      this.providerByDomain.set(ownString(domain), provider);
    }
    const key = `${kind}|${provider}`;
    let made = this.mailByKind.get(key);
    if (made === undefined) {
      const reason = kindReason(kind);
      made = mailLabels(
        kind,
        reason,
        false,
        isReason(reason) ? REASON_INFO[reason].action : "none",
        provider,
      );
      this.mailByKind.set(key, made);
    }
    return made;
  }

  bytesRead(input: string, n: number): void {
    this.bytesTally.add(input, () => ({ input }), n);
  }

  rotation(input: string): void {
    this.rotations.inc({ input });
  }

  checkpointInvalidated(input: string, cause: CheckpointInvalidationCause): void {
    this.invalidations.inc({ input, cause });
  }

  lostUnreadBytes(input: string, n: number): void {
    this.lostBytes.inc({ input }, n);
  }

  checkpointWritten(): void {
    this.checkpointWrites.inc();
    this.checkpointLastSuccess.set(Date.now() / MS_PER_S);
  }

  checkpointFailed(): void {
    this.checkpointFailures.inc();
  }

  deadLettered(input: string, reason: string): void {
    this.deadLetters.inc({ input, reason });
  }

  batch(events: number, bytes: number): void {
    this.batchEvents.observe(this.outputLabel, events);
    this.batchBytes.observe(this.outputLabel, bytes);
  }

  request(outcome: RequestOutcome, seconds: number): void {
    this.requestDuration.observe({ ...this.outputLabel, outcome }, seconds);
  }

  retry(cause: RetryCause): void {
    this.retries.inc({ ...this.outputLabel, cause });
    this.outputUp.set(this.outputLabel, 0);
  }

  /** The output answered (a rejection of single events is an answer: the backend is up). */
  outputAnswered(): void {
    this.outputUp.set(this.outputLabel, 1);
  }

  acknowledged(): void {
    this.outputUp.set(this.outputLabel, 1);
    this.outputLastSuccess.set(this.outputLabel, Date.now() / MS_PER_S);
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

interface MailLabels {
  readonly key: string;
  /** `${kind}|${hard}`, the job tally's second key. */
  readonly kindHard: string;
  readonly labels: {
    readonly kind: string;
    readonly reason: string;
    readonly hard: string;
    readonly action: string;
    readonly provider: string;
  };
}

function mailLabels(
  kind: string,
  reason: string,
  hard: boolean,
  action: string,
  provider: string,
): MailLabels {
  const h = hard ? "true" : "false";
  return {
    key: `${kind}|${reason}|${h}|${action}|${provider}`,
    kindHard: `${kind}|${h}`,
    labels: { kind, reason, hard: h, action, provider },
  };
}

function kindReason(kind: EventFacts["kind"]): string {
  switch (kind) {
    case "complaint":
      return "complaint";
    case "delivery":
      return "delivered";
    default:
      return "none";
  }
}
