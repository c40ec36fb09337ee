import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  Classifier,
  lastHashes,
  normalizedHash,
  normalizedHashBytes,
  normalizeForKey,
} from "../src/classify/classifier.js";
import { parseOperatorRules, RuleSyntaxError } from "../src/classify/operator-rules.js";
import { providerOf } from "../src/classify/providers.js";
import { BOUNCE_REASONS, REASON_INFO } from "../src/classify/taxonomy.js";

const c = new Classifier();

describe("Classifier decision order", () => {
  it("takes the text over a generic status: 5.0.0 + 'no such user' is hard", () => {
    const r = c.classify({ dsnStatus: "5.0.0 (undefined status)", dsnDiag: "smtp;550 No such user here" });
    assert.equal(r.reason, "invalid_mailbox");
    assert.equal(r.hard, true);
    assert.equal(r.action, "suppress");
    assert.match(r.evidence, /^phrase:/);
  });

  it("does not suppress on a 5xx block: every-5xx-is-hard traps", () => {
    const cases: Array<[string, string, string]> = [
      [
        "5.7.1",
        "smtp;554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        "sender_blocklisted",
      ],
      [
        "5.7.26",
        "smtp;550-5.7.26 Unauthenticated email from example.com is not accepted due to DMARC policy",
        "auth_failure",
      ],
      ["5.2.2", "smtp;552 5.2.2 <a@x.com>: user is over quota", "mailbox_full"],
      ["5.7.1", "smtp;554 5.7.1 <a@x.com>: Relay access denied", "relay_denied"],
      ["5.1.1", "smtp;550 5.1.1 Message rejected: blocked by Spamhaus SBL", "sender_blocklisted"],
    ];
    for (const [status, diag, reason] of cases) {
      const r = c.classify({ dsnStatus: status, dsnDiag: diag });
      assert.equal(r.reason, reason, diag);
      assert.equal(r.hard, false, diag);
      assert.equal(r.permanent, true);
    }
  });

  it("puts quota before user-unknown ('mailbox unavailable: over quota')", () => {
    const r = c.classify({ dsnStatus: "5.2.2", dsnDiag: "smtp;550 mailbox unavailable: over quota" });
    assert.equal(r.reason, "mailbox_full");
  });

  it("never makes a deferral or a 4xx reply hard", () => {
    const t = c.classify({
      type: "t",
      dsnStatus: "5.1.1",
      dsnDiag: "smtp;550 5.1.1 user unknown",
      dsnAction: "delayed",
    });
    assert.equal(t.reason, "invalid_mailbox");
    assert.equal(t.hard, false);
    assert.equal(t.action, "retry");
    const soft = c.classify({
      dsnStatus: "4.1.1",
      dsnDiag: "smtp;450 4.1.1 <a@x.com>: Recipient address rejected: unverified address",
    });
    assert.equal(soft.hard, false);
    assert.equal(soft.permanent, false);
    const delayedRb = c.classify({
      type: "rb",
      dsnAction: "delayed",
      dsnStatus: "5.1.1",
      dsnDiag: "smtp;550 5.1.1 unknown user",
    });
    assert.equal(delayedRb.hard, false);
  });

  it("uses provider rules when the MX or recipient domain names the provider", () => {
    const ms = c.classify({
      dsnStatus: "5.4.1",
      dsnDiag:
        "smtp;550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [BN8NAM12FT012.eop-nam12.prod.protection.outlook.com]",
      dsnMta: "example-com.mail.protection.outlook.com (52.101.1.2)",
    });
    assert.equal(ms.provider, "microsoft");
    assert.equal(ms.reason, "invalid_mailbox");
    assert.equal(ms.evidence, "provider:ms-access-denied");
    const other = c.classify({
      dsnStatus: "5.4.1",
      dsnDiag: "smtp;550 5.4.1 Recipient address rejected: Access denied",
    });
    assert.notEqual(other.reason, "invalid_mailbox", "the same text elsewhere is a policy rejection");
    const yahoo = c.classify({
      type: "t",
      dsnStatus: "4.7.0",
      dsnDiag:
        "smtp;421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints",
      recipientDomain: "yahoo.com",
    });
    assert.equal(yahoo.reason, "sender_reputation");
  });

  it("falls back to a specific status code, then to bounceCat, then to the class", () => {
    const byStatus = c.classify({ dsnStatus: "5.1.2 (bad destination system: no such domain)" });
    assert.deepEqual(
      [byStatus.reason, byStatus.hard, byStatus.evidence],
      ["invalid_domain", true, "status:5.1.2"],
    );
    const byCat = c.classify({
      dsnStatus: "5.0.0",
      dsnDiag: "smtp;550 Go away",
      bounceCat: "inactive-mailbox",
    });
    assert.deepEqual(
      [byCat.reason, byCat.confidence, byCat.evidence],
      ["mailbox_disabled", "low", "bounceCat:inactive-mailbox"],
    );
    const byClass = c.classify({ dsnStatus: "5.0.0", dsnDiag: "smtp;550 Go away" });
    assert.deepEqual([byClass.reason, byClass.hard, byClass.action], ["unknown", false, "review"]);
  });

  it("prefers the text's code when dsnStatus only gives the class", () => {
    const r = c.classify({
      dsnStatus: "5.0.0 (undefined status)",
      dsnDiag: "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound",
    });
    assert.equal(r.status, "5.1.10");
    // "undefined status" describes 5.0.0, not the 5.1.10 reported.
    assert.equal(r.statusText, undefined);
    const same = c.classify({
      dsnStatus: "5.1.1 (bad destination mailbox address)",
      dsnDiag: "smtp;550 5.1.1 No",
    });
    assert.deepEqual([same.status, same.statusText], ["5.1.1", "bad destination mailbox address"]);
  });

  it("classifies PowerMTA-internal outcomes", () => {
    assert.equal(
      c.classify({ dsnStatus: "5.0.0", dsnDiag: "x-pmta;deleted by administrator" }).reason,
      "admin_deleted",
    );
    const bq = c.classify({
      dsnStatus: "5.7.1",
      dsnDiag:
        "x-pmta;bounce-queue;reply:550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).",
      recipientDomain: "hotmail.com",
    });
    assert.equal(bq.reason, "sender_blocklisted");
  });

  it("handles complaint and delivery records", () => {
    assert.equal(c.classify({ type: "f" }).reason, "complaint");
    assert.equal(c.classify({ type: "f" }).action, "suppress");
    assert.equal(c.classify({ type: "d", dsnStatus: "2.0.0 (success)" }).reason, "delivered");
  });

  it("returns identical results from its cache for replies that differ only in addresses and ids", () => {
    const cached = new Classifier();
    const a = cached.classify({
      dsnStatus: "5.1.1",
      dsnDiag: "smtp;550 5.1.1 <anna@x.com>: user unknown (id 4f3a9c2e11)",
    });
    const b = cached.classify({
      dsnStatus: "5.1.1",
      dsnDiag: "smtp;550 5.1.1 <bob@y.org>: user unknown (id 7e1b2c3d44)",
    });
    assert.deepEqual(a, b);
    assert.equal(cached.hits, 1);
  });

  it("keys its cache on the diagnostic with addresses and long ids blanked, hashed without building it", () => {
    const diag = "smtp;550 5.1.1 <anna@x.com>: user unknown [192.0.2.1] id=4f3a9c2e11 TSS04  end ";
    assert.equal(normalizeForKey(diag), "smtp;550 5.1.1 @ user unknown # # TSS04  end  ");
    // The reference: both hashes over the normalized text, written out.
    const reference = (s: string): [number, number] => {
      let h = 0x811c9dc5;
      let g = 0x9747b28c;
      for (let i = 0; i < s.length; i++) {
        h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
        const x = Math.imul(g ^ s.charCodeAt(i), 0x5bd1e995);
        g = x ^ (x >>> 15);
      }
      return [h >>> 0, g >>> 0];
    };
    const samples = [
      diag,
      "",
      " ",
      "a",
      "@",
      "123456",
      "12345",
      "x".repeat(10_000),
      `${"tok ".repeat(3000)}zoë 𝔘 \u0000`,
      "smtp;550 5.7.1 Service unavailable; Client host [203.0.113.9] blocked using zen.spamhaus.org",
      "smtp;550 5.7.1 Service unavailable; Client host [198.51.100.7] blocked using zen.spamhaus.org",
    ];
    const seen = new Map<string, string>();
    for (const a of samples) {
      const normalized = normalizeForKey(a);
      const h = normalizedHash(a);
      assert.deepEqual([h, lastHashes()[1]], reference(normalized), JSON.stringify(a.slice(0, 40)));
      const key = lastHashes().join(":");
      const before = seen.get(key);
      assert.ok(before === undefined || before === normalized, "different texts, different hash pairs");
      seen.set(key, normalized);
    }
    assert.equal(seen.size, samples.length - 1, "the two spamhaus replies differ only in the IP: one key");
  });

  it("hashes a CSV field's bytes as the text it stands for (doubled quotes once), so both paths share entries", () => {
    const texts = [
      "",
      " ",
      "smtp;550 5.1.1 <anna@x.com>: user unknown [192.0.2.1] id=4f3a9c2e11 TSS04  end ",
      'smtp; 550 Unknown user in "RCPT TO:<david@example.es>"',
      '"',
      '""quoted"" ids 1234567890 and @ alone',
      "tab\there and a backslash \\ ",
    ];
    for (const text of texts) {
      const h = normalizedHash(text);
      const check = lastHashes()[1];
      // As the field sits in a record: quoted, every quote doubled, between other fields.
      const field = `"${text.replaceAll('"', '""')}"`;
      const record = Buffer.from(`b,2025-01-15 08:00:00+0000,${field},vmta-1`);
      const from = record.indexOf(field) + 1;
      const to = from + Buffer.byteLength(field) - 2;
      assert.equal(normalizedHashBytes(record, from, to), h, JSON.stringify(text));
      assert.equal(lastHashes()[1], check, JSON.stringify(text));
    }
    // The classifier finds the entry the text path made from the bytes' hashes.
    const c = new Classifier();
    const diag = "smtp;550 5.1.1 <bob@y.org>: user unknown";
    const a = c.classify({ dsnStatus: "5.1.1", dsnDiag: diag });
    const bytes = Buffer.from(diag);
    const diagHash = normalizedHashBytes(bytes, 0, bytes.length);
    const b = c.classify({ dsnStatus: "5.1.1", dsnDiag: diag, diagHash, diagCheck: lastHashes()[1] });
    assert.equal(b, a);
    assert.equal(c.hits, 1);
  });

  it("keeps replies still in use and forgets the others when its cache turns over", () => {
    const c = new Classifier({ cacheSize: 4 });
    const reply = (text: string) =>
      c.classify({ type: "b", dsnStatus: "5.0.0", dsnDiag: `smtp;550 ${text}` });
    const a = reply("no such user");
    reply("mailbox full");
    reply("blocked by policy"); // the first generation (2 entries) is full: it becomes the older one
    assert.equal(reply("no such user"), a, "found in the older generation, same result object");
    reply("spam detected"); // turns over again: the older generation now holds the reply above
    reply("relay denied");
    const before = c.misses;
    assert.equal(reply("no such user"), a, "still cached: it was used in the last generation");
    assert.equal(c.misses, before);
    reply("mailbox full");
    assert.equal(c.misses, before + 1, "not used for two generations: forgotten");
  });

  it("hands out one result object for replies that classify alike, and keeps none of their text", () => {
    const c = new Classifier();
    const input = (text: string, bounceCat: string) => ({
      type: "b",
      dsnStatus: "5.1.1",
      dsnDiag: `smtp;550 ${text}`,
      bounceCat,
    });
    const a = c.classify(input("no such user", "bad-mailbox"));
    const b = c.classify(input("no such user here", "inactive-mailbox"));
    const d = c.classify(input("mailbox unavailable: no such user", "bad-mailbox"));
    assert.equal(c.misses, 3, "three different replies, three cache entries");
    assert.equal(b, a, "same result: the same object (memoised bytes and labels are shared)");
    assert.equal(d, a);
    assert.equal(a.reason, "invalid_mailbox");
    // A different result is a different object, and the shared one is not changed by it.
    const e = c.classify(input("mailbox full", "quota-issues"));
    assert.notEqual(e, a);
    assert.equal(a.reason, "invalid_mailbox");
    assert.deepEqual({ ...c.classify(input("no such user", "bad-mailbox")) }, { ...a });
  });

  it("tells apart cached replies that differ in status, action, category, type or provider", () => {
    const cached = new Classifier();
    const diag = "smtp;550 mailbox unavailable";
    const base = {
      type: "b",
      dsnStatus: "5.0.0",
      dsnAction: "failed",
      bounceCat: "bad-mailbox",
      dsnDiag: diag,
    };
    const first = cached.classify(base);
    for (const change of [
      { dsnStatus: "4.0.0" },
      { dsnAction: "delayed" },
      { bounceCat: "spam-related" },
      { type: "t" },
      { recipientDomain: "gmail.com" },
    ]) {
      const misses = cached.misses;
      cached.classify({ ...base, ...change });
      assert.equal(cached.misses, misses + 1, JSON.stringify(change));
    }
    assert.equal(cached.classify({ ...base, type: "tq" }), cached.classify({ ...base, type: "t" }));
    assert.equal(cached.classify(base), first);
  });

  it("has consequences defined for every reason", () => {
    for (const r of BOUNCE_REASONS) assert.ok(REASON_INFO[r], r);
  });
});

