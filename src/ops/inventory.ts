import type { InputConfig } from "../config/run-config.js";
import { type DiscoveredFile, listInputFiles, oldestFirst } from "../tail/discover.js";
import { identityKey } from "../tail/file-identity.js";

/**
 * What is on disk for the configured inputs right now: every file matching an input in its live
 * directory or its archive, keyed by (dev, ino) as the daemon keys them. Each directory is listed on
 * its own, so an unreadable archive does not hide the live directory (the daemon's listing would stop
 * at the first error; an operations command should show as much as it can).
 */
export interface InputFile extends DiscoveredFile {
  readonly input: InputConfig;
}

export interface DirProblem {
  readonly input: string;
  readonly dir: string;
  /** "missing" (ENOENT) or the errno code of the failed listing. */
  readonly code: string;
}

export interface Inventory {
  /** Oldest first per input, inputs in config order. */
  readonly files: readonly InputFile[];
  readonly byKey: ReadonlyMap<string, InputFile>;
  readonly problems: readonly DirProblem[];
}

export async function takeInventory(inputs: readonly InputConfig[]): Promise<Inventory> {
  const files: InputFile[] = [];
  const byKey = new Map<string, InputFile>();
  const problems: DirProblem[] = [];
  for (const input of inputs) {
    const places: Array<[string, boolean]> = [[input.dir, true]];
    if (input.archive !== undefined && input.archive !== input.dir) places.push([input.archive, false]);
    const found: InputFile[] = [];
    for (const [dir, live] of places) {
      try {
        const listing = await listInputFiles({ dir, pattern: input.pattern });
        if (listing.missing.length > 0) problems.push({ input: input.name, dir, code: "missing" });
        for (const f of listing.files) found.push({ ...f, live, input });
      } catch (err) {
        problems.push({ input: input.name, dir, code: (err as NodeJS.ErrnoException).code ?? String(err) });
      }
    }
    found.sort(oldestFirst);
    for (const f of found) {
      const key = identityKey(f.dev, f.ino);
      // Two inputs sharing a directory and pattern would list a file twice; the first input owns it.
      if (byKey.has(key)) continue;
      byKey.set(key, f);
      files.push(f);
    }
  }
  return { files, byKey, problems };
}
