import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { DirWatcher } from "../src/tail/dir-watcher.js";

const root = mkdtempSync(join(tmpdir(), "pmta-dirwatch-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** Events of one watcher, awaited one condition at a time (no sleeps: each wait ends on an event). */
function recorder(): {
  onEvent: (names: boolean) => void;
  onError: (err: Error) => void;
  errors: Error[];
  next: (names: boolean) => Promise<void>;
} {
  const waiting: Array<{ names: boolean; resolve: () => void }> = [];
  const errors: Error[] = [];
  return {
    errors,
    onEvent: (names) => {
      for (let i = waiting.length - 1; i >= 0; i--) {
        const w = waiting[i];
        if (w !== undefined && w.names === names) {
          waiting.splice(i, 1);
          w.resolve();
        }
      }
    },
    onError: (err) => errors.push(err),
    next: (names) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${names ? "rename" : "change"} event in 5 s`)),
          5_000,
        );
        waiting.push({
          names,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      }),
  };
}

describe("DirWatcher", () => {
  it("reports a new name as a listing hint and an append as a write", async () => {
    const dir = join(root, "live");
    mkdirSync(dir);
    const r = recorder();
    const w = new DirWatcher(dir, r.onEvent, r.onError);
    try {
      const created = r.next(true);
      writeFileSync(join(dir, "bounces-1.csv"), "type\n");
      await created;
      const written = r.next(false);
      appendFileSync(join(dir, "bounces-1.csv"), "b,x\n");
      await written;
      assert.deepEqual(r.errors, []);
    } finally {
      w.close();
    }
  });

  it("waits quietly for a directory that does not exist yet and watches it once ensure() finds it", async () => {
    const dir = join(root, "archive-later");
    const r = recorder();
    const w = new DirWatcher(dir, r.onEvent, r.onError);
    try {
      assert.deepEqual(r.errors, [], "a missing directory is not an error (the listing reports it)");
      mkdirSync(dir);
      w.ensure();
      const moved = r.next(true);
      writeFileSync(join(dir, "bounces-0.csv"), "type\n");
      await moved;
      assert.deepEqual(r.errors, []);
    } finally {
      w.close();
    }
  });
});
