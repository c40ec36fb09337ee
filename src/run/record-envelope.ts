import type { Envelope, EnvelopeOrigin } from "../deliver/batcher.js";
import type { EventSlab } from "../event/event-writer.js";
import type { DeliveredSlot } from "../observe/metrics.js";
import type { Span } from "../tail/ack-tracker.js";
import type { TrackedFileView } from "../tail/tailer.js";

/**
 * One record's event on its way to the output. A window of 10,000 of these is alive at any time and
 * most outlive a young-generation GC, so each is one flat object: no closure for the ack, no origin
 * object unless a dead letter asks for it.
 */
export class RecordEnvelope implements Envelope {
  /** Set when the backend rejected the event (dead-lettered): acknowledged, not counted delivered. */
  rejected = false;
  private readonly input: string;
  private readonly file: string;
  private readonly dev: number;
  private readonly ino: number;

  constructor(
    /** The event's JSON: `eventSlab.bytes[start, start + size)` (EventWriter's lastSlab …). */
    private readonly eventSlab: EventSlab,
    readonly start: number,
    readonly size: number,
    /** The file's key, the first part of the event's id (see `id`). */
    readonly idFileKey: string,
    from: TrackedFileView,
    private readonly span: Span,
    private readonly delivered: DeliveredSlot,
    /** Told once when the event's bytes are no longer needed (EventWriter.releaseIn). */
    private release: ((slab: EventSlab) => void) | undefined,
  ) {
    // Copied now: the path is the one the record was read under, even if the file moves on.
    this.input = from.input.name;
    this.file = from.path;
    this.dev = from.dev;
    this.ino = from.ino;
  }

  get slab(): Buffer {
    return this.eventSlab.bytes;
  }

  /**
   * The event's JSON as a view, made when asked for (a dead letter, the file output): the HTTP
   * output copies the bytes by their place (LineJoiner.joinEvents), and a view per event in the
   * window was ~70 ns and an object kept alive with it.
   */
  get data(): Buffer {
    return this.eventSlab.bytes.subarray(this.start, this.start + this.size);
  }

  /**
   * The event's id, `<file key>:<offset>`, made only when asked for (a dead letter): kept as a string
   * for every event in the window, it cost ~0.5–1 CPU-s per million records (a number turned into
   * text, the pieces joined, then kept past a young-generation GC).
   */
  get id(): string {
    return `${this.idFileKey}:${this.span.start}`;
  }

  /** The id's offset, for the batch's idempotency key written without a string per event. */
  get idOffset(): number {
    return this.span.start;
  }

  ack(): void {
    this.span.ack();
    if (!this.rejected) this.delivered.n++;
    // Exactly once: a second release would let the writer reuse a slab other events still live in.
    const release = this.release;
    this.release = undefined;
    release?.(this.eventSlab);
  }

  get origin(): EnvelopeOrigin {
    return {
      input: this.input,
      file: this.file,
      dev: this.dev,
      ino: this.ino,
      offset: this.span.start,
      end: this.span.end,
    };
  }
}
