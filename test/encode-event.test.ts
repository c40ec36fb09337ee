import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Classifier } from "../src/classify/classifier.js";
import { AccountingDecoder, type DecodedRecord } from "../src/decode/accounting-decoder.js";
import { buildEvent, type EventContext } from "../src/event/build-event.js";
import { encodeEvent, encodePaths } from "../src/event/encode-event.js";
import { type EventSlab, EventWriter, piece } from "../src/event/event-writer.js";
import { generateBouncesFile, generateFblFile } from "../src/simulate/record-generator.js";

/**
 * encodeEvent writes the event's JSON straight from the record; buildEvent + JSON.stringify is the
 * readable definition of the same thing. Every record here must come out byte for byte identical,
 * and the facts encodeEvent returns for the metrics must match the event.
 */

function decodeAll(
  text: string | Buffer,
  options: ConstructorParameters<typeof AccountingDecoder>[0] = {},
  chunkBytes = Number.MAX_SAFE_INTEGER,
): DecodedRecord[] {
  const d = new AccountingDecoder(options);
  const bytes = typeof text === "string" ? Buffer.from(text) : text;
  const items = [];
  // Every record is encoded only after the whole input went through the decoder, as a record that
  // waits in a backlog is: its bytes must still be its own.
  for (let i = 0; i < bytes.length; i += chunkBytes) items.push(...d.push(bytes.subarray(i, i + chunkBytes)));
  items.push(...d.end(true));
  return items.filter((i): i is DecodedRecord => i.kind === "record");
}

/** One writer for the whole file, as in the daemon: slabs are shared by consecutive events. */
const writer = new EventWriter();
/** Every event's bytes with what they must still hold at the end (a later event must not overwrite them). */
const written: Array<[Buffer, string]> = [];

