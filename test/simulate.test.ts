import assert from "node:assert/strict";
import { once } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "csv-parse/sync";
import { formatCsvRow, needsQuoting } from "../src/simulate/csv-row.js";
import { PmtaSimulator, type SimRecord, type SimStream, splitPoint } from "../src/simulate/pmta-simulator.js";
import {
  BOUNCES_HEADER,
  DIAGNOSTIC_TEMPLATE_COUNT,
  defaultBounceCategory,
  FBL_HEADER,
  formatPmtaTime,
  generateBounce,
  generateBouncesFile,
  generateFbl,
  seqOf,
} from "../src/simulate/record-generator.js";
import { Rng } from "../src/simulate/rng.js";

const T0 = new Date(Date.UTC(2025, 4, 17, 9, 30, 0));
const EXT4_MAGIC = 0xef53;

let root = "";
let dirCount = 0;

before(() => {
  root = fs.mkdtempSync(join(os.tmpdir(), "pmta-sim-test-"));
});

after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = join(root, `case-${++dirCount}`);
  fs.mkdirSync(dir);
  return dir;
}

function fixedClock(): () => Date {
  return () => T0;
}

function parseCsv(content: Buffer | string): string[][] {
  return parse(content, { relax_column_count: true, relax_quotes: false }) as string[][];
}

/** Rows of a file without its header line (asserting the header is there and first). */
function dataRows(path: string, header: readonly string[]): string[][] {
  const rows = parseCsv(fs.readFileSync(path));
  assert.deepEqual(rows[0], [...header], `${path} starts with the header`);
  return rows.slice(1);
}

function truth(sim: PmtaSimulator, stream: SimStream, file: string): SimRecord[] {
  return sim.records().filter((r) => r.stream === stream && r.file === file && r.fate === undefined);
}

function bouncesSim(dir: string, extra: Partial<ConstructorParameters<typeof PmtaSimulator>[0]> = {}) {
  return new PmtaSimulator({ liveDir: dir, streams: ["bounces"], seed: 7, clock: fixedClock(), ...extra });
}

function sampleBounces(seed: number, n: number): string[][] {
  const rng = new Rng(seed);
  const rows: string[][] = [];
  for (let i = 0; i < n; i++) rows.push(generateBounce(rng, i + 1, new Date(T0.getTime() + i * 1000)));
  return rows;
}

describe("formatCsvRow", () => {
  it("leaves plain fields alone, spaces included", () => {
    assert.equal(formatCsvRow(["b", " a b ", "", "x"], "\r\n"), "b, a b ,,x\r\n");
    assert.equal(formatCsvRow(["f", "y"], "\n"), "f,y\n");
  });

  it("quotes fields with a comma, quote, CR or LF and doubles embedded quotes", () => {
    assert.equal(formatCsvRow(["a,b"], "\n"), '"a,b"\n');
    assert.equal(formatCsvRow(['two inches,"2"'], "\n"), '"two inches,""2"""\n');
    assert.equal(formatCsvRow(['say "hi"'], "\n"), '"say ""hi"""\n');
    assert.equal(
      formatCsvRow(["line1\r\nline2", "cr\r", "lf\n"], "\r\n"),
      '"line1\r\nline2","cr\r","lf\n"\r\n',
    );
    assert.equal(formatCsvRow(["semi;colon", "tab\t"], "\n"), "semi;colon,tab\t\n");
  });

  it("reproduces the user's guide rb dsnDiag quoting", () => {
    const diag = 'smtp;550 5.1.1 no such local recipient: <x@y.com> in "RCPT TO:<x@y.com>"';
    assert.equal(
      formatCsvRow(["rb", diag], "\r\n"),
      `rb,"smtp;550 5.1.1 no such local recipient: <x@y.com> in ""RCPT TO:<x@y.com>"""\r\n`,
    );
  });

  it("round-trips through an RFC 4180 parser", () => {
    const values = ["a", 'b"c', "d,e", "f\r\ng", "ü€😀", ""];
    assert.deepEqual(parseCsv(formatCsvRow(values, "\r\n")), [values]);
  });
});

