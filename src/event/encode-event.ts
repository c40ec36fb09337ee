import { isUtf8 } from "node:buffer";
import { type Classification, lastCheckHash, normalizedHashBytes } from "../classify/classifier.js";
import type { DecodedRecord } from "../decode/accounting-decoder.js";
import { FieldSpans } from "../decode/field-spans.js";
import { domainOf, plainMtaAt } from "../decode/field-values.js";
import type { Header } from "../decode/header.js";
import { ownString } from "../decode/own-string.js";
import {
  addressIn,
  type BounceSignals,
  buildEvent,
  COMPLAINT_FIELDS,
  classifyBounce,
  type EventContext,
  firstOf,
  IF_BOUNCE,
  KEEP,
  kindOf,
  mappedColumnsOf,
} from "./build-event.js";
import type { EventKind } from "./event.js";
import { type EventSlab, type EventWriter, type Piece, piece } from "./event-writer.js";
import { KeyedMemo } from "./keyed-memo.js";
import { TimeJson } from "./time-json.js";

/**
 * One decoded record → the event's JSON, written as UTF-8 bytes straight from the record's bytes.
 *
 * Byte for byte what `JSON.stringify(buildEvent(record, ctx))` gives (a property test holds the two
 * together over the simulator's corpus and the odd cases), without building the event object or
 * even one string of it: field values are copied from the file's bytes under pre-encoded keys (see
 * EventWriter for why that is the cheap way). buildEvent stays the readable definition, and the
 * path taken for every record this one does not handle: a record with warnings, CSV that only the
 * lenient splitter reads, invalid UTF-8, or column names JavaScript would reorder.
 */
export class EncodedEvent {
  constructor(
    /** Where the event's JSON lies: `slab.bytes[start, end)`. */
    readonly slab: EventSlab,
    readonly start: number,
    readonly end: number,
    /**
     * What the metrics need to know about the event, without parsing its bytes. Not its id: that is
     * `<record.fileKey>:<record.offset>`, made as text only where it is needed (RecordEnvelope.id).
     */
    readonly kind: EventKind,
    readonly recordType: string,
    readonly recipientDomain: string | undefined,
    readonly vmta: string | undefined,
    readonly jobId: string | undefined,
    readonly bounce: Classification | undefined,
    readonly warnings: readonly string[] | undefined,
  ) {}

  /**
   * The event's JSON as a view of its slab, made when asked for: the daemon's HTTP path copies the
   * bytes by their place and never makes one (~70 ns and an object that lives as long as the event).
   */
  get data(): Buffer {
    return this.slab.bytes.subarray(this.start, this.end);
  }
}

/** Per header, computed once: each column's key as bytes, and which columns share a name. */
interface Layout {
  /** `,"name":` for each position, and `"name":` for an object's first member. */
  readonly keys: readonly Piece[];
  readonly firstKeys: readonly Piece[];
  /** For a name that occurs more than once, the index of its group; -1 for a unique name. */
  readonly group: readonly number[];
  /** Header columns (`header_X` → `,"X":`, `"X":`) with their positions and groups, in header order. */
  readonly headerCols: ReadonlyArray<readonly [number, Piece, Piece, number]>;
  /** Position of the first `header_To` column that has a value is looked for among these. */
  readonly toCols: readonly number[];
  /** Positions of each column the event reads by name. */
  readonly at: Readonly<Record<Column, readonly number[]>>;
  /** Bytes of every key together: part of an event's size bound. */
  readonly keyBytes: number;
  /**
   * False when some name would not keep its place as an object key (an array index such as `0` is
   * moved to the front by JavaScript), or more than 31 names repeat (one bit mask per record
   * tracks them): such rare records take the object path.
   */
  readonly direct: boolean;
}

const COLUMNS = [
  "timeLogged",
  "timeQueued",
  "orig",
  "rcpt",
  "dsnDiag",
  "dsnAction",
  "dsnMta",
  "jobId",
  "vmta",
] as const;
type Column = (typeof COLUMNS)[number];

const layouts = new WeakMap<Header, Layout>();
const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;
const isIndex = (n: string): boolean => ARRAY_INDEX.test(n) && Number(n) < 2 ** 32 - 1;
const keyOf = (name: string): Piece => piece(`,${JSON.stringify(name)}:`);
const firstKeyOf = (name: string): Piece => piece(`${JSON.stringify(name)}:`);

