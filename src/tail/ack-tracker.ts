/**
 * Per file: the byte spans handed to the output, in file order, and which of them the output has
 * acknowledged. The checkpoint is the end of the contiguous acknowledged prefix — never further —
 * so a crash can only cause re-sending of spans after it, never skipping one (at-least-once).
 *
 * Spans must be added in order and without gaps: every byte of the file belongs to some item the
 * decoder emitted (record, header, blank line, error). Items that produce no event are added and
 * acknowledged at once, so they advance the checkpoint as soon as everything before them has.
 */
interface Span {
  readonly start: number;
  readonly end: number;
  acked: boolean;
}

export class AckTracker {
  private readonly spans: Span[] = [];
  private head = 0;
  private readonly byStart = new Map<number, Span>();
  private acked: number;
  private added: number;

  constructor(startOffset: number) {
    this.acked = startOffset;
    this.added = startOffset;
  }

  /** End of the contiguous acknowledged prefix: the offset a checkpoint may record. */
  get ackedOffset(): number {
    return this.acked;
  }

  /** Offset up to which spans were handed out. */
  get addedOffset(): number {
    return this.added;
  }

  /** Spans handed out and not yet acknowledged. */
  get pending(): number {
    return this.spans.length - this.head;
  }

  add(start: number, end: number, alreadyAcked = false): void {
    if (start !== this.added) {
      throw new Error(
        `ack tracker: span ${start}-${end} does not follow ${this.added} (spans must tile the file)`,
      );
    }
    this.added = end;
    if (alreadyAcked && this.pending === 0) {
      this.acked = end;
      return;
    }
    const span: Span = { start, end, acked: alreadyAcked };
    this.spans.push(span);
    if (!alreadyAcked) this.byStart.set(start, span);
    this.advance();
  }

  ack(start: number): void {
    const span = this.byStart.get(start);
    if (span === undefined) return; // acknowledged twice (a retried batch): harmless
    this.byStart.delete(start);
    span.acked = true;
    this.advance();
  }

  private advance(): void {
    while (this.head < this.spans.length && (this.spans[this.head] as Span).acked) {
      this.acked = (this.spans[this.head] as Span).end;
      this.head++;
    }
    // Compact now and then so the array does not grow with the file.
    if (this.head > 1024 && this.head * 2 > this.spans.length) {
      this.spans.splice(0, this.head);
      this.head = 0;
    }
  }
}
