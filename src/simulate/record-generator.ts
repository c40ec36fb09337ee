/**
 * Realistic PowerMTA accounting records (b, rb, f) for the simulator and the benchmarks. Everything here
 * is pure: the same Rng state, seq and time give the same row.
 *
 * Format facts follow the reference pmta-format.md (§1.2 union layout, §3 field formats, §5.2 default
 * bounce-category patterns, §6 f records). The diagnostic texts are written from general knowledge of
 * what these receivers answer; details such as reference codes and trailers are approximations, and the
 * `x-pmta;` expiry wordings are invented (PowerMTA's exact texts are not documented).
 */

import { domainToASCII } from "node:url";
import { PMTA_DEFAULT_COLUMNS } from "../decode/header.js";
import { formatCsvRow, type LineEnding } from "./csv-row.js";
import { Rng, type Weighted } from "./rng.js";

export const BOUNCES_HEADER: readonly string[] = Object.freeze([
  "type",
  "timeQueued",
  "timeLogged",
  "orig",
  "rcpt",
  "bounceCat",
  "dsnStatus",
  "dsnAction",
  "dsnDiag",
  "dsnMta",
  "jobId",
  "vmta",
  "header_X-FBLId",
]);

/** PowerMTA's default `f` field list plus the X-FBLId header column our simulator numbers records in. */
export const FBL_HEADER: readonly string[] = Object.freeze([
  ...(PMTA_DEFAULT_COLUMNS.f ?? []),
  "header_X-FBLId",
]);

export interface GeneratorOptions {
  /** Fixed UTC offset written in timeLogged/timeQueued, `+HHMM` / `-HHMM`. Default "+0000". */
  utcOffset?: string;
}

// ---------------------------------------------------------------------------------------------------
// Time

const OFFSET_RE = /^([+-])(\d{2})(\d{2})$/;

export function offsetMinutes(utcOffset: string): number {
  const m = OFFSET_RE.exec(utcOffset);
  if (m === null)
    throw new RangeError(`bad UTC offset ${JSON.stringify(utcOffset)}, expected +HHMM or -HHMM`);
  const minutes = Number(m[2]) * 60 + Number(m[3]);
  return m[1] === "-" ? -minutes : minutes;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** Wall-clock parts of `time` in the given fixed offset. */
export function localParts(time: Date, utcOffset: string): Date {
  return new Date(time.getTime() + offsetMinutes(utcOffset) * 60_000);
}

/** PowerMTA's `iso-times yes` format: `YYYY-MM-DD HH:MM:SS+HHMM`. */
export function formatPmtaTime(time: Date, utcOffset = "+0000"): string {
  const t = localParts(time, utcOffset);
  const date = `${t.getUTCFullYear()}-${pad(t.getUTCMonth() + 1)}-${pad(t.getUTCDate())}`;
  return `${date} ${pad(t.getUTCHours())}:${pad(t.getUTCMinutes())}:${pad(t.getUTCSeconds())}${utcOffset}`;
}

// ---------------------------------------------------------------------------------------------------
// Default <bounce-category-patterns> (CFG-C in pmta-format.md §5.2), matched case-insensitively against
// `<status>;<dsnDiag>`, first match wins, so the generated bounceCat is what a stock PowerMTA would write.

const CATEGORY_PATTERNS: readonly (readonly [RegExp, string])[] = (
  [
    ["spam", "spam-related"],
    ["junk mail", "spam-related"],
    ["blacklist", "spam-related"],
    ["blocked", "spam-related"],
    ["\\bU\\.?C\\.?E\\.?\\b", "spam-related"],
    ["\\bAdv(ertisements?)?\\b", "spam-related"],
    ["unsolicited", "spam-related"],
    ["\\b(open)?RBL\\b", "spam-related"],
    ["realtime blackhole", "spam-related"],
    ["http://basic.wirehub.nl/blackholes.html", "spam-related"],
    ["\\bvirus\\b", "virus-related"],
    ["message +content", "content-related"],
    ["content +rejected", "content-related"],
    ["quota", "quota-issues"],
    ["limit exceeded", "quota-issues"],
    ["mailbox +(is +)?full", "quota-issues"],
    [
      "sender ((verify|verification) failed|could not be verified|address rejected|domain must exist)",
      "invalid-sender",
    ],
    ["unable to verify sender", "invalid-sender"],
    ["requires valid sender domain", "invalid-sender"],
    ["bad sender's system address", "invalid-sender"],
    ["No MX for envelope sender domain", "invalid-sender"],
    ["^[45]\\.4\\.4", "routing-errors"],
    ["no mail hosts for domain", "invalid-sender"],
    ["Your domain has no(t)? DNS/MX entries", "invalid-sender"],
    ["REQUESTED ACTION NOT TAKEN: DNS FAILURE", "invalid-sender"],
    ["Domain of sender address", "invalid-sender"],
    ["return MX does not exist", "invalid-sender"],
    ["Invalid sender domain", "invalid-sender"],
    ["Verification failed", "invalid-sender"],
    ["\\bstorage\\b", "quota-issues"],
    [
      "(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee) (has|has been|is)? *(currently|temporarily +)?(disabled|expired|inactive|not activated)",
      "inactive-mailbox",
    ],
    ["(conta|usu.rio) inativ(a|o)", "inactive-mailbox"],
    [
      "Too many (bad|invalid|unknown|illegal|unavailable) (user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee)",
      "other",
    ],
    [
      "(No such|bad|invalid|unknown|illegal|unavailable) (local +)?(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee)",
      "bad-mailbox",
    ],
    [
      "(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee) +(\\S+@\\S+ +)?(not (a +)?valid|not known|not here|not found|does not exist|bad|invalid|unknown|illegal|unavailable)",
      "bad-mailbox",
    ],
    [
      "\\S+@\\S+ +(is +)?(not (a +)?valid|not known|not here|not found|does not exist|bad|invalid|unknown|illegal|unavailable)",
      "bad-mailbox",
    ],
    ["no mailbox here by that name", "bad-mailbox"],
    ["my badrcptto list", "bad-mailbox"],
    ["not our customer", "bad-mailbox"],
    ["no longer (valid|available)", "bad-mailbox"],
    ["have a \\S+ account", "bad-mailbox"],
    ["\\brelay(ing)?", "relaying-issues"],
    ["domain (retired|bad|invalid|unknown|illegal|unavailable)", "bad-domain"],
    ["domain no longer in use", "bad-domain"],
    ["domain (\\S+ +)?(is +)?obsolete", "bad-domain"],
    ["denied", "policy-related"],
    ["prohibit", "policy-related"],
    ["rejected", "policy-related"],
    ["refused", "policy-related"],
    ["allowed", "policy-related"],
    ["banned", "policy-related"],
    ["policy", "policy-related"],
    ["suspicious activity", "policy-related"],
    ["bad sequence", "protocol-errors"],
    ["syntax error", "protocol-errors"],
    ["\\broute\\b", "routing-errors"],
    ["\\bunroutable\\b", "routing-errors"],
    ["\\bunrouteable\\b", "routing-errors"],
    ["Invalid 7bit DATA", "content-related"],
    ["^2.\\d+.\\d+;", "success"],
    ["^[45]\\.1\\.[1346];", "bad-mailbox"],
    ["^[45]\\.1\\.2", "bad-domain"],
    ["^[45]\\.1\\.[78];", "invalid-sender"],
    ["^[45]\\.2\\.0;", "bad-mailbox"],
    ["^[45]\\.2\\.1;", "inactive-mailbox"],
    ["^[45]\\.2\\.2;", "quota-issues"],
    ["^[45]\\.3\\.3;", "content-related"],
    ["^[45]\\.3\\.5;", "bad-configuration"],
    ["^[45]\\.4\\.1;", "no-answer-from-host"],
    ["^[45]\\.4\\.2;", "bad-connection"],
    ["^[45]\\.4\\.[36];", "routing-errors"],
    ["^[45]\\.4\\.6", "routing-errors"],
    ["^[45]\\.4\\.7;", "message-expired"],
    ["^[45]\\.5\\.3;", "policy-related"],
    ["^[45]\\.5\\.\\d+;", "protocol-errors"],
    ["^[45]\\.6\\.\\d+;", "content-related"],
    ["^[45]\\.7\\.[012];", "policy-related"],
    ["^[45]\\.7\\.7;", "content-related"],
  ] as const
).map(([source, category]) => [new RegExp(source, "i"), category] as const);

/** bounceCat that PowerMTA's default pattern list assigns to a status code and dsnDiag. */
export function defaultBounceCategory(statusCode: string, dsnDiag: string): string {
  const subject = `${statusCode};${dsnDiag}`;
  for (const [re, category] of CATEGORY_PATTERNS) if (re.test(subject)) return category;
  return "other";
}

// ---------------------------------------------------------------------------------------------------
// dsnStatus descriptions: PowerMTA's own lower-case texts where the reference shows them, RFC 3463
// subject texts otherwise. Unknown details fall back to the subject's ".0" text.

const STATUS_TEXT: Readonly<Record<string, string>> = {
  "0.0": "undefined status",
  "1.0": "other address status",
  "1.1": "bad destination mailbox address",
  "1.2": "bad destination system: no such domain",
  "1.3": "bad destination mailbox address syntax",
  "1.6": "destination mailbox has moved, no forwarding address",
  "1.8": "bad sender's system address",
  "1.10": "bad destination mailbox address",
  "2.0": "other or undefined mailbox status",
  "2.1": "mailbox disabled, not accepting messages",
  "2.2": "mailbox full",
  "2.3": "message length exceeds administrative limit",
  "3.0": "unknown mail system-related status",
  "3.1": "mail system full",
  "3.2": "system not accepting network messages",
  "3.4": "message too big for system",
  "4.0": "other or undefined network or routing status",
  "4.1": "no answer from host",
  "4.2": "bad connection",
  "4.4": "unable to route",
  "4.6": "routing loop detected",
  "4.7": "delivery time expired",
  "5.0": "other or undefined protocol status",
  "5.2": "syntax error",
  "6.0": "other or undefined media error",
  "7.0": "other or undefined security status",
  "7.1": "delivery not authorized",
};

export function formatDsnStatus(code: string, text?: string): string {
  if (text !== undefined) return `${code} (${text})`;
  const [, subject = "0", detail = "0"] = code.split(".");
  const described = STATUS_TEXT[`${subject}.${detail}`] ?? STATUS_TEXT[`${subject}.0`] ?? "undefined status";
  return `${code} (${described})`;
}

const ENHANCED_RE = /^([245])\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b/;

/** Enhanced status code of an SMTP reply, or the class default PowerMTA uses when there is none. */
export function replyStatusCode(reply: string): string {
  const m = ENHANCED_RE.exec(reply);
  if (m?.[2] !== undefined) return m[2];
  return `${reply.startsWith("4") ? "4" : "5"}.0.0`;
}

// ---------------------------------------------------------------------------------------------------
// Random building blocks

const ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789";
const HEX = "0123456789abcdef";

function randomString(rng: Rng, alphabet: string, length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) s += alphabet[rng.int(0, alphabet.length - 1)];
  return s;
}