describe("Rng", () => {
  it("is deterministic for a seed and differs between seeds", () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const seqA = Array.from({ length: 50 }, () => a.next());
    assert.deepEqual(
      seqA,
      Array.from({ length: 50 }, () => b.next()),
    );
    assert.notDeepEqual(
      seqA,
      Array.from({ length: 50 }, () => c.next()),
    );
    for (const x of seqA) assert.ok(x >= 0 && x < 1);
  });

  it("int() covers both bounds, weighted() ignores zero weights, chance() follows p", () => {
    const rng = new Rng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(rng.int(3, 6));
    assert.deepEqual([...seen].sort(), [3, 4, 5, 6]);
    for (let i = 0; i < 500; i++) {
      assert.notEqual(
        rng.weighted([
          ["never", 0],
          ["always", 1],
        ]),
        "never",
      );
    }
    let hits = 0;
    for (let i = 0; i < 10_000; i++) if (rng.chance(0.3)) hits++;
    assert.ok(hits > 2700 && hits < 3300, `chance(0.3) hit ${hits} / 10000`);
    assert.throws(() => rng.pick([]));
  });
});

describe("record generator", () => {
  const rows = sampleBounces(2025, 5000);
  const lines = rows.map((r) => formatCsvRow(r, "\r\n"));

  it("is deterministic: same seed, same rows", () => {
    assert.deepEqual(sampleBounces(2025, 300), rows.slice(0, 300));
    assert.notDeepEqual(sampleBounces(2026, 300), rows.slice(0, 300));
    const f1 = new Rng(5);
    const f2 = new Rng(5);
    for (let i = 1; i <= 100; i++) assert.deepEqual(generateFbl(f1, i, T0), generateFbl(f2, i, T0));
  });

  it("gives every row exactly the header's width", () => {
    for (const r of rows) assert.equal(r.length, BOUNCES_HEADER.length);
    const rng = new Rng(3);
    for (let i = 1; i <= 1000; i++) assert.equal(generateFbl(rng, i, T0).length, FBL_HEADER.length);
  });

  it("is varied: ≥ 60 templates and diagnostics, ~20% rb, ~half quoted, mean length 300–380", (t) => {
    assert.ok(DIAGNOSTIC_TEMPLATE_COUNT >= 60, `${DIAGNOSTIC_TEMPLATE_COUNT} templates`);
    const diag = BOUNCES_HEADER.indexOf("dsnDiag");
    const diags = new Set(rows.map((r) => r[diag]));
    // Mask addresses, IPs and ids so that only the wording is compared.
    const wordings = new Set(
      rows.map((r) =>
        (r[diag] ?? "")
          .replace(/\S+@\S+/g, "@")
          .replace(/\d+/g, "0")
          .replace(/[0-9a-z]{8,}/g, "x")
          .replace(/\[[^\]]*\]$/, ""),
      ),
    );
    const rb = rows.filter((r) => r[0] === "rb").length / rows.length;
    const quoted = rows.filter((r) => r.some(needsQuoting)).length / rows.length;
    const mean = lines.reduce((sum, l) => sum + Buffer.byteLength(l), 0) / lines.length;
    const nonAscii = lines.filter((l) => Buffer.byteLength(l) !== l.length).length / lines.length;
    t.diagnostic(
      `distinct dsnDiag ${diags.size}, wordings ${wordings.size}, rb ${rb.toFixed(3)}, quoted ${quoted.toFixed(3)}, ` +
        `mean ${mean.toFixed(1)} B, non-ASCII ${nonAscii.toFixed(3)}`,
    );
    assert.ok(diags.size >= 60);
    assert.ok(wordings.size >= 60, `${wordings.size} distinct wordings`);
    assert.ok(rb > 0.17 && rb < 0.23, `rb share ${rb}`);
    assert.ok(quoted > 0.4 && quoted < 0.6, `quoted share ${quoted}`);
    assert.ok(mean >= 300 && mean <= 380, `mean length ${mean}`);
    assert.ok(nonAscii > 0.005 && nonAscii < 0.1, `non-ASCII share ${nonAscii}`);
  });

  it("fills b and rb rows like PowerMTA's union layout", () => {
    const col = (name: string) => BOUNCES_HEADER.indexOf(name);
    const time = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[+-]\d{4}$/;
    const categories = new Set([
      "bad-configuration",
      "bad-connection",
      "bad-domain",
      "bad-mailbox",
      "content-related",
      "inactive-mailbox",
      "invalid-sender",
      "message-expired",
      "no-answer-from-host",
      "other",
      "policy-related",
      "protocol-errors",
      "quota-issues",
      "relaying-issues",
      "routing-errors",
      "spam-related",
      "virus-related",
    ]);
    for (const r of rows) {
      const v = (name: string) => r[col(name)] ?? "";
      assert.match(v("timeLogged"), time);
      assert.match(v("dsnStatus"), /^[45]\.\d{1,3}\.\d{1,3} \([^()]+\)$/);
      assert.ok(categories.has(v("bounceCat")), v("bounceCat"));
      assert.match(v("dsnMta"), /^$|^\S+ \(\d+\.\d+\.\d+\.\d+\)$/);
      assert.match(v("orig"), /^[^@\s]+=[^@\s]+@[^@\s]+$/);
      if (r[0] === "b") {
        assert.match(v("timeQueued"), time);
        assert.ok(v("timeQueued") <= v("timeLogged"));
        assert.equal(v("dsnAction"), "failed");
        assert.notEqual(v("jobId"), "");
        assert.notEqual(v("vmta"), "");
      } else {
        assert.equal(r[0], "rb");
        for (const empty of ["timeQueued", "dsnAction", "jobId", "vmta"]) assert.equal(v(empty), "");
      }
    }
  });

  it("matches the recipient's domain to the provider in dsnMta", () => {
    const rcpt = BOUNCES_HEADER.indexOf("rcpt");
    const mta = BOUNCES_HEADER.indexOf("dsnMta");
    const expectations: [RegExp, RegExp][] = [
      [/@(gmail|googlemail)\.com$/, /google\.com /],
      [/@(hotmail|outlook|live|msn)\./, /\.olc\.protection\.outlook\.com /],
      [/@(yahoo\.|ymail\.com|rocketmail\.com|aol\.)/, /yahoodns\.net /],
      [/@(icloud|me|mac)\.com$/, /\.mail\.icloud\.com /],
      [/@gmx\./, /\.gmx\.net /],
      [/@(orange|wanadoo)\.fr$/, /orange\.fr /],
      [/@comcast\.net$/, /comcast\.net /],
    ];
    let checked = 0;
    for (const r of rows) {
      const address = (r[rcpt] ?? "").toLowerCase();
      const host = r[mta] ?? "";
      for (const [domain, mx] of expectations) {
        if (!domain.test(address) || host === "") continue;
        assert.match(host, mx, `${address} delivered via ${host}`);
        checked++;
      }
    }
    assert.ok(checked > 2000, `${checked} rows checked`);
  });

  it("assigns bounceCat with the default pattern list", () => {
    assert.equal(defaultBounceCategory("5.1.1", "smtp;550 5.1.1 <a@b.c>... User Unknown"), "bad-mailbox");
    assert.equal(defaultBounceCategory("5.2.1", "smtp;550 5.2.1 <a@b.c>... User Unknown"), "bad-mailbox");
    assert.equal(defaultBounceCategory("5.2.1", "smtp;550 5.2.1 over"), "inactive-mailbox");
    assert.equal(
      defaultBounceCategory("5.7.1", "smtp;554 5.7.1 Blacklisted by black.uribl.com"),
      "spam-related",
    );
    assert.equal(defaultBounceCategory("5.0.0", "x-pmta;deleted by administrator"), "other");
    assert.equal(defaultBounceCategory("5.1.2", ""), "bad-domain");
    assert.equal(defaultBounceCategory("4.4.7", "smtp;421 4.4.2 timeout"), "message-expired");
  });

  it("writes times in PowerMTA's format with the configured offset", () => {
    assert.equal(formatPmtaTime(T0), "2025-05-17 09:30:00+0000");
    assert.equal(formatPmtaTime(T0, "+0530"), "2025-05-17 15:00:00+0530");
    assert.equal(formatPmtaTime(T0, "-0400"), "2025-05-17 05:30:00-0400");
    const row = generateBounce(new Rng(1), 1, T0, { utcOffset: "-0400" });
    assert.equal(row[BOUNCES_HEADER.indexOf("timeLogged")], "2025-05-17 05:30:00-0400");
    assert.throws(() => formatPmtaTime(T0, "+02:00"));
  });

  it("carries the sequence number first in header_X-FBLId", () => {
    rows.forEach((r, i) => {
      assert.equal(seqOf(r, BOUNCES_HEADER), i + 1);
    });
    const f = generateFbl(new Rng(9), 123456, T0);
    assert.equal(seqOf(f, FBL_HEADER), 123456);
    assert.match(f[FBL_HEADER.indexOf("header_X-FBLId")] ?? "", /^123456-\d+-\d+$/);
    assert.equal(seqOf(["b"], ["type"]), undefined);
  });

  it("streams a whole bounces file in chunks that parse back to the rows", () => {
    for (const lineEnding of ["\r\n", "\n"] as const) {
      const chunks = [...generateBouncesFile(11, 2000, lineEnding)];
      assert.ok(chunks.length > 1, "content arrives in several chunks");
      const text = chunks.join("");
      assert.equal(text.includes("\r\n"), lineEnding === "\r\n");
      const parsed = parseCsv(text);
      assert.deepEqual(parsed[0], [...BOUNCES_HEADER]);
      assert.equal(parsed.length, 2001);
      parsed.slice(1).forEach((r, i) => {
        assert.equal(seqOf(r, BOUNCES_HEADER), i + 1);
      });
    }
    assert.equal([...generateBouncesFile(11, 300)].join(""), [...generateBouncesFile(11, 300)].join(""));
  });
});

