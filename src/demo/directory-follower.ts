import { type FileHandle, open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { AccountingDecoder, type DecodedItem } from "../decode/accounting-decoder.js";

/**
 * A deliberately simple follower for the demo: it polls directories, identifies files by
 * (device, inode) so a file renamed into the archive keeps its reader and offset, and reads new
 * bytes through one decoder per file. It keeps no checkpoint and trusts its own process to live:
 * the production tailer (issue 3) replaces it with durable, acknowledged checkpoints.
 */
export interface FollowerOptions {
  /** Directories to watch; files in `archiveDirs` are closed once read to the end and quiet. */
  readonly dirs: readonly string[];
  readonly archiveDirs: readonly string[];
  readonly match: (name: string) => boolean;
  readonly onItems: (path: string, items: DecodedItem[]) => Promise<void> | void;
}

interface Followed {
  path: string;
  readonly handle: FileHandle;
  readonly decoder: AccountingDecoder;
  offset: number;
  idlePolls: number;
}

/** What is left of a finished file: enough to pick it up again if it ever grows. */
interface Finished {
  readonly offset: number;
  readonly state: ReturnType<AccountingDecoder["state"]>;
}

export class DirectoryFollower {
  private readonly files = new Map<string, Followed>();
  private readonly finished = new Map<string, Finished>();
  private readonly buf = Buffer.allocUnsafe(256 * 1024);

  constructor(private readonly options: FollowerOptions) {}

  get openFiles(): number {
    return this.files.size;
  }

  /** One pass: discover files, read what is new in each. Returns the bytes read. */
  async poll(): Promise<number> {
    const seen = new Set<string>();
    for (const dir of this.options.dirs) {
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const name of names.filter(this.options.match).sort()) {
        const path = join(dir, name);
        const st = await stat(path).catch(() => undefined);
        if (st === undefined || !st.isFile()) continue;
        const key = `${st.dev}:${st.ino}`;
        seen.add(key);
        const known = this.files.get(key);
        if (known !== undefined) {
          known.path = path;
          continue;
        }
        const done = this.finished.get(key);
        if (done !== undefined && st.size <= done.offset) continue;
        const handle = await open(path, "r").catch(() => undefined);
        if (handle === undefined) continue;
        const offset = done?.offset ?? 0;
        const decoder = new AccountingDecoder({ ...(done?.state ?? {}), startOffset: offset });
        this.finished.delete(key);
        this.files.set(key, { path, handle, decoder, offset, idlePolls: 0 });
      }
    }
    let total = 0;
    for (const [key, f] of this.files) {
      const read = await this.drain(f);
      total += read;
      f.idlePolls = read === 0 ? f.idlePolls + 1 : 0;
      // Files gone from every directory, or archived and quiet, are finished: free the descriptor.
      const archived = this.options.archiveDirs.some((d) => f.path.startsWith(`${d}/`));
      if (!seen.has(key) || (archived && f.idlePolls >= 3)) {
        await this.finish(key, f);
      }
    }
    return total;
  }

  /** Reads every file to its current end, then ends every decoder (a partial tail becomes an error item). */
  async close(): Promise<void> {
    for (const f of this.files.values()) await this.finishForGood(f);
    this.files.clear();
  }

  private async drain(f: Followed): Promise<number> {
    let total = 0;
    for (;;) {
      const { bytesRead } = await f.handle.read(this.buf, 0, this.buf.length, f.offset);
      if (bytesRead === 0) return total;
      f.offset += bytesRead;
      total += bytesRead;
      const items = f.decoder.push(this.buf.subarray(0, bytesRead));
      if (items.length > 0) await this.options.onItems(f.path, items);
    }
  }

  /**
   * Closes a quiet file. Its decoder is not ended: a trailing partial record stays unread, and if the
   * file grows again it is picked up at the last record boundary with the same columns and file key.
   */
  private async finish(key: string, f: Followed): Promise<void> {
    await this.drain(f);
    await f.handle.close();
    this.files.delete(key);
    this.finished.set(key, { offset: f.decoder.committedOffset, state: f.decoder.state() });
  }

  /** End of the run: every open file is read to its end and a trailing partial record is reported. */
  private async finishForGood(f: Followed): Promise<void> {
    await this.drain(f);
    const rest = f.decoder.end(false);
    if (rest.length > 0) await this.options.onItems(f.path, rest);
    await f.handle.close();
  }
}
