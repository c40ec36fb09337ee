import { once } from "node:events";
import { createWriteStream } from "node:fs";
import type { Writable } from "node:stream";
import type { Classifier } from "../classify/classifier.js";
import type { FallbackColumns } from "../decode/header.js";
import type { FieldsMode } from "../event/build-event.js";
import { replayFile } from "../pipeline/replay-file.js";
import { log } from "./log.js";

export interface ReplayArgs {
  readonly files: readonly string[];
  readonly output?: string;
  readonly host: string;
  readonly types?: ReadonlySet<string>;
  readonly maxRecordBytes?: number;
  readonly fallbackColumns?: FallbackColumns;
  /** What events' `fields` holds (default all). */
  readonly fields?: FieldsMode;
}

export interface ReplaySummary {
  readonly filesFailed: number;
  readonly events: number;
  readonly errors: number;
}

/** Decodes and classifies whole files to NDJSON; a file that cannot be read is reported and skipped. */
export async function runReplay(classifier: Classifier, args: ReplayArgs): Promise<ReplaySummary> {
  const out: Writable =
    args.output === undefined ? process.stdout : createWriteStream(args.output, { flags: "w" });
  const tty = process.stderr.isTTY === true;
  let filesFailed = 0;
  let events = 0;
  let errors = 0;
  for (const file of args.files) {
    try {
      const totals = await replayFile(file, {
        host: args.host,
        classifier,
        ...(args.fields === undefined ? {} : { fields: args.fields }),
        ...(args.types === undefined ? {} : { types: args.types }),
        decoder: {
          ...(args.maxRecordBytes === undefined ? {} : { maxRecordBytes: args.maxRecordBytes }),
          ...(args.fallbackColumns === undefined ? {} : { fallbackColumns: args.fallbackColumns }),
        },
        onEvents: async (batch) => {
          let text = "";
          for (const e of batch) text += `${JSON.stringify(e)}\n`;
          if (!out.write(text)) await once(out, "drain");
        },
        onError: (e) => {
          log("warn", "record set aside", {
            file,
            offset: e.offset,
            end: e.end,
            reason: e.reason,
            detail: e.message,
          });
        },
        ...(tty
          ? {
              onProgress: (done: number, size: number) => {
                process.stderr.write(`\r${file}: ${size > 0 ? Math.floor((done / size) * 100) : 100}%`);
              },
            }
          : {}),
      });
      if (tty) process.stderr.write("\n");
      events += totals.events;
      errors += totals.errors;
      log("info", "file replayed", {
        file,
        bytes: totals.bytes,
        records: totals.records,
        events: totals.events,
        errors: totals.errors,
      });
    } catch (err) {
      filesFailed++;
      const e = err as NodeJS.ErrnoException;
      log("error", "cannot read file", { file, reason: e.code ?? e.message, hint: hintFor(e.code) });
    }
  }
  if (out !== process.stdout) {
    await new Promise<void>((resolve, reject) =>
      out.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
  }
  return { filesFailed, events, errors };
}

function hintFor(code: string | undefined): string {
  switch (code) {
    case "ENOENT":
      return "check the path; rotated files live in the move-to directory";
    case "EACCES":
      return "the file is not readable by this user: add it to the pmta group or set world-readable yes in <acct-file>";
    case "EISDIR":
      return "give accounting files, not directories (a shell glob such as dir/*.csv works)";
    default:
      return "see the reason";
  }
}
