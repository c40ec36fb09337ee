import {
  type ParsedDiag,
  type ParsedStatus,
  parseDsnDiag,
  parseDsnMta,
  parseDsnStatus,
} from "../decode/field-values.js";
import { ownString } from "../decode/own-string.js";
import type { OperatorRule } from "./operator-rules.js";
import { type Provider, providerOf } from "./providers.js";
import {
  BOUNCE_CATEGORY_HINTS,
  PHRASE_RULES,
  PROVIDER_RULES,
  STATUS_RULES,
  STATUS_RULES_BY_CLASS,
  STATUS_SUBJECT_RULES,
} from "./rules.js";
import { type Action, REASON_INFO, type Reason, type Scope } from "./taxonomy.js";

/** What the classifier reads: the accounting fields, as written. */
export interface ClassifyInput {
  readonly type?: string;
  readonly dsnStatus?: string;
  readonly dsnDiag?: string;
  readonly bounceCat?: string;
  readonly dsnAction?: string;
  readonly dsnMta?: string;
  /** Host part of dsnMta in lower case, when the caller has parsed it already (spares a parse). */
  readonly mtaHost?: string;
  readonly recipientDomain?: string;
  /**
   * normalizedHashBytes of dsnDiag and the check hash it left (lastCheckHash), when the caller
   * hashed the diagnostic's bytes itself; the classifier then does not walk the text.
   */
  readonly diagHash?: number;
  readonly diagCheck?: number;
  /**
   * The record's columns by name, for dsnDiag when it is not given (with diagHash): the text is then
   * made only if the cache misses. A hit needs the hashes, not the text, and a 60–100-byte string
   * made per record to be thrown away cost ~0.1 µs and GC.
   */
  readonly column?: (name: string) => string | undefined;
}

export type Confidence = "high" | "medium" | "low";

export interface Classification {
  readonly reason: Reason;
  /** The address is bad and should be suppressed. Never true for a deferral or a 4xx reply. */
  readonly hard: boolean;
  /** SMTP class 5. */
  readonly permanent: boolean;
  readonly action: Action;
  readonly scope: Scope;
  /** Which rule decided: `provider:gmail-nonexistent`, `phrase:user-unknown`, `status:5.1.1`, ... */
  readonly evidence: string;
  readonly confidence: Confidence;
  readonly provider: Provider;
  /** Enhanced status code used (`5.1.1`), from dsnStatus or, when that is x.0.0 or absent, the text. */
  readonly status?: string;
  readonly statusText?: string;
  readonly smtpCode?: number;
}

export interface ClassifierOptions {
  /** Operator rules; they win over every built-in rule. */
  readonly rules?: readonly OperatorRule[];
  /** Entries in the result cache keyed by normalized diagnostic, at most (0 disables it). */
  readonly cacheSize?: number;
}

interface Decision {
  readonly reason: Reason;
  readonly evidence: string;
  readonly confidence: Confidence;
  readonly hard?: boolean;
}

/**
 * Decision order (bounce-taxonomy.md §6.1): record type; operator rules; provider rules; generic
 * phrases; a specific enhanced status code; PowerMTA's bounceCat as a hint; the reply class last.
 * The diagnostic text is the main signal because the code is often generic (5.0.0 with a
 * "no such user" text) or misused (5.1.1 on a spam block).
 */
export class Classifier {
  private readonly rules: readonly OperatorRule[];
  private readonly cacheSize: number;
  /**
   * Normalized-diagnostic hash → the entries with that hash (collisions are told apart by content),
   * in two generations of at most cacheSize/2 entries each: new entries go into `cache`; when it is
   * full it becomes `older` and the one before is dropped. An entry found in `older` moves back into
   * `cache`, so replies still in use survive a turn and memory stays bounded without tracking
   * recency per hit. (Starting over with one map at 20,000 entries grew the steady daemon's heap by
   * ~12 MB over ten minutes, then threw away every hot entry at once.)
   */
  private cache = new Map<number, CacheEntry[]>();
  private older = new Map<number, CacheEntry[]>();
  private cached = 0;
  private readonly mxProviders = new Map<string, Provider>();
  private readonly domainProviders = new Map<string, Provider>();
  /** Distinct results by content (shared()). */
  private readonly results = new Map<string, Classification>();
  hits = 0;
  misses = 0;

