import { type FSWatcher, watch } from "node:fs";

/**
 * Wake-up hints from the kernel for a directory: names created, renamed or removed in it, and writes
 * to its files. One inotify watch per directory, whatever the number of files in it. The hint is
 * never the truth (inotify drops events under load, and a rename across directories arrives as two
 * unrelated events): the tailer's periodic listing and fstat are. This replaced chokidar, which
 * watches every file of a directory one by one: with 20,000 archived files it held 20,000 watchers
 * with their Stats and timers (~25 MiB of heap), and 100,000 files exceed the default inotify limit.
 */
export class DirWatcher {
  private watcher: FSWatcher | undefined;
  private closed = false;

  constructor(
    private readonly dir: string,
    /** `names` is true when a name appeared or went (a listing is due), false for a write. */
    private readonly onEvent: (names: boolean) => void,
    /** Failures other than the directory not existing (yet): watching is retried by ensure(). */
    private readonly onError: (err: Error) => void,
  ) {
    this.ensure();
  }

  /** Starts watching if not watching yet: a directory created after start (the first rotation's archive). */
  ensure(): void {
    if (this.watcher !== undefined || this.closed) return;
    try {
      const w = watch(this.dir, { persistent: true }, (event) => this.onEvent(event === "rename"));
      w.on("error", (err) => {
        // The directory was removed or became unreadable: watch again once it is back.
        w.close();
        if (this.watcher === w) this.watcher = undefined;
        this.onError(err);
      });
      this.watcher = w;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.onError(err as Error);
    }
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = undefined;
  }
}
