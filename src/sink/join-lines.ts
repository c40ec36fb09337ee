import type { Envelope } from "../deliver/batcher.js";

/** `head` + the parts separated by `sep` + `tail`, as one Buffer of its own (one copy of each part). */
export function joinLines(parts: readonly Buffer[], head: string, sep: string, tail: string): Buffer {
  return new LineJoiner().join(parts, head, sep, tail);
}

/**
 * joinLines into one buffer that is used again for the next join: the HTTP output sends one request
 * at a time, and a fresh ~750 KB body per batch was 1.5 GB of allocations per million events. The
 * result is a view that the next join() overwrites: use it before joining again.
 */
export class LineJoiner {
  private buf = Buffer.allocUnsafeSlow(0);

  join(parts: readonly Buffer[], head: string, sep: string, tail: string): Buffer {
    let total = Buffer.byteLength(head) + Buffer.byteLength(tail);
    const sepBytes = Buffer.byteLength(sep);
    for (const p of parts) total += p.length;
    if (parts.length > 1) total += sepBytes * (parts.length - 1);
    if (this.buf.length < total) this.buf = Buffer.allocUnsafeSlow(Math.max(total, 2 * this.buf.length));
    const buf = this.buf;
    let o = buf.write(head, 0);
    // A one-byte separator (`\n`, `,`: the usual ones) is stored, not written as a string per part.
    const sepByte = sepBytes === 1 ? sep.charCodeAt(0) : -1;
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) {
        if (sepByte >= 0) buf[o++] = sepByte;
        else o += buf.write(sep, o);
      }
      const p = parts[i] as Buffer;
      buf.set(p, o);
      o += p.length;
    }
    o += buf.write(tail, o);
    return buf.subarray(0, o);
  }

  /**
   * join() of the envelopes' events. Events that lie one after the other in one slab with `sep`
   * between them (an EventWriter with that separator wrote them) are copied as one run: a batch of
   * 500 events is a handful of copies, and no event needs a view of its own.
   */
  joinEvents(batch: readonly Envelope[], head: string, sep: string, tail: string): Buffer {
    const sepBytes = Buffer.byteLength(sep);
    let total = Buffer.byteLength(head) + Buffer.byteLength(tail);
    for (const e of batch) total += e.size ?? e.data.length;
    if (batch.length > 1) total += sepBytes * (batch.length - 1);
    if (this.buf.length < total) this.buf = Buffer.allocUnsafeSlow(Math.max(total, 2 * this.buf.length));
    const buf = this.buf;
    let o = buf.write(head, 0);
    const sepByte = sepBytes === 1 ? sep.charCodeAt(0) : -1;
    let run: Buffer | undefined;
    let runStart = 0;
    let runEnd = 0;
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i] as Envelope;
      const slab = e.slab;
      const start = e.start;
      const size = e.size;
      if (slab !== undefined && start !== undefined && size !== undefined) {
        // The byte between the two is checked, not assumed: a writer without that separator leaves
        // no gap, and one with another separator a different byte.
        if (slab === run && start === runEnd + 1 && slab[runEnd] === sepByte) {
          runEnd = start + size;
          continue;
        }
        if (run !== undefined) o = copyRun(buf, o, run, runStart, runEnd);
        if (i > 0) o = writeSep(buf, o, sep, sepByte);
        run = slab;
        runStart = start;
        runEnd = start + size;
        continue;
      }
      if (run !== undefined) o = copyRun(buf, o, run, runStart, runEnd);
      run = undefined;
      if (i > 0) o = writeSep(buf, o, sep, sepByte);
      const data = e.data;
      buf.set(data, o);
      o += data.length;
    }
    if (run !== undefined) o = copyRun(buf, o, run, runStart, runEnd);
    o += buf.write(tail, o);
    return buf.subarray(0, o);
  }
}

function copyRun(buf: Buffer, o: number, run: Buffer, start: number, end: number): number {
  buf.set(run.subarray(start, end), o);
  return o + end - start;
}

function writeSep(buf: Buffer, o: number, sep: string, sepByte: number): number {
  if (sepByte >= 0) {
    buf[o] = sepByte;
    return o + 1;
  }
  return o + buf.write(sep, o);
}
