/**
 * IPC between the benchmark and its receiver process (bench/receiver.ts, started with fork()).
 * The receiver is a separate process so that its CPU is never counted as the daemon's.
 */

/** Latency figures in milliseconds, append (writer's clock) → the receiver answering 200. */
export interface LatencySummary {
  readonly samples: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

export interface ReceiverStats {
  /** Events received (re-sent events counted again). */
  readonly events: number;
  readonly requests: number;
  readonly bodyBytes: number;
  /** Requests per body format: the daemon's `events` objects, syslog-ng's JSON arrays. */
  readonly formats: Readonly<Record<string, number>>;
  /** Receiver's own CPU seconds (user + system) since start. */
  readonly cpuSeconds: number;
  /** Distinct sequence numbers seen while latency tracking is on. */
  readonly distinct: number;
  /** Highest sequence number seen while latency tracking is on. */
  readonly maxSeq: number;
  readonly latency?: LatencySummary;
}

export type ToReceiver =
  | { readonly cmd: "reset"; readonly latency: boolean }
  | { readonly cmd: "stats"; readonly id: number }
  | { readonly cmd: "wait"; readonly id: number; readonly events: number }
  | { readonly cmd: "close" };

export type FromReceiver =
  | { readonly kind: "ready"; readonly port: number }
  | { readonly kind: "stats"; readonly id: number; readonly stats: ReceiverStats }
  | { readonly kind: "reached"; readonly id: number; readonly stats: ReceiverStats };
