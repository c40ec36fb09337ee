/**
 * Logstash file-input sincedb files (logstash-input-file `lib/filewatch/sincedb_record_serializer.rb`).
 * One line per file, fields separated by single spaces:
 *
 *     inode major minor offset                                    (before plugin 4.1)
 *     inode major minor offset last_active_timestamp [path]       (4.1 and later)
 *
 * `major minor` are the device numbers of File::Stat#dev_major / #dev_minor, `offset` the byte
 * position after the last line Logstash handed to its pipeline, `last_active_timestamp` a float of
 * seconds since the epoch (when the position last changed) and `path` the watched path, absent when
 * Logstash never saw the file under a path in this run. Logstash itself splits the line on every
 * space, so a path containing spaces is cut; we keep the rest of the line as the path.
 */

export interface SincedbEntry {
  /** 1-based line number in the sincedb file. */
  readonly line: number;
  readonly ino: number;
  readonly major: number;
  readonly minor: number;
  /** st_dev as Linux (glibc makedev) composes it from major and minor. */
  readonly dev: number;
  readonly offset: number;
  /** Seconds since the epoch; absent in the old format. */
  readonly lastActive?: number;
  readonly path?: string;
}

export interface SincedbLineError {
  readonly line: number;
  readonly text: string;
  readonly problem: string;
}

export interface ParsedSincedb {
  readonly entries: readonly SincedbEntry[];
  readonly errors: readonly SincedbLineError[];
}

const UINT = /^\d+$/;
const FLOAT = /^\d+(\.\d+)?([eE][+-]?\d+)?$/;

/**
 * Linux `makedev(3)` (glibc, 64-bit dev_t, 32-bit major and minor): the 12 low bits of major at bits
 * 8–19, the 8 low bits of minor at 0–7, the other 24 bits of minor from bit 20 and the other 20 bits of
 * major from bit 44. BigInt because the shifts go past 32 bits; the result is what `stat().dev` reports.
 */
export function makedev(major: number, minor: number): number {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  const dev =
    ((ma & 0xfffn) << 8n) | (mi & 0xffn) | ((mi & 0xffffff00n) << 12n) | ((ma & 0xfffff000n) << 32n);
  return Number(dev);
}

/** The inverse of makedev: [major, minor] of an st_dev (what Logstash writes for a file). */
export function splitDev(dev: number): [number, number] {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & 0xfffff000n);
  const minor = (d & 0xffn) | ((d >> 12n) & 0xffffff00n);
  return [Number(major), Number(minor)];
}

/** Parses a whole sincedb; a bad line becomes an error entry, never an exception. */
export function parseSincedb(text: string): ParsedSincedb {
  const entries: SincedbEntry[] = [];
  const errors: SincedbLineError[] = [];
  const lines = text.split("\n");
  // A final newline leaves an empty last element, which is not a line of the file.
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  lines.forEach((raw, i) => {
    const parsed = parseSincedbLine(raw.replace(/\r$/, ""), i + 1);
    if (parsed === undefined) return;
    if ("problem" in parsed) errors.push(parsed);
    else entries.push(parsed);
  });
  return { entries, errors };
}

/** One line: the entry, an error, or undefined for a blank line. */
export function parseSincedbLine(text: string, line: number): SincedbEntry | SincedbLineError | undefined {
  if (text.trim() === "") return undefined;
  const bad = (problem: string): SincedbLineError => ({ line, text, problem });
  const parts = text.trim().split(/ +/);
  if (parts.length < 4) {
    return bad(
      `${parts.length} fields; expected "inode major minor offset" or "inode major minor offset last_active path"`,
    );
  }
  const [ino, major, minor, offset, lastActive] = parts as [string, string, string, string, string?];
  if (!UINT.test(ino)) {
    return bad(
      `inode ${JSON.stringify(ino)} is not a number (a sincedb written on Windows or by another tool?)`,
    );
  }
  for (const [name, v] of [
    ["major", major],
    ["minor", minor],
    ["offset", offset],
  ] as const) {
    if (!UINT.test(v)) return bad(`${name} ${JSON.stringify(v)} is not a non-negative integer`);
  }
  const nums = [ino, major, minor, offset].map(Number);
  if (!nums.every(Number.isSafeInteger)) return bad("a number is too large");
  const [inoN, majorN, minorN, offsetN] = nums as [number, number, number, number];
  if (lastActive !== undefined && !FLOAT.test(lastActive)) {
    return bad(`last_active_timestamp ${JSON.stringify(lastActive)} is not a number of seconds`);
  }
  // Everything after the fifth field is the path (Logstash would cut it at the first space).
  const pathStart = lastActive === undefined ? -1 : nthFieldStart(text.trim(), 5);
  const path = pathStart < 0 ? undefined : text.trim().slice(pathStart);
  return {
    line,
    ino: inoN,
    major: majorN,
    minor: minorN,
    dev: makedev(majorN, minorN),
    offset: offsetN,
    ...(lastActive === undefined ? {} : { lastActive: Number(lastActive) }),
    ...(path === undefined || path === "" ? {} : { path }),
  };
}

/** Index where the n-th (0-based) space-separated field starts, or -1. */
function nthFieldStart(text: string, n: number): number {
  const re = / +/g;
  let count = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    count++;
    if (count === n) return m.index + m[0].length;
  }
  return -1;
}
