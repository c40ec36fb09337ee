import { mkdir, stat } from "node:fs/promises";
import { connect, createServer, type Server } from "node:net";

/**
 * One process at a time per state directory. Two daemons on the same checkpoints (the service and a
 * `pmta-ingest run` started by hand with the same config) each deliver every record, and their saves
 * race: one renames the other's generation away, removes the finished-files set the other's
 * generation names, and a later start finds a state that forgot finished files and reads them all
 * again. Seen here with two daemons on a 100,000-file archive: the state ended with one entry.
 *
 * The lock is a Unix socket in Linux's abstract namespace, named after the directory's device and
 * inode (not its path: a symlink or a bind mount is the same directory). The kernel gives the name
 * to one process and takes it back when that process dies, however it dies (SIGKILL, OOM): no stale
 * lock file to judge after a crash, no window between judging and taking over. Whoever holds it
 * answers a connection with its pid and what it is doing, for the refusal's message. Abstract
 * names are per network namespace, so two containers sharing a state volume are not told apart;
 * elsewhere than Linux there is no such namespace and nothing is locked (`locked: false`).
 */
export class StateDirBusyError extends Error {
  override readonly name = "StateDirBusyError";
}

export interface StateLock {
  /**
   * False where abstract sockets do not exist (not Linux), or when the directory cannot be made or
   * stat'ed yet (the checkpoint store reports that, and retries): it is then not guarded.
   */
  readonly locked: boolean;
  /** Why not, when not locked. */
  readonly reason?: string;
  release(): Promise<void>;
}

const UNLOCKED = async (): Promise<void> => {};

interface Holder {
  readonly pid?: number;
  readonly what?: string;
  readonly since?: string;
}

export async function lockStateDir(stateDir: string, what: string): Promise<StateLock> {
  let st: { dev: number; ino: number };
  try {
    await mkdir(stateDir, { recursive: true });
    st = await stat(stateDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return { locked: false, reason: `cannot create or stat it (${code})`, release: UNLOCKED };
  }
  const name = `\0pmta-ingest-state:${st.dev}:${st.ino}`;
  const since = new Date().toISOString();
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.end(`${JSON.stringify({ pid: process.pid, what, since })}\n`);
  });
  try {
    await listen(server, name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EADDRINUSE") {
      // No abstract namespace on this platform: run unguarded rather than not at all.
      if (process.platform !== "linux") {
        return { locked: false, reason: `no abstract sockets on ${process.platform}`, release: UNLOCKED };
      }
      throw err;
    }
    const holder = await ask(name);
    const who = holder?.pid === undefined ? "another pmta-ingest process" : `pmta-ingest pid ${holder.pid}`;
    const doing =
      holder?.what === undefined
        ? ""
        : ` (${holder.what}${holder.since === undefined ? "" : ` since ${holder.since}`})`;
    throw new StateDirBusyError(
      `state directory ${stateDir} is in use by ${who}${doing}. Two processes on one state directory ` +
        "deliver every record twice and overwrite each other's checkpoints: stop the other one " +
        "(systemctl stop pmta-ingest), or give this one a stateDir of its own.",
    );
  }
  // The lock must not keep a finished process alive.
  server.unref();
  return {
    locked: true,
    release: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function listen(server: Server, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ path: name }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** The holder's answer, or undefined if it gave none within a second (it still holds the name). */
function ask(name: string): Promise<Holder | undefined> {
  return new Promise((resolve) => {
    let text = "";
    const socket = connect({ path: name });
    const done = (holder: Holder | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(holder);
    };
    const timer = setTimeout(() => done(undefined), 1000);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      text += chunk;
    });
    socket.on("end", () => {
      try {
        done(JSON.parse(text) as Holder);
      } catch {
        done(undefined);
      }
    });
    socket.on("error", () => done(undefined));
  });
}