describe("operator rules", () => {
  it("Octeth 'substring==>Hard' forces hard and keeps the built-in reason", () => {
    const rules = parseOperatorRules(
      "# Octeth list\n550 5.7.1 Unfortunately, messages from==>Hard\n",
      "octeth.txt",
    );
    const cl = new Classifier({ rules });
    const r = cl.classify({
      dsnStatus: "5.7.1",
      dsnDiag: "smtp;550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. (S3150)",
      recipientDomain: "outlook.com",
    });
    assert.deepEqual(
      [r.reason, r.hard, r.action, r.evidence],
      ["sender_blocklisted", true, "suppress", "operator:octeth.txt:2"],
    );
  });

  it("'/regex/ => reason' and quoted substrings win over built-in rules", () => {
    const rules = parseOperatorRules(
      '/user unknown/i => mailbox_disabled, soft\n"over quota" => invalid_mailbox\n',
      "/etc/pmta-ingest/rules.txt",
    );
    const cl = new Classifier({ rules });
    const a = cl.classify({ dsnStatus: "5.1.1", dsnDiag: "smtp;550 5.1.1 User Unknown" });
    assert.deepEqual([a.reason, a.hard, a.action], ["mailbox_disabled", false, "retry"]);
    const b = cl.classify({ dsnStatus: "5.2.2", dsnDiag: "smtp;552 mailbox Over Quota" });
    assert.deepEqual([b.reason, b.hard], ["invalid_mailbox", true]);
  });

  it("rejects bad lines naming the file and line", () => {
    assert.throws(
      () => parseOperatorRules("ok==>Hard\nthis is not a rule\n", "r.txt"),
      (err: unknown) => {
        assert.ok(err instanceof RuleSyntaxError);
        assert.match(err.message, /^r\.txt:2: expected/);
        return true;
      },
    );
    assert.throws(
      () => parseOperatorRules('"x" => no_such_reason', "r.txt"),
      /r\.txt:1: unknown reason "no_such_reason"/,
    );
    assert.throws(
      () => parseOperatorRules("/(unclosed/ => unknown", "r.txt"),
      /r\.txt:1: invalid regular expression/,
    );
  });
});

describe("providerOf", () => {
  it("prefers the MX that answered over the recipient domain", () => {
    assert.equal(providerOf("aspmx.l.google.com", "company.example"), "gmail");
    assert.equal(providerOf(undefined, "hotmail.fr"), "microsoft");
    assert.equal(providerOf("mx.example.net", "ymail.com"), "yahoo");
    assert.equal(providerOf(undefined, "example.com"), "other");
  });
});
