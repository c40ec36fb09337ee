/**
 * The normalized bounce taxonomy (see README "Event format" and
 * ../shared/reference/bounce-taxonomy.md §6). Each reason carries its fixed consequences, so rules only
 * ever choose a reason; they never decide hard/action/scope on their own.
 */

export const BOUNCE_REASONS = [
  "invalid_mailbox",
  "invalid_address_syntax",
  "invalid_domain",
  "mailbox_moved",
  "mailbox_disabled",
  "previously_suppressed",
  "mailbox_full",
  "recipient_filtered",
  "message_too_large",
  "content_rejected",
  "spam_content",
  "virus_detected",
  "sender_blocklisted",
  "sender_reputation",
  "auth_failure",
  "ptr_required",
  "invalid_sender",
  "tls_required",
  "policy_rejected",
  "relay_denied",
  "rate_limited",
  "greylisted",
  "network_error",
  "dns_temporary",
  "remote_system_error",
  "protocol_error",
  "expired",
  "unknown",
] as const;

/** Non-bounce outcomes that still flow through the classifier. */
export const OTHER_REASONS = ["complaint", "auto_reply", "admin_deleted", "delivered"] as const;

export type BounceReason = (typeof BOUNCE_REASONS)[number];
export type Reason = BounceReason | (typeof OTHER_REASONS)[number];

export type Action = "suppress" | "retry" | "review" | "ignore";
export type Scope = "recipient" | "message" | "sender" | "infrastructure" | "unknown";

export interface ReasonInfo {
  /**
   * Whether the *address* is bad. `"if-permanent"`: hard only when the SMTP class is 5 — a 4xx
   * "mailbox disabled" or "user unknown" is often a recipient-verification backend that is down, and
   * suppressing on it deletes good subscribers.
   */
  readonly hard: boolean | "if-permanent";
  readonly action: Action;
  readonly scope: Scope;
}

export const REASON_INFO: Readonly<Record<Reason, ReasonInfo>> = {
  invalid_mailbox: { hard: "if-permanent", action: "suppress", scope: "recipient" },
  invalid_address_syntax: { hard: "if-permanent", action: "suppress", scope: "recipient" },
  invalid_domain: { hard: "if-permanent", action: "suppress", scope: "recipient" },
  mailbox_moved: { hard: "if-permanent", action: "suppress", scope: "recipient" },
  mailbox_disabled: { hard: "if-permanent", action: "suppress", scope: "recipient" },
  previously_suppressed: { hard: true, action: "suppress", scope: "recipient" },
  mailbox_full: { hard: false, action: "retry", scope: "recipient" },
  recipient_filtered: { hard: false, action: "review", scope: "recipient" },
  message_too_large: { hard: false, action: "review", scope: "message" },
  content_rejected: { hard: false, action: "review", scope: "message" },
  spam_content: { hard: false, action: "review", scope: "message" },
  virus_detected: { hard: false, action: "review", scope: "message" },
  sender_blocklisted: { hard: false, action: "review", scope: "sender" },
  sender_reputation: { hard: false, action: "review", scope: "sender" },
  auth_failure: { hard: false, action: "review", scope: "sender" },
  ptr_required: { hard: false, action: "review", scope: "sender" },
  invalid_sender: { hard: false, action: "review", scope: "sender" },
  tls_required: { hard: false, action: "review", scope: "sender" },
  policy_rejected: { hard: false, action: "review", scope: "sender" },
  relay_denied: { hard: false, action: "review", scope: "sender" },
  rate_limited: { hard: false, action: "retry", scope: "infrastructure" },
  greylisted: { hard: false, action: "retry", scope: "infrastructure" },
  network_error: { hard: false, action: "retry", scope: "infrastructure" },
  dns_temporary: { hard: false, action: "retry", scope: "infrastructure" },
  remote_system_error: { hard: false, action: "retry", scope: "infrastructure" },
  protocol_error: { hard: false, action: "review", scope: "infrastructure" },
  expired: { hard: false, action: "retry", scope: "infrastructure" },
  unknown: { hard: false, action: "review", scope: "unknown" },
  complaint: { hard: false, action: "suppress", scope: "recipient" },
  auto_reply: { hard: false, action: "ignore", scope: "recipient" },
  admin_deleted: { hard: false, action: "ignore", scope: "message" },
  delivered: { hard: false, action: "ignore", scope: "recipient" },
};

const REASON_SET: ReadonlySet<string> = new Set<string>([...BOUNCE_REASONS, ...OTHER_REASONS]);

export function isReason(value: string): value is Reason {
  return REASON_SET.has(value);
}