/** Group index of each name that occurs more than once (-1 for the others), and how many groups. */
function groupsOf(names: readonly string[]): [number[], number] {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  const seen = new Map<string, number>();
  const group = names.map((n) => {
    if ((counts.get(n) ?? 0) < 2) return -1;
    let g = seen.get(n);
    if (g === undefined) {
      g = seen.size;
      seen.set(n, g);
    }
    return g;
  });
  return [group, seen.size];
}

function layoutOf(header: Header): Layout {
  let layout = layouts.get(header);
  if (layout !== undefined) return layout;
  const names = header.names;
  const [group, groups] = groupsOf(names);
  const hcols = names.flatMap((name, i) =>
    name.toLowerCase().startsWith("header_") && name.length > 7 ? [[i, name.slice(7)] as const] : [],
  );
  const [hgroup, hgroups] = groupsOf(hcols.map(([, h]) => h));
  const keys = names.map(keyOf);
  const headerCols = hcols.map(([i, h], k) => [i, keyOf(h), firstKeyOf(h), hgroup[k] as number] as const);
  const at = {} as Record<Column, number[]>;
  for (const c of COLUMNS) at[c] = names.flatMap((n, i) => (n === c ? [i] : []));
  layout = {
    keys,
    firstKeys: names.map(firstKeyOf),
    group,
    headerCols,
    toCols: hcols.filter(([, h]) => h === "To").map(([i]) => i),
    at,
    keyBytes: [...keys, ...headerCols.map(([, k]) => k)].reduce((sum, k) => sum + k.bytes.length, 0),
    direct: !names.some(isIndex) && !hcols.some(([, h]) => isIndex(h)) && groups <= 31 && hgroups <= 31,
  };
  layouts.set(header, layout);
  return layout;
}

/** How many events took each path (tests and the benchmark check that the byte path is the usual one). */
export const encodePaths = { bytes: 0, object: 0 };

/** Field spans of the record being encoded (one record at a time: encoding is synchronous). */
const spans = new FieldSpans();

/** Index of the first of `positions` whose field has a value, or -1. */
function firstFilled(positions: readonly number[]): number {
  const { from, to } = spans;
  for (const i of positions) if ((to[i] as number) > (from[i] as number)) return i;
  return -1;
}

/**
 * The start of the `bounce` object (hard … smtpCode) for a classification and a bounceCat. The
 * classifier hands out one object per distinct result, so this is built once per result and
 * category rather than once per record. The last category asked for is checked first: most records
 * of a result carry the same one.
 */
const bounceJson = new KeyedMemo<Classification, string | undefined, Piece>(64);

function bouncePrefix(c: Classification, category: string | undefined): Piece {
  const known = bounceJson.get(c, category);
  if (known !== undefined) return known;
  const bytes = bounceBytes(c, category);
  // Owned: the category is a slice of the record's text, which the memo would otherwise keep alive.
  bounceJson.set(c, category === undefined ? undefined : ownString(category), bytes);
  return bytes;
}

function bounceBytes(c: Classification, category: string | undefined): Piece {
  const s = JSON.stringify;
  let json = `,"bounce":{"hard":${c.hard},"permanent":${c.permanent},"reason":${s(c.reason)},"action":${s(c.action)},"scope":${s(c.scope)},"evidence":${s(c.evidence)},"confidence":${s(c.confidence)},"provider":${s(c.provider)}`;
  if (category !== undefined) json += `,"category":${s(category)}`;
  if (c.status !== undefined) json += `,"status":${s(c.status)}`;
  if (c.statusText !== undefined) json += `,"statusText":${s(c.statusText)}`;
  if (c.smtpCode !== undefined) json += `,"smtpCode":${s(c.smtpCode)}`;
  return piece(json);
}

/** `},"source":{"host":…,"file":…,"offset":`: closes `fields` and opens `source`, per context. */
const sourceJson = new WeakMap<EventContext, Piece>();

function sourceOf(ctx: EventContext): Piece {
  let source = sourceJson.get(ctx);
  if (source === undefined) {
    source = piece(
      `},"source":{"host":${JSON.stringify(ctx.host)},"file":${JSON.stringify(ctx.file)},"offset":`,
    );
    sourceJson.set(ctx, source);
  }
  return source;
}

