/**
 * PowerMTA 5.x default <bounce-category-patterns> (pmta-format.md §5.2, "CFG-C"), for comparing our
 * classifier with what PowerMTA itself would write in bounceCat. First match wins, case-insensitive,
 * applied to "<status>;<diagnostic>" (the subject the status-code rules expect).
 */
const PATTERNS: ReadonlyArray<readonly [string, string]> = [
  ["spam", "spam-related"],
  ["junk mail", "spam-related"],
  ["blacklist", "spam-related"],
  ["blocked", "spam-related"],
  ["\\bU\\.?C\\.?E\\.?\\b", "spam-related"],
  ["\\bAdv(ertisements?)?\\b", "spam-related"],
  ["unsolicited", "spam-related"],
  ["\\b(open)?RBL\\b", "spam-related"],
  ["realtime blackhole", "spam-related"],
  ["http:\\/\\/basic.wirehub.nl\\/blackholes.html", "spam-related"],
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
  ["Your domain has no(t)? DNS\\/MX entries", "invalid-sender"],
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
  ["^[45]\\.4\\.4", "routing-errors"],
  ["^[45]\\.4\\.6", "routing-errors"],
  ["^[45]\\.4\\.7;", "message-expired"],
  ["^[45]\\.5\\.3;", "policy-related"],
  ["^[45]\\.5\\.\\d+;", "protocol-errors"],
  ["^[45]\\.6\\.\\d+;", "content-related"],
  ["^[45]\\.7\\.[012];", "policy-related"],
  ["^[45]\\.7\\.7;", "content-related"],
  ["", "other"],
];

const COMPILED = PATTERNS.map(([p, c]) => [new RegExp(p, "i"), c] as const);

export function pmtaDefaultCategory(status: string, diagnostic: string): string {
  const subject = `${status};${diagnostic}`;
  for (const [re, cat] of COMPILED) if (re.test(subject)) return cat;
  return "other";
}

/** The reading most consumers give bounceCat (pmta-format.md §5.4): these three mean "hard". */
export const PMTA_HARD_CATEGORIES: ReadonlySet<string> = new Set([
  "bad-mailbox",
  "bad-domain",
  "inactive-mailbox",
]);
