import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/**
 * The paths provider: which files belong to an input right now. Two places are listed — the live
 * directory PowerMTA writes in and the move-to archive it renames finished files into — because a
 * file renamed out of the live glob before it was read to the end must still be read (the Logstash
 * loss). Listing is by directory read plus stat, never by watcher events: watchers are only a hint
 * that it is worth listing again sooner (they miss rotations; tailer-reliability.md §6).
 */
export interface DiscoveredFile {
  readonly path: string;
  readonly name: string;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  /** In the live directory (PowerMTA may still be writing it) rather than the archive. */
  readonly live: boolean;
  /** orderKey(name), worked out once: sorting 100,000 files must not run a regex per comparison. */
  readonly orderKey: string;
}

export interface InputLocation {
  readonly dir: string;
  readonly pattern: RegExp;
  readonly archive?: string;
}

export interface Listing {
  readonly files: DiscoveredFile[];
  /** Directories that do not exist (yet): waited for, reported once by the caller. */
  readonly missing: string[];
}

const STAT_CONCURRENCY = 32;

export async function listInputFiles(input: InputLocation): Promise<Listing> {
  const files: DiscoveredFile[] = [];
  const missing: string[] = [];
  const places: Array<[string, boolean]> = [[input.dir, true]];
  if (input.archive !== undefined && input.archive !== input.dir) places.push([input.archive, false]);
  for (const [dir, live] of places) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        missing.push(dir);
        continue;
      }
      throw err;
    }
    const matching = names.filter((name) => input.pattern.test(name));
    // Several stats in flight: one at a time, a 100,000-file archive took ~10 s to list (a thread-pool
    // round trip each); libuv's pool runs them side by side.
    for (let i = 0; i < matching.length; i += STAT_CONCURRENCY) {
      const chunk = matching.slice(i, i + STAT_CONCURRENCY);
      const stats = await Promise.all(
        // A file can vanish between readdir and stat (rotation in progress): the next listing finds it.
        chunk.map((name) => stat(join(dir, name)).catch(() => undefined)),
      );
      chunk.forEach((name, j) => {
        const st = stats[j];
        if (st === undefined || !st.isFile()) return;
        files.push({
          path: join(dir, name),
          name,
          dev: st.dev,
          ino: st.ino,
          size: st.size,
          mtimeMs: st.mtimeMs,
          live,
          orderKey: orderKey(name),
        });
      });
    }
  }
  return { files, missing };
}

/**
 * Reading order, oldest first: PowerMTA names files `<stem>-YYYY-MM-DD-NNNN.csv`, so the name sorts
 * by day and sequence; the modification time breaks ties and orders names that do not follow it.
 */
export function oldestFirst(
  a: { orderKey: string; mtimeMs: number },
  b: { orderKey: string; mtimeMs: number },
): number {
  if (a.orderKey !== b.orderKey) return a.orderKey < b.orderKey ? -1 : 1;
  return a.mtimeMs - b.mtimeMs;
}

/** The part of a file name that sorts by day and sequence (`2025-01-15-00000003`). */
export function orderKey(name: string): string {
  const m = /(\d{4}-\d{2}-\d{2})-(\d+)\.csv$/.exec(name);
  return m === null ? `~${name}` : `${m[1]}-${(m[2] as string).padStart(8, "0")}`;
}