function ipIn(rng: Rng, prefixes: readonly string[]): string {
  const prefix = rng.pick(prefixes);
  const missing = 4 - prefix.split(".").length;
  const octets: number[] = [];
  for (let i = 0; i < missing; i++) octets.push(rng.int(1, 254));
  return [prefix, ...octets].join(".");
}

/** Stable pseudo-IP for a host name, so one company's MX keeps its address across records. */
function stableIp(host: string): string {
  let h = 2166136261;
  for (let i = 0; i < host.length; i++) h = Math.imul(h ^ host.charCodeAt(i), 16777619);
  h >>>= 0;
  const firsts = [62, 77, 85, 91, 109, 146, 176, 185, 193, 213, 217];
  return `${firsts[h % firsts.length]}.${(h >>> 8) & 255}.${(h >>> 16) & 255}.${((h >>> 24) % 253) + 1}`;
}

function dashed(domain: string): string {
  return domainToASCII(domain).replaceAll(".", "-");
}

const FIRST_NAMES = [
  "anna",
  "james",
  "maria",
  "lukas",
  "sophie",
  "david",
  "emma",
  "thomas",
  "laura",
  "michael",
  "julia",
  "pierre",
  "claire",
  "marco",
  "giulia",
  "jan",
  "sarah",
  "kevin",
  "nina",
  "paul",
  "olivia",
  "mehmet",
  "chloe",
  "daniel",
  "lea",
  "robert",
  "ines",
  "tom",
  "hannah",
  "luis",
];
const LAST_NAMES = [
  "schmidt",
  "miller",
  "dupont",
  "rossi",
  "garcia",
  "meyer",
  "martin",
  "jones",
  "bernard",
  "wagner",
  "smith",
  "novak",
  "kowalski",
  "leroy",
  "fischer",
  "brown",
  "petit",
  "ricci",
  "jansen",
  "walker",
  "weber",
  "moreau",
  "taylor",
  "klein",
  "lopez",
  "bauer",
  "fontaine",
  "wilson",
  "hoffmann",
  "clarke",
];
const ROLE_LOCALS = ["info", "contact", "office", "sales", "billing", "admin", "hello", "support"];
const UTF8_LOCALS = [
  "jürgen.weiß",
  "françois.dupré",
  "josé.garcía",
  "søren.nørgaard",
  "zoë.brontë",
  "łukasz.wójcik",
];

function localPart(rng: Rng, allowUtf8: boolean): string {
  if (allowUtf8 && rng.chance(0.02)) return rng.pick(UTF8_LOCALS);
  const first = rng.pick(FIRST_NAMES);
  const last = rng.pick(LAST_NAMES);
  return rng.weighted<() => string>([
    [() => `${first}.${last}`, 5],
    [() => `${first.charAt(0)}${last}${rng.int(1, 99)}`, 3],
    [() => `${first}_${last}`, 1],
    [() => `${first}${rng.int(60, 99)}`, 2],
    [() => `${last}.${first.charAt(0)}`, 1],
    [() => rng.pick(ROLE_LOCALS), 1],
  ])();
}

// ---------------------------------------------------------------------------------------------------
// Receiving systems

type Provider =
  | "gmail"
  | "microsoft"
  | "o365"
  | "yahoo"
  | "aol"
  | "icloud"
  | "gmx"
  | "webde"
  | "orange"
  | "comcast"
  | "postfix"
  | "exim"
  | "exchange"
  | "nodns"
  | "any";

interface ProviderProfile {
  readonly domains: Weighted<string>;
  readonly mx: (rng: Rng, domain: string) => readonly [host: string, ip: string];
  /** SMTPUTF8 local parts only where the receiver would plausibly accept them. */
  readonly utf8Locals: boolean;
}

const COMPANY_DOMAINS: Readonly<Record<"postfix" | "exim" | "exchange" | "o365", readonly string[]>> = {
  postfix: [
    "brightlane.de",
    "kestrel-logistics.com",
    "hollowpine.net",
    "nordhavn.dk",
    "praxis-vogel.de",
    "müller-bau.de",
  ],
  exim: [
    "studio-lumen.fr",
    "pixelforge.io",
    "tiendaluna.es",
    "alpenblick.at",
    "webhost-kunde.de",
    "bäckerei-krüger.de",
  ],
  exchange: ["harbourview.co.uk", "kleinfeld-gmbh.de", "cedarandoak.com", "moerkerke.nl"],
  o365: ["northwind-traders.com", "viveiro.pt", "bluefjord.no", "ashgrove-school.org.uk", "quantis-ag.ch"],
};

