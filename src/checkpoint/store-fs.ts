import { mkdir, open, readdir, readFile, rename, unlink } from "node:fs/promises";

/**
 * The few filesystem operations the checkpoint store needs, behind an interface so the model test can
 * swap in a filesystem that "loses power" and forgets everything that was not made durable.
 *
 * Durability contract the store relies on (and the fake in the tests enforces):
 * - bytes written to a file survive a power loss only once `sync()` on that file has completed;
 * - creating a name or renaming survives a power loss only once `fsyncDir()` on the directory has
 *   completed — an `fsync` of the file itself does not make its directory entry durable;
 * - `rename()` is atomic: after a crash the target name refers either to the old file or to the new
 *   one, never to a mixture.
 * - `remove()` of a name, like a creation, survives a power loss only once `fsyncDir()` completed.
 */
export interface StoreFileHandle {
  /** Writes all of `data` at the current position (loops over short writes). */
  write(data: Uint8Array): Promise<void>;
  /** Writes all of `data` at `position` (within what was written already); the position is unchanged. */
  writeAt(data: Uint8Array, position: number): Promise<void>;
  /** fsync(2): the data written so far is on stable storage when this resolves. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface StoreFs {
  /** Opens `path` for writing, creating it or truncating it to zero length. */
  openForWrite(path: string): Promise<StoreFileHandle>;
  /** rename(2); replaces `to` atomically if it exists. */
  rename(from: string, to: string): Promise<void>;
  /** Whole-file read; rejects with an errno error (`code` "ENOENT" when the file does not exist). */
  readFile(path: string): Promise<Uint8Array>;
  /** fsync(2) of an existing file by path, for data written by an earlier (possibly crashed) process. */
  fsyncFile(path: string): Promise<void>;
  /** fsync(2) of a directory: makes creations and renames inside it durable. */
  fsyncDir(path: string): Promise<void>;
  /** `mkdir -p`; resolves to the first directory it had to create, or undefined if none was missing. */
  mkdir(path: string): Promise<string | undefined>;
  /** The names in a directory (readdir). */
  list(path: string): Promise<string[]>;
  /** unlink(2); a name that does not exist is not an error. */
  remove(path: string): Promise<void>;
}

async function fsyncPath(path: string): Promise<void> {
  // A read-only descriptor is enough: Linux fsync(2) flushes the inode whatever the open mode.
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The real implementation, on node:fs/promises. */
export const nodeStoreFs: StoreFs = {
  async openForWrite(path) {
    const handle = await open(path, "w", 0o644);
    return {
      async write(data) {
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await handle.write(data, done, data.length - done);
          done += bytesWritten;
        }
      },
      async writeAt(data, position) {
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
          done += bytesWritten;
        }
      },
      sync: () => handle.sync(),
      close: () => handle.close(),
    };
  },
  rename: (from, to) => rename(from, to),
  readFile: (path) => readFile(path),
  fsyncFile: fsyncPath,
  async fsyncDir(path) {
    try {
      await fsyncPath(path);
    } catch (err) {
      // A few filesystems (some FUSE and network mounts) answer EINVAL to fsync on a directory. There
      // is nothing stronger we could do there, and failing every save would stop ingestion for good,
      // so the renames are left to the filesystem's own ordering, as on any platform without it.
      if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
    }
  },
  mkdir: (path) => mkdir(path, { recursive: true }),
  list: (path) => readdir(path),
  async remove(path) {
    try {
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  },
};
