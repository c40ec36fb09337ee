import { join } from "node:path";
import { nodeStoreFs, type StoreFs } from "./store-fs.js";

/**
 * Whether `startAt` still applies to a state directory. It is meant for a first start: files with no
 * checkpoint entry then hold what was written before pmta-ingest ran, which `startAt` may skip. At
 * any later start such files are new since the daemon stopped (rotated into the archive during an
 * outage) and must be read whole: skipping them by `startAt: 24h` after a two-day outage lost every
 * bounce of the first day.
 *
 * "First start" must survive a crash: a first start that saves checkpoints while it still adopts a
 * large archive (2,000 files a listing) and is then killed would otherwise read the rest of the
 * archive whole at the next start. So the pending state is a file in the state directory, made
 * durable before the first checkpoint of a first start and removed (durably) only by a save taken
 * after every file present at start was adopted. `import-sincedb` sets it too: files its sincedb
 * does not cover are left to `startAt` at the first daemon start.
 */
export const START_POLICY_PENDING = "start-policy-pending";

const NOTE =
  "pmta-ingest: startAt still applies to files with no checkpoint entry; removed by the daemon once the files present at its first start are taken in\n";

export async function startPolicyPending(stateDir: string, fs: StoreFs = nodeStoreFs): Promise<boolean> {
  try {
    await fs.readFile(join(stateDir, START_POLICY_PENDING));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** Makes the pending state durable (file fsynced, then its directory entry). */
export async function markStartPolicyPending(stateDir: string, fs: StoreFs = nodeStoreFs): Promise<void> {
  await fs.mkdir(stateDir);
  const handle = await fs.openForWrite(join(stateDir, START_POLICY_PENDING));
  try {
    await handle.write(Buffer.from(NOTE));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.fsyncDir(stateDir);
}

/** Ends the pending state durably: a removal lost to a power cut would apply startAt again. */
export async function clearStartPolicyPending(stateDir: string, fs: StoreFs = nodeStoreFs): Promise<void> {
  await fs.remove(join(stateDir, START_POLICY_PENDING));
  await fs.fsyncDir(stateDir);
}
