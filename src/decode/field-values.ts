/**
 * Parsers for the value formats PowerMTA writes into accounting fields (pmta-format.md §3.2).
 * Each returns undefined for a value it cannot read, so the caller can attach a warning and keep
 * the raw text; none of them throws.
 */

const PMTA_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:([+-])(\d{2}):?(\d{2})|(Z))?$/;

/**
 * `timeLogged` / `timeQueued`: `2024-05-01 13:13:21-0400` (iso-times yes, the default), Unix seconds
 * (iso-times no), and tolerant of a `T`, a colon in the offset or `Z`. A time without any offset is
 * read as UTC (PowerMTA always writes one; this only serves hand-made files). Returns ISO 8601 UTC.
 */
export function parsePmtaTime(raw: string): string | undefined {
  if (raw === "") return undefined;
  const first = raw.charCodeAt(0);
  if (first >= 0x30 && first <= 0x39 && raw.length <= 12 && /^\d+$/.test(raw)) {
    const seconds = Number(raw);
    return Number.isSafeInteger(seconds)
      ? new Date(seconds * 1000).toISOString().replace(".000Z", "Z")
      : undefined;
  }
  // Records of one file share their minute and offset; converting "YYYY-MM-DD HH:MM ±HHMM" once per
  // minute and appending the seconds (offsets are whole minutes) saves a Date per field.
  if (raw.length === 24 && raw.charCodeAt(16) === 0x3a && raw.charCodeAt(10) === 0x20) {
    const s1 = raw.charCodeAt(17);
    const s2 = raw.charCodeAt(18);
    if (s1 >= 0x30 && s1 <= 0x35 && s2 >= 0x30 && s2 <= 0x39) {
      // The last minute is checked first, by comparison: no key string, no map lookup.
      if (!(lastMinute.head !== "" && raw.startsWith(lastMinute.head) && raw.endsWith(lastMinute.zone))) {
        const minuteKey = raw.slice(0, 16) + raw.slice(19);
        let prefix = minuteMemo.get(minuteKey);
        if (prefix === undefined) {
          const full = parseTimeSlow(`${raw.slice(0, 16)}:00${raw.slice(19)}`);
          prefix = full === undefined ? "" : full.slice(0, 17);
          if (minuteMemo.size >= 4096) minuteMemo.clear();
          minuteMemo.set(minuteKey, prefix);
        }
        lastMinute = { head: raw.slice(0, 16), zone: raw.slice(19), prefix };
      }
      if (lastMinute.prefix !== "") return `${lastMinute.prefix}${raw.slice(17, 19)}Z`;
    }
  }
  return parseTimeSlow(raw);
}

const minuteMemo = new Map<string, string>();
let lastMinute = { head: "", zone: "", prefix: "" };

function parseTimeSlow(raw: string): string | undefined {
  const m = PMTA_TIME.exec(raw);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s, sign, oh, om] = m;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
    return undefined;
  let ms = Date.UTC(Number(y), month - 1, day, hour, minute, second);
  if (sign !== undefined) {
    const offsetMinutes = Number(oh) * 60 + Number(om);
    ms -= (sign === "+" ? 1 : -1) * offsetMinutes * 60_000;
  }
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return undefined;
  return date.toISOString().replace(".000Z", "Z");
}

export interface ParsedStatus {
  /** Enhanced status code, e.g. `5.1.1`. */
  readonly code: string;
  readonly cls: 2 | 4 | 5;
  readonly subject: number;
  readonly detail: number;
  /** PowerMTA's description in parentheses, e.g. `bad destination mailbox address`. */
  readonly text?: string;
}

const STATUS = /^\s*([245])\.(\d{1,3})\.(\d{1,3})\b\s*(?:\((.*)\))?/;

