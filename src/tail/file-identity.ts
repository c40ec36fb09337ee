import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";

/**
 * A file is identified by (device, inode) — PowerMTA's move-to is a rename on the same volume, so
 * the pair survives rotation — and guarded by content: a hash of the file's head and of the bytes
 * just before the checkpoint offset. ext4 hands a freed inode to the next new file at once, and every
 * accounting file starts with the same header line, so neither the inode nor the first line alone can
 * tell an old file from a new one.
 */
export const HEAD_BYTES = 1024;
export const ANCHOR_BYTES = 64;

export function identityKey(dev: number, ino: number): string {
  return `${dev}:${ino}`;
}

export async function hashRange(handle: FileHandle, start: number, length: number): Promise<string> {
  return sha256(await readRange(handle, start, length));
}

/** Up to `length` bytes from `start`: fewer only when the file ends first. */
export async function readRange(handle: FileHandle, start: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, start + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export interface ContentMarks {
  readonly headHash: string;
  readonly headLen: number;
  readonly anchorHash: string;
  readonly anchorLen: number;
}

/** Hashes of the head (up to HEAD_BYTES, never past `offset` or the file size) and of the bytes before `offset`. */
export async function contentMarks(handle: FileHandle, size: number, offset: number): Promise<ContentMarks> {
  const headLen = Math.min(HEAD_BYTES, size);
  const anchorLen = Math.min(ANCHOR_BYTES, offset);
  // A small file (an archive of 100,000 tiny ones): both ranges from one read, one thread-pool trip.
  if (offset <= 2 * HEAD_BYTES)
    return marksOf(await readRange(handle, 0, Math.max(headLen, offset)), headLen, offset);
  return {
    headHash: await hashRange(handle, 0, headLen),
    headLen,
    anchorHash: await hashRange(handle, offset - anchorLen, anchorLen),
    anchorLen,
  };
}

/**
 * The marks contentMarks takes for `offset` in a file whose first bytes are `bytes` (at least
 * `headLen` and `offset` of them), with `headLen` = min(HEAD_BYTES, the file's size).
 */
export function marksOf(bytes: Uint8Array, headLen: number, offset: number): ContentMarks {
  const anchorLen = Math.min(ANCHOR_BYTES, offset);
  return {
    headHash: sha256(bytes.subarray(0, headLen)),
    headLen,
    anchorHash: sha256(bytes.subarray(offset - anchorLen, offset)),
    anchorLen,
  };
}

export type Verdict = "same" | "truncated" | "different-head" | "different-anchor";

/** Whether a checkpoint taken on a file still describes the file now open at the same (dev, ino). */
export async function verifyMarks(
  handle: FileHandle,
  size: number,
  offset: number,
  marks: ContentMarks,
): Promise<Verdict> {
  if (size < offset || size < marks.headLen) return "truncated";
  if (offset <= 2 * HEAD_BYTES && marks.headLen <= 2 * HEAD_BYTES) {
    // A small file: both ranges from one read (one thread-pool trip instead of two).
    const bytes = await readRange(handle, 0, Math.max(marks.headLen, offset));
    if (sha256(bytes.subarray(0, marks.headLen)) !== marks.headHash) return "different-head";
    if (sha256(bytes.subarray(offset - marks.anchorLen, offset)) !== marks.anchorHash)
      return "different-anchor";
    return "same";
  }
  if ((await hashRange(handle, 0, marks.headLen)) !== marks.headHash) return "different-head";
  if ((await hashRange(handle, offset - marks.anchorLen, marks.anchorLen)) !== marks.anchorHash)
    return "different-anchor";
  return "same";
}
