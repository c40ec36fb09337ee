import { open } from "node:fs/promises";
import type { Classifier } from "../classify/classifier.js";
import { AccountingDecoder, type DecodeError, type DecoderOptions } from "../decode/accounting-decoder.js";
import { buildEvent, type EventContext, type FieldsMode } from "../event/build-event.js";
import type { PmtaEvent } from "../event/event.js";

export interface ReplayOptions {
  readonly host: string;
  readonly classifier: Classifier;
  /** What events' `fields` holds (default all). */
  readonly fields?: FieldsMode;
  readonly decoder?: Omit<DecoderOptions, "startOffset">;
  /** Record types to emit (all when absent). Skipped records still count in the totals. */
  readonly types?: ReadonlySet<string>;
  readonly chunkBytes?: number;
  readonly onEvents: (events: PmtaEvent[]) => Promise<void> | void;
  readonly onError: (error: DecodeError) => void;
  readonly onProgress?: (bytesRead: number, size: number) => void;
}

export interface ReplayTotals {
  readonly bytes: number;
  readonly records: number;
  readonly events: number;
  readonly errors: number;
}

/**
 * Decodes and classifies one whole file (an archived accounting file, typically). The file is
 * finished, so a last line without a line ending is taken as a record; a quote left open at the end
 * is still reported as an error, not guessed at.
 */
export async function replayFile(path: string, options: ReplayOptions): Promise<ReplayTotals> {
  const handle = await open(path, "r");
  try {
    const size = (await handle.stat()).size;
    const decoder = new AccountingDecoder(options.decoder ?? {});
    const ctx: EventContext = {
      host: options.host,
      file: path,
      classifier: options.classifier,
      ...(options.fields === undefined ? {} : { fields: options.fields }),
    };
    const buf = Buffer.allocUnsafe(options.chunkBytes ?? 256 * 1024);
    let bytes = 0;
    let records = 0;
    let events = 0;
    let errors = 0;
    const handleItems = async (items: ReturnType<AccountingDecoder["push"]>): Promise<void> => {
      const out: PmtaEvent[] = [];
      for (const item of items) {
        if (item.kind === "record") {
          records++;
          if (options.types === undefined || options.types.has(item.type)) out.push(buildEvent(item, ctx));
        } else if (item.kind === "error") {
          errors++;
          options.onError(item);
        }
      }
      events += out.length;
      if (out.length > 0) await options.onEvents(out);
    };
    for (;;) {
      const { bytesRead } = await handle.read(buf, 0, buf.length, bytes);
      if (bytesRead === 0) break;
      bytes += bytesRead;
      // The decoder copies what it keeps, so the read buffer can be reused.
      await handleItems(decoder.push(buf.subarray(0, bytesRead)));
      options.onProgress?.(bytes, size);
    }
    await handleItems(decoder.end(true));
    return { bytes, records, events, errors };
  } finally {
    await handle.close();
  }
}