const TYPO_DOMAINS = [
  "gmial.com",
  "gmail.con",
  "hotmial.com",
  "yaho.com",
  "outlok.com",
  "gnail.com",
  "icloud.co",
];

/** Equal weights, except that IDN domains stay a small share (non-ASCII should be the exception). */
function even(items: readonly string[]): Weighted<string> {
  return items.map((d) => [d, Buffer.byteLength(d) === d.length ? 1 : 0.3] as const);
}

const PROFILES: Readonly<Record<Exclude<Provider, "any">, ProviderProfile>> = {
  gmail: {
    domains: [
      ["gmail.com", 9],
      ["googlemail.com", 1],
    ],
    mx: (rng) => [
      rng.weighted([
        ["gmail-smtp-in.l.google.com", 6],
        ["alt1.gmail-smtp-in.l.google.com", 2],
        ["alt2.gmail-smtp-in.l.google.com", 1],
      ]),
      ipIn(rng, ["142.250", "142.251", "209.85", "64.233", "74.125"]),
    ],
    utf8Locals: false,
  },
  microsoft: {
    domains: [
      ["hotmail.com", 5],
      ["outlook.com", 4],
      ["live.com", 2],
      ["msn.com", 1],
      ["hotmail.fr", 2],
      ["hotmail.co.uk", 1],
      ["outlook.de", 1],
      ["live.nl", 1],
    ],
    mx: (rng, domain) => [`${dashed(domain)}.olc.protection.outlook.com`, ipIn(rng, ["52.101", "40.92"])],
    utf8Locals: false,
  },
  o365: {
    domains: even(COMPANY_DOMAINS.o365),
    mx: (rng, domain) => [`${dashed(domain)}.mail.protection.outlook.com`, ipIn(rng, ["52.101", "104.47"])],
    utf8Locals: false,
  },
  yahoo: {
    domains: [
      ["yahoo.com", 6],
      ["yahoo.fr", 2],
      ["yahoo.co.uk", 1],
      ["ymail.com", 1],
      ["rocketmail.com", 1],
      ["yahoo.de", 1],
    ],
    mx: (rng) => [
      rng.pick(["mta5.am0.yahoodns.net", "mta6.am0.yahoodns.net", "mta7.am0.yahoodns.net"]),
      ipIn(rng, ["67.195.204", "67.195.228", "98.136.96", "98.136.103"]),
    ],
    utf8Locals: false,
  },
  aol: {
    domains: [
      ["aol.com", 5],
      ["aol.fr", 1],
      ["aim.com", 1],
      ["verizon.net", 1],
    ],
    mx: (rng) => ["mx-aol.mail.gm0.yahoodns.net", ipIn(rng, ["67.195.204", "98.136.96"])],
    utf8Locals: false,
  },
  icloud: {
    domains: [
      ["icloud.com", 6],
      ["me.com", 2],
      ["mac.com", 1],
    ],
    mx: (rng) => [
      rng.pick(["mx01.mail.icloud.com", "mx02.mail.icloud.com"]),
      ipIn(rng, ["17.57.154", "17.57.155", "17.42.251"]),
    ],
    utf8Locals: false,
  },
  gmx: {
    domains: [
      ["gmx.de", 5],
      ["gmx.net", 3],
      ["gmx.at", 1],
      ["gmx.ch", 1],
    ],
    mx: (rng) => [
      rng.pick(["mx00.emig.gmx.net", "mx01.emig.gmx.net"]),
      ipIn(rng, ["212.227.15", "212.227.17"]),
    ],
    utf8Locals: true,
  },
  webde: {
    domains: [["web.de", 1]],
    mx: (rng) => [rng.pick(["mx-ha02.web.de", "mx-ha03.web.de"]), ipIn(rng, ["212.227.15", "212.227.17"])],
    utf8Locals: true,
  },
  orange: {
    domains: [
      ["orange.fr", 3],
      ["wanadoo.fr", 2],
    ],
    mx: (rng) => ["smtp-in.orange.fr", ipIn(rng, ["193.252.22", "80.12.26", "80.12.24"])],
    utf8Locals: true,
  },
  comcast: {
    domains: [["comcast.net", 1]],
    mx: (rng) => [
      rng.pick(["mx1a1.comcast.net", "mx2c1.comcast.net"]),
      ipIn(rng, ["96.114.157", "68.87.20"]),
    ],
    utf8Locals: false,
  },
  postfix: {
    domains: even(COMPANY_DOMAINS.postfix),
    mx: (rng, domain) => {
      const host = `mx${rng.int(1, 2)}.${domainToASCII(domain)}`;
      return [host, stableIp(host)];
    },
    utf8Locals: true,
  },
  exim: {
    domains: even(COMPANY_DOMAINS.exim),
    mx: (_rng, domain) => {
      const host = `mail.${domainToASCII(domain)}`;
      return [host, stableIp(host)];
    },
    utf8Locals: true,
  },
  exchange: {
    domains: even(COMPANY_DOMAINS.exchange),
    mx: (_rng, domain) => {
      const host = `mail.${domainToASCII(domain)}`;
      return [host, stableIp(host)];
    },
    utf8Locals: false,
  },
  nodns: {
    domains: even(TYPO_DOMAINS),
    mx: () => ["", ""],
    utf8Locals: false,
  },
};

const REAL_PROVIDERS: Weighted<Exclude<Provider, "any" | "nodns">> = [
  ["gmail", 15],
  ["microsoft", 9],
  ["yahoo", 12],
  ["aol", 3],
  ["icloud", 5],
  ["gmx", 3],
  ["webde", 2],
  ["orange", 3],
  ["comcast", 3],
  ["postfix", 13],
  ["exim", 12],
  ["exchange", 5],
  ["o365", 5],
];

// ---------------------------------------------------------------------------------------------------
// Senders (the side PowerMTA delivers for)

interface Sender {
  readonly domain: string;
  readonly bounceHost: string;
  readonly fromName: string;
  readonly fromLocal: string;
  readonly vmtaPrefix: string;
  readonly ips: readonly string[];
  readonly helo: string;
}

const SENDERS: readonly Sender[] = [
  {
    domain: "shop-lumen.com",
    bounceHost: "bounce.shop-lumen.com",
    fromName: "Lumen Shop",
    fromLocal: "news",
    vmtaPrefix: "vmta-lumen",
    ips: ["203.0.113.21", "203.0.113.22", "203.0.113.23"],
    helo: "mta1.shop-lumen.com",
  },
  {
    domain: "travelnest.eu",
    bounceHost: "bnc.travelnest.eu",
    fromName: "TravelNest, Deals & Trips",
    fromLocal: "deals",
    vmtaPrefix: "vmta-tn",
    ips: ["203.0.113.41", "203.0.113.42"],
    helo: "out.travelnest.eu",
  },
  {
    domain: "kaffeehaus-berger.de",
    bounceHost: "rp.kaffeehaus-berger.de",
    fromName: "Kaffeehaus Berger",
    fromLocal: "newsletter",
    vmtaPrefix: "vmta-kb",
    ips: ["198.51.100.7", "198.51.100.8"],
    helo: "mail.kaffeehaus-berger.de",
  },
  {
    domain: "fitpulse.app",
    bounceHost: "bounce.fitpulse.app",
    fromName: "FitPulse",
    fromLocal: "coach",
    vmtaPrefix: "vmta-fp",
    ips: ["198.51.100.60", "198.51.100.61", "198.51.100.62", "198.51.100.63"],
    helo: "smtp.fitpulse.app",
  },
  {
    domain: "maison-clair.fr",
    bounceHost: "retour.maison-clair.fr",
    fromName: "Maison Clair",
    fromLocal: "bonjour",
    vmtaPrefix: "vmta-mc",
    ips: ["203.0.113.90"],
    helo: "mx-out.maison-clair.fr",
  },
];

