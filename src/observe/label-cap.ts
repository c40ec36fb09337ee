/**
 * Bounds the values a free-form label (vmta, job) can take. PowerMTA hosts run from a handful to
 * thousands of virtual MTAs and one job id per campaign; a label per value would grow Prometheus'
 * series without limit. The first `max` distinct values keep their own label, later ones share
 * `other`. First-come is deliberate: it is stable for the life of the process (a series never
 * changes meaning mid-run), and the busiest values are almost always among the first seen.
 */
export class LabelCap {
  private readonly kept = new Set<string>();

  constructor(
    private readonly max: number,
    /** What an absent value is counted as. */
    private readonly missing = "none",
  ) {}

  label(value: string | undefined): string {
    if (value === undefined || value === "") return this.missing;
    // Prometheus accepts any UTF-8 label value, but a 10 KiB one is a log line, not a label.
    const v = value.length > 64 ? value.slice(0, 64) : value;
    if (this.kept.has(v)) return v;
    if (this.kept.size >= this.max) return "other";
    this.kept.add(v);
    return v;
  }

  get size(): number {
    return this.kept.size;
  }
}
