import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { runCheckPmta } from "../src/cli/check-pmta-command.js";
import {
  type CheckOptions,
  checkPmta,
  type FsProbe,
  inputsFromPmtaConfig,
  permits,
  realFs,
} from "../src/pmta/check-pmta.js";

const repoFile = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const fixture = (name: string): string => repoFile(`test/fixtures/pmta/${name}`);

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

interface Layout {
  readonly root: string;
  readonly config: string;
  readonly live: string;
  readonly archive: string;
  readonly etc: string;
  /** Options that point user lookup and retention search into the layout. */
  readonly options: CheckOptions;
}

/**
 * A PowerMTA host in a temp dir: /etc/pmta/config including the shipped pmta/*.conf snippets (paths
 * rewritten into the temp dir), a live directory with dated files, an archive, passwd/group files
 * with a service user "ingest" (uid 4242) in group "pmta", and a tmpfiles.d clean-up rule.
 */
function makeLayout(opts: { archiveDir?: string; retention?: boolean; extraConfig?: string } = {}): Layout {
  const root = mkdtempSync(join(tmpdir(), "pmta-check-"));
  roots.push(root);
  chmodSync(root, 0o755); // mkdtemp makes it 0700: the service user could not even enter it
  const etc = join(root, "etc");
  const live = join(root, "var/log/pmta");
  const archive = opts.archiveDir ?? join(live, "archive");
  mkdirSync(join(etc, "pmta/pmta-ingest"), { recursive: true });
  mkdirSync(live, { recursive: true });
  mkdirSync(archive, { recursive: true });
  mkdirSync(join(etc, "tmpfiles.d"), { recursive: true });
  for (const snippet of ["acct-bounces.conf", "acct-fbl.conf"]) {
    const text = readFileSync(repoFile(`pmta/${snippet}`), "utf8")
      .replaceAll("/var/log/pmta/archive", "@ARCHIVE@")
      .replaceAll("/var/log/pmta", live)
      .replaceAll("@ARCHIVE@", archive);
    writeFileSync(join(etc, "pmta/pmta-ingest", snippet), text);
  }
  const config = join(etc, "pmta/config");
  writeFileSync(
    config,
    [
      "postmaster postmaster@example.com",
      "relay-domain bounce.example.com",
      "<bounce-processor>",
      "    <address-list>",
      "        domain bounce.example.com",
      "    </address-list>",
      "</bounce-processor>",
      "<feedback-loop-processor>",
      "    <address-list>",
      "        address /^fbl@fbl\\.example\\.com$/",
      "    </address-list>",
      "</feedback-loop-processor>",
      "include pmta-ingest/*.conf",
      opts.extraConfig ?? "",
      "",
    ].join("\n"),
  );
  for (const name of [
    "bounces-2026-11-23-0000.csv",
    "bounces-2026-11-23-0001.csv",
    "fbl-2026-11-23-0000.csv",
  ]) {
    writeFileSync(join(live, name), "type,timeLogged\n");
    chmodSync(join(live, name), 0o644);
  }
  writeFileSync(join(archive, "bounces-2026-11-22-0000.csv"), "type,timeLogged\n");
  chmodSync(join(archive, "bounces-2026-11-22-0000.csv"), 0o644);
  writeFileSync(join(etc, "passwd"), "root:x:0:0::/root:/bin/sh\ningest:x:4242:4242::/:/usr/sbin/nologin\n");
  writeFileSync(join(etc, "group"), "root:x:0:\ningest:x:4242:\npmta:x:4243:pmta,ingest\n");
  if (opts.retention !== false) writeFileSync(join(etc, "tmpfiles.d/pmta.conf"), `e ${archive} - - - 14d\n`);
  return {
    root,
    config,
    live,
    archive,
    etc,
    options: {
      passwdFile: join(etc, "passwd"),
      groupFile: join(etc, "group"),
      retentionPlaces: [join(etc, "tmpfiles.d")],
    },
  };
}

const codes = (r: { problems: readonly { severity: string; code: string }[] }) =>
  r.problems.map((p) => `${p.severity}:${p.code}`);

