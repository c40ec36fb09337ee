import type { Confidence } from "../classify/classifier.js";
import type { Provider } from "../classify/providers.js";
import type { Action, Reason, Scope } from "../classify/taxonomy.js";

/**
 * The event: one per accounting record, the contract with the backend (documented in the README,
 * "Event format"). Optional members are left out when empty rather than set to null, so a backend
 * can tell "absent" from "empty" without special cases.
 */
export type EventKind = "bounce" | "complaint" | "deferral" | "delivery" | "other";

export interface BounceInfo {
  readonly hard: boolean;
  readonly permanent: boolean;
  readonly reason: Reason;
  readonly action: Action;
  readonly scope: Scope;
  readonly evidence: string;
  readonly confidence: Confidence;
  readonly provider: Provider;
  /** PowerMTA's bounceCat, as written. */
  readonly category?: string;
  /** Enhanced status code, e.g. `5.1.1`. */
  readonly status?: string;
  /** PowerMTA's description of the status, e.g. `bad destination mailbox address`. */
  readonly statusText?: string;
  readonly smtpCode?: number;
  /** dsnDiag as written. */
  readonly diagnostic?: string;
  readonly remoteMta?: string;
  readonly remoteIp?: string;
  readonly dsnAction?: string;
}

export interface ComplaintInfo {
  readonly format?: string;
  readonly feedbackType?: string;
  readonly reportedDomain?: string;
  readonly userAgent?: string;
  readonly reportingMta?: string;
  readonly sourceIp?: string;
}

export interface EventSource {
  readonly host: string;
  readonly file: string;
  /** Byte offset of the record in the file. */
  readonly offset: number;
}

export interface PmtaEvent {
  /** `<fileKey>:<offset>`: the same bytes always give the same id (restart, rename, re-read). */
  readonly id: string;
  readonly kind: EventKind;
  readonly recordType: string;
  /** timeLogged as ISO 8601 UTC; null only when the record's time could not be read (see warnings). */
  readonly time: string | null;
  readonly queuedAt?: string;
  readonly sender?: string;
  readonly recipient?: string;
  readonly recipientDomain?: string;
  readonly bounce?: BounceInfo;
  readonly complaint?: ComplaintInfo;
  readonly jobId?: string;
  readonly vmta?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Every non-empty column of the record by header name, as written. */
  readonly fields: Readonly<Record<string, string>>;
  readonly source: EventSource;
  readonly warnings?: readonly string[];
}