// ---------------------------------------------------------------------------------------------------
// Diagnostic templates

interface Ctx {
  readonly rng: Rng;
  readonly rcpt: string;
  readonly domain: string;
  readonly mxHost: string;
  readonly mxIp: string;
  readonly srcIp: string;
  readonly helo: string;
  readonly orig: string;
  readonly senderDomain: string;
}

type Use = "b" | "rb" | "both";

interface Template {
  readonly provider: Provider;
  readonly weight: number;
  readonly use: Use;
  readonly kind: "smtp" | "raw";
  /** SMTP reply as PowerMTA logs it (multi-line replies joined into one line), or the whole dsnDiag (raw). */
  readonly text: (c: Ctx) => string;
  /** raw only: status code (and optional description) PowerMTA records with it. */
  readonly status?: string;
  readonly statusText?: string;
  /** A block reply that an smtp-pattern-list `bounce-queue` action plausibly fires on. */
  readonly queueWide?: boolean;
  /** No remote host was reached: dsnMta stays empty. */
  readonly noMta?: boolean;
}

interface TemplateOptions {
  readonly use?: Use;
  readonly queueWide?: boolean;
  readonly noMta?: boolean;
  readonly statusText?: string;
}

function smtp(
  provider: Provider,
  weight: number,
  text: (c: Ctx) => string,
  o: TemplateOptions = {},
): Template {
  return { provider, weight, kind: "smtp", text, use: o.use ?? "b", queueWide: o.queueWide ?? false };
}

function raw(
  provider: Provider,
  weight: number,
  status: string,
  text: (c: Ctx) => string,
  o: TemplateOptions = {},
): Template {
  return {
    provider,
    weight,
    kind: "raw",
    status,
    text,
    use: o.use ?? "b",
    noMta: o.noMta ?? false,
    ...(o.statusText === undefined ? {} : { statusText: o.statusText }),
  };
}

/** Gmail's trailing queue id; the long form is the current one, the short one is still common in archives. */
const gsmtp = (c: Ctx): string =>
  c.rng.chance(0.3)
    ? `${randomString(c.rng, HEX, 13)}-${randomString(c.rng, ALNUM, 11)}si${c.rng.int(100000, 999999)}` +
      `${randomString(c.rng, ALNUM, 3)}.${c.rng.int(1, 999)} - gsmtp`
    : `${randomString(c.rng, ALNUM, 2)}si${c.rng.int(1000000, 9999999)}${randomString(c.rng, ALNUM, 3)}.${c.rng.int(1, 999)} - gsmtp`;
const msTrailer = (c: Ctx): string =>
  `[${c.rng.pick(["BN8NAM12", "DM6NAM11", "AM4PEPF0", "SN1PEPF0", "DB5EUR03"])}FT0${c.rng.int(10, 99)}.eop-` +
  `${c.rng.pick(["nam12", "nam11", "eur03", "eur05"])}.prod.protection.outlook.com]`;
const yhost = (c: Ctx): string =>
  `mta${c.rng.int(1000, 4999)}.mail.${c.rng.pick(["gq1", "bf1", "ne1", "ir2"])}.yahoo.com`;
const resimta = (c: Ctx): string =>
  `resimta-${c.rng.pick(["po", "ch2", "a1p", "h1p"])}-${c.rng.int(1, 40)}v.sys.comcast.net`;
const nemesis = (c: Ctx): string =>
  `${c.domain === "web.de" ? "web.de" : "gmx.net"} (${c.domain === "web.de" ? "mxweb" : "mxgmx"}${c.rng.int(1, 120)})`;
const uiRef = (c: Ctx): string => randomString(c.rng, ALNUM, 8);
const orangeNode = (c: Ctx): string => `mwinf5${c.rng.pick(["c", "d"])}${c.rng.int(10, 99)}`;
const innerHost = (c: Ctx): string =>
  `${c.rng.pick(["mbox", "store", "imap"])}${c.rng.int(1, 6)}.int.${domainToASCII(c.domain)}`;
const innerIp = (c: Ctx): string => `10.${c.rng.int(0, 40)}.${c.rng.int(0, 255)}.${c.rng.int(2, 250)}`;

const GOOGLE_MORE = "For more information, go to";