  constructor(options: ClassifierOptions = {}) {
    this.rules = options.rules ?? [];
    this.cacheSize = options.cacheSize ?? 10_000;
  }

  classify(input: ClassifyInput): Classification {
    const type = (input.type ?? "b").toLowerCase();
    const provider = this.providerFor(input.dsnMta, input.mtaHost, input.recipientDomain);
    if (this.cacheSize === 0) return this.decide(type, provider, input);
    // Looked up before any parsing, and without building a key string: most replies repeat, so the
    // hit path is a hash over the diagnostic as normalizeForKey would write it, then comparisons.
    const keyType = type === "tq" ? "t" : type;
    const status = input.dsnStatus ?? "";
    const action = input.dsnAction ?? "";
    const category = input.bounceCat ?? "";
    const diag = input.dsnDiag ?? "";
    // Cut to V8's small-integer range: a larger number is a heap object, and Map.get on one cost
    // more than the rest of a cache hit. Collisions are told apart by the check hash as before.
    const prehashed = input.diagHash !== undefined && input.diagCheck !== undefined;
    const hash = (prehashed ? (input.diagHash as number) : normalizedHash(diag)) & 0x3fffffff;
    const check = prehashed ? (input.diagCheck as number) : secondHash;
    const hit = find(this.cache.get(hash), check, keyType, status, action, category, provider);
    if (hit !== undefined) {
      this.hits++;
      return hit.result;
    }
    const old = find(this.older.get(hash), check, keyType, status, action, category, provider);
    if (old !== undefined) {
      this.hits++;
      this.remember(hash, old);
      return old.result;
    }
    this.misses++;
    const full =
      input.dsnDiag === undefined && input.column !== undefined
        ? { ...input, dsnDiag: input.column("dsnDiag") }
        : input;
    const result = this.decide(type, provider, full);
    // The entry outlives the record: nothing in it may be a slice of the record's text (intern).
    const kept = this.shared(result);
    this.remember(hash, {
      type: keyType,
      status: intern(status),
      action: intern(action),
      category: intern(category),
      provider,
      check,
      result: kept,
    });
    return kept;
  }

  /**
   * One object for each distinct result, owned (see ownResult). Thousands of cache entries — one per
   * normalized reply — come to a few hundred distinct results, and what is derived from a result is
   * memoised by its identity (the event's `bounce` bytes, the metrics labels): a copy per entry kept
   * ~5,400 prefixes of ~250 bytes, each in a buffer of its own, alive through a catch-up (6.5 MB of
   * native memory in a heap snapshot).
   */
  private shared(result: Classification): Classification {
    // Every member, unambiguously (operator rules put any text in `evidence`); on a miss only.
    const key = JSON.stringify(result);
    const known = this.results.get(key);
    if (known !== undefined) return known;
    const own = ownResult(result);
    // Bounded like the cache: results already handed out stay valid, they are only no longer shared.
    if (this.results.size >= this.cacheSize) this.results.clear();
    this.results.set(ownString(key), own);
    return own;
  }

  private remember(hash: number, entry: CacheEntry): void {
    if (this.cached >= this.cacheSize / 2) {
      this.older = this.cache;
      this.cache = new Map();
      this.cached = 0;
    }
    const list = this.cache.get(hash);
    if (list === undefined) this.cache.set(hash, [entry]);
    else list.push(entry);
    this.cached++;
  }

  private providerFor(
    dsnMta: string | undefined,
    mtaHost: string | undefined,
    recipientDomain: string | undefined,
  ): Provider {
    // The MX decides when it belongs to a provider; only otherwise does the recipient domain count.
    // Keyed by host: `mx1.example.com (192.0.2.7)` comes with many IPs but few host names.
    const host = mtaHost ?? (dsnMta === undefined || dsnMta === "" ? undefined : parseDsnMta(dsnMta)?.host);
    if (host !== undefined) {
      let byMx = this.mxProviders.get(host);
      if (byMx === undefined) {
        byMx = providerOf(host, undefined);
        if (this.mxProviders.size >= 50_000) this.mxProviders.clear();
        this.mxProviders.set(ownString(host), byMx);
      }
      if (byMx !== "other") return byMx;
    }
    if (recipientDomain === undefined) return "other";
    let byDomain = this.domainProviders.get(recipientDomain);
    if (byDomain === undefined) {
      byDomain = providerOf(undefined, recipientDomain);
      if (this.domainProviders.size >= 50_000) this.domainProviders.clear();
      this.domainProviders.set(ownString(recipientDomain), byDomain);
    }
    return byDomain;
  }

