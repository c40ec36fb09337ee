import type { Classification } from "../classify/classifier.js";
import type { DecodedRecord } from "../decode/accounting-decoder.js";
import { domainOf, parsePmtaTime } from "../decode/field-values.js";
import type { Header } from "../decode/header.js";
import {
  addressIn,
  buildEvent,
  COMPLAINT_FIELDS,
  classifyBounce,
  type EventContext,
  firstOf,
  kindOf,
} from "./build-event.js";
import type { EventKind } from "./event.js";

/**
 * One decoded record → the event's JSON line, written directly from the record's values.
 *
 * Byte for byte what `JSON.stringify(buildEvent(record, ctx))` gives (a property test holds the two
 * together over the simulator's corpus and the odd cases), without building the event object first:
 * on a catch-up that object, its `fields` map of thirty-odd keys and the stringify walking it were a
 * third of the daemon's CPU and most of its garbage. buildEvent stays the readable definition.
 */
export interface EncodedEvent {
  readonly line: string;
  /** What the metrics and the batcher need to know about the event, without parsing `line`. */
  readonly id: string;
  readonly kind: EventKind;
  readonly recordType: string;
  readonly recipientDomain?: string;
  readonly vmta?: string;
  readonly jobId?: string;
  readonly bounce?: Classification;
  readonly warnings?: readonly string[];
}

/** Per header, computed once: the JSON of each column's key, and which columns share a name. */
interface Layout {
  /** `"name":` for each position. */
  readonly keys: readonly string[];
  /** For a name that occurs more than once, the index of its group; -1 for a unique name. */
  readonly group: readonly number[];
  /** Header columns (`header_X` → key JSON of `X`) with their positions, in header order. */
  readonly headerCols: ReadonlyArray<readonly [number, string, number]>;
  readonly headerGroups: number;
  /**
   * False when some name would not keep its place as an object key (an array index such as `0` is
   * moved to the front by JavaScript), or the file has more values than names (`_extra1`...) and a
   * name could collide: such rare records take the object path.
   */
  readonly direct: boolean;
}

const layouts = new WeakMap<Header, Layout>();
const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;

function layoutOf(header: Header): Layout {
  let layout = layouts.get(header);
  if (layout !== undefined) return layout;
  const names = header.names;
  const seen = new Map<string, number>();
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  const group: number[] = [];
  let direct = true;
  for (const n of names) {
    if (ARRAY_INDEX.test(n) && Number(n) < 2 ** 32 - 1) direct = false;
    if ((counts.get(n) ?? 0) > 1) {
      let g = seen.get(n);
      if (g === undefined) {
        g = seen.size;
        seen.set(n, g);
      }
      group.push(g);
    } else group.push(-1);
  }
  // Repeated names are tracked in one 31-bit mask per record.
  if (seen.size > 31) direct = false;
  const hseen = new Map<string, number>();
  const hcounts = new Map<string, number>();
  const hnames: Array<[number, string]> = [];
  names.forEach((name, i) => {
    if (name.toLowerCase().startsWith("header_") && name.length > 7) hnames.push([i, name.slice(7)]);
  });
  for (const [, h] of hnames) hcounts.set(h, (hcounts.get(h) ?? 0) + 1);
  const headerCols: Array<readonly [number, string, number]> = [];
  for (const [i, h] of hnames) {
    if (ARRAY_INDEX.test(h) && Number(h) < 2 ** 32 - 1) direct = false;
    let g = -1;
    if ((hcounts.get(h) ?? 0) > 1) {
      g = hseen.get(h) ?? hseen.size;
      hseen.set(h, g);
    }
    headerCols.push([i, `${JSON.stringify(h)}:`, g]);
  }
  if (hseen.size > 31) direct = false;
  layout = {
    keys: names.map((n) => `${JSON.stringify(n)}:`),
    group,
    headerCols,
    headerGroups: hseen.size,
    direct,
  };
  layouts.set(header, layout);
  return layout;
}

// JSON.stringify escapes these (and lone surrogates, which a well-formed pair also matches here:
// such values are rare, and JSON.stringify handles both right).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what JSON must escape
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON string literal of `s`. */
function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** A value the decoder found JSON-safe (DecodedRecord.jsonSafe). */
function quote(s: string): string {
  return `"${s}"`;
}

