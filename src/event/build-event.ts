import type { Classification, Classifier } from "../classify/classifier.js";
import type { DecodedRecord } from "../decode/accounting-decoder.js";
import { domainOf, type ParsedMta, parseDsnMta, parsePmtaTime } from "../decode/field-values.js";
import { type Header, setFirst } from "../decode/header.js";
import type { BounceInfo, ComplaintInfo, EventKind, PmtaEvent } from "./event.js";

export interface EventContext {
  readonly host: string;
  /** File path as it should appear in `source.file` (the path the record was read from). */
  readonly file: string;
  readonly classifier: Classifier;
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
  readonly mta: ParsedMta | undefined;
  readonly c: Classification;
}

export function classifyBounce(
  get: (name: string) => string | undefined,
  type: string,
  dsnAction: string | undefined,
  recipientDomain: string | undefined,
  classifier: Classifier,
): BounceSignals {
  const dsnStatus = get("dsnStatus");
  const dsnDiag = get("dsnDiag");
  const dsnMta = get("dsnMta");
  const bounceCat = get("bounceCat");
  const mta = dsnMta === undefined ? undefined : parseDsnMta(dsnMta);
  const c = classifier.classify({
    type,
    dsnStatus,
    dsnDiag,
    bounceCat,
    dsnAction,
    dsnMta,
    mtaHost: mta?.host,
    recipientDomain,
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
  e.fields = header.toObject(values);
  e.source = { host: ctx.host, file: ctx.file, offset: record.offset };
  if (warnings.length > 0) e.warnings = warnings;
  return e as PmtaEvent;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export function addressIn(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const m = /<([^<>\s]+@[^<>\s]+)>/.exec(value) ?? /([^\s<>"',;]+@[^\s<>"',;]+)/.exec(value);
  return m?.[1];
}