/** `dsnStatus`: `5.1.1 (bad destination mailbox address)`. */
export function parseDsnStatus(raw: string | undefined): ParsedStatus | undefined {
  if (raw === undefined || raw === "") return undefined;
  const m = STATUS.exec(raw);
  if (m === null) return undefined;
  const cls = Number(m[1]) as 2 | 4 | 5;
  const text = m[4]?.trim();
  return {
    code: `${m[1]}.${Number(m[2])}.${Number(m[3])}`,
    cls,
    subject: Number(m[2]),
    detail: Number(m[3]),
    ...(text ? { text } : {}),
  };
}

export interface ParsedDiag {
  /** Diagnostic type, lower case: `smtp`, `x-pmta`, `x-postfix`, ... (empty when the value had none). */
  readonly type: string;
  /** The text after the type; for `x-pmta;bounce-queue;reply:...` the embedded reply. */
  readonly text: string;
  /** Basic SMTP reply code found at the start of the text (550), if any. */
  readonly smtpCode?: number;
  /** Enhanced status code found in the text (5.1.1), if any. */
  readonly enhanced?: string;
  /** Set for PowerMTA-internal diagnostics that wrap a reply (`x-pmta;bounce-queue;reply:`). */
  readonly pmtaAction?: string;
}

const DIAG_TYPE = /^([A-Za-z][A-Za-z0-9-]{0,20});\s*/;
const REPLY_CODE = /^([245]\d\d)(?:[ -]|$)/;
const ENHANCED_AT_START = /^[ -]?([245])\.(\d{1,3})\.(\d{1,3})\b/;
const ENHANCED_ANYWHERE = /(?:^|[\s(#[-])([245])\.(\d{1,3})\.(\d{1,3})(?=$|[\s,;:.)\]-])/;
const WRAPPED_REPLY = /\bsaid:\s*([245]\d\d)(?:[ -]([245]\.\d{1,3}\.\d{1,3}))?/i;

/**
 * `dsnDiag`: `smtp;550 5.1.1 <a@b.c>... User unknown`, `x-pmta;bounce-queue;reply:550 5.7.1 ...`,
 * remote-bounce forms such as `smtp; 550 ...` or `X-Postfix; host mx[1.2.3.4] said: 550 ...`.
 */
export function parseDsnDiag(raw: string | undefined): ParsedDiag | undefined {
  if (raw === undefined || raw === "") return undefined;
  let type = "";
  let text = raw;
  const t = DIAG_TYPE.exec(raw);
  if (t !== null) {
    type = (t[1] as string).toLowerCase();
    text = raw.slice(t[0].length);
  }
  let pmtaAction: string | undefined;
  if (type === "x-pmta") {
    const reply = /^([a-z-]+);\s*reply:\s*/i.exec(text);
    if (reply !== null) {
      pmtaAction = (reply[1] as string).toLowerCase();
      text = text.slice(reply[0].length);
    }
  }
  let smtpCode: number | undefined;
  let enhanced: string | undefined;
  const code = REPLY_CODE.exec(text);
  if (code !== null) {
    smtpCode = Number(code[1]);
    const rest = text.slice(3);
    const e = ENHANCED_AT_START.exec(rest);
    if (e !== null) enhanced = `${e[1]}.${Number(e[2])}.${Number(e[3])}`;
  } else {
    const wrapped = WRAPPED_REPLY.exec(text);
    if (wrapped !== null) {
      smtpCode = Number(wrapped[1]);
      if (wrapped[2] !== undefined) enhanced = normalizeCode(wrapped[2]);
    }
  }
  if (enhanced === undefined) {
    const e = ENHANCED_ANYWHERE.exec(text);
    // Only trust a code found mid-text when its class agrees with the reply code (avoids version numbers).
    if (e !== null && (smtpCode === undefined || String(smtpCode)[0] === e[1])) {
      enhanced = `${e[1]}.${Number(e[2])}.${Number(e[3])}`;
    }
  }
  return {
    type,
    text,
    ...(smtpCode === undefined ? {} : { smtpCode }),
    ...(enhanced === undefined ? {} : { enhanced }),
    ...(pmtaAction === undefined ? {} : { pmtaAction }),
  };
}

function normalizeCode(code: string): string {
  return code
    .split(".")
    .map((p) => String(Number(p)))
    .join(".");
}

/** `a-z 0-9 . -`: a host name as written in lower case. */
function isDomainChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x2d;
}

/** What an IPv4 or IPv6 address is written with. */
function isAddressChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x3a) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46) || c === 0x2e;
}