const TEMPLATES: readonly Template[] = [
  // Gmail
  smtp(
    "gmail",
    14,
    (c) =>
      `550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. ${GOOGLE_MORE} https://support.google.com/mail/?p=NoSuchUser ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    5,
    (c) =>
      `550 5.2.1 The email account that you tried to reach is disabled. Learn more at https://support.google.com/mail/?p=DisabledUser ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    2,
    (c) =>
      `552 5.2.2 The recipient's inbox is out of storage space. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaPerm ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `452 4.2.2 The recipient's inbox is out of storage space and inbound mail cannot be delivered. Please try again later. ${GOOGLE_MORE} https://support.google.com/mail/?p=OverQuotaTemp ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    2,
    (c) =>
      `550 5.7.1 [${c.srcIp}] Our system has detected that this message is likely unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been blocked. ${GOOGLE_MORE} https://support.google.com/mail/?p=UnsolicitedMessageError ${gsmtp(c)}`,
    { queueWide: true },
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `550 5.7.26 Unauthenticated email from ${c.senderDomain} is not accepted due to domain's DMARC policy. Please contact the administrator of ${c.senderDomain} domain if this was a legitimate mail. To learn about the DMARC initiative, go to https://support.google.com/mail/?p=DmarcRejection ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `550 5.7.26 This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM. Authentication results: DKIM = did not pass SPF [${c.senderDomain}] with ip: [${c.srcIp}] = did not pass For instructions on setting up authentication, go to https://support.google.com/mail/answer/81126#authentication ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `421 4.7.28 [${c.srcIp} 15] Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. Please visit https://support.google.com/mail/?p=UnsolicitedRateLimitError to review our Bulk Email Senders Guidelines. ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `550 5.7.1 [${c.srcIp} 19] Our system has detected that this message is likely suspicious due to the very low reputation of the sending domain. To best protect our users from spam, the message has been blocked. Please visit https://support.google.com/mail/answer/188131 for more information. ${gsmtp(c)}`,
    { queueWide: true },
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `550 5.7.25 [${c.srcIp}] The IP address sending this message does not have a PTR record setup, or the corresponding forward DNS entry does not match the sending IP. As a policy, Gmail does not accept messages from IPs with missing PTR records. ${GOOGLE_MORE} https://support.google.com/mail/answer/81126#ip-practices ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `550 5.7.1 The user or domain that you are sending to (or from) has a policy that prohibited the mail that you sent. Please contact your domain administrator for further details. ${GOOGLE_MORE} https://support.google.com/a/answer/172179 ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `421 4.7.0 [${c.srcIp} 15] Gmail has detected that this message is likely suspicious due to the very low reputation of the sending IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited. ${GOOGLE_MORE} https://support.google.com/mail/answer/188131 ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `452 4.2.1 The user you are trying to contact is receiving mail too quickly. Please resend your message at a later time. If the user is able to receive mail at that time, your message will be delivered. ${GOOGLE_MORE} https://support.google.com/mail/?p=ReceivingRate ${gsmtp(c)}`,
  ),
  smtp(
    "gmail",
    1,
    (c) =>
      `552 5.3.4 Your message exceeded Google's message size limits. ${GOOGLE_MORE} https://support.google.com/mail/?p=MaxSizeError ${gsmtp(c)}`,
  ),

  // Microsoft consumer (Outlook.com / Hotmail)
  smtp("microsoft", 10, (c) => `550 5.5.0 Requested action not taken: mailbox unavailable. ${msTrailer(c)}`),
  smtp(
    "microsoft",
    1,
    (c) =>
      `550 5.7.1 Unfortunately, messages from [${c.srcIp}] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150). You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. ${msTrailer(c)}`,
    { queueWide: true },
  ),
  smtp(
    "microsoft",
    1,
    (c) =>
      `550 5.7.1 Unfortunately, messages from [${c.srcIp}] weren't sent. Please contact your Internet service provider. You can tell them that Hotmail does not relay dynamically-assigned IP ranges. You can also refer your provider to http://mail.live.com/mail/troubleshooting.aspx#errors. (S3140) ${msTrailer(c)}`,
  ),
  smtp(
    "microsoft",
    1,
    (c) =>
      `421 4.7.650 The mail server [${c.srcIp}] has been temporarily rate limited due to IP reputation. For e-mail delivery information, see https://postmaster.live.com (S775) ${msTrailer(c)}`,
  ),
  smtp(
    "microsoft",
    1,
    (c) =>
      `550 5.7.1 Service unavailable, Client host [${c.srcIp}] blocked using Spamhaus. To request removal from this list see https://www.spamhaus.org/query/ip/${c.srcIp} (AS3130). ${msTrailer(c)}`,
    { queueWide: true },
  ),
  smtp(
    "microsoft",
    1,
    (c) =>
      `550 5.7.515 Access denied, sending domain [${c.senderDomain.toUpperCase()}] does not meet the required authentication level. The sender's domain in the 5322.From address doesn't meet the authentication requirements defined for the sender. To learn more, visit https://aka.ms/AuthRequirements. ${msTrailer(c)}`,
  ),
  smtp("microsoft", 2, (c) => `552 5.2.2 Requested action not taken: mailbox full. ${msTrailer(c)}`),
  smtp(
    "microsoft",
    1,
    (c) =>
      `550 5.7.509 Access denied, sending domain ${c.senderDomain} does not pass DMARC verification and has a DMARC policy of reject. ${msTrailer(c)}`,
  ),
  smtp(
    "microsoft",
    1,
    (c) =>
      `550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP. For more information please go to http://go.microsoft.com/fwlink/?LinkId=526653 AS(7230) ${msTrailer(c)}`,
  ),

  // Microsoft 365 tenants
  smtp(
    "o365",
    2,
    (c) =>
      `550 5.4.1 Recipient address rejected: Access denied. For more information see https://aka.ms/EXOSmtpErrors AS(201806281) ${msTrailer(c)}`,
  ),
  smtp(
    "o365",
    1,
    (c) =>
      `550 5.7.606 Access denied, banned sending IP [${c.srcIp}]. To request removal from this list please visit https://sender.office.com/ and follow the directions. For more information please go to http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) ${msTrailer(c)}`,
    { queueWide: true },
  ),
  smtp(
    "o365",
    1,
    (c) =>
      `550 5.7.133 RESOLVER.RST.SenderNotAuthenticatedForGroup; authentication required; Delivery restriction check failed as sender not authenticated for group ${msTrailer(c)}`,
    { use: "both" },
  ),
  smtp(
    "o365",
    3,
    (c) => `550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient ${c.rcpt} not found by SMTP address lookup`,
    { use: "both" },
  ),
  smtp(
    "o365",
    1,
    () =>
      "554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot open mailbox.[EndDiagnosticData]",
    { use: "rb" },
  ),
  smtp(
    "o365",
    1,
    () =>
      "550 5.7.520 Access denied, Your organization does not allow external forwarding. Please contact your administrator for further assistance. AS(7555)",
    { use: "rb" },
  ),
  smtp("o365", 1, (c) => `554 5.4.14 Hop count exceeded - possible mail loop ATTR34 ${msTrailer(c)}`, {
    use: "rb",
  }),

  // Yahoo / AOL
  smtp(
    "yahoo",
    4,
    (c) =>
      `554 delivery error: dd This user doesn't have a ${c.domain} account (${c.rcpt}) [0] - ${yhost(c)}`,
  ),
  smtp(
    "yahoo",
    3,
    (c) =>
      `554 delivery error: dd Sorry your message to ${c.rcpt} cannot be delivered. This mailbox is disabled (554.30). - ${yhost(c)}`,
  ),
  smtp(
    "yahoo",
    2,
    (c) =>
      `421 4.7.0 [TSS04] Messages from ${c.srcIp} temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes`,
  ),
  smtp(
    "yahoo",
    1,
    (c) =>
      `553 5.7.2 [TSS09] All messages from ${c.srcIp} will be permanently deferred; Retrying will NOT succeed. See https://postmaster.yahooinc.com/error-codes`,
    { queueWide: true },
  ),
  smtp(
    "yahoo",
    1,
    () =>
      "554 5.7.9 Message not accepted for policy reasons.  See https://postmaster.yahooinc.com/error-codes",
  ),
  smtp(
    "yahoo",
    1,
    () =>
      "550 5.7.9 This mail has been blocked because the sender is unauthenticated. Yahoo requires all senders to authenticate with either SPF or DKIM.",
  ),
  smtp("yahoo", 8, () => "552 1 Requested mail action aborted, mailbox not found"),
  smtp(
    "yahoo",
    1,
    () =>
      "451 Message temporarily deferred due to unresolvable RFC.5321 from domain; see https://postmaster.yahooinc.com/error-codes",
  ),
  smtp(
    "aol",
    3,
    (c) =>
      `554 delivery error: dd This user doesn't have a ${c.domain} account (${c.rcpt}) [0] - ${yhost(c)}`,
  ),
  smtp(
    "aol",
    1,
    () =>
      "554 Message not allowed - [PH01] Email not accepted for policy reasons. Please visit https://postmaster.yahooinc.com/error-codes",
  ),

  // iCloud
  smtp("icloud", 6, (c) => `550 5.1.1 <${c.rcpt}>: user does not exist`),
  smtp("icloud", 2, (c) => `552 5.2.2 <${c.rcpt}>: user is over quota`),
  smtp("icloud", 1, (c) => `550 5.2.1 <${c.rcpt}>: user account is disabled`),
  smtp(
    "icloud",
    1,
    () =>
      "554 5.7.1 [CS01] Message rejected due to local policy. Please visit https://support.apple.com/en-us/102322",
  ),
  smtp(
    "icloud",
    1,
    (c) =>
      `421 4.7.1 [HM04] Too many messages from ${c.srcIp}, try again later. Please visit https://support.apple.com/en-us/102322`,
  ),
  smtp(
    "icloud",
    1,
    (c) =>
      `554 5.7.1 [HM07] Message rejected due to DMARC policy of ${c.senderDomain}, p=reject. Please visit https://support.apple.com/en-us/102322`,
  ),

  // GMX / WEB.DE (United Internet)
  smtp("gmx", 6, () => "550 Requested action not taken: mailbox unavailable"),
  smtp(
    "gmx",
    1,
    (c) =>
      `554 ${nemesis(c)} Nemesis ESMTP Service not available No SMTP service IP address is block listed. For explanation visit https://postmaster.gmx.net/en/case?c=r0301&i=ip&v=${c.srcIp}&r=${uiRef(c)}`,
    { queueWide: true },
  ),
  smtp(
    "gmx",
    1,
    (c) =>
      `554 ${nemesis(c)} Nemesis ESMTP Service not available No SMTP service Bad DNS PTR resource record. For explanation visit https://postmaster.gmx.net/en/case?c=r0601&i=ip&v=${c.srcIp}&r=${uiRef(c)}`,
  ),
  smtp(
    "gmx",
    1,
    (c) =>
      `554 Transaction failed Reject due to policy restrictions. For explanation visit https://postmaster.gmx.net/en/case?c=hi&i=ip&v=${c.srcIp}&r=${uiRef(c)}`,
  ),
  smtp("gmx", 1, () => "552 Requested mail action aborted: exceeded storage allocation"),
  smtp(
    "gmx",
    1,
    (c) =>
      `421 ${nemesis(c)} Nemesis ESMTP Service not available Requested action aborted: too many connections from ${c.srcIp}`,
  ),
  smtp("webde", 2, () => "550 Requested action not taken: mailbox unavailable"),
  smtp("webde", 1, (c) => `550 5.1.1 Empfänger unbekannt / recipient unknown: <${c.rcpt}>`),
  smtp("webde", 1, () => "552 5.2.2 Postfach voll – mailbox full"),

  // Orange / Wanadoo
  smtp(
    "orange",
    3,
    () => "550 5.1.1 Adresse d au moins un destinataire invalide. Invalid recipient. OFR_416 [416]",
  ),
  smtp("orange", 1, () => "550 5.1.1 Adresse électronique inconnue / Unknown email address. OFR_416 [416]"),
  smtp("orange", 1, () => "552 5.2.2 Boîte aux lettres pleine / Mailbox full. OFR_417 [417]"),
  smtp(
    "orange",
    1,
    (c) =>
      `550 ${orangeNode(c)} ME Adresse IP source bloquée pour incident de spam. Client host blocked for spamming issues. OFR006_102 Ref http://csi.cloudmark.com/reset-request/?ip=${c.srcIp} [102]`,
    { queueWide: true },
  ),
  smtp(
    "orange",
    1,
    (c) =>
      `421 ${orangeNode(c)} ME Trop de connexions, veuillez vérifier votre configuration. Too many connections, slow down. OFR005_104 [104]`,
  ),
  smtp("orange", 1, () => "550 5.2.1 Compte désactivé / Account disabled. OFR_420 [420]"),

  // Comcast
  smtp("comcast", 4, (c) => `550 5.1.1 <${c.rcpt}> Not our Customer`),
  smtp(
    "comcast",
    1,
    (c) => {
      const host = resimta(c);
      return `554 ${host} ${host} ${c.srcIp} found on one or more DNSBLs, see http://postmaster.comcast.net/smtp-error-codes.php#BL000001`;
    },
    { queueWide: true },
  ),
  smtp("comcast", 1, (c) => `550 5.2.1 <${c.rcpt}> Mailbox disabled for this recipient`),
  smtp(
    "comcast",
    1,
    (c) =>
      `421 ${resimta(c)} comcast ${c.srcIp} Connection rate limit exceeded. Please see http://postmaster.comcast.net/smtp-error-codes.php#RL000001`,
  ),
  smtp(
    "comcast",
    1,
    (c) =>
      `554 5.7.1 ${resimta(c)} comcast ${c.srcIp} Comcast block for spam. Please see http://postmaster.comcast.net/smtp-error-codes.php#BL000000`,
  ),

  // Generic Postfix
  smtp(
    "postfix",
    3,
    (c) => `550 5.1.1 <${c.rcpt}>: Recipient address rejected: User unknown in virtual mailbox table`,
    { use: "both" },
  ),
  smtp(
    "postfix",
    2,
    (c) => `550 5.1.1 <${c.rcpt}>: Recipient address rejected: User unknown in local recipient table`,
    { use: "both" },
  ),
  smtp(
    "postfix",
    6,
    (c) =>
      `550 5.1.1 <${c.rcpt}>: Recipient address rejected: undeliverable address: unknown user: "${c.rcpt.split("@")[0]}"`,
    { use: "both" },
  ),
  smtp("postfix", 2, (c) => `554 5.7.1 <${c.rcpt}>: Relay access denied`),
  smtp(
    "postfix",
    1,
    (c) =>
      `450 4.7.1 <${c.rcpt}>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/${c.domain}.html`,
  ),
  smtp(
    "postfix",
    1,
    (c) =>
      `554 5.7.1 Service unavailable; Client host [${c.srcIp}] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/${c.srcIp}`,
    { queueWide: true },
  ),
  smtp("postfix", 1, (c) => `552 5.2.2 <${c.rcpt}>: Recipient address rejected: Mailbox is full`, {
    use: "both",
  }),
  smtp("postfix", 1, (c) => `554 5.7.1 <${c.helo}[${c.srcIp}]>: Client host rejected: Access denied`),
  smtp("postfix", 1, () => "451 4.7.1 Greylisting in action, please come back later"),
  smtp("postfix", 1, () => "554 5.7.1 Spam message rejected", { use: "both" }),
  smtp("postfix", 1, (c) => `450 4.1.8 <${c.orig}>: Sender address rejected: Domain not found`),
  smtp(
    "postfix",
    1,
    (c) => `450 4.7.1 Client host rejected: cannot find your reverse hostname, [${c.srcIp}]`,
  ),
  smtp("postfix", 1, () => "452 4.3.1 Insufficient system storage"),
  raw(
    "postfix",
    2,
    "5.1.1",
    (c) =>
      `X-Postfix; host ${innerHost(c)}[${innerIp(c)}] said: 550 5.1.1 <${c.rcpt}>: Recipient address rejected: User unknown in local recipient table (in reply to RCPT TO command)`,
    { use: "rb" },
  ),
  raw("postfix", 2, "5.1.1", (c) => `X-Postfix; unknown user: "${c.rcpt.split("@")[0]?.toLowerCase()}"`, {
    use: "rb",
  }),
  raw("postfix", 1, "5.4.6", (c) => `X-Postfix; mail for ${c.domain} loops back to myself`, { use: "rb" }),
  raw(
    "postfix",
    1,
    "5.2.2",
    (c) =>
      `X-Postfix; host ${innerHost(c)}[${innerIp(c)}] said: 552 5.2.2 Mailbox full, quota exceeded (in reply to end of DATA command)`,
    { use: "rb" },
  ),
  raw("postfix", 1, "5.2.2", () => "x-unix; maildrop: maildir over quota.", { use: "rb" }),
  raw(
    "postfix",
    1,
    "4.4.1",
    (c) =>
      `X-Postfix; delivery temporarily suspended: connect to ${innerHost(c)}[${innerIp(c)}]:25: Connection timed out`,
    { use: "rb" },
  ),
  raw(
    "postfix",
    1,
    "5.4.4",
    (c) =>
      `X-Postfix; Host or domain name not found. Name service error for name=${innerHost(c)} type=AAAA: Host not found, try again`,
    { use: "rb" },
  ),
  raw(
    "postfix",
    2,
    "5.1.1",
    (c) => `smtp; 550 5.1.1 no such local recipient: <${c.rcpt}> in "RCPT TO:<${c.rcpt}>"`,
    { use: "rb" },
  ),

  // Generic Exim (cPanel-style hosting included)
  smtp("exim", 2, () => "550 No Such User Here"),
  smtp("exim", 4, () => "550 Sorry, no mailbox here by that name. (#5.1.1)", { use: "both" }),
  smtp("exim", 1, () => "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"),
  smtp("exim", 1, () => "550 Unrouteable address"),
  smtp("exim", 1, (c) => `550 Verification failed for <${c.orig}> Unrouteable address Sender verify failed`),
  smtp("exim", 1, () => "550 Administrative prohibition"),
  smtp("exim", 1, (c) => `550 Rejected because ${c.srcIp} is in a black list at b.barracudacentral.org`, {
    queueWide: true,
  }),
  smtp("exim", 1, () => "552 Message size exceeds maximum permitted"),
  smtp(
    "exim",
    2,
    (c) =>
      `550 The mail server could not deliver mail to ${c.rcpt}.  The account or domain may not exist, they may be blacklisted, or missing the proper dns entries.`,
  ),
  smtp("exim", 1, () => "451 Temporary local problem - please try later"),
  smtp("exim", 2, (c) => `550 Sorry, I couldn't find any host named mail.${c.domain}. (#5.1.2)`, {
    use: "rb",
  }),
  smtp("exim", 1, () => "552 Mailbox quota exceeded", { use: "both" }),
  smtp(
    "exim",
    1,
    (c) =>
      `550 JunkMail rejected - ${c.helo} [${c.srcIp}] is in an RBL on zen.spamhaus.org, see https://www.spamhaus.org/query/ip/${c.srcIp}`,
  ),
  smtp("exim", 3, (c) => `550 Unknown user in "RCPT TO:<${c.rcpt}>"`, { use: "both" }),

  // Generic Exchange on-premises
  smtp(
    "exchange",
    4,
    () => "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
    {
      use: "both",
    },
  ),
  smtp(
    "exchange",
    1,
    () =>
      "552 5.2.2 This message is larger than the current system limit or the recipient's mailbox is full. Create a shorter message body or remove attachments and try sending it again.",
    { use: "both" },
  ),
  smtp("exchange", 1, () => "550 5.7.1 RESOLVER.RST.AuthRequired; authentication required", { use: "both" }),
  smtp("exchange", 1, () => "451 4.7.0 Temporary server error. Please try again later. PRX5"),
  smtp(
    "exchange",
    1,
    () =>
      "554 5.6.0 STOREDRV.Deliver.Exception:ConversionFailedException; Failed to process message due to a permanent exception with message Content conversion: Corrupt summary TNEF content.",
    { use: "rb" },
  ),
  smtp("exchange", 3, (c) => `550 5.1.1 User unknown; rejecting "RCPT TO:<${c.rcpt}>"`, { use: "both" }),

  // PowerMTA-internal outcomes
  raw("any", 1, "5.0.0", () => "x-pmta;deleted by administrator", { noMta: true }),
  raw(
    "any",
    1,
    "4.4.7",
    (c) => `x-pmta;message expired in queue; last error: connect to ${c.mxIp}:25 timed out`,
  ),
  raw("any", 1, "4.4.1", (c) => `x-pmta;no answer from ${c.mxHost} (${c.mxIp}) before bounce-after expired`),
  raw(
    "any",
    1,
    "4.4.7",
    () => "x-pmta;bounce-after expired, last attempt: 421 4.7.0 Try again later, closing connection.",
  ),
  raw("nodns", 3, "5.1.2", () => "", { noMta: true }),
  raw("nodns", 2, "5.4.4", () => "", {
    noMta: true,
    statusText: "unable to route: no mail hosts for domain",
  }),
  raw("nodns", 1, "4.4.4", () => "", { noMta: true, statusText: "unable to route: dns lookup failure" }),
];