/**
 * Writes the recipient's domain from the recipient's bytes when they already are the domain as
 * domainOf gives it (lower case, nothing to trim): the usual case, and no string to encode.
 */
function writeDomain(w: EventWriter, src: Uint8Array, from: number, to: number, domain: string): void {
  let at = to - 1;
  while (at >= from && src[at] !== 0x40) at--;
  let plain = at >= from && to - at - 1 === domain.length && src[to - 1] !== 0x2e;
  for (let i = at + 1; plain && i < to; i++) {
    const b = src[i] as number;
    plain = (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x2e || b === 0x2d;
  }
  if (plain) w.csv(src, at + 1, to);
  else w.str(domain);
}

/** `{"id":"<fileKey>:` for the last file key: it changes only from file to file. */
let lastFileKey: string | undefined;
let lastIdPrefix: Piece = piece("");

function idPrefix(fileKey: string): Piece {
  if (fileKey !== lastFileKey) {
    lastFileKey = fileKey;
    lastIdPrefix = piece(`{"id":${JSON.stringify(`${fileKey}:`).slice(0, -1)}`);
  }
  return lastIdPrefix;
}

const KIND: Readonly<Record<EventKind, Piece>> = {
  bounce: piece('","kind":"bounce","recordType":'),
  complaint: piece('","kind":"complaint","recordType":'),
  deferral: piece('","kind":"deferral","recordType":'),
  delivery: piece('","kind":"delivery","recordType":'),
  other: piece('","kind":"other","recordType":'),
};
const TIME = piece(',"time":');
const QUEUED_AT = piece(',"queuedAt":');
const SENDER = piece(',"sender":');
const RECIPIENT = piece(',"recipient":');
const RECIPIENT_DOMAIN = piece(',"recipientDomain":');
const DIAGNOSTIC = piece(',"diagnostic":');
const REMOTE_MTA = piece(',"remoteMta":');
const REMOTE_IP = piece(',"remoteIp":');
const DSN_ACTION = piece(',"dsnAction":');
const COMPLAINT = piece(',"complaint":{');
const COMPLAINT_KEYS = COMPLAINT_FIELDS.map(([key]) => piece(`,"${key}":`));
const COMPLAINT_FIRST_KEYS = COMPLAINT_FIELDS.map(([key]) => piece(`"${key}":`));
const JOB_ID = piece(',"jobId":');
const VMTA = piece(',"vmta":');
const HEADERS = piece(',"headers":{');
const FIELDS = piece(',"fields":{');
const CLOSE = 0x7d;

/**
 * The record encodeEvent is writing, for the helpers below: plain functions over module state, not
 * closures made per record (five of them with their context were ~0.3 KB allocated a record).
 * encodeEvent is never re-entered, and each call sets both before any helper runs.
 */
const current: { src: Buffer; header: Header | undefined } = {
  src: Buffer.alloc(0),
  header: undefined,
};

/** Field i of the current record as a string (classifier input, metrics labels). */
function text(i: number): string {
  return spans.text(current.src, i);
}

/** The first non-empty value of the columns named `name`, as a string. */
function get(name: string): string | undefined {
  const i = firstFilled((current.header as Header).positionsOf(name));
  return i < 0 ? undefined : text(i);
}

/** Field i's value as a JSON string, copied from the current record's bytes. */
function field(w: EventWriter, i: number): void {
  const from = spans.from[i] as number;
  const to = spans.to[i] as number;
  if (spans.clean[i] === 1) w.copy(current.src, from, to);
  else w.csv(current.src, from, to);
}

const logged = new TimeJson();
const queued = new TimeJson();

export function encodeEvent(record: DecodedRecord, ctx: EventContext, w: EventWriter): EncodedEvent {
  const { header, bytes: src } = record;
  const layout = layoutOf(header);
  // The three warnings only a split can show (quoting, encoding, column count) are checked here from
  // the bytes: a plain record's `values` and `warnings` are never worked out on this path.
  if (!layout.direct || !record.plain) return viaObject(record, ctx, w);
  const count = spans.split(src);
  if (count !== header.width || ((spans.high & 0x80) !== 0 && !isUtf8(src))) return viaObject(record, ctx, w);
  const { from, to, clean } = spans;
  current.src = src;
  current.header = header;

  // Everything that could add a warning is settled before a byte is written: such records take the
  // object path, which words the warnings.
  const { at } = layout;
  const loggedAt = firstFilled(at.timeLogged);
  if (loggedAt < 0) return viaObject(record, ctx, w);
  if (!logged.read(src, from[loggedAt] as number, to[loggedAt] as number, text, loggedAt))
    return viaObject(record, ctx, w);
  const queuedAt = firstFilled(at.timeQueued);
  if (queuedAt >= 0 && !queued.read(src, from[queuedAt] as number, to[queuedAt] as number, text, queuedAt))
    return viaObject(record, ctx, w);

  const type = record.type;
  const dsnAction = get("dsnAction");
  const kind = kindOf(type, dsnAction);
  const rcptAt = firstFilled(at.rcpt);
  let recipient: string | undefined;
  if (rcptAt >= 0) recipient = text(rcptAt);
  else if (kind === "complaint") {
    // FBL reports often carry no rcpt; the original To: header is the next best thing (buildEvent).
    const toAt = firstFilled(layout.toCols);
    recipient = toAt < 0 ? undefined : addressIn(text(toAt));
  }
  const recipientDomain = domainOf(recipient);
  let bounce: BounceSignals | undefined;
  const diagAt = firstFilled(at.dsnDiag);
  // dsnMta in its usual form is read from the bytes: the host (the classifier's provider key) as a
  // slice, host and IP written as copies; any other form is parsed as text (classifyBounce).
  const mtaAt = firstFilled(at.dsnMta);
  let mtaOpen = -1;
  if (kind === "bounce" || kind === "deferral") {
    if (mtaAt >= 0 && clean[mtaAt] === 1)
      mtaOpen = plainMtaAt(src, from[mtaAt] as number, to[mtaAt] as number);
    // The diagnostic's cache key hashed from its bytes (normalizedHashBytes): no walk over its text.
    let diagHash: number | undefined;
    let diagCheck: number | undefined;
    if (diagAt >= 0) {
      diagHash = normalizedHashBytes(src, from[diagAt] as number, to[diagAt] as number);
      diagCheck = lastCheckHash();
    }
    const mtaHost = mtaOpen < 0 ? undefined : spans.ascii(src, from[mtaAt] as number, mtaOpen - 1);
    bounce = classifyBounce(
      get,
      type,
      dsnAction,
      recipientDomain,
      ctx.classifier,
      diagHash,
      diagCheck,
      mtaHost,
      true,
    );
    if (bounce.dsnStatus === undefined && diagAt < 0) return viaObject(record, ctx, w);
  }

  const bouncePart = bounce === undefined ? undefined : bouncePrefix(bounce.c, bounce.bounceCat);
  const source = sourceOf(ctx);
  const id = idPrefix(record.fileKey);
  // Each byte of the record lands in the event a few times at most (a field, a top-level copy, a
  // lower-cased domain, a header To: also read as the recipient), each at most 6 bytes escaped.
  w.begin(
    24 * src.length +
      layout.keyBytes +
      id.bytes.length +
      source.bytes.length +
      (bouncePart?.bytes.length ?? 0) +
      512,
    src,
  );
  w.raw(id);
  w.int(record.offset);
  w.raw(KIND[kind]);
  field(w, 0);
  w.raw(TIME);
  w.words(logged.words, logged.length);
  if (queuedAt >= 0) {
    w.raw(QUEUED_AT);
    w.words(queued.words, queued.length);
  }
  const origAt = firstFilled(at.orig);
  if (origAt >= 0) {
    w.raw(SENDER);
    field(w, origAt);
  }
  if (rcptAt >= 0) {
    w.raw(RECIPIENT);
    field(w, rcptAt);
  } else if (recipient !== undefined) {
    w.raw(RECIPIENT);
    w.str(recipient);
  }
  if (recipientDomain !== undefined) {
    w.raw(RECIPIENT_DOMAIN);
    if (rcptAt >= 0) writeDomain(w, src, from[rcptAt] as number, to[rcptAt] as number, recipientDomain);
    else w.str(recipientDomain);
  }
  if (bounce !== undefined && bouncePart !== undefined) {
    w.raw(bouncePart);
    if (diagAt >= 0) {
      w.raw(DIAGNOSTIC);
      field(w, diagAt);
    }
    const mta = bounce.mta;
    if (mtaOpen >= 0) {
      w.raw(REMOTE_MTA);
      w.copy(src, from[mtaAt] as number, mtaOpen - 1);
      w.raw(REMOTE_IP);
      w.copy(src, mtaOpen + 1, (to[mtaAt] as number) - 1);
    }
    if (mta?.host !== undefined) {
      w.raw(REMOTE_MTA);
      w.str(mta.host);
    }
    if (mta?.ip !== undefined) {
      w.raw(REMOTE_IP);
      w.str(mta.ip);
    }
    const actionAt = firstFilled(at.dsnAction);
    if (actionAt >= 0) {
      w.raw(DSN_ACTION);
      field(w, actionAt);
    }
    w.byte(CLOSE);
  } else if (kind === "complaint") {
    w.raw(COMPLAINT);
    let first = true;
    COMPLAINT_FIELDS.forEach(([, columns], k) => {
      const value = firstOf(get, columns);
      if (value === undefined) return;
      w.raw((first ? COMPLAINT_FIRST_KEYS[k] : COMPLAINT_KEYS[k]) as Piece);
      w.str(value);
      first = false;
    });
    w.byte(CLOSE);
  }
  const jobAt = firstFilled(at.jobId);
  if (jobAt >= 0) {
    w.raw(JOB_ID);
    field(w, jobAt);
  }
  const vmtaAt = firstFilled(at.vmta);
  if (vmtaAt >= 0) {
    w.raw(VMTA);
    field(w, vmtaAt);
  }

  // headers: the first non-empty value of each name, in the order the names first got one.
  let open = false;
  let hseen = 0;
  for (const [i, key, firstKey, g] of layout.headerCols) {
    if ((to[i] as number) === (from[i] as number)) continue;
    if (g >= 0) {
      if ((hseen & (1 << g)) !== 0) continue;
      hseen |= 1 << g;
    }
    if (open) w.raw(key);
    else {
      w.raw(HEADERS);
      w.raw(firstKey);
      open = true;
    }
    field(w, i);
  }
  if (open) w.byte(CLOSE);

  w.raw(FIELDS);
  const { keys, firstKeys, group } = layout;
  // `fields: unmapped`: a column the event already carries is left out. Times were read (else the
  // object path), so only the bounce-dependent columns depend on the record.
  const mapped = ctx.fields === "unmapped" ? mappedColumnsOf(header) : undefined;
  let first = true;
  let seen = 0;
  for (let i = 0; i < count; i++) {
    if ((to[i] as number) === (from[i] as number)) continue;
    if (mapped !== undefined) {
      const m = mapped[i] as number;
      if (m !== KEEP && (m !== IF_BOUNCE || bounce !== undefined)) continue;
    }
    const g = group[i] as number;
    if (g >= 0) {
      if ((seen & (1 << g)) !== 0) continue;
      seen |= 1 << g;
    }
    w.raw((first ? firstKeys[i] : keys[i]) as Piece);
    first = false;
    field(w, i);
  }
  w.raw(source);
  w.int(record.offset);
  w.byte(CLOSE);
  w.byte(CLOSE);
  // Only a wrong size bound lands here; the object path writes the same event without one.
  if (!w.finish()) return viaObject(record, ctx, w);
  encodePaths.bytes++;
  return new EncodedEvent(
    w.lastSlab,
    w.lastStart,
    w.lastEnd,
    kind,
    type,
    recipientDomain,
    vmtaAt < 0 ? undefined : text(vmtaAt),
    jobAt < 0 ? undefined : text(jobAt),
    bounce?.c,
    undefined,
  );
}

/** The reference path: records with warnings, lenient CSV, odd names. */
function viaObject(record: DecodedRecord, ctx: EventContext, w: EventWriter): EncodedEvent {
  encodePaths.object++;
  const e = buildEvent(record, ctx);
  const get = (name: string): string | undefined => record.header.get(record.values, name);
  // The classifier's cached object (buildEvent copied its members), which the metrics key on.
  const c =
    e.bounce === undefined
      ? undefined
      : classifyBounce(get, e.recordType, get("dsnAction"), e.recipientDomain, ctx.classifier).c;
  w.write(JSON.stringify(e));
  return new EncodedEvent(
    w.lastSlab,
    w.lastStart,
    w.lastEnd,
    e.kind,
    e.recordType,
    e.recipientDomain,
    e.vmta,
    e.jobId,
    c,
    e.warnings,
  );
}
