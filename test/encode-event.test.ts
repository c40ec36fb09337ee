import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Classifier } from "../src/classify/classifier.js";
import { AccountingDecoder, type DecodedRecord } from "../src/decode/accounting-decoder.js";
import { buildEvent, type EventContext } from "../src/event/build-event.js";
import { encodeEvent } from "../src/event/encode-event.js";
import { EventWriter } from "../src/event/event-writer.js";
import { generateBouncesFile, generateFblFile } from "../src/simulate/record-generator.js";

/**
 * encodeEvent writes the event's JSON straight from the record; buildEvent + JSON.stringify is the
 * readable definition of the same thing. Every record here must come out byte for byte identical,
 * and the facts encodeEvent returns for the metrics must match the event.
 */

function decodeAll(
  text: string,
  options: ConstructorParameters<typeof AccountingDecoder>[0] = {},
): DecodedRecord[] {
  const d = new AccountingDecoder(options);
  const items = [...d.push(Buffer.from(text)), ...d.end(true)];
  return items.filter((i): i is DecodedRecord => i.kind === "record");
}

/** One writer for the whole file, as in the daemon: slabs are shared by consecutive events. */
const writer = new EventWriter();
/** Every writeEvent result with what it must still hold at the end (a later event must not overwrite it). */
const written: Array<[Buffer, string]> = [];

function assertSame(record: DecodedRecord, ctx: EventContext): void {
  if (record.jsonSafe) {
    for (const v of record.values)
      assert.equal(JSON.stringify(v), `"${v}"`, `jsonSafe, but ${v} needs escaping`);
  }
  const want = buildEvent(record, ctx);
  const got = encodeEvent(record, ctx);
  assert.equal(got.line, JSON.stringify(want), `record at offset ${record.offset}`);
  assert.equal(got.id, want.id);
  assert.equal(got.kind, want.kind);
  assert.equal(got.recordType, want.recordType);
  assert.equal(got.recipientDomain, want.recipientDomain);
  assert.equal(got.vmta, want.vmta);
  assert.equal(got.jobId, want.jobId);
  assert.deepEqual(got.warnings, want.warnings);
  assert.equal(got.bounce?.reason, want.bounce?.reason);
  assert.equal(got.bounce?.hard, want.bounce?.hard);
  assert.equal(got.bounce?.provider, want.bounce?.provider);

  const data = writer.write(got.line);
  assert.equal(data.toString(), got.line, `EventWriter, record at offset ${record.offset}`);
  written.push([data, got.line]);
  assert.ok(data.buffer.byteLength >= 1024 * 1024, "a view of a slab");
}

const ctx = (file = "/var/log/pmta/bounces-2025-01-15-0000.csv"): EventContext => ({
  host: "mx-01",
  file,
  classifier: new Classifier(),
});

