import type { Classification, Classifier } from "../classify/classifier.js";
import type { DecodedRecord } from "../decode/accounting-decoder.js";
import { domainOf, type ParsedMta, parseDsnMta, parsePmtaTime } from "../decode/field-values.js";
import { type Header, setFirst } from "../decode/header.js";
import type { BounceInfo, ComplaintInfo, EventKind, PmtaEvent } from "./event.js";

/**
 * What `fields` holds: `all`, every non-empty column as written (the default); `unmapped`, only the
 * columns whose value the event does not already carry verbatim in another member.
 */
export type FieldsMode = "all" | "unmapped";

export interface EventContext {
  readonly host: string;
  /** File path as it should appear in `source.file` (the path the record was read from). */
  readonly file: string;
  readonly classifier: Classifier;
  /** Default `all`. */
  readonly fields?: FieldsMode;
}

/**
 * Per column, when `fields: unmapped` leaves it out: KEEP never; ALWAYS when it has a value (the
 * type, `orig`, `rcpt`, `jobId`, `vmta`, `header_*` columns: copied verbatim into recordType,
 * sender, recipient, jobId, vmta, headers); IF_BOUNCE when the event has a `bounce` member
 * (`dsnDiag`, `dsnAction`, `bounceCat`: diagnostic, dsnAction, category); IF_TIME / IF_QUEUED when
 * `time` / `queuedAt` could be read from it. `dsnStatus`, `dsnMta` and every other column stay:
 * what the event holds of them is parsed, not as written.
 */
export const KEEP = 0;
const ALWAYS = 1;
export const IF_BOUNCE = 2;
const IF_TIME = 3;
const IF_QUEUED = 4;
const MAPPED: Readonly<Record<string, number>> = {
  orig: ALWAYS,
  rcpt: ALWAYS,
  jobId: ALWAYS,
  vmta: ALWAYS,
  dsnDiag: IF_BOUNCE,
  dsnAction: IF_BOUNCE,
  bounceCat: IF_BOUNCE,
  timeLogged: IF_TIME,
  timeQueued: IF_QUEUED,
};

const mappedColumns = new WeakMap<Header, Uint8Array>();

export function mappedColumnsOf(header: Header): Uint8Array {
  let mapped = mappedColumns.get(header);
  if (mapped === undefined) {
    mapped = new Uint8Array(header.names.length);
    header.names.forEach((name, i) => {
      (mapped as Uint8Array)[i] = Object.hasOwn(MAPPED, name) ? (MAPPED[name] as number) : KEEP;
    });
    for (const [i] of headerColumnsOf(header)) mapped[i] = ALWAYS;
    // recordType is the first value, whatever its column is called.
    if (mapped.length > 0) mapped[0] = ALWAYS;
    mappedColumns.set(header, mapped);
  }
  return mapped;
}

/** Header columns (`header_X-FBLId` → `X-FBLId`) of a header, computed once per header. */
const headerColumns = new WeakMap<Header, ReadonlyArray<readonly [number, string]>>();

function headerColumnsOf(header: Header): ReadonlyArray<readonly [number, string]> {
  let cols = headerColumns.get(header);
  if (cols === undefined) {
    const list: Array<readonly [number, string]> = [];
    header.names.forEach((name, i) => {
      if (name.toLowerCase().startsWith("header_") && name.length > 7) list.push([i, name.slice(7)]);
    });
    cols = list;
    headerColumns.set(header, cols);
  }
  return cols;
}

/** The complaint object's members, each from the first of its columns that has a value, in order. */
export const COMPLAINT_FIELDS: ReadonlyArray<readonly [keyof ComplaintInfo, readonly string[]]> = [
  ["format", ["format"]],
  ["feedbackType", ["feedbackType"]],
  ["reportedDomain", ["reportedDomain"]],
  ["userAgent", ["userAgent"]],
  ["reportingMta", ["reportingMta"]],
  ["sourceIp", ["arf_Source-IP", "dlvSourceIp"]],
];

