import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { CheckpointStore, decodeCheckpointFile } from "../src/checkpoint/checkpoint-store.js";
import { lockStateDir } from "../src/checkpoint/state-lock.js";
import { computeFileKey } from "../src/decode/accounting-decoder.js";
import { type ImportPlan, runImportSincedb } from "../src/ops/import-sincedb.js";
import { makedev, parseSincedb, splitDev } from "../src/ops/sincedb.js";
import { formatCsvRow } from "../src/simulate/csv-row.js";
import { BOUNCES_HEADER, FBL_HEADER, generateBounce, generateFbl } from "../src/simulate/record-generator.js";
import { Rng } from "../src/simulate/rng.js";
import { collect } from "./support/collect.js";
import { makeWorkspace, readDelivered, startRun, type Workspace, waitUntil } from "./support/run-harness.js";

const fixture = (name: string): string =>
  fileURLToPath(new URL(`../../test/fixtures/sincedb/${name}`, import.meta.url));

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

interface Row {
  readonly seq: number;
  readonly offset: number;
  readonly end: number;
}

interface Built {
  readonly bytes: Buffer;
  readonly rows: Row[];
  readonly headerLine: string;
  readonly firstRow: string;
  /** Offset just after the LF inside the quoted multi-line field, if one was asked for. */
  readonly embeddedLfEnd?: number;
}

/** A PowerMTA accounting file: header, then one record per seq (CRLF), optionally one multi-line dsnDiag. */
function buildFile(kind: "bounces" | "fbl", seqs: readonly number[], multilineSeq?: number): Built {
  const rng = new Rng(seqs[0] ?? 1);
  const header = kind === "bounces" ? BOUNCES_HEADER : FBL_HEADER;
  const headerLine = header.join(",");
  const parts: Buffer[] = [Buffer.from(formatCsvRow(header, "\r\n"))];
  let offset = parts[0]?.length ?? 0;
  const rows: Row[] = [];
  let firstRow = "";
  let embeddedLfEnd: number | undefined;
  for (const seq of seqs) {
    const time = new Date(Date.UTC(2025, 0, 15, 8, 0, 0) + seq * 1000);
    const values = kind === "bounces" ? generateBounce(rng, seq, time) : generateFbl(rng, seq, time);
    if (seq === multilineSeq) {
      // A multi-line SMTP reply kept in one quoted field, as receivers send 550-…CRLF 550 … replies.
      values[header.indexOf("dsnDiag")] =
        "smtp;550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 Please check the address.";
    }
    const text = formatCsvRow(values, "\r\n");
    const row = Buffer.from(text);
    if (firstRow === "") firstRow = text.slice(0, -2);
    if (seq === multilineSeq) {
      const lf = row.indexOf(0x0a);
      assert.ok(lf < row.length - 1, "the multi-line field must hold an LF before the record's end");
      embeddedLfEnd = offset + lf + 1;
    }
    rows.push({ seq, offset, end: offset + row.length });
    parts.push(row);
    offset += row.length;
  }
  return {
    bytes: Buffer.concat(parts),
    rows,
    headerLine,
    firstRow,
    ...(embeddedLfEnd === undefined ? {} : { embeddedLfEnd }),
  };
}

/** The sincedb line Logstash (plugin ≥ 4.1) writes for `path` at `offset`. */
function sincedbLine(
  path: string,
  offset: number,
  lastActive = Date.now() / 1000,
  loggedPath = path,
): string {
  const st = statSync(path);
  const [major, minor] = splitDev(st.dev);
  return `${st.ino} ${major} ${minor} ${offset} ${lastActive.toFixed(6)} ${loggedPath}`;
}

function workspace(prefix: string, extra: Record<string, unknown> = {}): Workspace {
  const ws = makeWorkspace(prefix, extra);
  roots.push(ws.root);
  mkdirSync(join(ws.liveDir, "accounting", "bounces"), { recursive: true });
  return ws;
}

async function importJson(
  ws: Workspace,
  sincedb: string,
  flags: { dryRun?: boolean; force?: boolean } = {},
): Promise<{ code: number; plan: ImportPlan; written: boolean; refused?: string; stderr: string }> {
  const io = collect();
  const code = await runImportSincedb({ config: ws.config, sincedb, json: true, ...flags, ...io });
  const doc = JSON.parse(io.stdout()) as { plan: ImportPlan; written: boolean; refused?: string };
  return { code, ...doc, stderr: io.stderr() };
}