/** Number of distinct diagnostic templates the generator draws from. */
export const DIAGNOSTIC_TEMPLATE_COUNT = TEMPLATES.length;

const PROVIDER_SHARE: Readonly<Partial<Record<Provider, number>>> = {
  ...Object.fromEntries(REAL_PROVIDERS),
  nodns: 2,
  any: 2,
};

function weightedTemplates(uses: readonly Use[]): Weighted<Template> {
  const chosen = TEMPLATES.filter((t) => uses.includes(t.use));
  const perProvider = new Map<Provider, number>();
  for (const t of chosen) perProvider.set(t.provider, (perProvider.get(t.provider) ?? 0) + t.weight);
  // A provider's traffic share is split among its templates by their relative weight.
  return chosen.map((t) => [
    t,
    ((PROVIDER_SHARE[t.provider] ?? 1) * t.weight) / (perProvider.get(t.provider) ?? 1),
  ]);
}

const B_TEMPLATES = weightedTemplates(["b", "both"]);
const RB_TEMPLATES = weightedTemplates(["rb", "both"]);

// ---------------------------------------------------------------------------------------------------
// Records

interface Recipient {
  readonly provider: Exclude<Provider, "any">;
  readonly local: string;
  readonly domain: string;
  readonly address: string;
  readonly mxHost: string;
  readonly mxIp: string;
}

