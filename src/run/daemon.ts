import { setTimeout as sleep } from "node:timers/promises";
import { type FSWatcher, watch } from "chokidar";
import { CheckpointStore } from "../checkpoint/checkpoint-store.js";
import { crashPoint } from "../checkpoint/crash-point.js";
import type { Classifier } from "../classify/classifier.js";
import { log as defaultLog, type log } from "../cli/log.js";
import type { RunConfig } from "../config/run-config.js";
import { parseDuration } from "../config/units.js";
import { Batcher } from "../deliver/batcher.js";
import { DeadLetterFile } from "../deliver/dead-letter.js";
import { HttpOutput, parseHttpSettings } from "../deliver/http-output.js";
import { fileOutput, type Output, stdoutOutput } from "../deliver/output.js";
import { buildEvent } from "../event/build-event.js";
import type { PmtaEvent } from "../event/event.js";
import { NdjsonFileSink } from "../sink/ndjson-file-sink.js";
import { Tailer } from "../tail/tailer.js";

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
}

export async function runDaemon(
  config: RunConfig,
  classifier: Classifier,
  options: DaemonOptions = {},
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

  const store = new CheckpointStore(config.stateDir);
  const loaded = await store.load();
  for (const problem of loaded.problems) {
    log("error", "checkpoint store damaged; using an older generation or the start policy", { problem });
  }
  log("info", "starting", {
    inputs: config.inputs.map((i) => ({ name: i.name, path: i.path, archive: i.archive })),
    stateDir: config.stateDir,
    checkpoint: {
      source: loaded.source,
      generation: loaded.snapshot.generation,
      files: loaded.snapshot.files.length,
    },
  });

  const deadLetter = new DeadLetterFile(config.deadLetterPath);
  let output: Output;
  if (config.output.kind === "file") {
    const sink = new NdjsonFileSink({
      path: config.output.path,
      maxBytes: config.output.maxBytes,
      keep: config.output.keep,
    });
    await sink.open();
    output = fileOutput(sink);
  } else if (config.output.kind === "stdout") {
    output = stdoutOutput();
  } else {
    const settings = parseHttpSettings(config.output.settings, parseDuration);
    output = new HttpOutput(settings, {
      deadLetter: async (r) => {
        counters.deadLetters++;
        const o = r.envelope.origin;
        await deadLetter.appendAt(o, {
          reason: "rejected-by-output",
          detail: `HTTP ${r.status}`,
          status: r.status,
          response: r.body.slice(0, 1024),
          event: JSON.parse(r.envelope.line) as unknown,
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
      onRetry: () => {
        counters.retries++;
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
      wake();
    },
  });
  const ctxFor = (file: string) => ({ host: config.host, file, classifier });

  const tailer = new Tailer(
    {
      inputs: config.inputs,
      startAt: config.startAt,
      maxRecordBytes: config.maxRecordBytes,
      sealAfterMs: config.sealAfterMs,
      maxOpenFiles: config.maxOpenFiles,
    },
    {
      hasRoom: () =>
        batcher.inFlightEvents < config.inFlight.maxEvents &&
        batcher.inFlightBytes < config.inFlight.maxBytes,
      record: (file, item, ack) => {
        counters.records++;
        const event = buildEvent(item, ctxFor(file.path));
        options.onEvent?.(event);
        const line = JSON.stringify(event);
        counters.events++;
        const origin = {
          input: file.input.name,
          file: file.path,
          dev: file.dev,
          ino: file.ino,
          offset: item.offset,
          end: item.end,
        };
        batcher.push({ line, bytes: line.length, ack, id: event.id, origin });
      },
      deadLetter: async (file, item, preview) => {
        counters.deadLetters++;
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
      count: (name, by = 1) => {
        if (name === "checkpoint_invalidated") counters.checkpointInvalidated += by;
        else if (name === "rotation") counters.rotations += by;
        else if (name === "truncation") counters.truncations += by;
        else counters.lostUnreadBytes += by;
      },
    },
  );
  tailer.restore(loaded.snapshot.files);

  let lastSignature = "";
  let lastCheckpointAt = 0;
  const checkpoint = async (force: boolean): Promise<void> => {
    const t = performance.now();
    // Half the window acknowledged but not checkpointed: write now rather than stall reading, but
    // not more often than every 20 ms (a checkpoint costs O(files tracked)).
    const windowPressure = uncheckpointed * 2 >= config.inFlight.maxEvents && t - lastCheckpointAt >= 20;
    if (!force && !windowPressure && t - lastCheckpointAt < config.checkpointIntervalMs) return;
    const covered = uncheckpointed;
    const signature = tailer.progressSignature();
    if (signature === lastSignature) return;
    crashPoint("after-ack-before-ckpt");
    try {
      // Acknowledged bytes must be durable at the output before the offset that covers them is.
      await output.sync();
      const nowMs = Date.now();
      const entries = await tailer.checkpoints(nowMs);
      const kept = store.expire(entries, config.checkpointRetentionMs, nowMs, (e) => e.updatedAt === nowMs);
      tailer.forget(kept);
      await store.save(kept);
      counters.checkpointsWritten++;
      uncheckpointed -= covered;
      lastSignature = signature;
      lastCheckpointAt = t;
    } catch (err) {
      counters.checkpointFailures++;
      log("error", "checkpoint write failed; will retry", { stateDir: config.stateDir, error: String(err) });
      lastCheckpointAt = t;
    }
  };

  let lastScan = -Number.MAX_VALUE;
  let scanRequested = false;
  const watchers: FSWatcher[] = [];
  for (const input of config.inputs) {
    for (const dir of [input.dir, input.archive]) {
      if (dir === undefined) continue;
      // A wake-up hint only: rotations can be missed (reference §6); the periodic listing is the truth.
      const w = watch(dir, { ignoreInitial: true, depth: 0, atomic: false });
      w.on("all", () => {
        scanRequested = true;
        wake();
      });
      w.on("error", (err) =>
        log("warn", "directory watcher error; relying on periodic listing", { dir, error: String(err) }),
      );
      watchers.push(w);
    }
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (!stopping) log("info", "stopping", { signal });
    stopping = true;
    wake();
  };
  const onTerm = () => stop("SIGTERM");
  const onInt = () => stop("SIGINT");
  const handleSignals = options.handleSignals ?? true;
  if (handleSignals) {
    process.on("SIGTERM", onTerm);
    process.on("SIGINT", onInt);
  }
  const onAbort = () => stop("abort");
  if (options.signal?.aborted) stopping = true;
  options.signal?.addEventListener("abort", onAbort);

  try {
    while (!stopping) {
      const t = performance.now();
      if (scanRequested || t - lastScan >= config.rescanIntervalMs) {
        scanRequested = false;
        await tailer.scan();
        lastScan = t;
      }
      const progressed = await tailer.readRound();
      await tailer.sealRound();
      await checkpoint(false);
      if (!progressed && !stopping)
        await waitForWake(Math.min(config.rescanIntervalMs, config.checkpointIntervalMs));
    }
  } finally {
    process.removeListener("SIGTERM", onTerm);
    process.removeListener("SIGINT", onInt);
    options.signal?.removeEventListener("abort", onAbort);
    await Promise.all(watchers.map((w) => w.close()));
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
    log("info", "stopped", { ...counters });
  }
  return 0;
}
