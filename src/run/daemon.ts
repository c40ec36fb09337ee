import { setTimeout as sleep } from "node:timers/promises";
import { CheckpointStore } from "../checkpoint/checkpoint-store.js";
import { crashPoint } from "../checkpoint/crash-point.js";
import {
  hasUsableState,
  inputsAtFirstStart,
  readStartedInputs,
  writeStartedInputs,
} from "../checkpoint/start-policy.js";
import { lockStateDir } from "../checkpoint/state-lock.js";
import type { Classifier } from "../classify/classifier.js";
import { log as defaultLog, type log } from "../cli/log.js";
import type { RunConfig } from "../config/run-config.js";
import { parseListen } from "../config/run-config.js";
import { parseDuration } from "../config/units.js";
import { Batcher } from "../deliver/batcher.js";
import { DeadLetterFile } from "../deliver/dead-letter.js";
import { HttpOutput, parseHttpSettings } from "../deliver/http-output.js";
import { fileOutput, type Output, stdoutOutput } from "../deliver/output.js";
import type { EventContext } from "../event/build-event.js";
import { encodeEvent } from "../event/encode-event.js";
import type { PmtaEvent } from "../event/event.js";
import { type EventSlab, EventWriter } from "../event/event-writer.js";
import { PipelineMetrics, type RetryCause } from "../observe/metrics.js";
import { type MetricsServer, startMetricsServer } from "../observe/metrics-server.js";
import { Readiness } from "../observe/readiness.js";
import { NdjsonFileSink } from "../sink/ndjson-file-sink.js";
import { DirWatcher } from "../tail/dir-watcher.js";
import { Tailer } from "../tail/tailer.js";
import { VERSION } from "../version.js";
import { RecordEnvelope } from "./record-envelope.js";

/** Counters the daemon keeps (exported as Prometheus metrics by the observability issue). */
export interface DaemonCounters {
  records: number;
  events: number;
  deadLetters: number;
  checkpointsWritten: number;
  checkpointFailures: number;
  checkpointInvalidated: number;
  rotations: number;
  truncations: number;
  lostUnreadBytes: number;
  retries: number;
}

/**
 * `pmta-ingest run`: tail → decode → classify → batch → deliver → checkpoint, until SIGTERM/SIGINT.
 *
 * Crash safety rests on one ordering: a checkpoint is written only after the output has acknowledged
 * (and, for the file output, fsynced) every record before its offset, and dead letters are fsynced
 * before the offset moves past them. A crash anywhere therefore re-reads at most what was in flight.
 */
export interface DaemonOptions {
  /** Stops the daemon like SIGTERM does (the demo and tests run it in-process). */
  readonly signal?: AbortSignal;
  /** Sees every event handed to the output (the demo's live summary). */
  readonly onEvent?: (event: PmtaEvent) => void;
  /** Structured logger; the default writes JSON lines to stderr. */
  readonly log?: typeof log;
  /** Handle SIGTERM/SIGINT (default true). */
  readonly handleSignals?: boolean;
  /** Called with the bound metrics address once the endpoint listens (tests bind port 0). */
  readonly onMetricsListening?: (address: string) => void;
  /** Export Node's process metrics (default true). */
  readonly processMetrics?: boolean;
}

const HTTP_RETRY_CAUSE: Readonly<Record<"network" | "5xx" | "429" | "408" | "auth", RetryCause>> = {
  network: "network",
  "5xx": "server_error",
  "429": "rate_limited",
  "408": "timeout",
  auth: "auth",
};

/** Least time between two checkpoints written because the daemon caught up (see checkpoint()). */
const SETTLED_CHECKPOINT_MS = 200;