  private decide(type: string, provider: Provider, input: ClassifyInput): Classification {
    const status = parseDsnStatus(input.dsnStatus);
    const diag = parseDsnDiag(input.dsnDiag);
    const code = effectiveCode(status, diag);
    const cls = replyClass(status, diag, code);
    const permanent = cls === 5;
    const deferral =
      type === "t" || type === "tq" || (input.dsnAction ?? "").toLowerCase() === "delayed" || type === "rs";

    let decision: Decision;
    if (type === "f") decision = { reason: "complaint", evidence: "type:f", confidence: "high" };
    else if (type === "d") decision = { reason: "delivered", evidence: "type:d", confidence: "high" };
    else decision = this.decideBounce(diag, code, cls, provider, input.bounceCat, input.dsnDiag ?? "");

    const info = REASON_INFO[decision.reason];
    let hard = decision.hard ?? (info.hard === true || (info.hard === "if-permanent" && permanent));
    let action = info.action;
    if (deferral) hard = false;
    if (decision.hard !== undefined && !deferral)
      action = decision.hard ? "suppress" : action === "suppress" ? "retry" : action;
    else if (action === "suppress" && !hard && decision.reason !== "complaint") action = "retry";

    return {
      reason: decision.reason,
      hard,
      permanent,
      action,
      scope: info.scope,
      evidence: decision.evidence,
      confidence: decision.confidence,
      provider,
      ...(code === undefined ? {} : { status: code }),
      // PowerMTA's text describes the code it wrote; when the reply's more specific code replaced a
      // generic X.0.0 ("5.0.0 (undefined status)" next to "#5.1.1"), that text would mislabel it.
      ...(status?.text === undefined || status.code !== code ? {} : { statusText: status.text }),
      ...(diag?.smtpCode === undefined ? {} : { smtpCode: diag.smtpCode }),
    };
  }

  private decideBounce(
    diag: ParsedDiag | undefined,
    code: string | undefined,
    cls: 2 | 4 | 5 | undefined,
    provider: Provider,
    bounceCat: string | undefined,
    rawDiag: string,
  ): Decision {
    const text = diag?.text ?? "";
    for (const rule of this.rules) {
      if (rule.test(rawDiag) || (code !== undefined && rule.test(`${code} ${text}`))) {
        const reason = rule.reason ?? builtinDecision(diag, code, cls, provider, bounceCat).reason;
        return {
          reason,
          evidence: `operator:${rule.source}`,
          confidence: "high",
          ...(rule.hard === undefined ? {} : { hard: rule.hard }),
        };
      }
    }
    return builtinDecision(diag, code, cls, provider, bounceCat);
  }
}

function builtinDecision(
  diag: ParsedDiag | undefined,
  code: string | undefined,
  cls: 2 | 4 | 5 | undefined,
  provider: Provider,
  bounceCat: string | undefined,
): Decision {
  const text = diag?.text ?? "";
  if (text !== "") {
    if (provider !== "other") {
      for (const rule of PROVIDER_RULES) {
        if (rule.provider !== provider || (rule.cls !== undefined && rule.cls !== cls)) continue;
        if (rule.pattern.test(text))
          return { reason: rule.reason, evidence: `provider:${rule.id}`, confidence: "high" };
      }
    }
    for (const rule of PHRASE_RULES) {
      if (rule.cls !== undefined && rule.cls !== cls) continue;
      if (rule.pattern.test(text))
        return { reason: rule.reason, evidence: `phrase:${rule.id}`, confidence: "high" };
    }
  }

  if (code !== undefined) {
    const [c, subject, detail] = code.split(".") as [string, string, string];
    const reason =
      STATUS_RULES_BY_CLASS.get(code) ??
      STATUS_RULES.get(`${subject}.${detail}`) ??
      vendorCode(code) ??
      STATUS_SUBJECT_RULES.get(subject);
    if (reason !== undefined && !(subject === "0" && detail === "0") && c !== "2") {
      return { reason, evidence: `status:${code}`, confidence: "medium" };
    }
  }

  if (bounceCat !== undefined && bounceCat !== "") {
    const hint = BOUNCE_CATEGORY_HINTS.get(bounceCat.toLowerCase());
    if (hint !== undefined) return { reason: hint, evidence: `bounceCat:${bounceCat}`, confidence: "low" };
  }

  return { reason: "unknown", evidence: cls === undefined ? "none" : `class:${cls}`, confidence: "low" };
}

