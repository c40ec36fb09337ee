import { splitFields } from "./field-splitter.js";

const NONE: readonly number[] = [];

/**
 * Column layout of an accounting file. PowerMTA writes one header line naming every column of the
 * union of the configured record types; names can repeat (a real `d,b,f,rb` file carries
 * `rcvSourceIp` twice), so a name maps to every position holding it and readers take the first
 * non-empty value.
 */
export class Header {
  readonly names: readonly string[];
  /** Exact bytes of the header line as read (without line ending); part of the file key. */
  readonly line: string;
  private readonly positions = new Map<string, number[]>();

  constructor(names: readonly string[], line?: string) {
    this.names = names;
    this.line = line ?? names.join(",");
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const list = this.positions.get(name);
      if (list) list.push(i);
      else this.positions.set(name, [i]);
    }
  }

  get width(): number {
    return this.names.length;
  }

  has(name: string): boolean {
    return this.positions.has(name);
  }

  /** Positions of the column(s) named `name`, in order; empty when there is none. */
  positionsOf(name: string): readonly number[] {
    return this.positions.get(name) ?? NONE;
  }

  /** First non-empty value of the column(s) named `name`, or undefined when absent or empty. */
  get(values: readonly string[], name: string): string | undefined {
    const list = this.positions.get(name);
    if (list === undefined) return undefined;
    for (const i of list) {
      const v = values[i];
      if (v !== undefined && v !== "") return v;
    }
    return undefined;
  }

  /**
   * Every non-empty column by name. PowerMTA writes empty for "not applicable" (union layout), so
   * an empty value carries no information and is left out. Surplus values beyond the header's width
   * are kept as `_extra1`, `_extra2`, ... so that nothing in the file is lost. Columns for which
   * `skip` answers true are left out.
   */
  toObject(values: readonly string[], skip?: (index: number) => boolean): Record<string, string> {
    const out: Record<string, string> = {};
    const n = values.length;
    for (let i = 0; i < n; i++) {
      const v = values[i] as string;
      if (v === "" || skip?.(i) === true) continue;
      const name = i < this.names.length ? (this.names[i] as string) : `_extra${i - this.names.length + 1}`;
      setFirst(out, name, v);
    }
    return out;
  }
}

/**
 * `obj[key] = value` unless `key` already has a value. A column named `constructor` or `__proto__`
 * must become an own property like any other (plain `obj[key]` would see Object.prototype's).
 */
export function setFirst(obj: Record<string, string>, key: string, value: string): void {
  if (!(key in obj)) obj[key] = value;
  else if (!Object.hasOwn(obj, key))
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** True when a row is a header line: PowerMTA always starts it with the literal `type` (`#type` seen too). */
export function isHeaderRow(firstField: string): boolean {
  return firstField === "type" || firstField === "#type" || firstField.toLowerCase() === "type";
}

/** Normalizes a header row's names (strips the `#` of `#type`). */
export function headerFromRow(values: readonly string[], line: string): Header {
  let header = known.get(line);
  if (header === undefined) {
    header = new Header(
      values.map((v, i) => (i === 0 ? "type" : v)),
      line,
    );
    if (known.size >= 256) known.clear();
    known.set(line, header);
  }
  return header;
}

/**
 * Headers by line. A Header never changes, and every file of an input starts with the same line:
 * sharing one object spares each file its own name index, and lets the event encoder's per-header
 * layout be worked out once rather than once per file (100,000 small archived files).
 */
const known = new Map<string, Header>();

const DBT = [
  "type",
  "timeLogged",
  "timeQueued",
  "orig",
  "rcpt",
  "orcpt",
  "dsnAction",
  "dsnStatus",
  "dsnDiag",
  "dsnMta",
  "bounceCat",
  "srcType",
  "srcMta",
  "dlvType",
  "dlvSourceIp",
  "dlvDestinationIp",
  "dlvEsmtpAvailable",
  "dlvSize",
  "vmta",
  "jobId",
  "envId",
  "queue",
  "vmtaPool",
];

/**
 * PowerMTA 5.x default (`*`) field lists per record type, in the order its own samples print them
 * (pmta-format.md §3.1). Used only for rows that arrive before any header line when neither a
 * remembered header nor a configured fallback exists; events decoded this way carry a warning.
 */
export const PMTA_DEFAULT_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  d: DBT,
  b: DBT,
  t: DBT,
  tq: [
    "type",
    "timeLogged",
    "dsnStatus",
    "dsnDiag",
    "dsnMta",
    "dlvType",
    "dlvSourceIp",
    "dlvDestinationIp",
    "vmta",
    "queue",
  ],
  r: [
    "type",
    "timeLogged",
    "orig",
    "rcpt",
    "orcpt",
    "srcType",
    "srcMta",
    "rcvSourceIp",
    "rcvDestinationIp",
    "vmta",
    "jobId",
    "envId",
  ],
  rb: [
    "type",
    "timeLogged",
    "orig",
    "rcpt",
    "orcpt",
    "dsnStatus",
    "dsnDiag",
    "dsnMta",
    "dsnReportingMta",
    "bounceCat",
    "srcType",
    "srcMta",
    "envId",
  ],
  rs: [
    "type",
    "timeLogged",
    "orig",
    "rcpt",
    "orcpt",
    "dsnAction",
    "dsnStatus",
    "dsnDiag",
    "dsnMta",
    "bounceCat",
    "srcType",
    "srcMta",
    "envId",
  ],
  f: [
    "type",
    "timeLogged",
    "repSourceIp",
    "feedbackType",
    "format",
    "userAgent",
    "envId",
    "orig",
    "rcpt",
    "reportingMta",
    "dlvSourceIp",
    "reportedDomain",
    "header_From",
    "header_Return-Path",
    "header_X-job",
    "header_Subject",
  ],
};

/** Columns to use for a header-less row: one list for every type, or a list per record type. */
export type FallbackColumns = readonly string[] | Readonly<Record<string, readonly string[]>>;

/** Rebuilds a Header from a saved header line (checkpoints keep the line, not the parsed names). */
export function headerFromLine(line: string): Header {
  return headerFromRow(splitFields(line, line.includes('"')).values, line);
}
