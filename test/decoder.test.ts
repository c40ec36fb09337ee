import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import {
  AccountingDecoder,
  computeFileKey,
  type DecodedItem,
  type DecodedRecord,
} from "../src/decode/accounting-decoder.js";
import { Header } from "../src/decode/header.js";

const HEADER =
  "type,timeQueued,timeLogged,orig,rcpt,bounceCat,dsnStatus,dsnAction,dsnDiag,dsnMta,jobId,vmta,header_X-FBLId";

/** A file exercising everything RFC 4180 and PowerMTA allow: quotes, doubled quotes, CRLF inside quotes, UTF-8. */
const RICH = [
  HEADER,
  "b,2024-05-01 13:13:20-0400,2024-05-01 13:13:21-0400,bounce@ex.com,a@gmail.com,bad-mailbox,5.1.1 (bad destination mailbox address),failed,smtp;550 5.1.1 user unknown,mx.google.com (192.0.2.1),j1,vmta1,1-2-3",
  'rb,,2024-05-01 13:14:00-0400,bounce@ex.com,b@ex.org,bad-mailbox,5.1.1 (bad destination mailbox address),,"smtp;550 5.1.1 no such local recipient: <b@ex.org> in ""RCPT TO:<b@ex.org>""",mx.ex.org (192.0.2.2),,,4-5-6',
  'b,2024-05-01 13:15:00-0400,2024-05-01 13:15:01-0400,bounce@ex.com,c@bücher.de,spam-related,5.7.1 (delivery not authorized),failed,"smtp;554 5.7.1 Rejected, spam\r\nsecond line, with comma",mx.xn--bcher-kva.de (192.0.2.3),j2,vmta2,7-8-9',
  "",
  "b,2024-05-01 13:16:00-0400,2024-05-01 13:16:01-0400,bounce@ex.com,d@yahoo.com,quota-issues,5.2.2 (mailbox full),failed,smtp;552 5.2.2 mailbox full,mta5.am0.yahoodns.net (192.0.2.4),j3,vmta3,10-11-12",
].join("\r\n");

function decodeAll(bytes: Buffer, chunk: number, acceptUnterminated = true): DecodedItem[] {
  const d = new AccountingDecoder();
  const items: DecodedItem[] = [];
  for (let i = 0; i < bytes.length; i += chunk) items.push(...d.push(bytes.subarray(i, i + chunk)));
  items.push(...d.end(acceptUnterminated));
  return items;
}

function records(items: DecodedItem[]): DecodedRecord[] {
  return items.filter((i): i is DecodedRecord => i.kind === "record");
}

function comparable(items: DecodedItem[]): unknown[] {
  return items.map((i) =>
    i.kind === "record"
      ? { kind: i.kind, offset: i.offset, end: i.end, values: i.values, w: i.warnings, key: i.fileKey }
      : { kind: i.kind, offset: i.offset, end: i.end },
  );
}

function assertTiles(items: DecodedItem[], total: number): void {
  let at = 0;
  for (const item of items) {
    assert.equal(item.offset, at, `item ${item.kind} starts where the previous one ended`);
    assert.ok(item.end > item.offset);
    at = item.end;
  }
  assert.equal(at, total, "items cover every byte of the input");
}