describe("sincedb parsing", () => {
  it("makedev composes st_dev like glibc, and splitDev inverts it", () => {
    assert.equal(makedev(8, 1), 2049);
    assert.equal(makedev(253, 0), 0xfd00);
    assert.equal(makedev(259, 1), 0x10301);
    // Minors above 255 (many partitions, overlay/tmpfs anonymous devices) use bits 20 and up.
    assert.equal(makedev(0, 300), 44 | (256 << 12));
    assert.equal(makedev(4096, 5), 2 ** 44 + 5);
    for (const [ma, mi] of [
      [8, 1],
      [259, 7],
      [0, 300],
      [4096, 70000],
    ] as const) {
      assert.deepEqual(splitDev(makedev(ma, mi)), [ma, mi]);
    }
  });

  it("reads both formats: with timestamp and path (4.1+), with timestamp only, and the old four fields", () => {
    const v2 = parseSincedb(readFileSync(fixture("logstash-4.x.sincedb"), "utf8"));
    assert.deepEqual(v2.errors, []);
    assert.equal(v2.entries.length, 4);
    assert.deepEqual(v2.entries[0], {
      line: 1,
      ino: 2977152,
      major: 8,
      minor: 1,
      dev: 2049,
      offset: 94,
      lastActive: 1519319662.852678,
      path: "/var/log/pmta/bounces-2025-01-15-0000.csv",
    });
    assert.equal(v2.entries[2]?.path, undefined, "the path field may be absent");
    assert.equal(v2.entries[2]?.lastActive, 1736928001.25);
    assert.equal(v2.entries[3]?.path, "/var/log/pmta/bounces with space.csv");
    const v1 = parseSincedb(readFileSync(fixture("logstash-before-4.1.sincedb"), "utf8"));
    assert.deepEqual(v1.errors, []);
    assert.deepEqual(
      v1.entries.map((e) => [e.ino, e.dev, e.offset, e.lastActive, e.path]),
      [
        [2977152, 2049, 94, undefined, undefined],
        [2977153, 2049, 18231, undefined, undefined],
      ],
    );
  });

  it("reports every malformed line with its line number and the problem, and keeps the good ones", () => {
    const parsed = parseSincedb(readFileSync(fixture("malformed.sincedb"), "utf8"));
    assert.deepEqual(
      parsed.entries.map((e) => e.line),
      [9],
    );
    const byLine = new Map(parsed.errors.map((e) => [e.line, e.problem]));
    assert.deepEqual([...byLine.keys()], [1, 3, 4, 5, 6, 7, 8]);
    assert.match(byLine.get(1) ?? "", /3 fields; expected "inode major minor offset"/);
    assert.match(byLine.get(3) ?? "", /inode "abc" is not a number/);
    assert.match(byLine.get(4) ?? "", /minor "one" is not a non-negative integer/);
    assert.match(byLine.get(5) ?? "", /offset "-5"/);
    assert.match(byLine.get(6) ?? "", /Windows/);
    assert.match(byLine.get(7) ?? "", /last_active_timestamp "yesterday"/);
    assert.match(byLine.get(8) ?? "", /too large/);
  });
});

