import { closeSync, openSync, renameSync, writeSync } from "node:fs";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { formatCsvRow } from "../../src/simulate/csv-row.js";
import { BOUNCES_HEADER, generateBounce } from "../../src/simulate/record-generator.js";
import { Rng } from "../../src/simulate/rng.js";

const FBL_COLUMN = BOUNCES_HEADER.indexOf("header_X-FBLId");

/** Wall clock in microseconds since the epoch (the receiver, another process, reads the same clock). */
export function epochMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/**
 * Appends generated bounce records to a live accounting file the way PowerMTA does (one open
 * descriptor, header first, rotation by rename into the archive directory), each record stamped
 * with its append time in the X-FBLId column: `<seq>-<epoch µs>-0`. The receiver reads the stamp back
 * from the event and computes append → acknowledgement.
 */
export class LiveWriter {
  private readonly rng: Rng;
  private fd = -1;
  private index = 0;
  private path = "";
  seq = 0;
  bytes = 0;

  constructor(
    private readonly liveDir: string,
    private readonly archiveDir: string,
    seed: number,
    private readonly day = "2025-01-15",
  ) {
    this.rng = new Rng(seed);
    this.open();
  }

  get file(): string {
    return this.path;
  }

  private open(): void {
    this.path = join(this.liveDir, `bounces-${this.day}-${String(this.index).padStart(4, "0")}.csv`);
    this.fd = openSync(this.path, "a");
    this.write(formatCsvRow(BOUNCES_HEADER, "\r\n"));
  }

  private write(text: string): void {
    const buf = Buffer.from(text);
    let at = 0;
    while (at < buf.length) at += writeSync(this.fd, buf, at);
    this.bytes += buf.length;
  }

  /** Appends `n` records in one write(2), all stamped with the time just before they are built. */
  append(n: number): void {
    const stamp = epochMicros();
    const now = new Date(stamp / 1000);
    let text = "";
    for (let i = 0; i < n; i++) {
      this.seq++;
      const values = generateBounce(this.rng, this.seq, now);
      values[FBL_COLUMN] = `${this.seq}-${stamp}-0`;
      text += formatCsvRow(values, "\r\n");
    }
    this.write(text);
  }

  /** PowerMTA's move-to rotation: rename(2) into the archive, then a new live file. */
  rotate(): void {
    closeSync(this.fd);
    renameSync(this.path, join(this.archiveDir, basename(this.path)));
    this.index++;
    this.open();
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * Appends at `rate` records/s for `seconds`, in small writes every few milliseconds (PowerMTA flushes
 * its accounting buffers in bursts too). `onTick` runs between writes with the elapsed seconds.
 */
export async function appendAtRate(
  writer: LiveWriter,
  rate: number,
  seconds: number,
  onTick?: (elapsed: number) => void,
): Promise<number> {
  const t0 = performance.now();
  let written = 0;
  for (;;) {
    const elapsed = (performance.now() - t0) / 1000;
    if (elapsed >= seconds) break;
    const due = Math.floor(elapsed * rate) - written;
    if (due > 0) {
      writer.append(due);
      written += due;
    }
    onTick?.(elapsed);
    await sleep(5);
  }
  return written;
}