export async function runDaemon(
  config: RunConfig,
  classifier: Classifier,
  options: DaemonOptions = {},
): Promise<number> {
  // Caught from the first line: a SIGTERM while the lock is taken or the checkpoints load (seconds
  // with a large archive) would otherwise meet Node's default action and end the process unsaved.
  // The reason names what asked for the stop; the listeners go once the drain begins, so a second
  // signal then still ends a drain that hangs.
  const stopper = new StopRequest(options.signal, options.handleSignals ?? true, options.log ?? defaultLog);
  try {
    // Before anything reads the checkpoints: a second process on them would deliver everything twice
    // and overwrite this one's saves (state-lock.ts). The kernel releases it if the process dies.
    const stateLock = await lockStateDir(config.stateDir, `run --config ${config.source}`);
    try {
      if (!stateLock.locked) {
        (options.log ?? defaultLog)("warn", "state directory not locked: run one pmta-ingest per stateDir", {
          stateDir: config.stateDir,
          reason: stateLock.reason,
        });
      }
      return await runLocked(config, classifier, options, stopper);
    } finally {
      await stateLock.release();
    }
  } finally {
    stopper.close();
  }
}

/**
 * SIGTERM, SIGINT or the caller's abort signal, whichever comes first, for the daemon's loop.
 *
 * SIGHUP is logged and ignored. Node's default for it is to end the process, and systemd counts an
 * end by SIGHUP as clean, so `Restart=on-failure` would not bring the daemon back: a `kill -HUP` sent
 * out of habit ("reload") would stop bounce delivery until someone noticed.
 */
class StopRequest {
  /** What asked for the stop ("SIGTERM", "SIGINT", "abort"); undefined while running. */
  reason: string | undefined;
  private listener: ((reason: string) => void) | undefined;
  private readonly onTerm = (): void => this.request("SIGTERM");
  private readonly onInt = (): void => this.request("SIGINT");
  private readonly onAbort = (): void => this.request("abort");
  private readonly onHup = (): void =>
    this.log("warn", "SIGHUP ignored: the configuration is read only at start", {
      signal: "SIGHUP",
      hint: "to apply a change, restart the daemon (systemctl restart pmta-ingest)",
    });
  private signals: boolean;
  private hup: boolean;

  constructor(
    private readonly abort: AbortSignal | undefined,
    signals: boolean,
    private readonly log: typeof defaultLog,
  ) {
    this.signals = signals;
    this.hup = signals;
    if (signals) {
      process.on("SIGTERM", this.onTerm);
      process.on("SIGINT", this.onInt);
      process.on("SIGHUP", this.onHup);
    }
    if (abort?.aborted) this.reason = "abort";
    abort?.addEventListener("abort", this.onAbort);
  }

  /** Calls `listener` on the first request (at once if one came already). */
  onRequest(listener: (reason: string) => void): void {
    this.listener = listener;
    if (this.reason !== undefined) listener(this.reason);
  }

  /** Hands SIGTERM/SIGINT back to Node's default: the drain that follows a stop must stay killable. */
  releaseSignals(): void {
    if (!this.signals) return;
    this.signals = false;
    process.removeListener("SIGTERM", this.onTerm);
    process.removeListener("SIGINT", this.onInt);
  }

  close(): void {
    this.releaseSignals();
    // Kept through the drain, unlike the stop signals: a SIGHUP then must not end it either.
    if (this.hup) process.removeListener("SIGHUP", this.onHup);
    this.hup = false;
    this.abort?.removeEventListener("abort", this.onAbort);
  }

  private request(reason: string): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.listener?.(reason);
  }
}