describe("AccountingDecoder", () => {
  const bytes = Buffer.from(`${RICH}\r\n`, "utf8");

  it("maps columns by the file's header, union layout included", () => {
    const recs = records(decodeAll(bytes, bytes.length));
    assert.equal(recs.length, 4);
    const rb = recs[1] as DecodedRecord;
    assert.equal(rb.type, "rb");
    assert.equal(rb.header.get(rb.values, "timeQueued"), undefined, "rb leaves timeQueued empty");
    assert.equal(rb.header.get(rb.values, "timeLogged"), "2024-05-01 13:14:00-0400");
    assert.equal(
      rb.header.get(rb.values, "dsnDiag"),
      'smtp;550 5.1.1 no such local recipient: <b@ex.org> in "RCPT TO:<b@ex.org>"',
    );
    assert.equal(rb.header.get(rb.values, "header_X-FBLId"), "4-5-6");
    assert.equal(rb.columnSource, "file");
  });

  it("keeps quoted commas and CRLF inside a field, and UTF-8 text", () => {
    const rec = records(decodeAll(bytes, bytes.length))[2] as DecodedRecord;
    assert.equal(
      rec.header.get(rec.values, "dsnDiag"),
      "smtp;554 5.7.1 Rejected, spam\r\nsecond line, with comma",
    );
    assert.equal(rec.header.get(rec.values, "rcpt"), "c@bücher.de");
    assert.equal(rec.warnings, undefined);
  });

  it("gives identical items and offsets for every chunk size, down to one byte", () => {
    const whole = comparable(decodeAll(bytes, bytes.length));
    for (const size of [1, 2, 3, 5, 7, 13, 64, 333, 4096]) {
      assert.deepEqual(comparable(decodeAll(bytes, size)), whole, `chunk size ${size}`);
    }
  });

  it("emits items whose offsets tile the file exactly (the basis of checkpoints)", () => {
    const items = decodeAll(bytes, 7);
    assertTiles(items, bytes.length);
    assert.deepEqual(
      items.map((i) => i.kind),
      ["header", "record", "record", "record", "blank", "record"],
    );
  });

  it("handles LF line endings, a UTF-8 BOM and a lone CR before the final LF", () => {
    const lf = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from(`${RICH.replaceAll("\r\n", "\n")}\r\n`),
    ]);
    const items = decodeAll(lf, 11);
    assertTiles(items, lf.length);
    const header = items[0];
    assert.equal(header?.kind, "header");
    if (header?.kind === "header") assert.equal(header.header.names[0], "type");
    const recs = records(items);
    assert.equal(recs.length, 4);
    assert.equal(recs[3]?.header.get(recs[3].values, "header_X-FBLId"), "10-11-12", "trailing CR stripped");
  });

  it("accepts #type headers and duplicate column names (first non-empty wins)", () => {
    const text = "#type,rcpt,rcvSourceIp,rcvSourceIp\nf,a@b.c,,192.0.2.9\n";
    const recs = records(decodeAll(Buffer.from(text), 4));
    const r = recs[0] as DecodedRecord;
    assert.equal(r.header.get(r.values, "rcvSourceIp"), "192.0.2.9");
    assert.deepEqual(r.header.toObject(r.values), { type: "f", rcpt: "a@b.c", rcvSourceIp: "192.0.2.9" });
  });

  it("switches columns when a header line re-appears mid-file", () => {
    const text = "type,rcpt,dsnDiag\nb,a@x.com,smtp;550 no\ntype,dsnDiag,rcpt\nb,smtp;550 gone,b@x.com\n";
    const items = decodeAll(Buffer.from(text), 5);
    const headers = items.filter((i) => i.kind === "header");
    assert.equal(headers.length, 2);
    assert.equal(headers[1]?.kind === "header" && headers[1].changed, true);
    const recs = records(items);
    assert.equal(recs[1]?.header.get(recs[1].values, "rcpt"), "b@x.com");
    assert.equal(recs[0]?.fileKey, recs[1]?.fileKey, "the file key does not change with the header");
  });

  it("holds back an unterminated trailing record and never emits it early", () => {
    const d = new AccountingDecoder();
    const first = d.push(Buffer.from(`${HEADER}\nb,,,o@x,a@x.com,,5.1.1,failed,smtp;550 5.1.1 unknown`));
    assert.deepEqual(
      first.map((i) => i.kind),
      ["header"],
    );
    assert.equal(d.committedOffset, HEADER.length + 1);
    assert.ok(d.pendingBytes > 0);
    const more = d.push(Buffer.from(",mx (192.0.2.1),j,v,1-1-1\r\n"));
    assert.equal(records(more).length, 1);
    assert.equal(d.pendingBytes, 0);
  });

  it("reports a sealed file's trailing partial record as an error, or accepts it when replaying", () => {
    const text = Buffer.from(`${HEADER}\nb,,,o@x,a@x.com,,5.1.1,failed,smtp;550 unknown`);
    const sealed = decodeAll(text, 9, false);
    const last = sealed[sealed.length - 1];
    assert.equal(last?.kind, "error");
    if (last?.kind === "error") {
      assert.equal(last.reason, "partial-record");
      assert.match(last.message, /offset \d+/);
    }
    assertTiles(sealed, text.length);
    const replayed = decodeAll(text, 9, true);
    assert.equal(records(replayed).length, 1);
  });

  it("sets aside an over-long record, continues with the next one and keeps memory bounded", () => {
    const max = 64 * 1024;
    const d = new AccountingDecoder({ maxRecordBytes: max });
    const items: DecodedItem[] = [...d.push(Buffer.from(`${HEADER}\n`))];
    const huge = Buffer.alloc(5 * 1024 * 1024, "x");
    huge.write("b,", 0);
    let maxPending = 0;
    for (let i = 0; i < huge.length; i += 16 * 1024) {
      items.push(...d.push(huge.subarray(i, i + 16 * 1024)));
      maxPending = Math.max(maxPending, d.pendingBytes);
    }
    items.push(...d.push(Buffer.from("\nb,,,o@x,a@x.com,,5.1.1,failed,smtp;550 unknown,,,,1-1-1\n")));
    items.push(...d.end(false));
    assert.ok(maxPending <= max + 16 * 1024, `held ${maxPending} bytes`);
    const errors = items.filter((i) => i.kind === "error");
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.kind === "error" && errors[0].reason, "record-too-long");
    assert.equal(records(items).length, 1, "the record after the long one is decoded");
    assertTiles(items, HEADER.length + 1 + huge.length + 57);
  });

  it("loses only the broken line when a quote is never closed", () => {
    const text = `${HEADER}\nb,,,o@x,a@x.com,,5.1.1,failed,"smtp;550 broken,,,,1-1-1\nb,,,o@x,b@x.com,,5.1.1,failed,smtp;550 fine,,,,2-2-2\n`;
    const items = decodeAll(Buffer.from(text), 3, false);
    assertTiles(items, Buffer.byteLength(text));
    const errors = items.filter((i) => i.kind === "error");
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.kind === "error" && errors[0].reason, "unterminated-quote");
    const recs = records(items);
    assert.equal(recs.length, 1);
    assert.equal(recs[0]?.header.get(recs[0].values, "rcpt"), "b@x.com");
  });

  it("keeps a malformed quote's text and does not swallow the next record (csv-parse trap)", () => {
    const text = `type,rcpt,dsnDiag,jobId\nb,a@x.com,"q"x,j1\nb,b@x.com,say "hi",j2\nb,c@x.com,ok,j3\n`;
    const recs = records(decodeAll(Buffer.from(text), 4));
    assert.equal(recs.length, 3);
    assert.equal(recs[0]?.values[2], "qx");
    assert.match(recs[0]?.warnings?.[0] ?? "", /quoting/);
    assert.equal(recs[1]?.values[2], 'say "hi"');
    assert.equal(recs[2]?.values[3], "j3");
  });

  it("decodes odd rows with warnings instead of failing", () => {
    const bad = Buffer.from([
      ...Buffer.from("type,rcpt,dsnDiag\nb,a@x.com\nb,b@x.com,smtp;550,extra\nzz,c@x.com,x\nb,d@x.com,caf"),
      0xc3,
      0x28,
      ...Buffer.from("\n"),
    ]);
    const recs = records(decodeAll(bad, 2));
    assert.equal(recs.length, 4);
    assert.match(recs[0]?.warnings?.join() ?? "", /2 fields, header has 3/);
    assert.deepEqual(recs[1]?.header.toObject(recs[1].values), {
      type: "b",
      rcpt: "b@x.com",
      dsnDiag: "smtp;550",
      _extra1: "extra",
    });
    assert.match(recs[2]?.warnings?.join() ?? "", /unknown record type "zz"/);
    assert.match(recs[3]?.warnings?.join() ?? "", /invalid UTF-8/);
    assert.ok(recs[3]?.values[2]?.includes("\uFFFD"));
  });

  it("marks a record plain only when no warning is known without a split, whichever way the type is written", () => {
    const file = Buffer.from('type,rcpt,dsnDiag\nb,a@x.com,ok\n"rb",b@x.com,"x, y"\ntq\nzz,c@x.com,x\n');
    const recs = records(decodeAll(file, 3));
    assert.deepEqual(
      recs.map((r) => [r.type, r.plain, r.values, r.warnings]),
      [
        ["b", true, ["b", "a@x.com", "ok"], undefined],
        ["rb", true, ["rb", "b@x.com", "x, y"], undefined],
        // Plain as far as the decoder knows; the split finds the missing columns (encodeEvent does too).
        ["tq", true, ["tq"], ["columns: 1 fields, header has 3"]],
        ["zz", false, ["zz", "c@x.com", "x"], ['type: unknown record type "zz"']],
      ],
    );
    // Columns from a fallback list are a warning the decoder knows of.
    const fallback = records([...new AccountingDecoder().push(Buffer.from("b,,,o@x,a@x.com\n"))])[0];
    assert.equal(fallback?.plain, false);
  });

  it("uses a remembered header, then configured fallback columns, then PowerMTA's defaults, flagged", () => {
    const row = Buffer.from("b,,,o@x,a@x.com,,5.1.1,failed,smtp;550 unknown,,,,1-1-1\n");
    const remembered = new Header(HEADER.split(","));
    const r1 = records([...new AccountingDecoder({ header: remembered, startOffset: 500 }).push(row)])[0];
    assert.equal(r1?.columnSource, "remembered");
    assert.equal(r1?.offset, 500);
    assert.equal(r1?.warnings, undefined);
    const r2 = records([
      ...new AccountingDecoder({ fallbackColumns: { b: HEADER.split(",") } }).push(row),
    ])[0];
    assert.equal(r2?.columnSource, "fallback");
    assert.match(r2?.warnings?.join() ?? "", /fallback column list/);
    assert.equal(r2?.header.get(r2.values, "rcpt"), "a@x.com");
    const r3 = records([...new AccountingDecoder().push(row)])[0];
    assert.equal(r3?.columnSource, "pmta-default");
    assert.match(r3?.warnings?.join() ?? "", /pmta-default/);
  });

  it("gives the same file key and offsets when resuming mid-file with saved state", () => {
    const full = records(decodeAll(bytes, 100));
    const cut = full[1] as DecodedRecord;
    const d0 = new AccountingDecoder();
    d0.push(bytes.subarray(0, cut.offset));
    const resumed = new AccountingDecoder({ ...d0.state(), startOffset: cut.offset });
    const rest = records([...resumed.push(bytes.subarray(cut.offset)), ...resumed.end(true)]);
    assert.deepEqual(
      rest.map((r) => [r.fileKey, r.offset]),
      full.slice(1).map((r) => [r.fileKey, r.offset]),
    );
  });

  it("keeps the file key (part of every event id) as earlier versions computed it", () => {
    // Ids must not change across an upgrade, or a backend could no longer recognise records re-sent
    // after a restart. The key is the first 16 hex digits of sha256(header line, "\n", first record).
    const key = computeFileKey("type,timeLogged,orig,rcpt", "b,2025-01-15 08:00:00+0000,o@x,a@x.com");
    assert.equal(key, "75db5118a09145d3");
    const row = "b,2025-01-15 08:00:00+0000,o@x,a@x.com";
    const first = records(decodeAll(Buffer.from(`${HEADER}\n${row}\n`), 50))[0] as DecodedRecord;
    assert.equal(
      first.fileKey,
      createHash("sha256").update(HEADER).update("\n").update(row).digest("hex").slice(0, 16),
    );
  });

  it("gives different files different keys even with identical headers", () => {
    const a = records(decodeAll(Buffer.from(`${HEADER}\nb,,,o@x,a@x.com\n`), 50))[0];
    const b = records(decodeAll(Buffer.from(`${HEADER}\nb,,,o@x,b@x.com\n`), 50))[0];
    assert.notEqual(a?.fileKey, b?.fileKey);
  });

  it("gives the same items when its buffer is released between pushes", () => {
    const whole = comparable(decodeAll(bytes, bytes.length));
    const d = new AccountingDecoder();
    const items: DecodedItem[] = [];
    for (let i = 0; i < bytes.length; i += 37) {
      items.push(...d.push(bytes.subarray(i, i + 37)));
      d.release();
    }
    items.push(...d.end(true));
    assert.deepEqual(comparable(items), whole);
  });

  it("survives lines made only of quotes", () => {
    const text = `type,rcpt\n""""""\n"""""""\n""\nb,a@x.com\n`;
    const items = decodeAll(Buffer.from(text), 3, false);
    assertTiles(items, Buffer.byteLength(text));
    assert.ok(records(items).some((r) => r.values[1] === "a@x.com"));
  });
});
