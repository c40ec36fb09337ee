import type { Provider } from "./providers.js";
import type { Reason } from "./taxonomy.js";

/**
 * The classifier's knowledge, as data. Order is meaning: the first rule that matches wins, so more
 * specific evidence comes first — mailbox-full and size texts before user-unknown ones ("mailbox
 * unavailable: over quota"), sender-side blocks before recipient texts ("550 5.1.1 ... blocked by
 * Spamhaus" is a block), and the broad policy words last. Patterns are matched case-insensitively
 * against the diagnostic text (after the `smtp;` type, before any address normalisation).
 */

export interface PhraseRule {
  readonly id: string;
  readonly reason: Reason;
  readonly pattern: RegExp;
  /** Only when the reply class is this (4 or 5). */
  readonly cls?: 4 | 5;
}

export interface ProviderRule extends PhraseRule {
  readonly provider: Provider;
}

type Row = readonly [id: string, reason: Reason, pattern: string, cls?: 4 | 5];

function compile(rows: readonly Row[]): PhraseRule[] {
  return rows.map(([id, reason, pattern, cls]) => ({
    id,
    reason,
    pattern: new RegExp(pattern, "i"),
    ...(cls === undefined ? {} : { cls }),
  }));
}

/**
 * Replies that mean something specific only at one provider (their published error codes), checked
 * before the generic phrases when the remote MX or the recipient domain belongs to that provider.
 */
