import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runCli } from "./support/run-cli.js";

const dir = mkdtempSync(join(tmpdir(), "pmta-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const HEADER =
  "type,timeQueued,timeLogged,orig,rcpt,bounceCat,dsnStatus,dsnAction,dsnDiag,dsnMta,jobId,vmta,header_X-FBLId";

describe("pmta-ingest classify", () => {
  it("prints the classification of one diagnostic as JSON", async () => {
    const r = await runCli([
      "classify",
      "smtp;550 5.1.1 <a@b.c>... User unknown",
      "--status",
      "5.1.1",
      "--category",
      "bad-mailbox",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(out.reason, "invalid_mailbox");
    assert.equal(out.hard, true);
    assert.equal(out.permanent, true);
    assert.equal(out.action, "suppress");
    assert.equal(out.scope, "recipient");
  });

  it("says what to give when nothing is given", async () => {
    const r = await runCli(["classify"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /give a diagnostic text, --status or --category/);
  });

  it("--jsonl answers every input line in order; bad lines get an error, not an abort", async () => {
    const input = [
      JSON.stringify({ type: "b", dsnStatus: "5.2.2", dsnDiag: "smtp;552 5.2.2 Mailbox full", id: "one" }),
      "{not json",
      JSON.stringify({ type: "t", dsnDiag: "smtp;451 4.7.1 Greylisted, please try again in 300 seconds" }),
      "[]",
      "",
      JSON.stringify({ dsnDiag: 42 }),
      JSON.stringify({ note: "nothing useful" }),
      JSON.stringify({ dsnDiag: "smtp;550 5.1.1 no such user", rcpt: "x@gmail.com" }),
    ].join("\n");
    const r = await runCli(["classify", "--jsonl"], `${input}\n`);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 8);
    assert.deepEqual([lines[0]?.id, lines[0]?.reason, lines[0]?.hard], ["one", "mailbox_full", false]);
    assert.match(String(lines[1]?.error), /invalid JSON/);
    assert.equal(lines[1]?.line, 2);
    assert.deepEqual([lines[2]?.reason, lines[2]?.action], ["greylisted", "retry"]);
    assert.match(String(lines[3]?.error), /expected a JSON object/);
    assert.match(String(lines[4]?.error), /empty line/);
    assert.match(String(lines[5]?.error), /"dsnDiag" must be a string/);
    assert.match(String(lines[6]?.error), /nothing to classify/);
    assert.deepEqual(
      [lines[7]?.reason, lines[7]?.provider, lines[7]?.hard],
      ["invalid_mailbox", "gmail", true],
    );
  });

  it("uses an operator rules file and reports a broken one by file and line", async () => {
    const good = join(dir, "rules.txt");
    writeFileSync(good, "# ours\nmessages from==>Hard\n");
    const r = await runCli([
      "classify",
      "--rules",
      good,
      "smtp;550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent.",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { hard: boolean }).hard, true);
    const bad = join(dir, "bad-rules.txt");
    writeFileSync(bad, "fine==>Soft\n/oops( => unknown\n");
    const b = await runCli(["classify", "--rules", bad, "smtp;550 x"]);
    assert.equal(b.code, 2);
    assert.match(b.stderr, /bad-rules\.txt:2: /);
    const missing = await runCli(["classify", "--rules", join(dir, "nope.txt"), "smtp;550 x"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read rules file .*nope\.txt: ENOENT/);
  });
});

describe("pmta-ingest replay", () => {
  const file = join(dir, "bounces-2024-05-01-0000.csv");
  writeFileSync(
    file,
    [
      HEADER,
      "b,2024-05-01 13:13:20-0400,2024-05-01 13:13:21-0400,bounce@ex.com,a@gmail.com,bad-mailbox,5.1.1 (bad destination mailbox address),failed,smtp;550-5.1.1 The email account that you tried to reach does not exist,gmail-smtp-in.l.google.com (192.0.2.1),j1,vmta1,1-2-3",
      'b,2024-05-01 13:14:00-0400,2024-05-01 13:14:01-0400,bounce@ex.com,b@ex.org,other,5.0.0 (undefined status),failed,"smtp;550 broken quote,,,9-9-9',
      "rb,,2024-05-01 13:15:00-0400,bounce@ex.com,c@ex.org,quota-issues,5.2.2 (mailbox full),,smtp;552 5.2.2 Mailbox full,mx.ex.org (192.0.2.2),,,4-5-6",
      "f,,2024-05-01 13:16:00-0400,fbl@ex.com,d@aol.com,,,,,,,,7-8-9",
      "",
    ].join("\r\n"),
  );

  it("writes one event per record, sets aside a broken record with its offset, exits 0", async () => {
    const r = await runCli(["replay", file, "--host", "mta1"]);
    assert.equal(r.code, 0, r.stderr);
    const events = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      events.map((e) => e.kind),
      ["bounce", "bounce", "complaint"],
    );
    const first = events[0] as {
      id: string;
      bounce: { reason: string; hard: boolean };
      source: { host: string; offset: number };
    };
    assert.deepEqual([first.bounce.reason, first.bounce.hard], ["invalid_mailbox", true]);
    assert.equal(first.source.host, "mta1");
    assert.equal(first.source.offset, HEADER.length + 2);
    assert.match(first.id, /^[0-9a-f]{16}:\d+$/);
    const warn = r.stderr
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === "record set aside");
    assert.ok(warn, r.stderr);
    assert.equal(warn.reason, "unterminated-quote");
    assert.equal(warn.file, file);
    assert.equal(typeof warn.offset, "number");
  });

  it("gives the same ids on every replay of the same bytes", async () => {
    const a = await runCli(["replay", file]);
    const b = await runCli(["replay", file, "--types", "b,rb"]);
    const ids = (s: string) =>
      s
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { id: string }).id);
    assert.deepEqual(ids(b.stdout), ids(a.stdout).slice(0, 2));
  });

  it("leaves out of fields what other members carry with --event-fields unmapped, and rejects other values", async () => {
    const r = await runCli(["replay", file, "--types", "b", "--event-fields", "unmapped"]);
    assert.equal(r.code, 0, r.stderr);
    const e = JSON.parse(r.stdout.split("\n")[0] as string) as { recipient: string; fields: object };
    assert.equal(e.recipient, "a@gmail.com");
    assert.deepEqual(Object.keys(e.fields), ["dsnStatus", "dsnMta"]);
    const bad = await runCli(["replay", file, "--event-fields", "some"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /event-fields.*some/i);
  });

  it("writes to --output and exits 1 naming the file it could not read, after doing the others", async () => {
    const out = join(dir, "events.ndjson");
    const r = await runCli(["replay", join(dir, "missing.csv"), file, dir, "-o", out]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /"file":"[^"]*missing\.csv","reason":"ENOENT"/);
    assert.match(r.stderr, /"reason":"EISDIR"/);
    assert.equal(readFileSync(out, "utf8").trim().split("\n").length, 3);
  });

  it("reads a header-less file with --fallback-columns, flagging its events, and rejects a bad list", async () => {
    const headerless = join(dir, "headerless.csv");
    writeFileSync(headerless, "b,2024-05-01 13:13:21+0000,x@y.com,smtp;550 5.1.1 user unknown\n");
    const r = await runCli(["replay", headerless, "--fallback-columns", "type,timeLogged,rcpt,dsnDiag"]);
    assert.equal(r.code, 0, r.stderr);
    const e = JSON.parse(r.stdout) as { recipient: string; bounce: { reason: string }; warnings: string[] };
    assert.equal(e.recipient, "x@y.com");
    assert.equal(e.bounce.reason, "invalid_mailbox");
    assert.match(e.warnings.join(), /fallback column list/);
    const bad = await runCli(["replay", headerless, "--fallback-columns", "rcpt,type"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--fallback-columns must start with "type"/);
  });
});