/** Microsoft's codes outside the registry, by range. */
function vendorCode(code: string): Reason | undefined {
  const m = /^([45])\.7\.(\d{3})$/.exec(code);
  if (m === null) return undefined;
  const n = Number(m[2]);
  if (n >= 650 && n <= 651) return "sender_reputation";
  if (n >= 500 && n <= 699) return "sender_blocklisted";
  return "policy_rejected";
}

/** dsnStatus, unless it is missing or only says the class (x.0.0): then the code found in the text. */
function effectiveCode(status: ParsedStatus | undefined, diag: ParsedDiag | undefined): string | undefined {
  if (status !== undefined && !(status.subject === 0 && status.detail === 0)) return status.code;
  return diag?.enhanced ?? status?.code;
}

function replyClass(
  status: ParsedStatus | undefined,
  diag: ParsedDiag | undefined,
  code: string | undefined,
): 2 | 4 | 5 | undefined {
  if (status !== undefined) return status.cls;
  if (diag?.smtpCode !== undefined) return Math.floor(diag.smtpCode / 100) as 2 | 4 | 5;
  if (code !== undefined) return Number(code[0]) as 2 | 4 | 5;
  return undefined;
}

interface CacheEntry {
  readonly type: string;
  readonly status: string;
  readonly action: string;
  readonly category: string;
  readonly provider: Provider;
  /**
   * A second, independent 32-bit hash of normalizeForKey(dsnDiag). Two different diagnostics pass as
   * the same only if both hashes collide (about 2^-64 a pair); comparing the normalized text instead
   * cost a second walk over the diagnostic on every hit.
   */
  readonly check: number;
  readonly result: Classification;
}

/** The entry of `bucket` for this reply, if any: same check hash, type, status, action, category, provider. */
function find(
  bucket: readonly CacheEntry[] | undefined,
  check: number,
  type: string,
  status: string,
  action: string,
  category: string,
  provider: Provider,
): CacheEntry | undefined {
  if (bucket === undefined) return undefined;
  for (const e of bucket) {
    if (
      e.check === check &&
      e.type === type &&
      e.status === status &&
      e.action === action &&
      e.category === category &&
      e.provider === provider
    )
      return e;
  }
  return undefined;
}

/** A classification with strings of its own (see ownString). */
function ownResult(c: Classification): Classification {
  return {
    ...c,
    evidence: intern(c.evidence),
    ...(c.status === undefined ? {} : { status: intern(c.status) }),
    ...(c.statusText === undefined ? {} : { statusText: intern(c.statusText) }),
  };
}

/**
 * One owned copy (ownString) of each distinct status, action, category and evidence text, shared by
 * every cache entry that holds it: thousands of entries carry a few hundred distinct values.
 */
const interned = new Map<string, string>();

function intern(s: string): string {
  const known = interned.get(s);
  if (known !== undefined) return known;
  const own = ownString(s);
  if (interned.size >= 20_000) interned.clear();
  interned.set(own, own);
  return own;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** The other hash of the last normalizedHash() call (see CacheEntry.check). */
let secondHash = 0;

/** The check hash of the last normalizedHash() or normalizedHashBytes() call. */
export function lastCheckHash(): number {
  return secondHash;
}

/** Both hashes of the last normalizedHash() call: FNV-1a, then the check hash. For tests. */
export function lastHashes(): [number, number] {
  return [lastFirstHash, secondHash];
}
let lastFirstHash = 0;

const CHECK_SEED = 0x9747b28c;

const mixCheck = (h: number, c: number): number => {
  const x = Math.imul(h ^ c, 0x5bd1e995);
  return x ^ (x >>> 15);
};

/**
 * The cache's hashes of normalizeForKey(text), in one pass and without building that string: FNV-1a
 * (returned, the Map key) and a murmur-style check hash (left in secondHash). Each token is hashed as
 * it is scanned; when its end shows it is blanked (`@`, `#`), the hashes restart from before it.
 */
export function normalizedHash(text: string): number {
  let h = FNV_OFFSET;
  let g = CHECK_SEED;
  let h0 = h;
  let g0 = g;
  let at = false;
  let digits = 0;
  let length = 0;
  const n = text.length;
  // One more turn than characters: the end of the text ends the last token like a space.
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 0x20;
    if (c !== 0x20) {
      if (c === 0x40) at = true;
      else if (c >= 0x30 && c <= 0x39) digits++;
      length++;
      h = Math.imul(h ^ c, FNV_PRIME);
      g = mixCheck(g, c);
      continue;
    }
    const blank = blankOf(at, digits, length);
    if (blank !== 0) {
      h = Math.imul(h0 ^ blank, FNV_PRIME);
      g = mixCheck(g0, blank);
    }
    h = Math.imul(h ^ 0x20, FNV_PRIME);
    g = mixCheck(g, 0x20);
    h0 = h;
    g0 = g;
    at = false;
    digits = 0;
    length = 0;
  }
  secondHash = g >>> 0;
  lastFirstHash = h >>> 0;
  return lastFirstHash;
}

