import {
  type ParsedDiag,
  type ParsedStatus,
  parseDsnDiag,
  parseDsnMta,
  parseDsnStatus,
} from "../decode/field-values.js";
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
  readonly recipientDomain?: string;
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
  /** Entries in the result cache keyed by normalized diagnostic (0 disables it). */
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
  private cache = new Map<string, Classification>();
  private readonly mxProviders = new Map<string, Provider>();
  private readonly domainProviders = new Map<string, Provider>();
  hits = 0;
  misses = 0;

  constructor(options: ClassifierOptions = {}) {
    this.rules = options.rules ?? [];
    this.cacheSize = options.cacheSize ?? 20_000;
  }

  classify(input: ClassifyInput): Classification {
    const type = (input.type ?? "b").toLowerCase();
    const provider = this.providerFor(input.dsnMta, input.recipientDomain);
    if (this.cacheSize === 0) return this.decide(type, provider, input);
    // Keyed before any parsing: most replies repeat, so the hit path must stay cheap.
    const key = `${type === "tq" ? "t" : type}|${input.dsnStatus ?? ""}|${input.dsnAction ?? ""}|${input.bounceCat ?? ""}|${provider}|${normalizeForKey(input.dsnDiag ?? "")}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      this.hits++;
      return cached;
    }
    this.misses++;
    const result = this.decide(type, provider, input);
    // When the cache fills, start over rather than track recency: cheap, and still bounded.
    if (this.cache.size >= this.cacheSize) this.cache = new Map();
    this.cache.set(key, result);
    return result;
  }

  private providerFor(dsnMta: string | undefined, recipientDomain: string | undefined): Provider {
    // The MX decides when it belongs to a provider; only otherwise does the recipient domain count.
    if (dsnMta !== undefined && dsnMta !== "") {
      let byMx = this.mxProviders.get(dsnMta);
      if (byMx === undefined) {
        byMx = providerOf(parseDsnMta(dsnMta)?.host, undefined);
        if (this.mxProviders.size >= 50_000) this.mxProviders.clear();
        this.mxProviders.set(dsnMta, byMx);
      }
      if (byMx !== "other") return byMx;
    }
    if (recipientDomain === undefined) return "other";
    let byDomain = this.domainProviders.get(recipientDomain);
    if (byDomain === undefined) {
      byDomain = providerOf(undefined, recipientDomain);
      if (this.domainProviders.size >= 50_000) this.domainProviders.clear();
      this.domainProviders.set(recipientDomain, byDomain);
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
      ...(status?.text === undefined ? {} : { statusText: status.text }),
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

/**
 * Addresses, IPs and queue ids differ in every reply of the same kind; the rules never depend on
 * them, so they are blanked for the cache key: a token with an `@` becomes `@`, and a token with a
 * digit that is long (ids, `[192.0.2.1]`) becomes `#`. Short tokens such as `5.7.1` or `TSS04` stay.
 */
export function normalizeForKey(text: string): string {
  let out = "";
  let start = 0;
  const n = text.length;
  while (start <= n) {
    let end = text.indexOf(" ", start);
    if (end < 0) end = n;
    let at = false;
    let digits = 0;
    for (let i = start; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x40) at = true;
      else if (c >= 0x30 && c <= 0x39) digits++;
    }
    const len = end - start;
    if (at) out += "@ ";
    else if (digits > 0 && (len >= 10 || digits >= 6)) out += "# ";
    else out += `${text.slice(start, end)} `;
    start = end + 1;
  }
  return out;
}