export function firstOf(
  get: (name: string) => string | undefined,
  columns: readonly string[],
): string | undefined {
  for (const c of columns) {
    const v = get(c);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** A bounce's signals as the record has them, and their classification (one home for both builders). */
export interface BounceSignals {
  readonly dsnStatus: string | undefined;
  readonly dsnDiag: string | undefined;
  readonly bounceCat: string | undefined;
  /** Undefined too when the caller read dsnMta itself (classifyBounce's `mtaHost`). */
  readonly mta: ParsedMta | undefined;
  readonly c: Classification;
}

export function classifyBounce(
  get: (name: string) => string | undefined,
  type: string,
  dsnAction: string | undefined,
  recipientDomain: string | undefined,
  classifier: Classifier,
  diagHash?: number,
  diagCheck?: number,
  /** dsnMta's host, when the caller read it from the bytes (encodeEvent): dsnMta is then not parsed. */
  mtaHost?: string,
  /**
   * With diagHash: dsnDiag is made by the classifier only on a cache miss, and `dsnDiag` in the
   * result is undefined (the caller writes the diagnostic from the bytes).
   */
  lazyDiag = false,
): BounceSignals {
  const dsnStatus = get("dsnStatus");
  const dsnDiag = lazyDiag && diagHash !== undefined ? undefined : get("dsnDiag");
  const dsnMta = mtaHost === undefined ? get("dsnMta") : undefined;
  const bounceCat = get("bounceCat");
  const mta = dsnMta === undefined ? undefined : parseDsnMta(dsnMta);
  const c = classifier.classify({
    type,
    dsnStatus,
    dsnDiag,
    bounceCat,
    dsnAction,
    dsnMta,
    mtaHost: mtaHost ?? mta?.host,
    recipientDomain,
    diagHash,
    diagCheck,
    column: lazyDiag ? get : undefined,
  });
  return { dsnStatus, dsnDiag, bounceCat, mta, c };
}

export function kindOf(type: string, dsnAction: string | undefined): EventKind {
  const delayed = dsnAction !== undefined && dsnAction.toLowerCase() === "delayed";
  switch (type) {
    case "b":
    case "rb":
      return delayed ? "deferral" : "bounce";
    case "t":
    case "tq":
      return "deferral";
    case "rs":
      return delayed ? "deferral" : "other";
    case "f":
      return "complaint";
    case "d":
      return "delivery";
    default:
      return "other";
  }
}

/** One decoded record → one event. Pure apart from the classifier's cache. */
export function buildEvent(record: DecodedRecord, ctx: EventContext): PmtaEvent {
  const { header, values } = record;
  const get = (name: string): string | undefined => header.get(values, name);
  const warnings: string[] = record.warnings ? [...record.warnings] : [];

  const timeRaw = get("timeLogged");
  const time = timeRaw === undefined ? undefined : parsePmtaTime(timeRaw);
  if (timeRaw === undefined) warnings.push("time: record has no timeLogged");
  else if (time === undefined) warnings.push(`time: cannot read timeLogged "${timeRaw.slice(0, 40)}"`);
  const queuedRaw = get("timeQueued");
  const queuedAt = queuedRaw === undefined ? undefined : parsePmtaTime(queuedRaw);
  if (queuedRaw !== undefined && queuedAt === undefined)
    warnings.push(`time: cannot read timeQueued "${queuedRaw.slice(0, 40)}"`);

  let headers: Record<string, string> | undefined;
  for (const [i, name] of headerColumnsOf(header)) {
    const v = values[i];
    if (v === undefined || v === "") continue;
    if (headers === undefined) headers = {};
    setFirst(headers, name, v);
  }

  const type = record.type;
  const dsnAction = get("dsnAction");
  const kind = kindOf(type, dsnAction);
  const sender = get("orig");
  // FBL reports often carry no rcpt (Microsoft JMRP); the original To: header is the next best thing.
  const recipient = get("rcpt") ?? (kind === "complaint" ? addressIn(headers?.To) : undefined);
  const recipientDomain = domainOf(recipient);

  let bounce: BounceInfo | undefined;
  let complaint: ComplaintInfo | undefined;
  if (kind === "bounce" || kind === "deferral") {
    const { dsnStatus, dsnDiag, bounceCat, mta, c } = classifyBounce(
      get,
      type,
      dsnAction,
      recipientDomain,
      ctx.classifier,
    );
    const b: Mutable<BounceInfo> = {
      hard: c.hard,
      permanent: c.permanent,
      reason: c.reason,
      action: c.action,
      scope: c.scope,
      evidence: c.evidence,
      confidence: c.confidence,
      provider: c.provider,
    };
    // Assigned one by one (not spread): this runs for every record and spreads allocate.
    if (bounceCat !== undefined) b.category = bounceCat;
    if (c.status !== undefined) b.status = c.status;
    if (c.statusText !== undefined) b.statusText = c.statusText;
    if (c.smtpCode !== undefined) b.smtpCode = c.smtpCode;
    if (dsnDiag !== undefined) b.diagnostic = dsnDiag;
    if (mta?.host !== undefined) b.remoteMta = mta.host;
    if (mta?.ip !== undefined) b.remoteIp = mta.ip;
    if (dsnAction !== undefined) b.dsnAction = dsnAction;
    bounce = b;
    if (dsnStatus === undefined && dsnDiag === undefined)
      warnings.push("bounce: record has neither dsnStatus nor dsnDiag");
  } else if (kind === "complaint") {
    const f: Mutable<ComplaintInfo> = {};
    for (const [key, columns] of COMPLAINT_FIELDS) {
      const value = firstOf(get, columns);
      if (value !== undefined) f[key] = value;
    }
    complaint = f;
  }

  const e = {
    id: `${record.fileKey}:${record.offset}`,
    kind,
    recordType: type,
    time: time ?? null,
  } as Mutable<PmtaEvent>;
  if (queuedAt !== undefined) e.queuedAt = queuedAt;
  if (sender !== undefined) e.sender = sender;
  if (recipient !== undefined) e.recipient = recipient;
  if (recipientDomain !== undefined) e.recipientDomain = recipientDomain;
  if (bounce !== undefined) e.bounce = bounce;
  if (complaint !== undefined) e.complaint = complaint;
  const jobId = get("jobId");
  if (jobId !== undefined) e.jobId = jobId;
  const vmta = get("vmta");
  if (vmta !== undefined) e.vmta = vmta;
  if (headers !== undefined) e.headers = headers;
  e.fields =
    ctx.fields === "unmapped"
      ? unmappedFields(header, values, bounce !== undefined, time !== undefined, queuedAt !== undefined)
      : header.toObject(values);
  e.source = { host: ctx.host, file: ctx.file, offset: record.offset };
  if (warnings.length > 0) e.warnings = warnings;
  return e as PmtaEvent;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** header.toObject(values) without the columns the event already carries (mappedColumnsOf). */
function unmappedFields(
  header: Header,
  values: readonly string[],
  bounce: boolean,
  time: boolean,
  queued: boolean,
): Record<string, string> {
  const mapped = mappedColumnsOf(header);
  return header.toObject(values, (i) => {
    const m = i < mapped.length ? (mapped[i] as number) : KEEP;
    return (
      m === ALWAYS || (m === IF_BOUNCE && bounce) || (m === IF_TIME && time) || (m === IF_QUEUED && queued)
    );
  });
}

export function addressIn(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const m = /<([^<>\s]+@[^<>\s]+)>/.exec(value) ?? /([^\s<>"',;]+@[^\s<>"',;]+)/.exec(value);
  return m?.[1];
}
