import type { ChildProcess } from "node:child_process";

/**
 * Children a test started and has not seen exit. A test that fails between spawn and kill would
 * otherwise leave a daemon running with its pipes open: the test file's process never ends and
 * `node --test` waits for it forever (a CI run once timed out exactly so). `npm test` passes
 * `--test-force-exit`, and this hook kills whatever is still alive when the file's process exits.
 */
const alive = new Set<ChildProcess>();
let hooked = false;

export function reapOnExit<T extends ChildProcess>(child: T): T {
  alive.add(child);
  child.once("exit", () => alive.delete(child));
  if (!hooked) {
    hooked = true;
    process.once("exit", () => {
      for (const c of alive) c.kill("SIGKILL");
    });
  }
  return child;
}