/** Encodes `record`; returns which path it took. */
function assertSame(record: DecodedRecord, ctx: EventContext): "bytes" | "object" {
  const want = buildEvent(record, ctx);
  const before = encodePaths.bytes;
  const got = encodeEvent(record, ctx, writer);
  const line = got.data.toString();
  assert.equal(line, JSON.stringify(want), `record at offset ${record.offset}`);
  assert.ok(Buffer.from(line).equals(got.data), "valid UTF-8");
  assert.equal(`${record.fileKey}:${record.offset}`, want.id, "the id RecordEnvelope makes");
  assert.equal(got.kind, want.kind);
  assert.equal(got.recordType, want.recordType);
  assert.equal(got.recipientDomain, want.recipientDomain);
  assert.equal(got.vmta, want.vmta);
  assert.equal(got.jobId, want.jobId);
  assert.deepEqual(got.warnings, want.warnings);
  assert.equal(got.bounce?.reason, want.bounce?.reason);
  assert.equal(got.bounce?.hard, want.bounce?.hard);
  assert.equal(got.bounce?.provider, want.bounce?.provider);
  written.push([got.data, line]);
  assert.ok(got.data.buffer.byteLength >= 1024 * 1024, "a view of a slab");
  return encodePaths.bytes > before ? "bytes" : "object";
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
    let quoted = 0;
    let bytePath = 0;
    for (const [gen, seed] of [
      [generateBouncesFile, 7],
      [generateFblFile, 8],
    ] as const) {
      const text = [...gen(seed, 5000)].join("");
      // Small chunks: records straddle reads, and the decoder's buffer is replaced many times.
      for (const r of decodeAll(text, {}, 4093)) {
        if (assertSame(r, c) === "bytes") bytePath++;
        n++;
        if (r.bytes.includes(0x22)) quoted++;
      }
    }
    assert.equal(n, 10_000);
    assert.ok(quoted > 1_000, `${quoted} of 10,000 records have quoted fields`);
    assert.ok(bytePath > 9_000, `${bytePath} of 10,000 records written from their bytes`);
    for (const [data, line] of written)
      assert.equal(data.toString(), line, "an event changed after later writes");
  });

  it("writes each record's own bounceCat when replies of different categories share one result", () => {
    const c = ctx();
    const header = "type,timeLogged,rcpt,dsnStatus,dsnDiag,bounceCat";
    // Three replies the classifier keeps apart (their normalized text differs) with the same result,
    // under categories that alternate: one result object, its bytes memoised per category.
    const diags = ["smtp;550 no such user", "smtp;550 no such user here", "smtp;550 no such user, sorry"];
    const cats = ["bad-mailbox", "inactive-mailbox", "", "bad-mailbox", "other", "inactive-mailbox"];
    const rows: string[] = [];
    for (let i = 0; i < 60; i++)
      rows.push(`b,2025-01-15 08:00:01+0000,u${i}@x.de,5.1.1,"${diags[i % 3]}",${cats[i % cats.length]}`);
    const records = decodeAll(`${header}\n${rows.join("\n")}\n`);
    assert.equal(records.length, 60);
    const results = new Set();
    for (const r of records) {
      assert.equal(assertSame(r, c), "bytes", `record at offset ${r.offset}`);
      results.add(encodeEvent(r, c, writer).bounce);
    }
    assert.equal(results.size, 1, "one shared result for the three replies");
    // Cache entries are per reply and category: (0, bad), (1, inactive), (2, ""), (1, other), (2, inactive).
    assert.equal(c.classifier.misses, 5, "five cache entries, one result");
  });

  it("writes escapes, doubled quotes, non-ASCII and control characters from the bytes as JSON.stringify does", () => {
    const c = ctx();
    const header = "type,timeLogged,orig,rcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,vmta,header_To";
    const rows = [
      'b,2025-01-15 08:00:01+0000,a@x.org,"Zoë ""q""@B.de",failed,5.1.1,"smtp;550 said ""no""\tbye \\ \u0001\u001f\u007f €𝄞",MX.B.DE (192.0.2.1),v1,',
      'b,2025-01-15 08:00:01+0000,"","""",failed,5.1.1,"a,b","",,"x"',
      "f,2025-01-15 08:00:02+0000,s@x.org,,,,,,,Jane <JANE@Ü.example>",
      'b,2025-01-15 08:00:03+0000,a@x.org,u@d.de,failed,5.1.1,"\r\n\b\f",mx,v,',
    ];
    const records = decodeAll(`${header}\n${rows.join("\n")}\n`);
    assert.equal(records.length, rows.length);
    for (const r of records) assert.equal(assertSame(r, c), "bytes", `record at offset ${r.offset}`);
  });

  it("takes the object path, with the same result, for invalid UTF-8 and lenient CSV", () => {
    const c = ctx();
    const header = Buffer.from("type,timeLogged,rcpt,dsnStatus,dsnDiag\n");
    // Invalid UTF-8 next to a literal U+FFFD: the decoder does not warn, the bytes are still invalid.
    const invalid = Buffer.concat([
      Buffer.from("b,2025-01-15 08:00:00+0000,u@e.de,5.1.1,smtp;550 \uFFFD "),
      Buffer.from([0xc3, 0x28, 0xff]),
      Buffer.from("\n"),
    ]);
    const lenient = Buffer.from('b,2025-01-15 08:00:00+0000,u@e.de,5.1.1,smtp;550 a"b" c\n');
    const records = decodeAll(Buffer.concat([header, invalid, lenient]));
    assert.equal(records.length, 2);
    for (const r of records) assert.equal(assertSame(r, c), "object", `record at offset ${r.offset}`);
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

  it("with fields: unmapped, leaves out only columns whose value the event carries verbatim elsewhere", () => {
    const all = ctx();
    const lean: EventContext = { ...ctx(), fields: "unmapped" };
    const strings = (v: unknown, out: Set<string>): Set<string> => {
      if (typeof v === "string") out.add(v);
      else if (typeof v === "object" && v !== null) for (const x of Object.values(v)) strings(x, out);
      return out;
    };
    let n = 0;
    let bytePath = 0;
    let saved = 0;
    let total = 0;
    const check = (r: DecodedRecord): void => {
      if (assertSame(r, lean) === "bytes") bytePath++;
      const full = buildEvent(r, all);
      const { fields, ...rest } = buildEvent(r, lean);
      // Nothing lost: a column left out has its value, as written, in another member.
      const elsewhere = strings({ ...rest, time: undefined, queuedAt: undefined }, new Set());
      for (const [name, value] of Object.entries(full.fields)) {
        if (fields[name] === value) continue;
        assert.equal(fields[name], undefined, `${name} changed`);
        const timeColumn =
          (name === "timeLogged" && full.time !== null) ||
          (name === "timeQueued" && full.queuedAt !== undefined);
        assert.ok(timeColumn || elsewhere.has(value), `${name}=${value} left out but not carried elsewhere`);
      }
      total += JSON.stringify(full).length;
      saved += JSON.stringify(full).length - JSON.stringify({ ...rest, fields }).length;
      n++;
    };
    for (const [gen, seed] of [
      [generateBouncesFile, 17],
      [generateFblFile, 18],
    ] as const) {
      for (const r of decodeAll([...gen(seed, 2000)].join(""), {}, 8191)) check(r);
    }
    assert.ok(bytePath > 3_600, `${bytePath} of ${n} records written from their bytes`);
    assert.ok(saved / total > 0.15, `events ${((100 * saved) / total).toFixed(1)} % smaller`);

    const header =
      "type,timeLogged,timeQueued,orig,rcpt,dsnAction,dsnStatus,dsnDiag,dsnMta,bounceCat,vmta,jobId,dlvSourceIp,header_X-Id,rcpt";
    const rows = [
      "b,2025-01-15 08:00:01+0000,2025-01-15 07:00:00+0100,a@x.org,u@b.de,failed,5.1.1 (bad destination mailbox address),smtp;550 5.1.1 no,mx.b.de (192.0.2.1),bad-mailbox,v1,j1,10.0.0.2,77,",
      // a delivery has no bounce member: its dsn* columns and bounceCat stay
      "d,2025-01-15 08:00:02+0000,,a@x.org,u@c.de,relayed,2.0.0 (success),smtp;250 ok,mx.c.de,,v2,,10.0.0.1,,",
      // unreadable times stay as written
      "b,yesterday,not-a-time,a@x.org,u@d.de,failed,5.0.0,smtp;550 x,,,,,,,u2@d.de",
    ];
    const records = decodeAll(`${header}\n${rows.join("\n")}\n`);
    const [bounce, delivery, badTimes] = records.map((r) => {
      assertSame(r, lean);
      return buildEvent(r, lean).fields;
    });
    assert.deepEqual(bounce, {
      dsnStatus: "5.1.1 (bad destination mailbox address)",
      dsnMta: "mx.b.de (192.0.2.1)",
      dlvSourceIp: "10.0.0.2",
    });
    assert.deepEqual(delivery, {
      dsnAction: "relayed",
      dsnStatus: "2.0.0 (success)",
      dsnDiag: "smtp;250 ok",
      dsnMta: "mx.c.de",
      dlvSourceIp: "10.0.0.1",
    });
    assert.deepEqual(badTimes, { timeLogged: "yesterday", timeQueued: "not-a-time", dsnStatus: "5.0.0" });
  });

  it("keeps a column named `constructor` or `__proto__` like any other", () => {
    const records = decodeAll("type,timeLogged,constructor,__proto__\nd,2025-01-15 08:00:00+0000,a,b\n");
    const r = records[0] as DecodedRecord;
    const fields = (
      JSON.parse(encodeEvent(r, ctx(), writer).data.toString()) as { fields: Record<string, string> }
    ).fields;
    assert.equal(Object.getOwnPropertyDescriptor(fields, "constructor")?.value, "a");
    assert.equal(Object.getOwnPropertyDescriptor(fields, "__proto__")?.value, "b");
    assertSame(r, ctx());
  });

  it("takes the object path, with the same result, when a name is an array index", () => {
    const records = decodeAll(
      "type,timeLogged,rcpt,2,header_7\nb,2025-01-15 08:00:00+0000,u@g.de,two,seven\n",
    );
    const r = records[0] as DecodedRecord;
    const line = encodeEvent(r, ctx(), writer).data.toString();
    assert.match(line, /"fields":\{"2":"two","type":"b"/, "JavaScript puts index keys first");
    assertSame(r, ctx());
  });
});

describe("EventWriter", () => {
  it("keeps cached bytes in memory of their own, not in a slice of Node's shared pool", () => {
    // A pool slice kept in a long-lived cache keeps its whole 8 KiB slab alive (see Piece).
    const text = ',"bounce":{"hard":true,"reason":"invalid_mailbox","note":"Zoë"';
    const own = piece(text);
    assert.equal(Buffer.from(own.bytes).toString(), text);
    assert.ok(own.bytes.buffer.byteLength < own.bytes.length + 4, "padded to whole words only");
    assert.equal(own.words.buffer, own.bytes.buffer);
    assert.ok(Buffer.from(text).buffer.byteLength > text.length, "Buffer.from slices the pool");
  });

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

  it("copies values of every length exactly, word copies included, in an event that fills its bound", () => {
    // Word copies write up to 3 bytes past a value and read up to 3 past it: an event written to the
    // last byte of its bound must still read every staged byte as it was, in any order of copies.
    const values = Array.from({ length: 70 }, (_, n) =>
      Array.from({ length: n }, (_, i) => String.fromCharCode(0x21 + ((n * 7 + i) % 90))).join(""),
    ).map((v) => v.replaceAll('"', "'").replaceAll("\\", "/"));
    const record = Buffer.from(values.join(","));
    const spans: Array<[number, number]> = [];
    let at = 0;
    for (const v of values) {
      spans.push([at, at + v.length]);
      at += v.length + 1;
    }
    const w = new EventWriter();
    for (const order of [spans, [...spans].reverse()]) {
      const expected = order.map(([f, t]) => `"${record.subarray(f, t).toString()}"`).join("");
      // A few events first, so that the next one starts at an unaligned place in the slab.
      for (let k = 0; k < 3; k++) w.write("x".repeat(k * 3 + 1));
      w.begin(expected.length, record);
      for (const [f, t] of order) w.copy(record, f, t);
      assert.equal(w.end()?.toString(), expected);
    }
  });

  it("rejects an event that outgrew its bound, staged record and all, and leaves the events before it intact", () => {
    const w = new EventWriter();
    const record = Buffer.from(`${"r".repeat(40)},${"s".repeat(40)}`);
    w.begin(200, record);
    w.copy(record, 0, 40);
    const first = w.end();
    assert.equal(first?.toString(), `"${"r".repeat(40)}"`);
    // Too long for its bound: writing runs over the staged record, and end() refuses the event.
    w.begin(30, record);
    w.copy(record, 41, 81);
    w.copy(record, 0, 40);
    assert.equal(w.end(), undefined);
    // The next event takes the rejected one's place; the first is untouched.
    w.begin(100, record);
    w.copy(record, 41, 81);
    assert.equal(w.end()?.toString(), `"${"s".repeat(40)}"`);
    assert.equal(first?.toString(), `"${"r".repeat(40)}"`);
  });

  it("writes a slab again only once every event in it was released, in any order of releases", () => {
    const w = new EventWriter();
    // Seeded: events of varied size, released in random order from a window of up to 2,000, a few
    // never: an event not released must keep its bytes whatever follows.
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const live: Array<[Buffer, string]> = [];
    const kept: Array<[Buffer, string]> = [];
    const slabs = new Set<ArrayBufferLike>();
    let slabBytes = 0;
    for (let i = 0; i < 30_000; i++) {
      const size = 200 + rnd(3000);
      const text = `${i}:${String.fromCharCode(97 + (i % 26)).repeat(size)}`;
      const data = w.write(text);
      slabs.add(data.buffer);
      slabBytes += data.length;
      (i % 5000 === 4999 ? kept : live).push([data, text]);
      while (live.length > 2000 || (live.length > 0 && rnd(3) === 0)) {
        const [gone] = live.splice(rnd(live.length), 1) as [[Buffer, string]];
        w.release(gone[0]);
      }
      if (i % 997 === 0)
        for (const [d, t] of [...live, ...kept])
          assert.equal(d.toString(), t, "an unreleased event was overwritten");
    }
    for (const [d, t] of [...live, ...kept])
      assert.equal(d.toString(), t, "an unreleased event was overwritten");
    // Without reuse every 1 MiB of events takes a new slab (49 here); with it, the slabs a window of
    // 2,000 events spans, the spares and those the never-released events pin.
    assert.ok(slabs.size < 0.6 * (slabBytes / (1024 * 1024)), `${slabs.size} slabs for ${slabBytes} bytes`);
  });

  it("does the same for events kept by their place and released through their slab, separator after each", () => {
    const w = new EventWriter({ separator: 0x0a });
    let seed = 9;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    type Placed = { slab: EventSlab; start: number; end: number; text: string };
    const bytesOf = (p: Placed): string => p.slab.bytes.subarray(p.start, p.end).toString();
    const live: Placed[] = [];
    const slabs = new Set<EventSlab>();
    for (let i = 0; i < 30_000; i++) {
      const text = `${i}:${"q".repeat(200 + rnd(3000))}`;
      w.write(text);
      const p = { slab: w.lastSlab, start: w.lastStart, end: w.lastEnd, text };
      assert.equal(p.slab.bytes[p.end], 0x0a, "the separator follows the event");
      slabs.add(p.slab);
      live.push(p);
      while (live.length > 2000 || (live.length > 0 && rnd(3) === 0)) {
        const [gone] = live.splice(rnd(live.length), 1) as [Placed];
        w.releaseIn(gone.slab);
      }
      if (i % 997 === 0)
        for (const q of live) assert.equal(bytesOf(q), q.text, "an unreleased event was overwritten");
    }
    for (const q of live) assert.equal(bytesOf(q), q.text, "an unreleased event was overwritten");
    assert.ok(slabs.size < 30, `${slabs.size} slabs`);
  });
});
