import { ownString } from "../decode/own-string.js";

/**
 * Bounds the values a free-form label (vmta, job) can take. PowerMTA hosts run from a handful to
 * thousands of virtual MTAs and one job id per campaign; a label per value would grow Prometheus'
 * series without limit. The first `max` distinct values keep their own label, later ones share
 * `other`. First-come is deliberate: it is stable for the life of the process (a series never
 * changes meaning mid-run), and the busiest values are almost always among the first seen.
 */
export class LabelCap {
  /** Each kept value, mapped to the first string seen with it. */
  private readonly kept = new Map<string, string>();

  constructor(
    private readonly max: number,
    /** What an absent value is counted as. */
    private readonly missing = "none",
  ) {}

  label(value: string | undefined): string {
    if (value === undefined || value === "") return this.missing;
    // Prometheus accepts any UTF-8 label value, but a 10 KiB one is a log line, not a label.
    const v = value.length > 64 ? value.slice(0, 64) : value;
    // The kept string, not `v`: every record brings a fresh string, and the callers' maps would
    // hash it again, where the kept one carries its hash from the first time.
    const kept = this.kept.get(v);
    if (kept !== undefined) return kept;
    if (this.kept.size >= this.max) return "other";
    const own = ownString(v);
    this.kept.set(v, own);
    return own;
  }

  get size(): number {
    return this.kept.size;
  }
}