const PROVIDER_ROWS: ReadonlyArray<readonly [Provider, ...Row]> = [
  // Gmail — support.google.com/a/answer/3726730
  [
    "gmail",
    "gmail-content",
    "content_rejected",
    "(not rfc ?5322 compliant|header is missing|valid address in from|security issue|BlockedMessage)",
  ],
  ["gmail", "gmail-system", "remote_system_error", "temporary system problem"],
  ["gmail", "gmail-nonexistent", "invalid_mailbox", "account that you tried to reach does not exist"],
  ["gmail", "gmail-disabled", "mailbox_disabled", "account that you tried to reach is (disabled|inactive)"],
  ["gmail", "gmail-over-quota", "mailbox_full", "(inbox is out of storage|over quota|out of storage space)"],
  [
    "gmail",
    "gmail-dmarc",
    "auth_failure",
    "(dmarc|unauthenticated email|pass authentication|authentication information|\\bspf\\b|\\bdkim\\b)",
  ],
  ["gmail", "gmail-ptr", "ptr_required", "(ptr record|reverse dns)"],
  [
    "gmail",
    "gmail-low-reputation",
    "sender_reputation",
    "(low reputation|reputation of the sending|bad reputation)",
  ],
  [
    "gmail",
    "gmail-rate",
    "rate_limited",
    "(unusual rate|rate limit|receiving mail at a rate|too many messages)",
  ],
  ["gmail", "gmail-unsolicited", "spam_content", "(likely unsolicited|suspicious due to|spam)"],
  ["gmail", "gmail-try-later", "rate_limited", "try again later", 4],
  ["gmail", "gmail-blocked", "policy_rejected", "(blocked|policy|not allowed)"],
  // Microsoft Exchange Online / Outlook.com — learn.microsoft.com "Email non-delivery reports"
  [
    "microsoft",
    "ms-s3150",
    "sender_blocklisted",
    "(\\bS3150\\b|\\bS3140\\b|part of their network is on our block list)",
  ],
  [
    "microsoft",
    "ms-banned-ip",
    "sender_blocklisted",
    "(banned sending ip|5\\.7\\.6[0-4]\\d|5\\.7\\.511|5\\.7\\.708)",
  ],
  [
    "microsoft",
    "ms-reputation",
    "sender_reputation",
    "(4\\.7\\.65[01]|temporarily rate limited due to ip reputation)",
  ],
  ["microsoft", "ms-server-busy", "rate_limited", "(4\\.7\\.500|limits for how many messages)"],
  [
    "microsoft",
    "ms-access-denied",
    "invalid_mailbox",
    "(5\\.4\\.1\\b.*access denied|access denied\\. AS\\(2018)",
  ],
  [
    "microsoft",
    "ms-mailbox-unavailable",
    "invalid_mailbox",
    "(requested action not taken: mailbox unavailable|5\\.1\\.10\\b|recipient not found by smtp address lookup)",
    5,
  ],
  ["microsoft", "ms-5.1.351", "invalid_mailbox", "5\\.1\\.351"],
  ["microsoft", "ms-mailbox-full", "mailbox_full", "(mailbox is full|exceeded .*quota)"],
  // Yahoo / AOL — senders.yahooinc.com/smtp-error-codes
  [
    "yahoo",
    "yahoo-disabled",
    "mailbox_disabled",
    "(dd Requested mailbox is unavailable|mailbox is disabled|account is disabled)",
  ],
  [
    "yahoo",
    "yahoo-dd-nonexistent",
    "invalid_mailbox",
    "(doesn't have a [a-z.]+ account|user doesn't have|mailbox not found|dd This user|dd Sorry your message to)",
  ],
  [
    "yahoo",
    "yahoo-tss04",
    "sender_reputation",
    "(\\[TSS04\\]|\\[TS0[1-3]\\]|user complaints|unexpected volume)",
  ],
  ["yahoo", "yahoo-tss09", "sender_blocklisted", "(\\[TSS09\\]|\\[TSS10\\]|permanently deferred)"],
  ["yahoo", "yahoo-policy", "policy_rejected", "will not accept delivery"],
  [
    "yahoo",
    "yahoo-unauthenticated",
    "auth_failure",
    "(dmarc|unauthenticated|\\bspf\\b|\\bdkim\\b|5\\.7\\.2[3-9])",
  ],
  ["yahoo", "yahoo-5.7.9", "policy_rejected", "(not accepted for policy reasons|5\\.7\\.9\\b)"],
  ["yahoo", "yahoo-overquota", "mailbox_full", "(over quota|mailbox is full)"],
  // Apple iCloud
  [
    "apple",
    "icloud-nonexistent",
    "invalid_mailbox",
    "(user does not exist|no such user|mailbox does not exist|recipient unknown)",
  ],
  ["apple", "icloud-policy", "policy_rejected", "(\\[CS0\\d\\]|\\[HM0\\d\\]|local policy)"],
  ["apple", "icloud-overquota", "mailbox_full", "(over quota|mailbox is full)"],
  // GMX / WEB.DE / 1&1
  ["gmx", "gmx-sender-dns", "invalid_sender", "invalid dns mx or a/aaaa"],
  [
    "gmx",
    "gmx-mailbox-unavailable",
    "invalid_mailbox",
    "(mailbox unavailable|mailbox not found|unknown user|no such user)",
    5,
  ],
  ["gmx", "gmx-blocklist", "sender_blocklisted", "(block ?listed|blocked by spamhaus|block list)"],
  ["gmx", "gmx-over-quota", "mailbox_full", "(quota|mailbox full)"],
  // Orange / Wanadoo: OFR_xxx codes
  ["orange", "orange-416", "invalid_mailbox", "(OFR_416|destinataire invalide|invalid recipient)"],
  ["orange", "orange-417", "mailbox_full", "(OFR_417|boite du destinataire pleine|overquota)"],
  ["orange", "orange-rate", "rate_limited", "(trop de connexions|too many connections)"],
  ["orange", "orange-blocked", "sender_blocklisted", "(OFR_506|OFR004|OUK_|mail rejete|Service refuse)"],
  // Comcast / Xfinity
  [
    "comcast",
    "comcast-not-customer",
    "invalid_mailbox",
    "(not our customer|user unknown|mailbox unavailable)",
  ],
  [
    "comcast",
    "comcast-blocked",
    "sender_blocklisted",
    "(\\bBL0\\d+|blocked for spam|\\bRBL\\b|dnsbls?\\b|block list)",
  ],
  ["comcast", "comcast-rate", "rate_limited", "(\\bRL0\\d+|rate limit|too many)"],
];