describe("encodeEvent", () => {
  it("equals JSON.stringify(buildEvent()) for every record of a simulated bounces and fbl file", () => {
    const c = ctx();
    let n = 0;
    let safe = 0;
    for (const [gen, seed] of [
      [generateBouncesFile, 7],
      [generateFblFile, 8],
    ] as const) {
      const text = [...gen(seed, 5000)].join("");
      for (const r of decodeAll(text)) {
        assertSame(r, c);
        n++;
        if (r.jsonSafe) safe++;
      }
    }
    assert.equal(n, 10_000);
    assert.ok(safe > 5_000 && safe < 10_000, `${safe} of 10,000 records JSON-safe`);
    for (const [data, line] of written)
      assert.equal(data.toString(), line, "an event changed after later writes");
  });

  it("equals it for the odd cases: escapes, repeated names, surplus values, prototype names, no header", () => {
    const c = ctx('/tmp/odd "dir"\\x.csv');
    const header =
      "type,timeLogged,timeQueued,orig,rcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,vmta,jobId,rcvSourceIp,rcvSourceIp,header_To,header_X-Id,header_x-id,header_X-Id,constructor,__proto__,_extra1";
    const rows = [
      // quotes, a backslash, a tab and non-ASCII inside quoted fields
      'b,2025-01-15 08:00:01+0000,2025-01-15 07:00:00+0100,a@x.org,"Zoë \\"q\\"@b.de",failed,5.1.1 (bad destination mailbox address),"smtp;550 5.1.1 <u@b.de> said ""no""\tbye",mx.b.de (192.0.2.1),bad-mailbox,v1,j1,,10.0.0.2,,,,7,c1,p1,',
      // repeated names: the first non-empty wins, in the order of its first value; surplus values
      "rb,2025-01-15 08:00:02+0000,,a@x.org,u@c.de,delayed,4.2.2,smtp;452 4.2.2 full,mx.c.de,quota-issues,v2,,10.0.0.1,10.0.0.9,To: <t@c.de>,,h2,h3,,,own,surplus1,surplus2",
      // unreadable times, neither status nor diagnostic
      "b,yesterday,not-a-time,a@x.org,u@d.de,failed,,,,,,,,,,,,,,,",
      // an unknown type and a complaint-like row without rcpt
      "zz,2025-01-15 08:00:03+0000,,,,,,,,,,,,,,,,,,,",
    ];
    const records = decodeAll(`${header}\n${rows.join("\n")}\n`);
    assert.equal(records.length, rows.length);
    assert.deepEqual(
      records.map((r) => r.jsonSafe),
      [false, true, true, true],
    );
    for (const r of records) assertSame(r, c);

    const fbl =
      "type,timeLogged,orig,rcpt,format,feedbackType,header_To,reportingMta,arf_Source-IP,dlvSourceIp";
    const fblRows = [
      'f,2025-01-15 08:00:00+0000,s@x.org,,arf,abuse,"Jane <jane@e.com>",mta.e.com,,192.0.2.7',
      "f,2025-01-15 08:00:00+0000,s@x.org,,,,,,,",
    ];
    for (const r of decodeAll(`${fbl}\n${fblRows.join("\n")}\n`)) assertSame(r, c);

    // No header line: PowerMTA's default columns for the type.
    for (const r of decodeAll(
      "b,2025-01-15 08:00:00+0000,2025-01-15 08:00:00+0000,a@x.org,u@f.de,,failed,5.1.1,smtp;550 no\n",
    ))
      assertSame(r, c);
  });

  it("keeps a column named `constructor` or `__proto__` like any other", () => {
    const records = decodeAll("type,timeLogged,constructor,__proto__\nd,2025-01-15 08:00:00+0000,a,b\n");
    const r = records[0] as DecodedRecord;
    const fields = (JSON.parse(encodeEvent(r, ctx()).line) as { fields: Record<string, string> }).fields;
    assert.equal(Object.getOwnPropertyDescriptor(fields, "constructor")?.value, "a");
    assert.equal(Object.getOwnPropertyDescriptor(fields, "__proto__")?.value, "b");
    assertSame(r, ctx());
  });

  it("takes the object path, with the same result, when a name is an array index", () => {
    const records = decodeAll(
      "type,timeLogged,rcpt,2,header_7\nb,2025-01-15 08:00:00+0000,u@g.de,two,seven\n",
    );
    const r = records[0] as DecodedRecord;
    const line = encodeEvent(r, ctx()).line;
    assert.match(line, /"fields":\{"2":"two","type":"b"/, "JavaScript puts index keys first");
    assertSame(r, ctx());
  });
});

describe("EventWriter", () => {
  it("gives each line its own bytes, which later lines never overwrite, across slabs", () => {
    const w = new EventWriter();
    const lines = [
      "Zoë, Straße, 東京, ☀️, 𝄞",
      "x".repeat(400_000),
      "",
      "a\u0000b",
      "y".repeat(2_000_000),
      "z",
    ];
    const out: Buffer[] = [];
    for (let i = 0; i < 20; i++) for (const l of lines) out.push(w.write(l));
    out.forEach((b, i) => {
      assert.equal(b.toString(), lines[i % lines.length]);
    });
  });
});