/**
 * normalizedHash of a CSV field's value from its bytes (`src[from, to)`, inside the quotes of a
 * quoted field, where `""` stands for one quote), for the event writer's byte path: no string of the
 * diagnostic is walked (typed-array reads: ~0.55 vs ~0.8 µs for the benchmark's 128-character
 * replies). Bytes ≥ 0x80 are hashed as UTF-8 bytes, not as the UTF-16 units normalizedHash sees, so
 * a non-ASCII reply gets a different key on the two paths: two cache entries for it, both right.
 * The same loop as normalizedHash's, written out again on purpose: sharing it through a state object
 * with a per-character method measured ~50 % slower (1.13 vs 0.75 µs a reply).
 */
export function normalizedHashBytes(src: Uint8Array, from: number, to: number): number {
  let h = FNV_OFFSET;
  let g = CHECK_SEED;
  let h0 = h;
  let g0 = g;
  let at = false;
  let digits = 0;
  let length = 0;
  for (let i = from; i <= to; i++) {
    const c = i < to ? (src[i] as number) : 0x20;
    if (c !== 0x20) {
      if (c === 0x40) at = true;
      else if (c >= 0x30 && c <= 0x39) digits++;
      // Inside a well-formed quoted field every quote is doubled: hash one.
      else if (c === 0x22) i++;
      length++;
      h = Math.imul(h ^ c, FNV_PRIME);
      g = mixCheck(g, c);
      continue;
    }
    const blank = blankOf(at, digits, length);
    if (blank !== 0) {
      h = Math.imul(h0 ^ blank, FNV_PRIME);
      g = mixCheck(g0, blank);
    }
    h = Math.imul(h ^ 0x20, FNV_PRIME);
    g = mixCheck(g, 0x20);
    h0 = h;
    g0 = g;
    at = false;
    digits = 0;
    length = 0;
  }
  secondHash = g >>> 0;
  lastFirstHash = h >>> 0;
  return lastFirstHash;
}

/** What normalizeForKey writes for a token: `@` (0x40), `#` (0x23) or the token itself (0). */
function blankOf(at: boolean, digits: number, length: number): number {
  return at ? 0x40 : digits > 0 && (length >= 10 || digits >= 6) ? 0x23 : 0;
}

/** `@` (0x40) or `#` (0x23) when normalizeForKey blanks the token text[start, end), else 0. */
function blankedToken(text: string, start: number, end: number): number {
  let digits = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x40) return 0x40;
    if (c >= 0x30 && c <= 0x39) digits++;
  }
  return blankOf(false, digits, end - start);
}

/**
 * Addresses, IPs and queue ids differ in every reply of the same kind; the rules never depend on
 * them, so they are blanked for the cache key: a token with an `@` becomes `@`, and a token with a
 * digit that is long (ids, `[192.0.2.1]`) becomes `#`. Short tokens such as `5.7.1` or `TSS04` stay.
 */
export function normalizeForKey(text: string): string {
  let out = "";
  const n = text.length;
  let start = 0;
  while (start <= n) {
    let end = text.indexOf(" ", start);
    if (end < 0) end = n;
    const blank = blankedToken(text, start, end);
    out += blank === 0 ? `${text.slice(start, end)} ` : blank === 0x40 ? "@ " : "# ";
    start = end + 1;
  }
  return out;
}