export const PROVIDER_RULES: readonly ProviderRule[] = PROVIDER_ROWS.map(
  ([provider, id, reason, pattern, cls]) => ({
    provider,
    id,
    reason,
    pattern: new RegExp(pattern, "i"),
    ...(cls === undefined ? {} : { cls }),
  }),
);

/** Generic phrases, in priority order. */
export const PHRASE_RULES: readonly PhraseRule[] = compile([
  ["pmta-admin-delete", "admin_deleted", "^deleted by administrator"],
  [
    "auto-reply",
    "auto_reply",
    "(out of (the )?office|auto-?repl(y|ied)|auto(matic)?[- ]?(reply|response|responder)|r.ponse automatique|absente? du bureau|annual leave|on vacation|vacation (reply|message)|i am (currently )?away|abwesenheitsnotiz)",
  ],
  [
    "suppressed",
    "previously_suppressed",
    "(suppression list|previously (hard[- ])?(bounced|suppressed)|address (has been |is )?suppressed|suppressed due to|recipient is suppressed|on (the|our) (do[- ]not[- ]send|dns) list|address is on .*suppression)",
  ],
  [
    "mailbox-full",
    "mailbox_full",
    "(mailbox (is |was )?(full|over ?quota)|over ?quota|quota (exceeded|exceed|full)|exceeded (his|her|their|the|its)? ?(storage|quota|mailbox)|(storage|mailbox|disk) (quota|space|size limit)( has been)? exceeded|insufficient (disk )?space|out of storage|not enough (storage|space)|mailbox size limit|mailbox has exceeded|user has exceeded|storage (allocation|limit) exceeded|boite (du destinataire )?pleine|postfach (ist )?voll|ящик переполнен|mailbox quota)",
  ],
  [
    "too-large",
    "message_too_large",
    "(message (size )?(is )?(too (big|large)|exceeds|length exceeds)|size (limit|exceeds)|exceeds (the )?(fixed |maximum |max )*(message )?size|message size|too (big|large) for|maximum (allowed )?(message )?size|mail size)",
  ],
  [
    "virus",
    "virus_detected",
    "(\\bvirus|malware|infected|trojan|worm\\b|malicious (attachment|content|payload)|phishing attachment)",
  ],
  [
    "tls-required",
    "tls_required",
    "(starttls|tls (is )?required|requires? (tls|encryption)|encryption (is )?required|must use tls|requiretls|tls connection required|secure connection required)",
  ],
  [
    "auth-failure",
    "auth_failure",
    "(dmarc|\\bspf\\b|sender policy framework|\\bdkim\\b|domainkeys|unauthenticated (email|mail|message)|authentication (check|checks|results?) (failed|fail)|failed (to pass )?authentication|not pass authentication|\\barc\\b validation|5\\.7\\.2[0-46]|5\\.7\\.29)",
  ],
  [
    "ptr",
    "ptr_required",
    "(reverse (dns|lookup|hostname|dns lookup)|\\bptr\\b|\\brdns\\b|cannot find your hostname|can't find your hostname|client host .*(unknown|has no)|no (valid )?hostname|(ip|address) (has no|without) (a )?(reverse|ptr)|hostname does not resolve|5\\.7\\.25)",
  ],
  [
    "relay",
    "relay_denied",
    "(relay(ing)? (access )?(is )?(denied|not (permitted|allowed)|prohibited|refused)|unable to relay|not (permitted|allowed|authorized) to relay|we do not relay|relay not permitted|no relaying|rcpthosts|open relay|relaying (is )?not)",
  ],
  [
    "invalid-sender",
    "invalid_sender",
    "(sender address (is )?(rejected|invalid|unknown)|sender (verify|verification) failed|sender (address )?could not be verified|unable to verify sender|sender domain (must exist|does not exist|not found|unknown|has no)|domain of sender address|sender address has null mx|invalid sender|bad sender|mail from address (rejected|invalid)|sender (is )?not (allowed|valid)|return[- ]path .*(invalid|not)|requires valid sender domain|\\bsender rejected|invalid dns mx or a/aaaa|unresolvable .*from domain|no mx for envelope sender|envelope sender .*(invalid|rejected)|5\\.1\\.[78]\\b|5\\.7\\.27)",
  ],
  [
    "greylist",
    "greylisted",
    "(gr[ae]y ?-?list|postgrey|try again in \\d+ ?(s|sec|seconds|min|minutes)\\b|temporarily deferred, please try later|triplet)",
  ],
  [
    "rbl",
    "sender_blocklisted",
    "(spamhaus|spamcop|sorbs|barracudacentral|\\bbrbl\\b|cbl\\.abuseat|\\bpsbl\\b|ivmsip|mailspike|blocked using|\\bdnsbls?\\b|\\b(dns)?rbl\\b|real[- ]?time (black|block))",
  ],
  [
    "reputation",
    "sender_reputation",
    "(reputation|user complaints|too many complaints|complaint rate|sender score|senderscore|poor sending history|unusual rate of unsolicited|suspicious (activity|volume)|bulk mail .*deferred)",
  ],
  [
    "blocklist",
    "sender_blocklisted",
    "(spamhaus|spamcop|sorbs|barracuda(central)?|\\bbrbl\\b|cbl\\.abuseat|\\bpsbl\\b|ivmsip|mailspike|blocked using|black ?list(ed)?|block ?list(ed)?|deny ?list(ed)?|\\b(dns)?rbl\\b|\\bdnsbl\\b|listed (at|on|in|by)|blocked by .*\\blist|real[- ]?time (black|block)|your ip .*(blocked|banned|rejected)|ip (address )?.*(is )?(blocked|banned)|(sending|client|source) ip .*(blocked|banned|denied)|banned sending ip|connection (refused|rejected) .*(policy|block)|blocked - see|\\bbanned\\b)",
  ],
  [
    "spam",
    "spam_content",
    "(\\bspam|unsolicited|\\bjunk|\\bu\\.?b\\.?e\\b|\\bu\\.?c\\.?e\\b|bulk (e-?)?mail|spamassassin|uribl|surbl|scored? (too high|[0-9.]+ points)|content (filter|scan)|(message|mail) (was )?(classified|identified|considered|flagged|detected) as|phish)",
  ],
  [
    "rate",
    "rate_limited",
    "(rate[- ]?limit|receiving mail too quickly|max(imum)? (number of )?(messages?|recipients?|mails?) per (connection|session|hour|day)|limits for how many|too many (messages|connections|recipients|concurrent|sessions|mails|emails|simultaneous)|throttl|sending (too fast|rate)|exceeded the (rate|sending|connection) limit|connection limit|limit (of|on) (messages|connections|recipients)|slow down|mail flood|too much mail|message rate|frequency limit|received too many)",
  ],
  [
    "moved",
    "mailbox_moved",
    "(has moved|user not local|address (has )?changed|mailbox (owner )?has changed|no longer (at|with|works)|new (e-?mail )?address (is|:)|forwarded to|moved to)",
  ],
  [
    "disabled",
    "mailbox_disabled",
    "((?<!sender |from |ip )(account|mailbox|user|address|recipient)( \\S+@\\S+)? (is |has been |was |currently |temporarily )*(disabled|deactivated|suspended|inactive|locked|closed|frozen|terminated|expired)|(disabled|deactivated|suspended|inactive|closed|frozen|dormant|expired|locked|archived) (mail|e-?mail )?(account|mailbox|user|recipient)|archiv(ed|ee) (recipient )?mailbox|boite du destinataire archiv|mailbox (not active|is not active)|no longer active|account (is )?not (active|activated)|(conta|usu.rio) inativ[ao]|5\\.2\\.1\\b|5\\.7\\.13\\b)",
  ],
  [
    "address-syntax",
    "invalid_address_syntax",
    "(bad (recipient |destination )?(address|mailbox( address)?) syntax|(address|mailbox) syntax|syntax error in (the )?(recipient|address|parameters to rcpt)|invalid (recipient |e-?mail )?address (format|syntax)|malformed (recipient |e-?mail )?address|not a valid rfc[- ]?[0-9]+ address|must be fully qualified|improperly formatted|illegal (e-?mail )?address|5\\.1\\.3\\b)",
  ],
  [
    "user-unknown",
    "invalid_mailbox",
    "(user unknown|unknown user|no such (user|mailbox|recipient|address|account|local user|person)|(user|mailbox|recipient|address|account|addressee|local part|e-?mail address)( \\S+@\\S+)? (does not|doesn't|did not|does no longer) exist|(user|mailbox|recipient|address|account|addressee|email) (\\S+@\\S+ )?(is )?(not found|unknown|not known|not valid|invalid)|invalid (recipient|mailbox|user|address|destination)|unknown (recipient|mailbox|address|local[- ]part|account)|recipient (unknown|not (found|valid|available|recognized))|addressee unknown|not our customer|no mailbox|mailbox (name )?not allowed|undeliverable address|unroutable address|unrouteable address|(doesn't|does not) have an? (\\S+ )?account|not a valid (user|mailbox|recipient)|user not (found|exist)|bad destination mailbox|no account by that name|destinataire (inconnu|invalide)|utilisateur inconnu|benutzer unbekannt|unbekannt|no existe|inexistente|non esiste|пользовател)",
  ],
  ["helo", "policy_rejected", "(helo command rejected|invalid helo|helo .*(rejected|not accepted)|bad helo)"],
  [
    "domain",
    "invalid_domain",
    "(host (or domain name )?not found|domain (name )?(not found|does not exist|unknown|not exist)|(unknown|invalid|non-?existent|bad) (recipient )?domain|no mx (record|host)s?|no (mail|mx) (hosts?|servers?) for|nxdomain|name or service not known|null mx|does not accept (e-?)?mail(?! from)|domain .*(is not|isn't) (in use|registered|hosted)|unrouteable mail domain|no such domain|domain (has )?expired|dns (lookup )?failure.*(nxdomain|not exist)|5\\.1\\.2\\b|5\\.1\\.10\\b|5\\.4\\.4\\b)",
    5,
  ],
  [
    "domain-temporary",
    "dns_temporary",
    "(host (or domain name )?not found|domain (name )?(not found|does not exist|unknown)|no mx (record|host)s?|no (mail|mx) (hosts?|servers?) for|nxdomain|name or service not known|no such domain)",
    4,
  ],
  [
    "filtered",
    "recipient_filtered",
    "(recipient'?s? (filter|rules|preferences|settings|blocked senders)|blocked senders|rejected by this user|sender ?not ?allowed|not in allowed-senders|sendernotauthenticated|not authenticated by organization|delivery restriction|user entry|recipient address rejected: access denied|filtered by (the )?recipient|does not accept (mail|messages|e-?mail) from|not (authorized|allowed|permitted) to (send|email|mail) (to )?(this|the) (recipient|user)|(blocked|rejected|refused) by (the )?(recipient|user|mailbox owner)|sender (is |has been )?blocked by (the )?recipient|only accepts (mail|messages) from|(not|isn't) on (the|their)? ?(allow|white|safe)[- ]?list|members only|recipient has (blocked|refused)|mail refused by recipient)",
  ],
  [
    "user-unknown-weak",
    "invalid_mailbox",
    "((recipient )?address (is )?rejected(?!: access denied)|recipient rejected|address (is )?not accepted|mailbox (is |currently )?unavailable|mailbox not available|5\\.1\\.1\\b|5\\.1\\.0\\b)",
  ],
  [
    "content",
    "content_rejected",
    "(content (rejected|not accepted|refused|policy)|message content|malformed|header (error|line|too long|syntax|field)|from:? header|duplicate (header|message-id|subject|from)|missing (required )?header|\\bmime\\b|8-?bit|bare (lf|cr|newline)|attachment|illegal character|invalid (message|character|header)|not (rfc|rfc ?5322|rfc ?2822) compliant|message (is )?not compliant|body (rejected|too)|message (was )?rejected because of its content|5\\.6\\.\\d+)",
  ],
  [
    "expired",
    "expired",
    "(expired|too old|time limit exceeded|queue (life ?time|time) exceeded|retry (period|time|timeout) exceeded|could not be delivered (within|for|in) \\d+|delivery time expired|undeliverable for \\d+|bounce-after|maximum queue time|4\\.4\\.7\\b)",
  ],
  [
    "dns-temp",
    "dns_temporary",
    "(dns (lookup |query |resolution )?(failure|failed|error|timeout|timed out|problem)|servfail|temporary dns (failure|error)|resolving mx|mx lookup|name ?server|could not (resolve|look ?up)|unable to (resolve|look ?up)|lookup (timed out|timeout)|4\\.4\\.3\\b)",
  ],
  [
    "network",
    "network_error",
    "(connection (timed out|timeout|refused|reset|lost|closed|dropped|failed)|timed? ?out|no answer from host|network (is )?unreachable|no route to host|host unreachable|lost connection|broken pipe|unable to connect|could not connect|can't connect|failed to connect|connect to .* failed|tls (handshake|negotiation) failed|unexpected (eof|disconnect)|mail loop|forwarding loop|routing loop|too many hops|hop count|4\\.4\\.[12]\\b)",
  ],
  [
    "system",
    "remote_system_error",
    "(local error|system (error|unavailable|busy|failure|problem|not available)|internal (server )?error|temporary (local |server |system )?(problem|failure|error)|service (is )?(temporarily )?(unavailable|not available)|insufficient (system )?storage|system (storage|disk) full|mail system full|config(uration)? error|temporary lookup failure|misconfigur|server (is )?busy|write error|temporarily unavailable|resources? (temporarily )?unavailable|queue (is )?full|try again later|please try again|transaction failed, temporary|unable to (process|deliver) .*(now|at this time)|not accepting (network )?messages|cannot process|backend|lmtp|maintenance|4\\.3\\.\\d\\b|5\\.3\\.[0-5]\\b)",
  ],
  [
    "protocol",
    "protocol_error",
    "(syntax error|bad sequence|must precede|need (rcpt|mail) (command|first)|command (not recognized|unrecognized|not implemented)|unrecognized command|invalid command|command out of sequence|unknown command|line too long|pipelining|protocol (error|violation)|5\\.5\\.[0-6]\\b)",
  ],
  [
    "policy",
    "policy_rejected",
    "(polic(y|ies)|administrative prohibition|prohibited|not (allowed|permitted|authorized)|access denied|denied|refused|\\bblocked\\b|rejected (for|due to|by)|5\\.7\\.[0-9]+\\b)",
  ],
]);