async function runLocked(
  config: RunConfig,
  classifier: Classifier,
  options: DaemonOptions,
  stopper: StopRequest,
): Promise<number> {
  const log = options.log ?? defaultLog;
  const counters: DaemonCounters = {
    records: 0,
    events: 0,
    deadLetters: 0,
    checkpointsWritten: 0,
    checkpointFailures: 0,
    checkpointInvalidated: 0,
    rotations: 0,
    truncations: 0,
    lostUnreadBytes: 0,
    retries: 0,
  };

  const metrics = new PipelineMetrics({
    version: VERSION,
    output: config.output.kind,
    inputs: config.inputs.map((i) => i.name),
    inFlightLimit: config.inFlight.maxEvents,
    maxVmtaLabels: config.metrics.maxVmtaLabels,
    maxJobLabels: config.metrics.maxJobLabels,
    // Nobody can read them with the endpoint off; collecting them would still cost CPU.
    processMetrics: (options.processMetrics ?? true) && config.metrics.listen !== "off",
  });
  const readiness = new Readiness(config.inputs, config.output.kind);

  for (const warning of config.warnings) log("warn", "configuration", { source: config.source, warning });
  // Format 1 (every generation whole) is what releases before the finished-files set read.
  const store = new CheckpointStore(
    config.stateDir,
    config.checkpointFormat === 1 ? { finishedSetMin: Number.POSITIVE_INFINITY } : {},
  );
  const loaded = await store.load();
  for (const problem of loaded.problems) {
    log("error", "checkpoint store damaged; using an older generation or the start policy", { problem });
  }
  // startAt is for an input's first start (start-policy.ts): once that is complete, a file with no
  // entry appeared while the daemon was stopped, and is read whole.
  const started = await readStartedInputs(config.stateDir);
  if (started.problem !== undefined)
    log("error", "start policy state unreadable", { problem: started.problem });
  const startAtInputs = inputsAtFirstStart(
    config.inputs.map((i) => i.name),
    loaded,
    started.inputs,
  );
  let startPending = startAtInputs.size > 0;
  log("info", "starting", {
    inputs: config.inputs.map((i) => ({ name: i.name, path: i.path, archive: i.archive })),
    stateDir: config.stateDir,
    checkpoint: {
      source: loaded.source,
      generation: loaded.snapshot.generation,
      files: loaded.snapshot.files.length,
    },
  });

  let metricsServer: MetricsServer | undefined;
  const deadLetter = new DeadLetterFile(config.deadLetterPath);
  let output: Output;
  // Each event is followed by the separator its batch body puts between events: a body is then
  // copied from the slabs a run of events at a time (LineJoiner.joinEvents).
  let separator = 0x0a;
  if (config.output.kind === "file") {
    const sink = new NdjsonFileSink({
      path: config.output.path,
      maxBytes: config.output.maxBytes,
      keep: config.output.keep,
    });
    const cut = await sink.open();
    if (cut > 0) {
      log("warn", "output file ended in a torn line (a crash during a write); cut it off, it is sent again", {
        file: config.output.path,
        bytes: cut,
      });
    }
    output = fileOutput(sink);
  } else if (config.output.kind === "stdout") {
    output = stdoutOutput();
  } else {
    const settings = parseHttpSettings(config.output.settings, parseDuration);
    if (settings.format === "events") separator = 0x2c;
    output = new HttpOutput(settings, {
      deadLetter: async (r) => {
        counters.deadLetters++;
        if (r.envelope instanceof RecordEnvelope) r.envelope.rejected = true;
        const o = r.envelope.origin;
        metrics.deadLettered(o?.input ?? "unknown", "rejected-by-output");
        await deadLetter.appendAt(o, {
          reason: "rejected-by-output",
          detail: `HTTP ${r.status}`,
          status: r.status,
          response: r.body.slice(0, 1024),
          event: JSON.parse(r.envelope.data.toString()) as unknown,
        });
        log("warn", "event rejected by the backend; set aside in the dead-letter file", {
          output: config.output.kind,
          status: r.status,
          file: o?.file,
          offset: o?.offset,
          deadLetter: config.deadLetterPath,
        });
      },
      log,
      onRetry: (cause) => {
        counters.retries++;
        metrics.retry(HTTP_RETRY_CAUSE[cause]);
        readiness.outputFailed(cause);
      },
      onRequest: (status, _events, ms) => {
        const seconds = ms / 1000;
        if (status === "error") {
          metrics.request("error", seconds);
        } else if (status >= 200 && status < 300) {
          metrics.request("success", seconds);
          metrics.outputAnswered();
          readiness.outputSucceeded();
        } else if (status === 401 || status === 403 || status === 408 || status === 429 || status >= 500) {
          metrics.request("retry", seconds);
        } else {
          // A 4xx for single events is an answer: the backend is up and judged the events.
          metrics.request("rejected", seconds);
          metrics.outputAnswered();
          readiness.outputSucceeded();
        }
      },
    });
  }

  // Acknowledged but not yet covered by a checkpoint: re-sent after a crash, so counted in the window.
  let uncheckpointed = 0;
  let wakeUp: (() => void) | undefined;
  const wake = (): void => {
    const w = wakeUp;
    wakeUp = undefined;
    w?.();
  };
  const waitForWake = async (ms: number): Promise<void> => {
    const woken = new Promise<void>((resolve) => {
      wakeUp = resolve;
    });
    const ac = new AbortController();
    await Promise.race([woken, sleep(ms, undefined, { signal: ac.signal }).catch(() => undefined)]);
    ac.abort();
  };

  const batcher = new Batcher(output, {
    ...config.batch,
    onRetry: (attempt, error, delayMs) => {
      counters.retries++;
      metrics.retry("error");
      readiness.outputFailed(String(error));
      if (attempt === 1 || attempt % 10 === 0) {
        log("warn", "output failed; retrying", {
          output: output.name,
          attempt,
          delayMs,
          error: String(error),
        });
      }
    },
    onAcked: (n) => {
      uncheckpointed += n;
      metrics.acknowledged();
      readiness.outputSucceeded();
      wake();
    },
    onBatch: (events, bytes) => metrics.batch(events, bytes),
    // HttpOutput reports each request itself (onRequest); for file and stdout a send is one write.
    ...(config.output.kind === "http"
      ? {}
      : { onAttempt: (ok: boolean, ms: number) => metrics.request(ok ? "success" : "error", ms / 1000) }),
  });
  // The window holds every event a crash would make us send again: those in flight and those
  // acknowledged since the last checkpoint. Counting only the first let a slow checkpoint (fsync)
  // leave thousands acknowledged and unsaved behind a window of 200.
  const hasRoom = (): boolean =>
    batcher.inFlightEvents + uncheckpointed < config.inFlight.maxEvents &&
    batcher.inFlightBytes < config.inFlight.maxBytes;
  const writer = new EventWriter({ separator });
  const releaseEvent = (slab: EventSlab): void => writer.releaseIn(slab);
  // One context per file path, not one object per record.
  const contexts = new Map<string, EventContext>();
  const ctxFor = (file: string): EventContext => {
    let ctx = contexts.get(file);
    if (ctx === undefined) {
      if (contexts.size >= 10_000) contexts.clear();
      ctx = { host: config.host, file, classifier, fields: config.eventFields };
      contexts.set(file, ctx);
    }
    return ctx;
  };

  const tailer = new Tailer(
    {
      inputs: config.inputs,
      startAt: config.startAt,
      startAtInputs,
      maxRecordBytes: config.maxRecordBytes,
      sealAfterMs: config.sealAfterMs,
      archiveRecheckMs: config.archiveRecheckMs,
      maxOpenFiles: config.maxOpenFiles,
    },
    {
      hasRoom,
      record: (file, item, span) => {
        counters.records++;
        const event = encodeEvent(item, ctxFor(file.path), writer);
        if (options.onEvent !== undefined) options.onEvent(JSON.parse(event.data.toString()) as PmtaEvent);
        const delivered = metrics.eventRead(file.input.name, event);
        counters.events++;
        batcher.push(
          new RecordEnvelope(
            event.slab,
            event.start,
            event.end - event.start,
            item.fileKey,
            file,
            span,
            delivered,
            releaseEvent,
          ),
        );
      },
      deadLetter: async (file, item, preview) => {
        counters.deadLetters++;
        metrics.deadLettered(file.input.name, item.reason);
        const origin = {
          input: file.input.name,
          file: file.path,
          dev: file.dev,
          ino: file.ino,
          offset: item.offset,
          end: item.end,
        };
        await deadLetter.appendAt(origin, { reason: item.reason, detail: item.message, preview });
        log("warn", "record set aside in the dead-letter file", {
          input: file.input.name,
          file: file.path,
          offset: item.offset,
          length: item.end - item.offset,
          reason: item.reason,
          deadLetter: config.deadLetterPath,
        });
      },
      log,
      count: (name, input, by = 1) => {
        switch (name) {
          case "bytes_read":
            metrics.bytesRead(input, by);
            break;
          case "checkpoint_invalidated":
            counters.checkpointInvalidated += by;
            metrics.checkpointInvalidated(input, "identity_mismatch");
            break;
          case "truncation":
            counters.truncations += by;
            metrics.checkpointInvalidated(input, "truncation");
            break;
          case "rotation":
            counters.rotations += by;
            metrics.rotation(input);
            break;
          case "lost_unread_bytes":
            counters.lostUnreadBytes += by;
            metrics.lostUnreadBytes(input, by);
            break;
        }
      },
    },
  );
  tailer.restore(loaded.snapshot.files);
  metrics.sample(() => ({
    inputs: tailer.inputStats(),
    inFlightEvents: batcher.inFlightEvents,
    inFlightBytes: batcher.inFlightBytes,
    oldestUnackedSince: batcher.oldestUnackedSince,
  }));

  let lastSignature = "";
  let lastCheckpointAt = 0;
  let lastCheckpointMs = 0;
  let lastCheckpointCpuMs = 0;
  /** The last save failed (unwritable state directory, disk full); lastCheckpointAt is when. */
  let lastFailed = false;
  /** The last save was made because the window filled: the next settled one need not wait. */
  let lastForWindow = false;
  const checkpoint = async (force: boolean, idle = false): Promise<void> => {
    const t = performance.now();
    // Half the window acknowledged but not checkpointed: write now rather than stall reading, but
    // not more often than every 20 ms, nor so often that checkpointing takes more than a tenth of the
    // CPU (a checkpoint costs O(files tracked): 100,000 archived files make it a large document) —
    // unless reading already waits for this checkpoint, when there is nothing else to spend it on.
    const windowPressure =
      uncheckpointed * 2 >= config.inFlight.maxEvents &&
      (!hasRoom() || t - lastCheckpointAt >= Math.max(20, 9 * lastCheckpointCpuMs));
    // Caught up (nothing left to read, everything acknowledged): the state is final until new data
    // arrives, so save it now rather than at the next interval — a restart then replays nothing —
    // but at most five times a second under a trickle of records, and no more often than keeps them
    // under 2 % of a core: a save's CPU grows with the files tracked (100,000 archived files: ~10 ms),
    // and a trickle into one live file next to such an archive spent 5–6 % of a core on saves.
    // Right after a save the window forced (the end of a catch-up or a burst) there is no trickle to
    // pace: waiting there only delayed the checkpoint that covers the last records by 200 ms.
    const settled =
      idle &&
      uncheckpointed > 0 &&
      batcher.inFlightEvents === 0 &&
      (lastForWindow ||
        t - lastCheckpointAt >=
          Math.max(SETTLED_CHECKPOINT_MS, 4 * lastCheckpointMs, 50 * lastCheckpointCpuMs));
    // The interval stretches so that encoding stays under a tenth of the CPU (a 100,000-file archive
    // makes a 50 MB document); by CPU, not wall time: a slow fsync costs no CPU, and stretching for
    // it would let acknowledged-but-unsaved records, replayed after a crash, pile up.
    const due = t - lastCheckpointAt >= Math.max(config.checkpointIntervalMs, 9 * lastCheckpointCpuMs);
    // The first save that covers every file present at a first start ends the start policy.
    const endsStartPolicy = startPending && tailer.startScanDone;
    if (!force && !windowPressure && !settled && !due && !endsStartPolicy) return;
    // After a failure, try again once per checkpointInterval, not at every turn of the loop that a
    // full window would otherwise bring (reading waits meanwhile: the window bounds replay).
    if (!force && lastFailed && t - lastCheckpointAt < config.checkpointIntervalMs) return;
    const covered = uncheckpointed;
    const signature = tailer.progressSignature();
    if (signature === lastSignature && !endsStartPolicy) {
      // Nothing a save would change (acknowledgements of a file that was reset, or behind a gap
      // that in-flight events will fill): they must not hold the window shut.
      uncheckpointed -= covered;
      return;
    }
    crashPoint("after-ack-before-ckpt");
    const cpu0 = process.cpuUsage();
    try {
      // Acknowledged bytes must be durable at the output before the offset that covers them is.
      await output.sync();
      const nowMs = Date.now();
      const entries = await tailer.checkpoints(nowMs);
      const kept = store.expire(entries, config.checkpointRetentionMs, nowMs, (e) => tailer.isPresent(e));
      if (kept.length < entries.length) tailer.forget(kept);
      await store.save(kept);
      if (endsStartPolicy) {
        await writeStartedInputs(config.stateDir, [
          ...(hasUsableState(loaded) ? started.inputs : []),
          ...config.inputs.map((i) => i.name),
        ]);
        startPending = false;
      }
      counters.checkpointsWritten++;
      metrics.checkpointWritten();
      readiness.checkpointWritten();
      uncheckpointed -= covered;
      lastFailed = false;
      lastForWindow = windowPressure;
      lastSignature = signature;
      lastCheckpointAt = t;
      lastCheckpointMs = performance.now() - t;
      const cpu = process.cpuUsage(cpu0);
      lastCheckpointCpuMs = (cpu.user + cpu.system) / 1000;
    } catch (err) {
      counters.checkpointFailures++;
      metrics.checkpointFailed();
      readiness.checkpointFailed(String(err));
      log("error", "checkpoint write failed; will retry", { stateDir: config.stateDir, error: String(err) });
      lastCheckpointAt = t;
      lastFailed = true;
    }
  };

  let lastScan = -Number.MAX_VALUE;
  let lastScanMs = 0;
  let scanRequested = false;
  const watchers: DirWatcher[] = [];
  for (const input of config.inputs) {
    for (const dir of [input.dir, input.archive]) {
      if (dir === undefined) continue;
      // A wake-up hint only: rotations can be missed (reference §6); the periodic listing is the truth.
      const w = new DirWatcher(
        dir,
        (names) => {
          // A write only wakes the reader; a name that came or went also asks for a listing.
          if (names) scanRequested = true;
          wake();
        },
        (err) =>
          log("warn", "directory watcher error; relying on periodic listing", { dir, error: String(err) }),
      );
      watchers.push(w);
    }
  }

  let stopping = false;
  stopper.onRequest((signal) => {
    log("info", "stopping", { signal });
    stopping = true;
    wake();
  });

  try {
    // Inside the try: a taken port ends start-up through the same orderly shutdown as SIGTERM.
    const listen = config.metrics.listen === "off" ? undefined : parseListen(config.metrics.listen);
    if (listen !== undefined) {
      metricsServer = await startMetricsServer({
        ...listen,
        metrics,
        readiness: () => readiness.checks(),
      });
      log("info", "metrics endpoint listening", { address: metricsServer.address });
      options.onMetricsListening?.(metricsServer.address);
    }
    let progressedLast = true;
    while (!stopping) {
      const t = performance.now();
      // A listing of a huge archive (100,000 files) takes a while; never spend more than about a
      // third of the time listing, or reading starves — watcher hints included.
      const scanDue = lastScan + Math.max(config.rescanIntervalMs, 2 * lastScanMs);
      if ((scanRequested && t - lastScan >= 2 * lastScanMs) || t >= scanDue) {
        scanRequested = false;
        await tailer.scan(() => stopping);
        for (const w of watchers) w.ensure();
        lastScan = performance.now();
        lastScanMs = lastScan - t;
      } else if (tailer.moreToAdopt && !progressedLast) {
        // The reader ran out of files while the last listing left new ones (a large archive
        // backlog): adopt the next of them now rather than at the next listing. Each call takes the
        // next ADOPT_PER_SCAN of them, so this cannot turn into a busy loop.
        await tailer.adoptWaiting(() => stopping);
      }
      const progressed = await tailer.readRound();
      progressedLast = progressed;
      await tailer.sealRound();
      await checkpoint(false, !progressed);
      // Files left waiting for adoption are adopted by the next turn, not after a wait.
      if (!progressed && !stopping && !tailer.moreToAdopt) {
        const ms = Math.min(config.rescanIntervalMs, config.checkpointIntervalMs);
        // Acknowledged but not yet saved: come back when the settled checkpoint is allowed.
        await waitForWake(uncheckpointed > 0 ? Math.min(ms, SETTLED_CHECKPOINT_MS) : ms);
      }
    }
  } finally {
    stopper.releaseSignals();
    for (const w of watchers) w.close();
    const drained = await batcher.drain(config.drainTimeoutMs);
    if (!drained) {
      log("warn", "drain timeout: events not acknowledged will be read again on start", {
        events: batcher.inFlightEvents,
        drainTimeoutMs: config.drainTimeoutMs,
      });
    }
    batcher.stop();
    await checkpoint(true);
    await tailer.close();
    await output.close();
    await deadLetter.close();
    await metricsServer?.close();
    log("info", "stopped", { ...counters });
  }
  return 0;
}