function recipient(rng: Rng, provider: Provider): Recipient {
  const p = provider === "any" ? rng.weighted(REAL_PROVIDERS) : provider;
  const profile = PROFILES[p];
  const domain = rng.weighted(profile.domains);
  let local = localPart(rng, profile.utf8Locals);
  // Some list members were imported in capitals; PowerMTA keeps the case it was given.
  if (rng.chance(0.02)) local = local.toUpperCase();
  const [mxHost, mxIp] = profile.mx(rng, domain);
  return { provider: p, local, domain, address: `${local}@${domain}`, mxHost, mxIp };
}

interface Identity {
  readonly sender: Sender;
  readonly list: number;
  readonly subscriber: number;
  readonly campaign: number;
  readonly srcIp: string;
  readonly vmta: string;
}

function identity(rng: Rng): Identity {
  const sender = rng.pick(SENDERS);
  const ipIndex = rng.int(0, sender.ips.length - 1);
  return {
    sender,
    list: rng.int(1, 60),
    subscriber: rng.int(1000, 2_400_000),
    campaign: rng.int(10_000, 99_999),
    srcIp: sender.ips[ipIndex] ?? "203.0.113.1",
    vmta: `${sender.vmtaPrefix}-${pad(ipIndex + 1)}`,
  };
}

/** VERP return path: `<local>=<domain>@<bounce host>` (list and subscriber travel in X-FBLId). */
function verp(id: Identity, r: Recipient): string {
  return `${r.local.toLowerCase()}=${r.domain}@${id.sender.bounceHost}`;
}

function fblId(seq: number, id: Identity): string {
  return `${seq}-${id.list}-${id.subscriber}`;
}

interface Outcome {
  readonly code: string;
  readonly statusText?: string;
  readonly diag: string;
  readonly mta: string;
  readonly expired: boolean;
}

function mtaOf(t: Template, r: Recipient): string {
  return t.noMta === true || r.mxHost === "" ? "" : `${r.mxHost} (${r.mxIp})`;
}

function rawOutcome(t: Template, c: Ctx, r: Recipient): Outcome {
  const code = t.status ?? "5.0.0";
  return {
    code,
    ...(t.statusText === undefined ? {} : { statusText: t.statusText }),
    diag: t.text(c),
    mta: mtaOf(t, r),
    expired: code.startsWith("4"),
  };
}

/** What PowerMTA logs when it gives up itself: a 5xx reply, or a 4xx one after expiry or bounce-queue. */
function localOutcome(rng: Rng, t: Template, c: Ctx, r: Recipient): Outcome {
  if (t.kind === "raw") return rawOutcome(t, c, r);
  const reply = t.text(c);
  const mta = mtaOf(t, r);
  const code = replyStatusCode(reply);
  const transient = reply.startsWith("4");
  if ((transient && rng.chance(0.35)) || (t.queueWide === true && rng.chance(0.2))) {
    return { code, diag: `x-pmta;bounce-queue;reply:${reply}`, mta, expired: transient };
  }
  if (transient) return { code: "4.4.7", diag: `smtp;${reply}`, mta, expired: true };
  return { code, diag: `smtp;${reply}`, mta, expired: false };
}

/** A remote DSN's Diagnostic-Code keeps the remote MTA's spacing, usually `smtp; ...`. */
function remoteOutcome(rng: Rng, t: Template, c: Ctx, r: Recipient): Outcome {
  if (t.kind === "raw") return rawOutcome(t, c, r);
  const reply = t.text(c);
  const diag = rng.chance(0.7) ? `smtp; ${reply}` : `smtp;${reply}`;
  return { code: replyStatusCode(reply), diag, mta: mtaOf(t, r), expired: false };
}

function context(rng: Rng, r: Recipient, id: Identity, orig: string): Ctx {
  return {
    rng,
    rcpt: r.address,
    domain: r.domain,
    mxHost: r.mxHost,
    mxIp: r.mxIp,
    srcIp: id.srcIp,
    helo: id.sender.helo,
    orig,
    senderDomain: id.sender.domain,
  };
}