/**
 * Enhanced status code → reason, for codes specific enough to stand alone. Deliberately absent:
 * x.0.0 (class only), 5.7.1 and 4.7.1 (every kind of block and greylisting), 5.2.0 (anything).
 */
export const STATUS_RULES: ReadonlyMap<string, Reason> = new Map<string, Reason>([
  ...["1.0", "1.1", "1.4"].map((c) => [c, "invalid_mailbox"] as [string, Reason]),
  ["1.2", "invalid_domain"],
  ["1.3", "invalid_address_syntax"],
  ["1.6", "mailbox_moved"],
  ["1.7", "invalid_sender"],
  ["1.8", "invalid_sender"],
  ["1.9", "remote_system_error"],
  ["1.10", "invalid_domain"],
  ["2.1", "mailbox_disabled"],
  ["2.2", "mailbox_full"],
  ["2.3", "message_too_large"],
  ["2.4", "remote_system_error"],
  ["3.0", "remote_system_error"],
  ["3.1", "remote_system_error"],
  ["3.2", "remote_system_error"],
  ["3.3", "remote_system_error"],
  ["3.4", "message_too_large"],
  ["3.5", "remote_system_error"],
  ["4.0", "network_error"],
  ["4.1", "network_error"],
  ["4.2", "network_error"],
  ["4.3", "dns_temporary"],
  ["4.5", "remote_system_error"],
  ["4.6", "remote_system_error"],
  ["4.7", "expired"],
  ["4.8", "network_error"],
  ["5.0", "protocol_error"],
  ["5.1", "protocol_error"],
  ["5.2", "protocol_error"],
  ["5.3", "rate_limited"],
  ["5.4", "protocol_error"],
  ["5.5", "protocol_error"],
  ["5.6", "protocol_error"],
  ["7.2", "policy_rejected"],
  ["7.3", "tls_required"],
  ["7.4", "tls_required"],
  ["7.5", "tls_required"],
  ["7.6", "tls_required"],
  ["7.7", "content_rejected"],
  ["7.8", "policy_rejected"],
  ["7.9", "policy_rejected"],
  ["7.10", "tls_required"],
  ["7.11", "tls_required"],
  ["7.12", "policy_rejected"],
  ["7.13", "mailbox_disabled"],
  ["7.14", "policy_rejected"],
  ["7.15", "policy_rejected"],
  ["7.16", "message_too_large"],
  ["7.17", "mailbox_moved"],
  ["7.18", "mailbox_moved"],
  ["7.19", "policy_rejected"],
  ...["7.20", "7.21", "7.22", "7.23", "7.24", "7.26", "7.29"].map(
    (c) => [c, "auth_failure"] as [string, Reason],
  ),
  ["7.25", "ptr_required"],
  ["7.27", "invalid_sender"],
  ["7.28", "rate_limited"],
  ["7.30", "tls_required"],
]);

