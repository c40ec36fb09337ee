/**
 * Named crash points for the chaos tests (reliability matrix T18): when the environment variable
 * `PMTA_INGEST_CRASH_AT` is `<name>` or `<name>:<N>`, the N-th time (counting from 1; default 1) the
 * process reaches `crashPoint(name)` it dies by SIGKILL on the spot — no `finally` blocks, no exit
 * handlers, no flushing, exactly like the OOM killer or `kill -9`.
 *
 * Known points: `after-read`, `after-send`, `after-ack-before-ckpt` (tailer/output) and
 * `ckpt-after-set-write`, `ckpt-after-temp-write`, `ckpt-after-fsync`, `ckpt-after-rename` (checkpoint store).
 *
 * The variable is read once at module load so that a call in a hot path costs one comparison.
 */
export interface CrashSpec {
  readonly name: string;
  /** Which hit kills the process, counting from 1. */
  readonly nth: number;
}

/** Parses the variable's value; undefined when unset or empty, an Error when malformed. */
export function parseCrashSpec(value: string | undefined): CrashSpec | Error | undefined {
  if (value === undefined || value === "") return undefined;
  const match = /^([A-Za-z0-9_.-]+)(?::(\d+))?$/.exec(value);
  if (match === null || match[1] === undefined) {
    return new Error(`PMTA_INGEST_CRASH_AT=${JSON.stringify(value)} is not <name> or <name>:<N>`);
  }
  const nth = match[2] === undefined ? 1 : Number(match[2]);
  if (!Number.isSafeInteger(nth) || nth < 1) {
    return new Error(`PMTA_INGEST_CRASH_AT=${JSON.stringify(value)}: N counts from 1`);
  }
  return { name: match[1], nth };
}

function initialSpec(): CrashSpec | undefined {
  const parsed = parseCrashSpec(process.env.PMTA_INGEST_CRASH_AT);
  if (parsed instanceof Error) {
    // A chaos run whose crash point silently never fires would "pass" without testing anything, so
    // say so loudly; but this is a test hook, so it must not stop the daemon either.
    process.emitWarning(`${parsed.message}; no crash point armed`, "PmtaIngestCrashPoint");
    return undefined;
  }
  return parsed;
}

const armed = initialSpec();
let hits = 0;

export function crashPoint(name: string): void {
  if (armed === undefined || name !== armed.name) return;
  hits += 1;
  if (hits === armed.nth) process.kill(process.pid, "SIGKILL");
}
