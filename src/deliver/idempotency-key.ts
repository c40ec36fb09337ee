import { createHash } from "node:crypto";
import { DECIMAL_MAX, writeDecimal } from "../sink/decimal.js";
import type { Envelope } from "./batcher.js";

/**
 * Same events → same key, so a backend can recognise a batch re-sent after a lost acknowledgement:
 * the first 32 hex digits of SHA-256 over the events' ids, one line each (`<id>\n`, UTF-8).
 *
 * The lines are written as bytes into one reused buffer, and the id of an event read from a file
 * comes as its two parts (Envelope.idFileKey, idOffset), written digit by digit: no id string is
 * made per event. Making and keeping one for every event of the window cost 0.5–1.0 CPU-s per
 * million records on the catch-up benchmark. The key is the same as when it was hashed from the id
 * strings (a test holds the two together).
 */
export function idempotencyKey(batch: readonly Envelope[]): string {
  let o = 0;
  for (const e of batch) {
    const fileKey = e.idFileKey;
    const offset = e.idOffset;
    if (fileKey !== undefined && offset !== undefined && offset >= 0 && offset < DECIMAL_MAX) {
      // A file key is hex, but any text is written right: as UTF-8, as the id string would be.
      const keyBytes = bytesOf(fileKey);
      const need = o + keyBytes.length + 12;
      if (need > lines.length) grow(need);
      const buf = lines;
      for (let i = 0; i < keyBytes.length; i++) buf[o++] = keyBytes[i] as number;
      buf[o++] = COLON;
      o = writeDecimal(buf, o, offset);
      buf[o++] = NEWLINE;
    } else {
      const line = `${e.id ?? e.data.toString()}\n`;
      const need = o + Buffer.byteLength(line);
      if (need > lines.length) grow(need);
      o += lines.write(line, o);
    }
  }
  return createHash("sha256").update(lines.subarray(0, o)).digest("hex").slice(0, 32);
}

const COLON = 0x3a;
const NEWLINE = 0x0a;

/** The batch's lines: 500 events of ~28 bytes fit the first size; it grows for larger batches. */
let lines = Buffer.allocUnsafe(32 * 1024);

function grow(need: number): void {
  const bigger = Buffer.allocUnsafe(Math.max(need, 2 * lines.length));
  lines.copy(bigger);
  lines = bigger;
}

/** The last file key's bytes: a batch's events nearly always come from one file or a few. */
let lastKey: string | undefined;
let lastKeyBytes: Uint8Array = new Uint8Array(0);

function bytesOf(fileKey: string): Uint8Array {
  if (fileKey !== lastKey) {
    lastKey = fileKey;
    lastKeyBytes = Buffer.from(fileKey);
  }
  return lastKeyBytes;
}