describe("PmtaSimulator", () => {
  it("names files <stream>-YYYY-MM-DD-NNNN.csv and writes the header only with the first record", async () => {
    const dir = freshDir();
    const sim = new PmtaSimulator({ liveDir: dir, seed: 1, clock: fixedClock() });
    await sim.rotate();
    // Nothing was written: the moved files are empty, like PowerMTA's 0-byte accounting files.
    for (const stream of ["bounces", "fbl"] as const) {
      const archived = join(sim.archiveDir(stream), `${stream}-2025-05-17-0000.csv`);
      assert.equal(fs.statSync(archived).size, 0);
      const live = sim.liveFile(stream);
      assert.equal(live?.name, `${stream}-2025-05-17-0001.csv`);
      assert.equal(fs.statSync(live.path).size, 0);
    }
    await sim.writeRecords(20);
    const live = sim.liveFile("bounces");
    assert.ok(live !== undefined);
    const content = fs.readFileSync(live.path, "utf8");
    assert.ok(content.startsWith(`${BOUNCES_HEADER.join(",")}\r\n`));
    assert.equal(content.split(BOUNCES_HEADER.join(",")).length, 2, "exactly one header");
    assert.equal(dataRows(live.path, BOUNCES_HEADER).length, 18);
    assert.deepEqual(sim.written, { bounces: 18, fbl: 2 });
    await sim.stop();
  });

  it("writes the header at creation with headerOnFirstRecord: false", async () => {
    const dir = freshDir();
    const sim = bouncesSim(dir, { headerOnFirstRecord: false, lineEnding: "\n" });
    await sim.rotate();
    const archived = join(sim.archiveDir("bounces"), "bounces-2025-05-17-0000.csv");
    assert.equal(fs.readFileSync(archived, "utf8"), `${BOUNCES_HEADER.join(",")}\n`);
    await sim.stop();
  });

  for (const rotationOrder of ["move-then-create", "create-then-move"] as const) {
    it(`rotates by rename, keeping name and inode (${rotationOrder})`, async () => {
      const dir = freshDir();
      const sim = bouncesSim(dir, { rotationOrder });
      const events: string[] = [];
      sim.on("file", (e) => {
        // In create-then-move the old file is still in liveDir when the new one appears.
        const liveCsv = fs.readdirSync(dir).filter((n) => n.endsWith(".csv"));
        events.push(`file ${liveCsv.length}`);
        assert.equal(e.stream, "bounces");
      });
      sim.on("rotate", () => events.push("rotate"));
      await sim.writeRecords(50);
      const before = sim.liveFile("bounces");
      assert.ok(before !== undefined);
      await sim.rotate("bounces");
      await sim.writeRecords(10);
      const archived = join(sim.archiveDir("bounces"), before.name);
      assert.equal(fs.statSync(archived).ino, before.ino, "same inode after the move");
      assert.equal(fs.existsSync(before.path), false);
      const rows = dataRows(archived, BOUNCES_HEADER);
      assert.deepEqual(
        rows,
        truth(sim, "bounces", before.name).map((r) => [...r.values]),
      );
      assert.equal(rows.length, 50);
      const next = sim.liveFile("bounces");
      assert.equal(next?.name, "bounces-2025-05-17-0001.csv");
      assert.equal(dataRows(next.path, BOUNCES_HEADER).length, 10);
      assert.deepEqual(sim.rotations, { bounces: 1, fbl: 0 });
      const expected =
        rotationOrder === "create-then-move"
          ? ["file 1", "file 2", "rotate"]
          : ["file 1", "file 1", "rotate"];
      assert.deepEqual(events, expected);
      await sim.stop();
    });
  }

  it("appends late records to the moved file (lateWritesAfterMove)", async () => {
    const dir = freshDir();
    const sim = bouncesSim(dir, { lateWritesAfterMove: 3 });
    const rotations: { from: string; to: string; next: string }[] = [];
    sim.on("rotate", (e) => rotations.push(e));
    await sim.writeRecords(5);
    const old = sim.liveFile("bounces");
    assert.ok(old !== undefined);
    await sim.rotate("bounces");
    await sim.writeRecords(2);
    const archived = join(sim.archiveDir("bounces"), old.name);
    assert.deepEqual(rotations, [
      { stream: "bounces", from: old.path, to: archived, next: sim.liveFile("bounces")?.path },
    ]);
    const seqs = dataRows(archived, BOUNCES_HEADER).map((r) => seqOf(r, BOUNCES_HEADER));
    assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7, 8]);
    const late = sim.records().filter((r) => r.late);
    assert.deepEqual(
      late.map((r) => [r.seq, r.file, r.ino]),
      [6, 7, 8].map((seq) => [seq, old.name, old.ino]),
    );
    const live = sim.liveFile("bounces");
    assert.ok(live !== undefined);
    assert.deepEqual(
      dataRows(live.path, BOUNCES_HEADER).map((r) => seqOf(r, BOUNCES_HEADER)),
      [9, 10],
    );
    await sim.stop();
  });

  it("splits writes at awkward bytes but leaves files that re-split into exactly the ground truth", async () => {
    const dir = freshDir();
    const sim = new PmtaSimulator({
      liveDir: dir,
      seed: 99,
      splitWrites: true,
      fblShare: 0.3,
      clock: fixedClock(),
    });
    for (let round = 0; round < 4; round++) {
      await sim.writeRecords(150);
      const partial = await sim.writePartial("bounces", 37);
      assert.equal(partial.written, 37);
      assert.ok(!fs.readFileSync(partial.path).subarray(-2).equals(Buffer.from("\r\n")), "ends mid-record");
      if (round % 2 === 0) await sim.completePartial("bounces");
      // Odd rounds move the file with the record half-written; the rest still goes into the moved file
      // (finished by the next writePartial, or explicitly after the last rotation).
      await sim.rotate();
    }
    await sim.completePartial("bounces");
    await sim.stop();
    assert.equal(sim.records().length, 4 * 151);
    for (const stream of ["bounces", "fbl"] as const) {
      const header = stream === "fbl" ? FBL_HEADER : BOUNCES_HEADER;
      const names = fs.readdirSync(sim.archiveDir(stream)).sort();
      assert.equal(names.length, 4);
      let total = 0;
      for (const name of names) {
        const path = join(sim.archiveDir(stream), name);
        const expected = truth(sim, stream, name);
        assert.deepEqual(
          dataRows(path, header),
          expected.map((r) => [...r.values]),
        );
        const bytes = fs.readFileSync(path);
        for (const r of expected) {
          assert.equal(
            bytes.subarray(r.offset, r.offset + r.length).toString(),
            formatCsvRow(r.values, "\r\n"),
          );
        }
        total += expected.length;
      }
      assert.equal(total, sim.written[stream]);
    }
  });

  it("chooses split points inside multi-byte characters, between CR and LF and after quotes", () => {
    const rng = new Rng(4);
    const body = Buffer.from(formatCsvRow(["b", "Boîte pleine, 😀", 'say "x"'], "\r\n"));
    const kinds = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const at = splitPoint(rng, body, "\r\n");
      assert.ok(at >= 1 && at < body.length);
      if (((body[at] ?? 0) & 0xc0) === 0x80) kinds.add("inside-char");
      if (at === body.length - 1) kinds.add("cr|lf");
      if (body[at - 1] === 0x22) kinds.add("after-quote");
    }
    assert.deepEqual([...kinds].sort(), ["after-quote", "cr|lf", "inside-char"]);
  });

  it("completes a partial record in the moved file when it was started before the rotation", async () => {
    const dir = freshDir();
    const sim = bouncesSim(dir);
    await sim.writeRecords(3);
    const partial = await sim.writePartial("bounces", 10);
    const old = sim.liveFile("bounces");
    assert.ok(old !== undefined);
    await sim.rotate("bounces");
    await sim.writeRecords(2);
    const archived = join(sim.archiveDir("bounces"), old.name);
    assert.equal(parseCsv(fs.readFileSync(archived)).length, 4 + 1, "header, 3 rows and a fragment");
    await sim.completePartial("bounces");
    assert.deepEqual(
      dataRows(archived, BOUNCES_HEADER).map((r) => seqOf(r, BOUNCES_HEADER)),
      [1, 2, 3, partial.seq],
    );
    const record = sim.records().find((r) => r.seq === partial.seq);
    assert.equal(record?.late, true);
    assert.equal(record.file, old.name);
    await sim.stop();
  });

  it("leaves an unfinished partial record as a fragment at stop()", async () => {
    const dir = freshDir();
    const sim = bouncesSim(dir);
    await sim.writeRecords(2);
    const partial = await sim.writePartial("bounces", 25);
    await sim.stop();
    const size = fs.statSync(partial.path).size;
    assert.equal(fs.readFileSync(partial.path).subarray(size - 25).length, 25);
    assert.equal(sim.records().length, 2);
    assert.deepEqual(sim.written, { bounces: 2, fbl: 0 });
  });

  it("reuseInode deletes the live file and creates the next one on the freed inode", async () => {
    const dir = freshDir();
    const sim = bouncesSim(dir);
    const deleted: string[] = [];
    sim.on("delete", (e) => deleted.push(e.path));
    await sim.writeRecords(10);
    const old = sim.liveFile("bounces");
    assert.ok(old !== undefined);
    await sim.reuseInode("bounces");
    const next = sim.liveFile("bounces");
    assert.ok(next !== undefined);
    assert.deepEqual(deleted, [old.path]);
    assert.equal(fs.existsSync(old.path), false);
    assert.equal(next.name, "bounces-2025-05-17-0001.csv");
    assert.equal(fs.statSync(next.path).size, 0);
    if (fs.statfsSync(dir).type === EXT4_MAGIC) assert.equal(next.ino, old.ino, "ext4 reuses the inode");
    assert.ok(sim.records().every((r) => r.fate === "deleted"));
    await sim.writeRecords(2);
    assert.deepEqual(
      dataRows(next.path, BOUNCES_HEADER).map((r) => seqOf(r, BOUNCES_HEADER)),
      [11, 12],
    );
    await sim.reuseInode("bounces", { sameName: true });
    assert.equal(sim.liveFile("bounces")?.name, next.name);
    await sim.stop();
  });

  it("truncateLive empties the file in place and starts again with a header", async () => {
    const dir = freshDir();
    const sim = bouncesSim(dir);
    const truncated: string[] = [];
    sim.on("truncate", (e) => truncated.push(e.path));
    await sim.writeRecords(10);
    const live = sim.liveFile("bounces");
    assert.ok(live !== undefined);
    await sim.truncateLive("bounces");
    assert.deepEqual(truncated, [live.path]);
    assert.equal(fs.statSync(live.path).size, 0);
    assert.equal(fs.statSync(live.path).ino, live.ino);
    await sim.writeRecords(3);
    assert.deepEqual(
      dataRows(live.path, BOUNCES_HEADER).map((r) => seqOf(r, BOUNCES_HEADER)),
      [11, 12, 13],
    );
    const fates = sim.records().map((r) => r.fate ?? "on-disk");
    assert.deepEqual(fates, [...Array(10).fill("truncated"), ...Array(3).fill("on-disk")]);
    const first = sim.records()[10];
    assert.equal(first?.offset, Buffer.byteLength(formatCsvRow(BOUNCES_HEADER, "\r\n")));
    await sim.stop();
  });

  it("rotates by size with maxFileBytes", async () => {
    const dir = freshDir();
    const sim = bouncesSim(dir, { maxFileBytes: 8 * 1024 });
    await sim.writeRecords(200);
    await sim.stop();
    const archive = sim.archiveDir("bounces");
    const names = fs.readdirSync(archive).sort();
    assert.ok(names.length >= 4, `${names.length} size rotations`);
    assert.equal(sim.rotations.bounces, names.length);
    for (const name of names) {
      const path = join(archive, name);
      assert.ok(fs.statSync(path).size >= 8 * 1024);
      assert.equal(dataRows(path, BOUNCES_HEADER).length, truth(sim, "bounces", name).length);
    }
    assert.deepEqual(
      names.map((n) => n.slice(-8, -4)),
      names.map((_, i) => String(i).padStart(4, "0")),
    );
  });

  it("splits records between streams by fblShare and is deterministic for a seed", async () => {
    const contents: string[] = [];
    for (let run = 0; run < 2; run++) {
      const dir = freshDir();
      const sim = new PmtaSimulator({ liveDir: dir, seed: 5, fblShare: 0.1, clock: fixedClock() });
      await sim.writeRecords(100);
      assert.deepEqual(sim.written, { bounces: 90, fbl: 10 });
      const fbl = sim.liveFile("fbl");
      assert.ok(fbl !== undefined);
      assert.ok(dataRows(fbl.path, FBL_HEADER).every((r) => r[0] === "f"));
      const bounces = sim.liveFile("bounces");
      assert.ok(bounces !== undefined);
      contents.push(fs.readFileSync(bounces.path, "utf8") + fs.readFileSync(fbl.path, "utf8"));
      await sim.stop();
    }
    assert.equal(contents[0], contents[1]);
  });

  it("keeps only counters with keepRecords: false", async () => {
    const sim = bouncesSim(freshDir(), { keepRecords: false });
    await sim.writeRecords(30);
    assert.equal(sim.records().length, 0);
    assert.equal(sim.written.bounces, 30);
    await sim.stop();
  });

  it("starts a new file with NNNN 0000 when the date changes", async () => {
    const dir = freshDir();
    let now = new Date(Date.UTC(2025, 4, 17, 23, 59, 58));
    const sim = bouncesSim(dir, { clock: () => now });
    await sim.writeRecords(2);
    await sim.rotate();
    await sim.writeRecords(1);
    assert.equal(sim.liveFile("bounces")?.name, "bounces-2025-05-17-0001.csv");
    now = new Date(Date.UTC(2025, 4, 18, 0, 0, 1));
    await sim.writeRecords(1);
    assert.equal(sim.liveFile("bounces")?.name, "bounces-2025-05-18-0000.csv");
    assert.deepEqual(fs.readdirSync(sim.archiveDir("bounces")).sort(), [
      "bounces-2025-05-17-0000.csv",
      "bounces-2025-05-17-0001.csv",
    ]);
    await sim.stop();
  });

  it("runs on a timer with start()/stop(), rotates and closes every fd", async () => {
    const dir = freshDir();
    const fdDir = "/proc/self/fd";
    const fdsBefore = fs.existsSync(fdDir) ? fs.readdirSync(fdDir).length : 0;
    const sim = new PmtaSimulator({ liveDir: dir, seed: 3, recordsPerSecond: 400, rotateEveryMs: 200 });
    sim.start();
    const [event] = await once(sim, "rotate");
    await sim.stop();
    assert.ok(typeof event.to === "string" && fs.existsSync(event.to));
    const written = sim.written.bounces + sim.written.fbl;
    assert.ok(written > 0, "records were written");
    assert.equal(sim.records().length, written);
    if (fdsBefore > 0) assert.equal(fs.readdirSync(fdDir).length, fdsBefore, "no fd left open");
    let onDisk = 0;
    for (const stream of ["bounces", "fbl"] as const) {
      const header = stream === "fbl" ? FBL_HEADER : BOUNCES_HEADER;
      const paths = [
        ...fs.readdirSync(sim.archiveDir(stream)).map((n) => join(sim.archiveDir(stream), n)),
        ...fs
          .readdirSync(dir)
          .filter((n) => n.startsWith(`${stream}-`))
          .map((n) => join(dir, n)),
      ];
      for (const p of paths) if (fs.statSync(p).size > 0) onDisk += dataRows(p, header).length;
    }
    assert.equal(onDisk, written);
  });
});