describe("pmta-ingest import-sincedb", () => {
  it("plans every case: import, mid-record rewind, stale, beyond size, reused inode, other device, bad line", async () => {
    const ws = workspace("pmta-import-plan-");
    const a = buildFile("bounces", [1, 2, 3, 4, 5, 6]);
    const b = buildFile("bounces", [11, 12, 13, 14], 12);
    const pathA = join(ws.liveDir, "accounting", "bounces", "bounces-2025-01-15-0000.csv");
    const pathB = join(ws.liveDir, "bounces-2025-01-15-0001.csv");
    const pathC = join(ws.liveDir, "bounces-2025-01-15-0002.csv");
    const pathD = join(ws.liveDir, "bounces-2025-01-15-0003.csv");
    const pathE = join(ws.liveDir, "bounces-2025-01-15-0004.csv");
    writeFileSync(pathA, a.bytes);
    writeFileSync(pathB, b.bytes);
    writeFileSync(pathC, buildFile("bounces", [21, 22]).bytes);
    writeFileSync(pathD, buildFile("bounces", [31, 32]).bytes);
    writeFileSync(pathE, buildFile("bounces", [41]).bytes);
    const stC = statSync(pathC);
    const stD = statSync(pathD);
    const [major, minor] = splitDev(stD.dev);
    const offsetA = a.rows[2]?.end ?? 0;
    const lines = [
      // Logstash followed A in the live directory; PowerMTA has since moved it to the archive.
      sincedbLine(pathA, offsetA, Date.now() / 1000, join(ws.liveDir, "bounces-2025-01-15-0000.csv")),
      sincedbLine(pathB, b.embeddedLfEnd ?? 0),
      `${stC.ino} ${major} ${minor} ${stC.size + 100} ${(Date.now() / 1000).toFixed(3)} ${pathC}`,
      `999999999 ${major} ${minor} 10 1736928000.5 ${join(ws.liveDir, "bounces-2024-12-01-0000.csv")}`,
      `${stD.ino} ${major} ${minor} 10 ${(Date.now() / 1000).toFixed(3)} ${join(ws.liveDir, "bounces-2024-12-01-0007.csv")}`,
      `${statSync(pathE).ino} ${major + 1} ${minor} 10`,
      "this is not a sincedb line",
    ];
    const sincedb = join(ws.root, "sincedb");
    writeFileSync(sincedb, `${lines.join("\n")}\n`);

    const dry = await importJson(ws, sincedb, { dryRun: true });
    assert.equal(dry.code, 0, dry.stderr);
    assert.equal(dry.written, false);
    assert.equal(existsSync(join(ws.stateDir, "checkpoints.json")), false, "--dry-run writes nothing");
    const plan = dry.plan;
    assert.deepEqual(
      plan.imports.map((p) => [p.line, p.path, p.live, p.logstashOffset, p.offset, p.rewound]),
      [
        [1, pathA, false, offsetA, offsetA, 0],
        [
          2,
          pathB,
          true,
          b.embeddedLfEnd,
          b.rows[1]?.offset,
          (b.embeddedLfEnd ?? 0) - (b.rows[1]?.offset ?? 0),
        ],
      ],
    );
    const skipped = new Map(plan.skipped.map((s) => [s.line, s]));
    assert.equal(skipped.get(3)?.reason, "beyond-size");
    assert.match(
      skipped.get(3)?.message ?? "",
      new RegExp(`${sincedb}:3: .*offset ${stC.size + 100} is beyond the size`),
    );
    assert.equal(skipped.get(4)?.reason, "stale");
    assert.match(
      skipped.get(4)?.message ?? "",
      /sincedb:4: inode 999999999 .*no file with this device and inode/,
    );
    assert.equal(skipped.get(5)?.reason, "inode-reused");
    assert.equal(skipped.get(6)?.reason, "device-mismatch");
    assert.match(skipped.get(6)?.message ?? "", /has this inode but device/);
    assert.equal(skipped.get(7)?.reason, "bad-line");
    assert.match(skipped.get(7)?.message ?? "", /sincedb:7: 5 fields|sincedb:7: inode "this"/);
    assert.deepEqual(plan.notInSincedb.map((n) => n.path).sort(), [pathC, pathD, pathE].sort());
    assert.match(
      plan.notInSincedb[0]?.message ?? "",
      /left to the start policy \(startAt beginning\): read from 0/,
    );

    // The human plan names the sincedb line and what happens to each file.
    const io = collect();
    assert.equal(await runImportSincedb({ config: ws.config, sincedb, dryRun: true, ...io }), 0);
    assert.match(io.stdout(), /IMPORT .*sincedb:2 → .*0001\.csv .*inside a record: resume at its start/);
    assert.match(io.stdout(), /START {2}.*0004\.csv/);
    assert.match(
      io.stdout(),
      /dry run: nothing written; without --dry-run 2 checkpoint entries would be written/,
    );
  });

  it("skips a line whose inode now belongs to a file created after Logstash last touched it", async (t) => {
    const ws = workspace("pmta-import-birth-");
    const path = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    writeFileSync(path, buildFile("bounces", [1, 2]).bytes);
    if (!(statSync(path).birthtimeMs > 0)) {
      t.skip("this filesystem does not report birth times");
      return;
    }
    const sincedb = join(ws.root, "sincedb");
    writeFileSync(sincedb, `${sincedbLine(path, 10, 1_500_000_000)}\n`);
    const r = await importJson(ws, sincedb, { dryRun: true });
    assert.equal(r.plan.imports.length, 0);
    assert.equal(r.plan.skipped[0]?.reason, "inode-reused");
    assert.match(r.plan.skipped[0]?.message ?? "", /created .* after Logstash last updated this line/);
  });

  it("refuses to overwrite the daemon's own checkpoints unless --force, and says why", async () => {
    const ws = workspace("pmta-import-refuse-");
    const built = buildFile("bounces", [1, 2, 3]);
    const path = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    writeFileSync(path, built.bytes);
    const sincedb = join(ws.root, "sincedb");
    writeFileSync(sincedb, `${sincedbLine(path, built.rows[0]?.end ?? 0)}\n`);

    const first = await importJson(ws, sincedb);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.written, true);
    const { snapshot } = await new CheckpointStore(ws.stateDir).load();
    assert.equal(snapshot.generation, 1);
    assert.equal(snapshot.files[0]?.offset, built.rows[0]?.end);
    assert.equal(snapshot.files[0]?.header, built.headerLine);
    assert.equal(snapshot.files[0]?.fileKey, computeFileKey(built.headerLine, built.firstRow));

    const again = await importJson(ws, sincedb);
    assert.equal(again.code, 1);
    assert.equal(again.written, false);
    assert.match(
      again.stderr,
      /already holds pmta-ingest checkpoints \(generation 1.*the daemon's own state is newer.*--force/,
    );

    const forced = await importJson(ws, sincedb, { force: true });
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal((await new CheckpointStore(ws.stateDir).load()).snapshot.generation, 2);
  });

  it("refuses, even with --force, while another process holds the state directory; a dry run still plans", async () => {
    const ws = workspace("pmta-import-locked-");
    const built = buildFile("bounces", [1, 2]);
    const path = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    writeFileSync(path, built.bytes);
    const sincedb = join(ws.root, "sincedb");
    writeFileSync(sincedb, `${sincedbLine(path, built.rows[0]?.end ?? 0)}\n`);
    const held = await lockStateDir(ws.stateDir, "run --config test");
    try {
      const io = collect();
      const code = await runImportSincedb({ config: ws.config, sincedb, force: true, ...io });
      assert.equal(code, 1);
      assert.match(
        io.stderr(),
        /state directory .* is in use by pmta-ingest pid \d+ \(run --config test since /,
      );
      assert.equal((await new CheckpointStore(ws.stateDir).load()).source, "none", "nothing written");
      const dry = await importJson(ws, sincedb, { dryRun: true });
      assert.equal(dry.code, 0, dry.stderr);
      assert.equal(dry.plan.imports.length, 1);
    } finally {
      await held.release();
    }
    const after = await importJson(ws, sincedb);
    assert.equal(after.code, 0, after.stderr);
    assert.equal(after.written, true);
  });

  it("refuses on a damaged store too, writes nothing when no line matches, and names an unreadable sincedb", async () => {
    const ws = workspace("pmta-import-bad-");
    const path = join(ws.liveDir, "bounces-2025-01-15-0000.csv");
    writeFileSync(path, buildFile("bounces", [1]).bytes);

    const missing = collect();
    const code = await runImportSincedb({ config: ws.config, sincedb: join(ws.root, "nope"), ...missing });
    assert.equal(code, 1);
    assert.match(missing.stderr(), /cannot read the sincedb .*nope \(ENOENT\)/);

    const stale = join(ws.root, "stale.sincedb");
    writeFileSync(stale, "12345 8 1 10 1736928000.5 /var/log/pmta/bounces-2024-01-01-0000.csv\n");
    const none = await importJson(ws, stale);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no sincedb line matched a file of the configured inputs; nothing written/);
    assert.equal(existsSync(join(ws.stateDir, "checkpoints.json")), false);

    writeFileSync(join(ws.stateDir, "checkpoints.json"), "garbage");
    const good = join(ws.root, "good.sincedb");
    writeFileSync(good, `${sincedbLine(path, 0)}\n`);
    const damaged = await importJson(ws, good);
    assert.equal(damaged.code, 1);
    assert.match(
      damaged.stderr,
      /checkpoint files that cannot be read .*checkpoints\.json: not a checkpoint file/,
    );
  });

  it("a missing config is a usage error naming the file", async () => {
    const io = collect();
    const code = await runImportSincedb({ config: "/nonexistent/pmta.yaml", sincedb: "/x", ...io });
    assert.equal(code, 2);
    assert.match(io.stderr(), /\/nonexistent\/pmta\.yaml: cannot read the config file \(ENOENT\)/);
  });

  it("after the import the real daemon continues exactly at the imported offsets: live, archive, mid-record", async () => {
    const ws = workspace("pmta-import-run-");
    mkdirSync(join(ws.liveDir, "accounting", "fbl"), { recursive: true });
    const seqs = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);
    // A: archived after Logstash read 10 of its 30 records. B: live, Logstash stopped inside the quoted
    // multi-line field of record 105. C: live, newest, not in the sincedb. D: fbl, read to its end.
    const a = buildFile("bounces", seqs(1, 30));
    const b = buildFile("bounces", seqs(101, 30), 105);
    const c = buildFile("bounces", seqs(201, 15));
    const d = buildFile("fbl", seqs(301, 8));
    const pathA = join(ws.liveDir, "accounting", "bounces", "bounces-2025-01-15-0000.csv");
    const pathB = join(ws.liveDir, "bounces-2025-01-15-0001.csv");
    const pathC = join(ws.liveDir, "bounces-2025-01-15-0002.csv");
    const pathD = join(ws.liveDir, "fbl-2025-01-15-0000.csv");
    writeFileSync(pathA, a.bytes);
    writeFileSync(pathB, b.bytes);
    writeFileSync(pathC, c.bytes);
    writeFileSync(pathD, d.bytes);
    const sincedb = join(ws.root, "sincedb_pmta_logs.db");
    writeFileSync(
      sincedb,
      [
        sincedbLine(
          pathA,
          a.rows[9]?.end ?? 0,
          Date.now() / 1000,
          join(ws.liveDir, "bounces-2025-01-15-0000.csv"),
        ),
        sincedbLine(pathB, b.embeddedLfEnd ?? 0),
        sincedbLine(pathD, d.bytes.length),
        "424242 8 1 500 1736928000.5 /var/log/pmta/bounces-2024-12-31-0000.csv",
        "broken line",
        "",
      ].join("\n"),
    );
    const imported = await importJson(ws, sincedb);
    assert.equal(imported.code, 0, imported.stderr);
    assert.equal(imported.plan.imports.length, 3);
    // Files the sincedb does not cover (C) are left to startAt at the daemon's next start.
    const started = join(ws.stateDir, "inputs-started");
    assert.ok(!existsSync(started), "the import leaves every input at its first start");
    assert.deepEqual(
      imported.plan.notInSincedb.map((n) => n.path),
      [pathC],
    );

    const expected = new Map<string, Array<{ seq: number; id: string }>>();
    const expect = (built: Built, from: number, stream: string): void => {
      const key = computeFileKey(built.headerLine, built.firstRow);
      const list = expected.get(stream) ?? [];
      for (const r of built.rows.slice(from)) list.push({ seq: r.seq, id: `${key}:${r.offset}` });
      expected.set(stream, list);
    };
    expect(a, 10, "bounces");
    expect(b, 4, "bounces"); // record 105 (index 4) again, then the rest
    expect(c, 0, "bounces");
    const total = [...expected.values()].reduce((n, l) => n + l.length, 0);

    const run = startRun(ws);
    const ckpt = join(ws.stateDir, "checkpoints.json");
    const sizes = new Map([pathA, pathB, pathC, pathD].map((p) => [statSync(p).ino, statSync(p).size]));
    const caughtUp = (): boolean => {
      if (readDelivered(ws).length < total) return false;
      let bytes: Buffer;
      try {
        bytes = readFileSync(ckpt);
      } catch {
        // A save renames the live file to .prev before the new one takes its name: for that instant
        // there is no checkpoints.json (the store's own load() reads all three names).
        return false;
      }
      const snap = decodeCheckpointFile(bytes);
      if (typeof snap === "string") return false;
      return [...sizes].every(([ino, size]) => snap.files.some((f) => f.ino === ino && f.offset === size));
    };
    await waitUntil(
      caughtUp,
      20_000,
      () => `${readDelivered(ws).length}/${total} delivered\n${run.stderr().slice(-3000)}`,
    );
    run.child.kill("SIGTERM");
    assert.equal((await run.exited).code, 0, run.stderr());

    const delivered = readDelivered(ws);
    for (const [stream, want] of expected) {
      const got = delivered
        .filter((e) => e.stream === stream)
        .map((e) => ({ seq: e.seq, id: e.id }))
        .sort((x, y) => x.seq - y.seq);
      assert.deepEqual(
        got,
        want,
        `${stream}: exactly the records after the imported offsets, with the same ids`,
      );
    }
    assert.equal(delivered.filter((e) => e.stream === "fbl").length, 0, "the fbl file was read to its end");
    assert.doesNotMatch(run.stderr(), /checkpoint does not match the file on disk/);
    assert.ok(existsSync(started), "the first start took every file in: startAt no longer applies");
  });
});
