import type { LogLevel } from "../cli/log.js";

type Log = (level: LogLevel, msg: string, fields: Record<string, unknown>) => void;

/**
 * The daemon's last word when a bug escapes every handler (an exception thrown from a callback, a
 * promise rejected with nobody waiting): one JSON error line like every other line of its log,
 * instead of Node's plain stack trace on stderr, which log shippers split into one line per frame.
 * It then exits with 1 at once, as Node would: the process state is unknown, systemd's
 * Restart=on-failure starts a fresh one, and the checkpoint (acknowledged records only) makes that
 * safe — records after it are read and sent again.
 */
export function reportCrashes(log: Log, exit: (code: number) => void = (code) => process.exit(code)): void {
  process.on("uncaughtException", (err, origin) => {
    try {
      log("error", "unexpected error; exiting (a bug: please report it with this line)", {
        origin,
        ...describeError(err),
      });
    } finally {
      exit(1);
    }
  });
}

/** Name, message and stack, with credentials in URLs (`scheme://user:secret@host`) taken out. */
export function describeError(err: unknown): { error: string; stack?: string } {
  if (!(err instanceof Error)) return { error: scrub(String(err)) };
  const error = scrub(`${err.name}: ${err.message}`);
  return err.stack === undefined ? { error } : { error, stack: scrub(err.stack) };
}

function scrub(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, "$1[Redacted]@");
}