function queuedAt(rng: Rng, time: Date, expired: boolean): Date {
  // Expiries happen after PowerMTA's bounce-after (default 4d, often lowered); most fails are immediate.
  const seconds = expired
    ? rng.int(1, 4) * 86_400 + rng.int(0, 600)
    : rng.weighted<number>([
        [rng.int(0, 5), 6],
        [rng.int(6, 300), 3],
        [rng.int(301, 7200), 1],
      ]);
  return new Date(time.getTime() - seconds * 1000);
}

/** One row of BOUNCES_HEADER: ~80% `b`, ~20% `rb`. */
export function generateBounce(rng: Rng, seq: number, time: Date, options: GeneratorOptions = {}): string[] {
  const utcOffset = options.utcOffset ?? "+0000";
  const remote = rng.chance(0.2);
  const template = rng.weighted(remote ? RB_TEMPLATES : B_TEMPLATES);
  const r = recipient(rng, template.provider);
  const id = identity(rng);
  const orig = verp(id, r);
  const c = context(rng, r, id, orig);
  const o = remote ? remoteOutcome(rng, template, c, r) : localOutcome(rng, template, c, r);
  const bounceCat = defaultBounceCategory(o.code, o.diag);
  const dsnStatus = formatDsnStatus(o.code, o.statusText);
  const logged = formatPmtaTime(time, utcOffset);
  if (remote)
    return [
      "rb",
      "",
      logged,
      orig,
      r.address,
      bounceCat,
      dsnStatus,
      "",
      o.diag,
      o.mta,
      "",
      "",
      fblId(seq, id),
    ];
  const queued = formatPmtaTime(queuedAt(rng, time, o.expired), utcOffset);
  const jobId = `job-${id.campaign}`;
  return [
    "b",
    queued,
    logged,
    orig,
    r.address,
    bounceCat,
    dsnStatus,
    "failed",
    o.diag,
    o.mta,
    jobId,
    id.vmta,
    fblId(seq, id),
  ];
}

// ---------------------------------------------------------------------------------------------------
// Feedback-loop records

interface FblSource {
  readonly provider: Exclude<Provider, "any" | "nodns">;
  readonly format: "arf" | "jmrp";
  readonly userAgent: string;
  readonly reportingMta: (rng: Rng) => string;
}

const FBL_SOURCES: Weighted<FblSource> = [
  [
    {
      provider: "yahoo",
      format: "arf",
      userAgent: "Yahoo!-Mail-Feedback/2.0",
      reportingMta: (rng) => `mta${rng.int(1000, 4999)}.mail.${rng.pick(["gq1", "bf1", "ne1"])}.yahoo.com`,
    },
    5,
  ],
  [
    {
      provider: "aol",
      format: "arf",
      userAgent: "Yahoo!-Mail-Feedback/2.0",
      reportingMta: (rng) => `mta${rng.int(1000, 4999)}.mail.bf1.yahoo.com`,
    },
    2,
  ],
  [{ provider: "microsoft", format: "jmrp", userAgent: "", reportingMta: () => "" }, 4],
  [
    {
      provider: "comcast",
      format: "arf",
      userAgent: "ReturnPathFBL/2.0",
      reportingMta: () => "fbl.returnpath.net",
    },
    2,
  ],
  [
    {
      provider: "gmx",
      format: "arf",
      userAgent: "United Internet FBL/1.0",
      reportingMta: (rng) => `fbl${rng.int(1, 4)}.gmx.net`,
    },
    1,
  ],
  [
    {
      provider: "orange",
      format: "arf",
      userAgent: "Signal Spam ARF/1.0",
      reportingMta: () => "arf.signal-spam.fr",
    },
    1,
  ],
];

const SUBJECTS: readonly ((rng: Rng) => string)[] = [
  () => "Your weekly deals are here",
  () => "Last chance: 30% off, today only",
  (rng) => `Invoice #${rng.int(100000, 999999)} is ready`,
  () => "Your order has shipped",
  () => "Don't miss out, ends tonight",
  () => "Spring collection, now in stores",
  () => 'Webinar tomorrow: "Scaling email delivery"',
  (rng) => `${rng.pick(FIRST_NAMES)}, we saved your cart`,
  () => "New arrivals you'll love",
  () => "Réservez vos vacances d'été ☀️",
  () => "Ihr persönlicher Gutschein wartet",
  () => "🎉 Welcome aboard!",
  () => "Rappel : votre panier vous attend",
  () => "Points update: you're 200 away from Gold",
];

function fromHeader(rng: Rng, s: Sender): string {
  return rng.chance(0.6)
    ? `"${s.fromName}" <${s.fromLocal}@${s.domain}>`
    : `${s.fromName} <${s.fromLocal}@${s.domain}>`;
}

/** One row of FBL_HEADER. */
export function generateFbl(rng: Rng, seq: number, time: Date, options: GeneratorOptions = {}): string[] {
  const source = rng.weighted(FBL_SOURCES);
  const r = recipient(rng, source.provider);
  const id = identity(rng);
  const jmrp = source.format === "jmrp";
  return [
    "f",
    formatPmtaTime(time, options.utcOffset ?? "+0000"),
    "203.0.113.250",
    jmrp
      ? ""
      : rng.weighted([
          ["abuse", 30],
          ["not-spam", 1],
          ["other", 1],
        ]),
    source.format,
    source.userAgent,
    rng.chance(0.15) ? `env-${randomString(rng, HEX, 12)}` : "",
    `fbl@fbl.${id.sender.domain}`,
    // Microsoft JMRP reports are redacted: PowerMTA gets no recipient unless a header is mapped to rcpt.
    jmrp ? "" : r.address,
    source.reportingMta(rng),
    id.srcIp,
    id.sender.domain,
    fromHeader(rng, id.sender),
    `<${verp(id, r)}>`,
    `job-${id.campaign}`,
    rng.pick(SUBJECTS)(rng),
    fblId(seq, id),
  ];
}

// ---------------------------------------------------------------------------------------------------
// Ground-truth helpers

const SEQ_RE = /^(\d+)-/;

/** Sequence number a generated row carries first in its header_X-FBLId value. */
export function seqOf(values: readonly string[], header: readonly string[]): number | undefined {
  const index = header.indexOf("header_X-FBLId");
  if (index < 0) return undefined;
  const m = SEQ_RE.exec(values[index] ?? "");
  return m?.[1] === undefined ? undefined : Number(m[1]);
}

/** Timestamp of the i-th record of a generated benchmark file: ~28 records per second from a fixed epoch. */
function fileTime(i: number): Date {
  return new Date(Date.UTC(2025, 0, 15, 8, 0, 0) + i * 36);
}

function* generateFile(
  header: readonly string[],
  make: (rng: Rng, seq: number, time: Date) => string[],
  seed: number,
  records: number,
  lineEnding: LineEnding,
): Generator<string, void, undefined> {
  const rng = new Rng(seed);
  const chunkBytes = 64 * 1024;
  let chunk = formatCsvRow(header, lineEnding);
  for (let i = 0; i < records; i++) {
    chunk += formatCsvRow(make(rng, i + 1, fileTime(i)), lineEnding);
    if (chunk.length >= chunkBytes) {
      yield chunk;
      chunk = "";
    }
  }
  if (chunk !== "") yield chunk;
}

/** A whole bounces file (header, then `records` rows with seq 1..records) as string chunks of ~64 KiB. */
export function generateBouncesFile(
  seed: number,
  records: number,
  lineEnding: LineEnding = "\r\n",
): Iterable<string> {
  return generateFile(BOUNCES_HEADER, generateBounce, seed, records, lineEnding);
}

/** Same as generateBouncesFile for an fbl file. */
export function generateFblFile(
  seed: number,
  records: number,
  lineEnding: LineEnding = "\r\n",
): Iterable<string> {
  return generateFile(FBL_HEADER, generateFbl, seed, records, lineEnding);
}