/** Status rules that only hold for one class (the same subject.detail means different things). */
export const STATUS_RULES_BY_CLASS: ReadonlyMap<string, Reason> = new Map<string, Reason>([
  ["4.4.4", "dns_temporary"],
  ["5.4.4", "invalid_domain"],
  ["4.7.0", "rate_limited"],
  ["5.7.0", "policy_rejected"],
  ["4.2.1", "mailbox_disabled"],
]);

/** Subject-level fallback when the detail is unknown (vendor codes like 5.7.606, 4.7.650). */
export const STATUS_SUBJECT_RULES: ReadonlyMap<string, Reason> = new Map<string, Reason>([
  ["6", "content_rejected"],
  ["5", "protocol_error"],
]);

/** PowerMTA `bounceCat` → reason, used only when the text and the code say nothing better. */
export const BOUNCE_CATEGORY_HINTS: ReadonlyMap<string, Reason> = new Map<string, Reason>([
  ["bad-mailbox", "invalid_mailbox"],
  ["bad-domain", "invalid_domain"],
  ["inactive-mailbox", "mailbox_disabled"],
  ["quota-issues", "mailbox_full"],
  ["spam-related", "spam_content"],
  ["virus-related", "virus_detected"],
  ["content-related", "content_rejected"],
  ["policy-related", "policy_rejected"],
  ["relaying-issues", "relay_denied"],
  ["invalid-sender", "invalid_sender"],
  ["bad-configuration", "remote_system_error"],
  ["bad-connection", "network_error"],
  ["no-answer-from-host", "network_error"],
  ["routing-errors", "network_error"],
  ["protocol-errors", "protocol_error"],
  ["message-expired", "expired"],
]);