/**
 * The start of the `bounce` object (hard … smtpCode) for a classification and a bounceCat. The
 * classifier hands out the same object for every record of a cached reply, so this is built once per
 * distinct reply rather than once per record.
 */
const bounceJson = new WeakMap<
  Classification,
  { readonly category: string | undefined; readonly json: string }
>();

function bouncePrefix(c: Classification, category: string | undefined): string {
  const memo = bounceJson.get(c);
  if (memo !== undefined && memo.category === category) return memo.json;
  let json = `{"hard":${c.hard},"permanent":${c.permanent},"reason":${str(c.reason)},"action":${str(c.action)},"scope":${str(c.scope)},"evidence":${str(c.evidence)},"confidence":${str(c.confidence)},"provider":${str(c.provider)}`;
  if (category !== undefined) json += `,"category":${str(category)}`;
  if (c.status !== undefined) json += `,"status":${str(c.status)}`;
  if (c.statusText !== undefined) json += `,"statusText":${str(c.statusText)}`;
  if (c.smtpCode !== undefined) json += `,"smtpCode":${JSON.stringify(c.smtpCode)}`;
  bounceJson.set(c, { category, json });
  return json;
}

/** `"source":{…,"offset":` for a context, and `"id":"<fileKey>:` for a file key: both change rarely. */
const sourceJson = new WeakMap<EventContext, string>();
let lastFileKey: string | undefined;
let lastIdPrefix = "";

/** `},"source":{"host":…,"file":…,"offset":`: closes `fields` and opens `source`, per context. */
function sourceOf(ctx: EventContext): string {
  let source = sourceJson.get(ctx);
  if (source === undefined) {
    source = `},"source":{"host":${str(ctx.host)},"file":${str(ctx.file)},"offset":`;
    sourceJson.set(ctx, source);
  }
  return source;
}

/** Last raw time seen and its ISO form: consecutive records mostly share their second. */
class TimeMemo {
  private raw: string | undefined;
  private iso: string | undefined;
  parse(raw: string): string | undefined {
    if (raw !== this.raw) {
      this.raw = raw;
      this.iso = parsePmtaTime(raw);
    }
    return this.iso;
  }
}

const logged = new TimeMemo();
const queued = new TimeMemo();

