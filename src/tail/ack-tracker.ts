/**
 * Per file: the byte spans handed to the output, in file order, and which of them the output has
 * acknowledged. The checkpoint is the end of the contiguous acknowledged prefix — never further —
 * so a crash can only cause re-sending of spans after it, never skipping one (at-least-once).
 *
 * Spans must be added in order and without gaps: every byte of the file belongs to some item the
 * decoder emitted (record, header, blank line, error). Items that produce no event are added and
 * acknowledged at once, so they advance the checkpoint as soon as everything before them has.
 */
/**
 * One span handed out: the handle the output acknowledges it through. It is the only object a
 * record costs here (no map from offsets to spans, no closure), and it lives as long as the record
 * is in flight.
 */
export class Span {
  acked = false;

  constructor(
    readonly start: number,
    readonly end: number,
    private readonly tracker: AckTracker,
  ) {}

  /** The output has it. Again is harmless (a retried batch), and so is an ack after a reset (the
   * tracker it names was replaced; nothing reads it any more). */
  ack(): void {
    if (this.acked) return;
    this.acked = true;
    this.tracker.advance();
  }
}

export class AckTracker {
  private readonly spans: Span[] = [];
  private head = 0;
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

  /** Adds the next span of the file; returns its handle to acknowledge it through. */
  add(start: number, end: number): Span {
    this.follow(start, end);
    const span = new Span(start, end, this);
    this.spans.push(span);
    return span;
  }

  /** Adds a span with nothing to deliver (a header, a blank line, a dead-lettered record). */
  skip(start: number, end: number): void {
    this.follow(start, end);
    if (this.pending === 0) {
      this.acked = end;
      return;
    }
    const span = new Span(start, end, this);
    span.acked = true;
    this.spans.push(span);
  }

  private follow(start: number, end: number): void {
    if (start !== this.added) {
      throw new Error(
        `ack tracker: span ${start}-${end} does not follow ${this.added} (spans must tile the file)`,
      );
    }
    this.added = end;
  }

  /** Moves the prefix over the acknowledged spans at its head (Span.ack calls it). */
  advance(): void {
    const spans = this.spans;
    let head = this.head;
    while (head < spans.length && (spans[head] as Span).acked) {
      this.acked = (spans[head] as Span).end;
      head++;
    }
    this.head = head;
    // Compact now and then so the array does not grow with the file.
    if (head > 1024 && head * 2 > spans.length) {
      spans.splice(0, head);
      this.head = 0;
    }
  }
}