describe("check-pmta on a real directory layout", () => {
  it("the shipped pmta/ snippets pass: inputs listed, no error, no warning", async () => {
    const l = makeLayout();
    const r = await checkPmta(l.config, { ...l.options, user: "ingest" });
    assert.deepEqual(codes(r), ["info:retention-found"], "bounces and fbl share the archive: reported once");
    assert.deepEqual(r.inputs, [
      { name: "bounces", path: join(l.live, "bounces-*.csv"), archive: l.archive, types: ["b", "rb"] },
      { name: "fbl", path: join(l.live, "fbl-*.csv"), archive: l.archive, types: ["f"] },
    ]);
    assert.equal(r.user?.uid, 4242);
    assert.deepEqual(r.user?.gids, [4242, 4243]);
    assert.equal(r.files.length, 3);
  });

  it("a file the service user cannot read is an error naming the file; mode bits are used, not root's access()", async () => {
    const l = makeLayout();
    chmodSync(join(l.live, "bounces-2026-11-23-0001.csv"), 0o600);
    const r = await checkPmta(l.config, { ...l.options, user: "ingest" });
    const p = r.problems.find((x) => x.code === "file-unreadable");
    assert.ok(p, codes(r).join(" "));
    assert.equal(p.severity, "error");
    assert.match(
      p.message,
      /user ingest cannot read 1 of 2 files in .*var\/log\/pmta \(bounces-2026-11-23-0001\.csv\)/,
    );
    assert.match(p.fix, /chmod o\+r .*bounces-\*\.csv \(world-readable yes is set/);
    assert.match(p.file ?? "", /acct-bounces\.conf$/);
    assert.equal(p.line, 6);
    // Group access through pmta (4243) is enough.
    if (process.getuid?.() === 0) {
      const { chownSync } = await import("node:fs");
      chownSync(join(l.live, "bounces-2026-11-23-0001.csv"), 0, 4243);
      chmodSync(join(l.live, "bounces-2026-11-23-0001.csv"), 0o640);
      const again = await checkPmta(l.config, { ...l.options, user: "ingest" });
      assert.ok(!codes(again).includes("error:file-unreadable"), codes(again).join(" "));
    }
  });

  it("a live directory closed to the user is reported once, with the chmod/usermod to run", async () => {
    const l = makeLayout();
    chmodSync(l.live, 0o700);
    const r = await checkPmta(l.config, { ...l.options, user: "ingest" });
    const bad = r.problems.filter((p) => p.severity === "error");
    // Both inputs share the live dir (reported once); the archive below it cannot be entered either.
    assert.deepEqual(
      bad.map((p) => p.code),
      ["dir-unreadable", "dir-not-searchable"],
    );
    assert.match(bad[0]?.fix ?? "", /usermod -aG pmta ingest/);
    chmodSync(l.live, 0o755);
  });

  it("archive on another filesystem is an error (st_dev differs)", async (t) => {
    const shm = "/dev/shm";
    let shmDev: number | undefined;
    try {
      shmDev = statSync(shm).dev;
    } catch {}
    if (shmDev === undefined || shmDev === statSync(tmpdir()).dev) {
      t.skip("no second filesystem (/dev/shm) here; the injected-device test covers the rule");
      return;
    }
    const other = mkdtempSync(join(shm, "pmta-archive-"));
    roots.push(other);
    chmodSync(other, 0o755);
    const l = makeLayout({ archiveDir: other });
    const r = await checkPmta(l.config, { ...l.options, user: "ingest" });
    const p = r.problems.filter((x) => x.code === "cross-device");
    assert.equal(p.length, 1);
    assert.equal(p[0]?.severity, "error");
    assert.match(p[0]?.message ?? "", /another filesystem/);
    assert.match(p[0]?.fix ?? "", /move-to .*var\/log\/pmta\/archive/);
  });

  it("an archive nothing cleans up is a warning with a tmpfiles.d rule", async () => {
    const l = makeLayout({ retention: false });
    const r = await checkPmta(l.config, { ...l.options, user: "ingest" });
    assert.deepEqual(codes(r), ["warn:no-retention"]);
    assert.match(r.problems[0]?.fix ?? "", new RegExp(`e ${l.archive} - - - 14d`));
  });

  it("missing directories and an unknown user are reported, not crashed on", async () => {
    const l = makeLayout();
    rmSync(l.archive, { recursive: true });
    rmSync(l.live, { recursive: true });
    const r = await checkPmta(l.config, { ...l.options, user: "nobody-here" });
    assert.deepEqual(codes(r), ["error:unknown-user", "warn:live-dir-missing", "warn:archive-missing"]);
  });

  it("as root without --user: says access was not checked (root reads everything)", async () => {
    const l = makeLayout();
    const r = await checkPmta(l.config, { ...l.options, currentUid: 0 });
    assert.ok(codes(r).includes("info:access-not-checked"));
  });

  it("runCheckPmta: text report, --json, exit codes 0 / 1 / 2", async () => {
    const l = makeLayout();
    let out = "";
    let err = "";
    const io = { out: (s: string) => (out += s), err: (s: string) => (err += s) };
    assert.equal(await runCheckPmta({ configPath: l.config, user: "ingest", ...l.options, ...io }), 0);
    assert.match(
      out,
      /Inputs pmta-ingest will read:\n {2}bounces {2}.*bounces-\*\.csv {2}types b,rb {2}archive /,
    );
    assert.match(out, /Result: PASS \(0 errors, 0 warnings, 1 note\)/);

    chmodSync(join(l.live, "fbl-2026-11-23-0000.csv"), 0o600);
    out = "";
    assert.equal(await runCheckPmta({ configPath: l.config, user: "ingest", ...l.options, ...io }), 1);
    assert.match(out, /FAIL {2}.*acct-fbl\.conf:6 {2}user ingest cannot read 1 of 1 files/);
    assert.match(out, /Result: FAIL \(1 error/);

    out = "";
    assert.equal(
      await runCheckPmta({ configPath: l.config, user: "ingest", json: true, ...l.options, ...io }),
      1,
    );
    const json = JSON.parse(out) as { ok: boolean; inputs: unknown[]; problems: Array<{ code: string }> };
    assert.equal(json.ok, false);
    assert.equal(json.inputs.length, 2);
    assert.ok(json.problems.some((p) => p.code === "file-unreadable"));

    out = "";
    const missing = join(l.root, "no/such/config");
    assert.equal(await runCheckPmta({ configPath: missing, ...io }), 2);
    assert.match(
      err,
      /cannot read the PowerMTA config .*no\/such\/config \(ENOENT\); give the config's path/,
    );
    assert.equal(out, "", "the reason goes to stderr only");
    assert.equal(await runCheckPmta({ configPath: missing, json: true, ...io }), 2);
    assert.equal((JSON.parse(out) as { readable: boolean }).readable, false);
  });
});

describe("check-pmta rules (config only, or injected filesystem)", () => {
  const staticOnly = async (name: string) => inputsFromPmtaConfig(fixture(name));

  it("missing fields the classifier needs, delete-after with move-to", async () => {
    const r = await staticOnly("broken/delete-after.conf");
    const msgs = r.problems.map((p) => `${p.severity}:${p.code}:${p.line}:${p.message}`);
    assert.ok(
      msgs.some((m) => /^error:missing-field:8:.*does not log dsnDiag for b records/.test(m)),
      msgs.join("\n"),
    );
    assert.ok(msgs.some((m) => /^warn:missing-field:8:.*does not log dsnMta for b records/.test(m)));
    assert.ok(
      msgs.some((m) => /^warn:missing-id-header:6:.*header_X-FBLId for rb records/.test(m)),
      "rb logs *",
    );
    assert.ok(msgs.some((m) => /^warn:delete-after-ignored:10:/.test(m)));
    assert.ok(!msgs.some((m) => m.includes("missing-field:8:") && m.includes("rcpt")));
    assert.deepEqual(
      r.inputs.map((i) => i.types),
      [["b", "rb"]],
    );
  });

  it("no records line: PowerMTA's default d, b; not world-readable", async () => {
    const r = await staticOnly("broken/acct-no-records.conf");
    assert.deepEqual(codes(r).sort(), [
      "info:default-records",
      "info:no-move-to",
      "warn:missing-id-header",
      "warn:not-world-readable",
    ]);
    assert.deepEqual(r.inputs[0]?.types, ["b"]);
  });

  it("the typical config: the d-only stock file and the pipe are notes; processors are present", async () => {
    const r = await staticOnly("typical/config");
    assert.deepEqual(codes(r), ["info:deliveries-only", "info:pipe"]);
    assert.deepEqual(
      r.inputs.map((i) => i.name),
      ["bounces", "fbl"],
    );
  });

  it("no <acct-file>, rb/f without processors, privacy policy, duplicate types", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pmta-rules-"));
    roots.push(dir);
    const none = join(dir, "none.conf");
    writeFileSync(none, "postmaster a@b.c\n");
    const r1 = await inputsFromPmtaConfig(none);
    assert.deepEqual(codes(r1), ["error:no-acct-file"]);
    assert.match(r1.problems[0]?.fix ?? "", /pmta\/acct-bounces\.conf/);

    const cfg = join(dir, "proc.conf");
    writeFileSync(
      cfg,
      [
        "<acct-file /v/bounces.csv>",
        "records b, rb, f",
        'privacy-policy siphash "k"',
        "move-to /v/archive",
        "world-readable yes",
        "</acct-file>",
        "<acct-file /v/more.csv>",
        "records b",
        "world-readable yes",
        "move-to /v/archive",
        "</acct-file>",
      ].join("\n"),
    );
    const r2 = await inputsFromPmtaConfig(cfg);
    const c = codes(r2);
    for (const want of [
      "warn:no-bounce-processor",
      "warn:no-feedback-loop-processor",
      "warn:privacy-policy",
      "warn:type-in-two-files",
    ])
      assert.ok(c.includes(want), `${want} in ${c.join(" ")}`);
    const dup = r2.problems.find((p) => p.code === "type-in-two-files");
    assert.equal(dup?.line, 8);
  });

  it("field spelling: wrong case is a warning, unknown names a note", async () => {
    const dir = mkdtempSync(join(tmpdir(), "pmta-rules-"));
    roots.push(dir);
    const cfg = join(dir, "c.conf");
    writeFileSync(
      cfg,
      "<acct-file /v/b.csv>\nrecords b\nrecord-fields b timelogged,rcpt,dsnStatus,dsnDiag,dsnMta,bounceCat,fooBar,header_X-FBLId\n</acct-file>\n",
    );
    const r = await inputsFromPmtaConfig(cfg);
    const c = r.problems.map((p) => `${p.severity}:${p.code}`);
    assert.ok(c.includes("warn:field-case"));
    assert.ok(c.includes("info:unknown-field"));
    assert.ok(c.includes("error:missing-field"), "timeLogged (exact) is missing");
    assert.match(r.problems.find((p) => p.code === "field-case")?.fix ?? "", /write timeLogged/);
  });

  it("cross-device and access() with an injected filesystem", async () => {
    const files: Record<string, string> = {
      "/etc/pmta/config":
        "<bounce-processor>\n</bounce-processor>\n<acct-file /v/b.csv>\nrecords b, rb\nrecord-fields b *,header_X-FBLId\nrecord-fields rb *,header_X-FBLId\nmove-to /w/archive\nworld-readable yes\n</acct-file>\n",
    };
    const dirs: Record<string, number> = { "/": 1, "/v": 1, "/w": 2, "/w/archive": 2 };
    const fs: FsProbe = {
      readFile: async (p) => {
        const t = files[p];
        if (t === undefined) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
        return t;
      },
      listDir: async () => [],
      stat: async (p) => {
        const dev = dirs[p];
        return dev === undefined
          ? undefined
          : { dev, ino: 1, mode: 0o40755, uid: 0, gid: 0, isDirectory: true };
      },
      access: async (p) => p !== "/w/archive",
    };
    const r = await checkPmta("/etc/pmta/config", { fs, currentUid: 1000, retentionPlaces: [] });
    assert.deepEqual(codes(r), ["error:cross-device", "error:dir-unreadable", "warn:no-retention"]);
    assert.equal(r.problems[0]?.line, 7);
    assert.match(r.problems[1]?.message ?? "", /the current user cannot list \/w\/archive/);
  });

  it("permission bits: owner, then group, then other", () => {
    const user = { name: "u", uid: 10, gid: 20, gids: [20, 30] };
    const st = (mode: number, uid: number, gid: number) => ({
      dev: 1,
      ino: 1,
      mode,
      uid,
      gid,
      isDirectory: false,
    });
    assert.equal(permits(st(0o400, 10, 0), user, 4), true);
    assert.equal(permits(st(0o044, 10, 30), user, 4), false, "owner bits win even when group/other allow");
    assert.equal(permits(st(0o040, 0, 30), user, 4), true);
    assert.equal(permits(st(0o004, 0, 99), user, 4), true);
    assert.equal(permits(st(0o750, 0, 99), user, 5), false);
    assert.equal(permits(st(0o000, 0, 0), { ...user, uid: 0 }, 4), true);
  });

  it("realFs.stat returns undefined for a missing path", async () => {
    assert.equal(await realFs.stat(join(tmpdir(), "definitely-missing-pmta-path")), undefined);
  });
});
