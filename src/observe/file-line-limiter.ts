/**
 * Per-file info lines ("file finished", "no checkpoint; starting at the end") in bursts. One a file is
 * right for PowerMTA's rotations (a few an hour), but a catch-up of a large archive finishes thousands
 * of files a second: 100,000 lines in ~12 s is more than journald lets a unit log (RateLimitBurst,
 * 10,000 per 30 s by default), and what it drops then is every line, warnings included, for the rest
 * of its interval. So per message and input, the first `perWindow` lines of a window go out as they
 * are; the others are counted, and one line with the same message says how many there were, their
 * total of one numeric field (bytes), and the first and last file, when the window ends.
 */
export type InfoLog = (level: "info", msg: string, fields: Record<string, unknown>) => void;

export interface FileLineLimits {
  /** Lines per message and input logged one by one in a window. Default 20. */
  readonly perWindow?: number;
  /** Default 10 s: a catch-up shows its progress every 10 s. */
  readonly windowMs?: number;
}

interface Burst {
  readonly msg: string;
  readonly input: string;
  readonly sumField: string | undefined;
  windowStart: number;
  logged: number;
  held: number;
  total: number;
  first: string;
  last: string;
}

export class FileLineLimiter {
  private readonly bursts = new Map<string, Burst>();
  private readonly perWindow: number;
  private readonly windowMs: number;

  constructor(
    private readonly log: InfoLog,
    limits: FileLineLimits = {},
    private readonly clock: () => number = Date.now,
  ) {
    this.perWindow = limits.perWindow ?? 20;
    this.windowMs = limits.windowMs ?? 10_000;
  }

  /** One file's line; `sumField` names a numeric field of `fields` that the summary totals. */
  line(msg: string, input: string, file: string, fields: Record<string, unknown>, sumField?: string): void {
    const now = this.clock();
    const key = `${msg}\u0000${input}`;
    let b = this.bursts.get(key);
    if (b !== undefined && now - b.windowStart >= this.windowMs) {
      this.summarise(b);
      b = undefined;
    }
    if (b === undefined) {
      b = { msg, input, sumField, windowStart: now, logged: 0, held: 0, total: 0, first: "", last: "" };
      this.bursts.set(key, b);
    }
    if (b.logged < this.perWindow) {
      b.logged++;
      this.log("info", msg, { input, file, ...fields });
      return;
    }
    if (b.held === 0) b.first = file;
    b.held++;
    b.last = file;
    const n = sumField === undefined ? 0 : fields[sumField];
    if (typeof n === "number") b.total += n;
  }

  /** Logs the summaries of windows that have ended (every one with `all`, as at a stop). */
  flush(all = false): void {
    const now = this.clock();
    for (const [key, b] of this.bursts) {
      if (!all && now - b.windowStart < this.windowMs) continue;
      this.summarise(b);
      this.bursts.delete(key);
    }
  }

  private summarise(b: Burst): void {
    if (b.held === 0) return;
    const seconds = Math.max(1, Math.round((this.clock() - b.windowStart) / 1000));
    this.log("info", b.msg, {
      input: b.input,
      files: b.held,
      ...(b.sumField === undefined ? {} : { [b.sumField]: b.total }),
      firstFile: b.first,
      lastFile: b.last,
      note: `${b.held} more file${b.held === 1 ? "" : "s"} in ${seconds} s after the ${b.logged} logged one by one; counted in one line`,
    });
  }
}
