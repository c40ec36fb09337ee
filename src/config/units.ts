/**
 * Durations and sizes as a postmaster writes them in config.yaml or on the command line.
 *
 * Both parsers throw a {@link UnitError} whose message reads "<problem>; <what to write instead>"
 * without naming a key: the config loader knows the key and wraps it.
 */

/** A value that is not a duration or size; `problem` and `hint` are kept apart so a caller can rephrase. */
export class UnitError extends Error {
  override name = "UnitError";
  constructor(
    readonly problem: string,
    readonly hint: string,
  ) {
    super(`${problem}; ${hint}`);
  }
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION_HINT = "write a whole number of milliseconds or a number with a unit: 500ms, 10s, 5m, 24h, 7d";

// Unit letters are case-insensitive; the keys here are lower case.
const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  // Single letters follow PowerMTA and nginx ("64k", "10M"): powers of 1024.
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  // Two-letter SI units mean what the standard says: powers of 1000.
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
};

const SIZE_HINT =
  "write a whole number of bytes or a number with a unit: 512KiB, 1MiB, 1MB, 64k (k/M/G and KiB/MiB/GiB = 1024, kB/MB/GB = 1000)";

const DURATION_PART = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)/giy;
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i;

/**
 * Milliseconds from `"500ms"`, `"10s"`, `"5m"`, `"24h"`, `"7d"`, a combination such as `"1h30m"`,
 * or a number (already milliseconds). Fractions are allowed with a unit (`"1.5s"`) and rounded to
 * the millisecond. Zero is returned as 0: whether zero makes sense is the caller's decision.
 */
export function parseDuration(value: unknown): number {
  if (typeof value === "number") return wholeNumber(value, "milliseconds", DURATION_HINT);
  if (typeof value !== "string") throw new UnitError(`${describe(value)} is not a duration`, DURATION_HINT);
  const text = value.trim();
  // A plain digit string is what an environment variable or a quoted YAML number gives.
  if (/^\d+$/.test(text)) return wholeNumber(Number(text), "milliseconds", DURATION_HINT);
  if (text === "") throw new UnitError("an empty string is not a duration", DURATION_HINT);
  let total = 0;
  let at = 0;
  DURATION_PART.lastIndex = 0;
  while (at < text.length) {
    DURATION_PART.lastIndex = at;
    const m = DURATION_PART.exec(text);
    if (m === null) throw new UnitError(`"${value}" is not a duration`, DURATION_HINT);
    const unit = DURATION_UNITS[(m[2] ?? "").toLowerCase()];
    if (unit === undefined) throw new UnitError(`"${value}" is not a duration`, DURATION_HINT);
    total += Number(m[1]) * unit;
    at = DURATION_PART.lastIndex;
    while (text[at] === " ") at++;
  }
  return safe(Math.round(total), `"${value}"`, DURATION_HINT);
}

/**
 * Bytes from `"1MiB"`, `"512KiB"`, `"1MB"`, `"64k"`, `"100B"`, a digit string or a number (already
 * bytes). Fractions are allowed with a unit (`"1.5MiB"`) and rounded to the byte.
 */
export function parseSize(value: unknown): number {
  if (typeof value === "number") return wholeNumber(value, "bytes", SIZE_HINT);
  if (typeof value !== "string") throw new UnitError(`${describe(value)} is not a size`, SIZE_HINT);
  const m = SIZE_RE.exec(value.trim());
  if (m === null) throw new UnitError(`"${value}" is not a size`, SIZE_HINT);
  const digits = m[1] ?? "";
  const suffix = (m[2] ?? "").toLowerCase();
  if (suffix === "") return wholeNumber(Number(digits), "bytes", SIZE_HINT);
  const unit = SIZE_UNITS[suffix];
  if (unit === undefined) throw new UnitError(`"${value}": unknown size unit "${m[2]}"`, SIZE_HINT);
  return safe(Math.round(Number(digits) * unit), `"${value}"`, SIZE_HINT);
}

/** Formats bytes the way the defaults are documented: "256MiB", "1MiB", "1500B". */
export function formatSize(bytes: number): string {
  for (const [unit, n] of [
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes}B`;
}

/** Formats milliseconds the way the defaults are documented: "7d", "60s", "1s", "250ms". */
export function formatDuration(ms: number): string {
  for (const [unit, n] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    // 60s reads better than 1m for the seal delay, so minutes are used only past an hour's worth.
    if (ms >= n && ms % n === 0 && !(unit === "m" && ms < 3_600_000)) return `${ms / n}${unit}`;
  }
  return `${ms}ms`;
}

function wholeNumber(n: number, what: string, hint: string): number {
  if (!Number.isInteger(n) || n < 0) throw new UnitError(`${n} is not a whole number of ${what}`, hint);
  return safe(n, String(n), hint);
}

function safe(n: number, shown: string, hint: string): number {
  if (!Number.isSafeInteger(n)) throw new UnitError(`${shown} is too large`, hint);
  return n;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return "an empty value";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}
