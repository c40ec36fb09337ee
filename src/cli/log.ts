import pino from "pino";

/**
 * Structured diagnostics: one JSON object a line, `{"level":"warn","time":"<ISO 8601>", ...fields,
 * "msg":"..."}`, written by pino synchronously so a line logged just before process.exit, a crash
 * point or a SIGKILL is on the stream, not in a buffer.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

/**
 * stderr by default, so stdout stays clean for data (replay and classify write events and results
 * there). `run` switches to stdout when its events do not go there (see main.ts).
 */
export type LogDestination = "stdout" | "stderr";

/** Environment variable holding the threshold: debug, info (default), warn, error or silent. */
export const LOG_LEVEL_ENV = "PMTA_INGEST_LOG_LEVEL";

const LEVELS: readonly string[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

/**
 * Fields that may carry credentials, at the top level and one object deep (e.g. an HTTP output's
 * settings or its headers); their values are printed as "[Redacted]". Header names are matched in
 * the two spellings configs use; redaction is a safety net, the rule is still to not log secrets.
 */
export const REDACT_PATHS: readonly string[] = [
  "token",
  "password",
  "authorization",
  "Authorization",
  "octethSignature",
  "headers.authorization",
  "headers.Authorization",
  "*.token",
  "*.password",
  "*.authorization",
  "*.Authorization",
  "*.octethSignature",
  "*.headers.authorization",
  "*.headers.Authorization",
];

let destination: LogDestination = "stderr";
let logger: pino.Logger | undefined;

function createLogger(): pino.Logger {
  const raw = process.env[LOG_LEVEL_ENV];
  const wanted = raw === undefined || raw.trim() === "" ? "info" : raw.trim().toLowerCase();
  const valid = LEVELS.includes(wanted);
  const created = pino(
    {
      level: valid ? wanted : "info",
      // journald (and any supervisor) already records the pid and host of every line.
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS] },
    },
    pino.destination({ dest: destination === "stdout" ? 1 : 2, sync: true }),
  );
  if (!valid) {
    created.warn(
      { [LOG_LEVEL_ENV]: raw, allowed: LEVELS },
      `${LOG_LEVEL_ENV} is not a log level; logging at info`,
    );
  }
  return created;
}

/** Sends later log lines to stdout or stderr (the level is read again from the environment). */
export function setLogDestination(to: LogDestination): void {
  if (to === destination) return;
  destination = to;
  logger = undefined;
}

export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  logger ??= createLogger();
  logger[level](fields, msg);
}