export interface ParsedMta {
  readonly host?: string;
  readonly ip?: string;
}

/**
 * Where the IP's `(` is when the bytes `src[from, to)` are dsnMta in the usual form that
 * parseDsnMta reads with two slices (`mx1.example.com (192.0.2.1)`, host in lower case): the host is
 * then `[from, at - 1)` and the IP `[at + 1, to - 1)`. -1 for any other form, which only
 * parseDsnMta reads. The conditions are parseDsnMta's, on bytes: ASCII, so byte and character
 * offsets agree, and a host or IP character is never `(`, so the last `(` is the only one.
 */
export function plainMtaAt(src: Uint8Array, from: number, to: number): number {
  if (to - from < 4 || src[to - 1] !== 0x29) return -1;
  let at = to - 2;
  while (at >= from && src[at] !== 0x28) at--;
  if (at - from <= 1 || src[at - 1] !== 0x20 || at + 2 >= to) return -1;
  for (let i = from; i < at - 1; i++) if (!isDomainChar(src[i] as number)) return -1;
  for (let i = at + 1; i < to - 1; i++) if (!isAddressChar(src[i] as number)) return -1;
  return at;
}

/** `dsnMta`: `mx1.example.com (192.0.2.1)`; a bare host or a `dns;` prefix are accepted too. */
export function parseDsnMta(raw: string | undefined): ParsedMta | undefined {
  if (raw === undefined || raw === "") return undefined;
  // The usual form, `mx1.example.com (192.0.2.1)` with the host already in lower case, needs no
  // trimming or case change: two slices.
  const n = raw.length;
  if (raw.charCodeAt(n - 1) === 0x29) {
    const open = raw.lastIndexOf("(");
    if (open > 1 && raw.charCodeAt(open - 1) === 0x20 && open + 2 < n) {
      let plain = true;
      for (let i = 0; plain && i < open - 1; i++) plain = isDomainChar(raw.charCodeAt(i));
      for (let i = open + 1; plain && i < n - 1; i++) plain = isAddressChar(raw.charCodeAt(i));
      if (plain) return { host: raw.slice(0, open - 1), ip: raw.slice(open + 1, n - 1) };
    }
  }
  // Plain string operations: this runs for every bounce, and a lazy regex here backtracks heavily.
  let value = raw.trim();
  if (value.length > 4 && value.slice(0, 4).toLowerCase() === "dns;") value = value.slice(4).trim();
  const open = value.lastIndexOf("(");
  if (open < 0 || !value.endsWith(")")) return value === "" ? undefined : { host: value.toLowerCase() };
  const host = value.slice(0, open).trim().toLowerCase();
  const ip = value.slice(open + 1, -1).trim();
  const out: { host?: string; ip?: string } = {};
  if (host !== "") out.host = host;
  if (ip !== "") out.ip = ip;
  return out;
}

/** Domain part of an address, lower case; handles `Name <a@b>` and trailing `>`. */
export function domainOf(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  const at = address.lastIndexOf("@");
  if (at < 0) return undefined;
  // Usually the rest already is the domain: lower case, nothing to cut, no trailing dot.
  const n = address.length;
  let plain = at + 1 < n && address.charCodeAt(n - 1) !== 0x2e;
  for (let i = at + 1; plain && i < n; i++) plain = isDomainChar(address.charCodeAt(i));
  if (plain) return address.slice(at + 1);
  let domain = address.slice(at + 1);
  const close = domain.search(/[>\s,;]/);
  if (close >= 0) domain = domain.slice(0, close);
  domain = domain.trim().toLowerCase().replace(/\.$/, "");
  return domain === "" ? undefined : domain;
}