export function encodeEvent(record: DecodedRecord, ctx: EventContext): EncodedEvent {
  const { header, values } = record;
  const layout = layoutOf(header);
  if (!layout.direct) return viaObject(record, ctx);
  const q = record.jsonSafe ? quote : str;
  const get = (name: string): string | undefined => header.get(values, name);
  let warnings: string[] | undefined = record.warnings ? [...record.warnings] : undefined;
  const warn = (w: string): void => {
    if (warnings === undefined) warnings = [w];
    else warnings.push(w);
  };

  const timeRaw = get("timeLogged");
  const time = timeRaw === undefined ? undefined : logged.parse(timeRaw);
  if (timeRaw === undefined) warn("time: record has no timeLogged");
  else if (time === undefined) warn(`time: cannot read timeLogged "${timeRaw.slice(0, 40)}"`);
  const queuedRaw = get("timeQueued");
  const queuedAt = queuedRaw === undefined ? undefined : queued.parse(queuedRaw);
  if (queuedRaw !== undefined && queuedAt === undefined)
    warn(`time: cannot read timeQueued "${queuedRaw.slice(0, 40)}"`);

  // headers: the first non-empty value of each name, in the order the names first got one.
  // Separators are written as needed rather than sliced off at the end: slicing a concatenated
  // string makes V8 copy it flat first, an extra copy of the event's largest parts.
  let headersJson = "";
  let toAddress: string | undefined;
  let hseen = 0;
  for (const [i, key, g] of layout.headerCols) {
    const v = values[i];
    if (v === undefined || v === "") continue;
    if (g >= 0) {
      if ((hseen & (1 << g)) !== 0) continue;
      hseen |= 1 << g;
    }
    headersJson += headersJson === "" ? key + q(v) : `,${key}${q(v)}`;
    if (key === '"To":' && toAddress === undefined) toAddress = v;
  }

  const type = record.type;
  const dsnAction = get("dsnAction");
  const kind = kindOf(type, dsnAction);
  const sender = get("orig");
  const recipient = get("rcpt") ?? (kind === "complaint" ? addressIn(toAddress) : undefined);
  const recipientDomain = domainOf(recipient);

  const id = `${record.fileKey}:${record.offset}`;
  if (record.fileKey !== lastFileKey) {
    lastFileKey = record.fileKey;
    lastIdPrefix = `{"id":${str(`${record.fileKey}:`).slice(0, -1)}`;
  }
  let line = `${lastIdPrefix}${record.offset}","kind":"${kind}","recordType":${q(type)},"time":${time === undefined ? "null" : `"${time}"`}`;
  if (queuedAt !== undefined) line += `,"queuedAt":"${queuedAt}"`;
  if (sender !== undefined) line += `,"sender":${q(sender)}`;
  if (recipient !== undefined) line += `,"recipient":${q(recipient)}`;
  if (recipientDomain !== undefined) line += `,"recipientDomain":${q(recipientDomain)}`;

  let c: Classification | undefined;
  if (kind === "bounce" || kind === "deferral") {
    const bounce = classifyBounce(get, type, dsnAction, recipientDomain, ctx.classifier);
    const { dsnStatus, dsnDiag, bounceCat, mta } = bounce;
    c = bounce.c;
    line += `,"bounce":${bouncePrefix(c, bounceCat)}`;
    if (dsnDiag !== undefined) line += `,"diagnostic":${q(dsnDiag)}`;
    if (mta?.host !== undefined) line += `,"remoteMta":${q(mta.host)}`;
    if (mta?.ip !== undefined) line += `,"remoteIp":${q(mta.ip)}`;
    if (dsnAction !== undefined) line += `,"dsnAction":${q(dsnAction)}`;
    line += "}";
    if (dsnStatus === undefined && dsnDiag === undefined)
      warn("bounce: record has neither dsnStatus nor dsnDiag");
  } else if (kind === "complaint") {
    let sep = "";
    line += ',"complaint":{';
    for (const [key, columns] of COMPLAINT_FIELDS) {
      const value = firstOf(get, columns);
      if (value === undefined) continue;
      line += `${sep}"${key}":${q(value)}`;
      sep = ",";
    }
    line += "}";
  }
  const jobId = get("jobId");
  if (jobId !== undefined) line += `,"jobId":${q(jobId)}`;
  const vmta = get("vmta");
  if (vmta !== undefined) line += `,"vmta":${q(vmta)}`;
  if (headersJson !== "") line += `,"headers":{${headersJson}}`;

  line += ',"fields":{';
  let sep = "";
  const { keys, group } = layout;
  const width = keys.length;
  let seen = 0;
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const v = values[i] as string;
    if (v === "") continue;
    if (i >= width) {
      // Surplus values: named _extra1, _extra2...; a header naming one itself keeps its own value.
      const name = `_extra${i - width + 1}`;
      if (header.has(name) && header.get(values, name) !== undefined) continue;
      line += `${sep}"${name}":${q(v)}`;
      sep = ",";
      continue;
    }
    const g = group[i] as number;
    if (g >= 0) {
      if ((seen & (1 << g)) !== 0) continue;
      seen |= 1 << g;
    }
    line += sep + (keys[i] as string) + q(v);
    sep = ",";
  }
  line += `${sourceOf(ctx)}${record.offset}}`;
  if (warnings !== undefined) line += `,"warnings":${JSON.stringify(warnings)}`;
  line += "}";

  return { line, id, kind, recordType: type, recipientDomain, vmta, jobId, bounce: c, warnings };
}

/** The reference path, for headers whose names JavaScript would reorder as object keys. */
function viaObject(record: DecodedRecord, ctx: EventContext): EncodedEvent {
  const e = buildEvent(record, ctx);
  const get = (name: string): string | undefined => record.header.get(record.values, name);
  // The classifier's cached object (buildEvent copied its members), which the metrics key on.
  const c =
    e.bounce === undefined
      ? undefined
      : classifyBounce(get, e.recordType, get("dsnAction"), e.recipientDomain, ctx.classifier).c;
  return {
    line: JSON.stringify(e),
    id: e.id,
    kind: e.kind,
    recordType: e.recordType,
    recipientDomain: e.recipientDomain,
    vmta: e.vmta,
    jobId: e.jobId,
    bounce: c,
    warnings: e.warnings,
  };
}
