import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { acctFilesFrom, effectiveFields, inputsFromAcctFiles } from "../src/pmta/acct-files.js";
import {
  type BlockNode,
  type ConfigNode,
  findBlocks,
  type ParseSources,
  parsePmtaConfig,
  splitArgs,
  stripComment,
} from "../src/pmta/pmta-config-parser.js";

const fixture = (name: string): string =>
  fileURLToPath(new URL(`../../test/fixtures/pmta/${name}`, import.meta.url));

const disk: ParseSources = { readFile: (p) => readFile(p, "utf8"), listDir: (d) => readdir(d) };

/** In-memory files: the parser never touches the disk through these. */
function memory(files: Record<string, string>): ParseSources {
  return {
    async readFile(path) {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
      return text;
    },
    async listDir(dir) {
      const prefix = dir.endsWith("/") ? dir : `${dir}/`;
      return Object.keys(files)
        .filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes("/"))
        .map((p) => p.slice(prefix.length));
    },
  };
}

async function parseFixture(name: string) {
  const path = fixture(name);
  return parsePmtaConfig(readFileSync(path, "utf8"), path, disk);
}

function names(nodes: readonly ConfigNode[]): string[] {
  return nodes.map((n) => (n.kind === "block" ? `<${n.name}>` : n.name));
}

describe("PowerMTA config parser", () => {
  it("parses a typical config: blocks, nesting, includes (relative, wildcard, inside a block)", async () => {
    const parsed = await parseFixture("typical/config");
    assert.deepEqual(parsed.problems, []);
    assert.deepEqual(
      parsed.files.map((f) => f.replace(/.*\/typical\//, "")),
      ["config", "vmtas.conf", "vmta2-keys.conf", "conf.d/10-gmail.conf", "conf.d/20-yahoo.conf"],
    );
    const vmtas = findBlocks(parsed.nodes, "virtual-mta");
    assert.deepEqual(
      vmtas.map((v) => v.arg),
      ["vmta1", "vmta2"],
    );
    // The include inside <virtual-mta vmta2> put its directive into that block, with its own file:line.
    const key = (vmtas[1] as BlockNode).children.find((n) => n.name === "domain-key");
    assert.ok(key !== undefined && key.kind === "directive");
    assert.match(key.file, /vmta2-keys\.conf$/);
    assert.equal(key.line, 1);
    // Nested <domain> inside <virtual-mta>, and the two wildcard-included <domain> blocks in name order.
    const domains = findBlocks(parsed.nodes, "domain").map(
      (d) => `${d.arg}@${d.file.replace(/.*\//, "")}:${d.line}`,
    );
    assert.deepEqual(domains, [
      "gmail.com@vmtas.conf:4",
      "*@config:41",
      "gmail.com@10-gmail.conf:1",
      "yahoo.com@20-yahoo.conf:1",
    ]);
    // Comments are gone; a # inside quotes is data; regex lines are directives.
    const header = parsed.nodes.find((n) => n.name === "custom-dsn-from-header");
    assert.equal(
      header?.kind === "directive" ? header.args[0] : "",
      "Mail Delivery System <mailer-daemon#1@example.com>",
    );
    const patterns = findBlocks(parsed.nodes, "bounce-category-patterns")[0] as BlockNode;
    assert.deepEqual(names(patterns.children), [
      "/spam/",
      "/\\bvirus\\b/",
      "/mailbox",
      "/^[45]\\.1\\.1/",
      "//",
    ]);
    const access = parsed.nodes.find((n) => n.kind === "directive" && n.value === "10.0.0.0/8 monitor");
    assert.ok(access !== undefined, "trailing comment removed from http-access");
    const acct = findBlocks(parsed.nodes, "acct-file");
    assert.deepEqual(
      acct.map((a) => [a.arg, a.line, a.endLine]),
      [
        ["/var/log/pmta/acct.csv", 87, 92],
        ["/var/log/pmta/bounces.csv", 94, 102],
        ["/var/log/pmta/fbl.csv", 104, 109],
        ["|/usr/local/bin/stats-collector --quiet", 111, 113],
      ],
    );
  });

  it("reports an unclosed block with where it was opened and what to add", async () => {
    const parsed = await parseFixture("broken/unclosed.conf");
    const file = fixture("broken/unclosed.conf");
    assert.deepEqual(
      parsed.problems.map((p) => [p.severity, p.code, p.file, p.line]),
      [
        ["error", "mismatched-close", file, 6],
        ["error", "unclosed-block", file, 8],
      ],
    );
    assert.match(
      parsed.problems[0]?.message ?? "",
      /<\/virtual-mta> closes <virtual-mta> but <domain gmail\.com> opened at .*:4 is still open/,
    );
    assert.match(parsed.problems[0]?.fix ?? "", /add <\/domain> before line 6/);
    assert.match(
      parsed.problems[1]?.message ?? "",
      /<acct-file \/var\/log\/pmta\/bounces\.csv> is never closed/,
    );
    assert.match(parsed.problems[1]?.fix ?? "", /add <\/acct-file>/);
    // The tree is still usable: the acct-file block and its directive are there.
    assert.equal(findBlocks(parsed.nodes, "acct-file")[0]?.children.length, 1);
  });

  it("reports a mismatched closing tag (typo) and a stray one", async () => {
    const mis = await parseFixture("broken/mismatched.conf");
    assert.deepEqual(
      mis.problems.map((p) => [p.code, p.line]),
      [
        ["mismatched-close", 3],
        ["unclosed-block", 1],
      ],
    );
    assert.match(
      mis.problems[0]?.message ?? "",
      /<\/domian> does not match <domain gmail\.com> opened at .*mismatched\.conf:1/,
    );
    assert.match(mis.problems[0]?.fix ?? "", /write <\/domain>/);
    const stray = await parseFixture("broken/stray.conf");
    assert.deepEqual(
      stray.problems.map((p) => [p.severity, p.code, p.line]),
      [["error", "stray-close", 4]],
    );
    assert.match(stray.problems[0]?.fix ?? "", /remove the line/);
  });

  it("detects include loops and names the chain", async () => {
    const parsed = await parseFixture("broken/loop-a.conf");
    assert.equal(parsed.problems.length, 1);
    const p = parsed.problems[0];
    assert.equal(p?.code, "include-loop");
    assert.match(p?.file ?? "", /loop-b\.conf$/);
    assert.equal(p?.line, 2);
    assert.match(p?.message ?? "", /loop-a\.conf → .*loop-b\.conf → .*loop-a\.conf/);
    // Both files' own directives were read once.
    assert.deepEqual(
      parsed.nodes.map((n) => (n.kind === "directive" ? n.value : "")),
      ["a.example.com", "b.example.com"],
    );
  });

  it("reports missing includes (absolute and relative) as errors at the include line", async () => {
    const parsed = await parseFixture("broken/missing-include.conf");
    assert.deepEqual(
      parsed.problems.map((p) => [p.severity, p.code, p.line]),
      [
        ["error", "include-missing", 2],
        ["error", "include-missing", 3],
      ],
    );
    assert.match(parsed.problems[0]?.message ?? "", /\/etc\/pmta\/does-not-exist\.conf does not exist/);
    assert.match(parsed.problems[1]?.message ?? "", /broken\/does-not-exist-either\.conf does not exist/);
    assert.match(parsed.problems[0]?.fix ?? "", /create .* or remove the include line/);
  });

  it("handles odd input without crashing: CRLF, BOM, tag without >, empty tag, text after a tag, include in memory", async () => {
    const files = {
      "/etc/pmta/config":
        "\uFEFFhost-name a\r\n<domain x.com> max-smtp-out 1\r\n</domain>\r\n<source 1.2.3.4\r\n<>\r\ninclude extra/*.conf\r\ninclude\r\n",
      "/etc/pmta/extra/a.conf": "postmaster a@b.c\n",
      "/etc/pmta/extra/b.txt": "not included\n",
    };
    const parsed = await parsePmtaConfig(files["/etc/pmta/config"], "/etc/pmta/config", memory(files));
    assert.deepEqual(
      parsed.problems.map((p) => [p.severity, p.code, p.line]),
      [
        ["warn", "text-after-tag", 2],
        ["error", "bad-tag", 4],
        ["error", "bad-tag", 5],
        ["error", "bad-include", 7],
      ],
    );
    assert.deepEqual(names(parsed.nodes), ["host-name", "<domain>", "postmaster"]);
    assert.deepEqual(parsed.files, ["/etc/pmta/config", "/etc/pmta/extra/a.conf"]);
  });

  it("a wildcard include matching nothing is a note; an include of a directory says to use a wildcard", async () => {
    const sources: ParseSources = {
      readFile: async (p) => {
        if (p === "/etc/pmta/dir") throw Object.assign(new Error("EISDIR"), { code: "EISDIR" });
        throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
      },
      listDir: async () => [],
    };
    const parsed = await parsePmtaConfig("include conf.d/*.conf\ninclude dir\n", "/etc/pmta/config", sources);
    assert.deepEqual(
      parsed.problems.map((p) => [p.severity, p.code]),
      [
        ["info", "include-no-match"],
        ["error", "include-unreadable"],
      ],
    );
    assert.match(parsed.problems[1]?.fix ?? "", /include \/etc\/pmta\/dir\/\*\.conf/);
  });

  it("a block left open in an included file is reported in that file, and cannot be closed by the includer", async () => {
    const files = {
      "/c/config": "include part.conf\n</domain>\n",
      "/c/part.conf": "<domain a.com>\n  max-smtp-out 1\n",
    };
    const parsed = await parsePmtaConfig(files["/c/config"], "/c/config", memory(files));
    assert.deepEqual(
      parsed.problems.map((p) => [p.code, p.file, p.line]),
      [
        ["unclosed-block", "/c/part.conf", 1],
        ["stray-close", "/c/config", 2],
      ],
    );
  });

  it("comment and argument splitting", () => {
    assert.equal(stripComment('a "b # c" # d'), 'a "b # c" ');
    assert.equal(stripComment("/\\x23/ other # x"), "/\\x23/ other ");
    assert.deepEqual(splitArgs('redact "X Y"  z'), ["redact", "X Y", "z"]);
    assert.deepEqual(splitArgs('"a \\"q\\" b" ""'), ['a "q" b', ""]);
  });
});

describe("<acct-file> blocks", () => {
  it("reads records, record-fields, move-to and defaults; maps inputs with dated-name globs", async () => {
    const parsed = await parseFixture("typical/config");
    const { acctFiles, problems } = acctFilesFrom(parsed.nodes, "/etc/pmta");
    assert.deepEqual(problems, []);
    const [acct, bounces, fbl, pipe] = acctFiles;
    assert.deepEqual(acct?.records, ["d"]);
    assert.equal(acct?.deleteAfter, "8d");
    assert.equal(acct?.worldReadable, false);
    assert.deepEqual(bounces?.records, ["b", "rb"]);
    assert.deepEqual(bounces?.recordFields.rb?.items, [
      "timeLogged",
      "orig",
      "rcpt",
      "dsnStatus",
      "dsnDiag",
      "dsnMta",
      "bounceCat",
      "header_X-FBLId",
    ]);
    assert.equal(bounces?.recordFields.b?.line, 96);
    assert.equal(bounces?.moveTo, "/var/log/pmta/archive");
    assert.equal(bounces?.moveInterval, "5m");
    assert.equal(bounces?.maxSize, "50M");
    assert.equal(bounces?.worldReadable, true);
    assert.deepEqual(fbl?.records, ["f"], "long name feedback-loop → f");
    assert.equal(pipe?.pipe, true);

    assert.deepEqual(inputsFromAcctFiles(acctFiles), {
      inputs: [
        {
          name: "bounces",
          path: "/var/log/pmta/bounces-*.csv",
          archive: "/var/log/pmta/archive",
          types: ["b", "rb"],
        },
        { name: "fbl", path: "/var/log/pmta/fbl-*.csv", archive: "/var/log/pmta/archive", types: ["f"] },
      ],
      problems: [],
    });
    const withD = inputsFromAcctFiles(acctFiles, { deliveries: true }).inputs.map((i) => [i.name, i.types]);
    assert.deepEqual(withD, [
      ["acct", ["d"]],
      ["bounces", ["b", "rb"]],
      ["fbl", ["f"]],
    ]);
  });

  it("defaults: no records line means d, b; no record-fields means *; ! removes", async () => {
    const text = "<acct-file /l/a.csv>\n  record-fields b *,!orcpt,!dsnMta,header_X-Id\n</acct-file>\n";
    const parsed = await parsePmtaConfig(text, "/etc/pmta/config", memory({}));
    const { acctFiles } = acctFilesFrom(parsed.nodes, "/etc/pmta");
    const a = acctFiles[0];
    assert.ok(a !== undefined);
    assert.deepEqual(a.records, ["d", "b"]);
    const b = effectiveFields(a, "b");
    assert.ok(b.includes("dsnDiag") && b.includes("header_X-Id"));
    assert.ok(!b.includes("orcpt") && !b.includes("dsnMta"));
    assert.ok(effectiveFields(a, "d").includes("orcpt"), "d keeps its defaults");
    assert.deepEqual(inputsFromAcctFiles(acctFiles).inputs[0]?.types, ["b"], "d is not read unless asked");
  });

  it("warns about unknown directives inside <acct-file>, and errors on unknown record types", async () => {
    const parsed = await parseFixture("broken/acct-unknown.conf");
    const { problems } = acctFilesFrom(parsed.nodes, "/etc/pmta");
    assert.deepEqual(
      problems.map((p) => [p.severity, p.code, p.line]),
      [
        ["warn", "unknown-in-acct-file", 3],
        ["warn", "unknown-in-acct-file", 4],
      ],
    );
    assert.match(problems[0]?.message ?? "", /"rotate-period" is not a documented <acct-file> directive/);
    const bad = await parsePmtaConfig(
      "<acct-file /x/a.csv>\nrecords b, bounced\nrecords f\nrecord-fields zz a\n</acct-file>\nnot-a-real-directive 1\n",
      "/etc/pmta/config",
      memory({}),
    );
    assert.deepEqual(
      bad.problems,
      [],
      "unknown directives outside <acct-file> are not the parser's business",
    );
    const r = acctFilesFrom(bad.nodes, "/etc/pmta");
    assert.deepEqual(
      r.problems.map((p) => [p.severity, p.code, p.line]),
      [
        ["error", "unknown-record-type", 2],
        ["warn", "records-twice", 3],
        ["error", "unknown-record-type", 4],
      ],
    );
  });

  it("relative paths, duplicate and overlapping acct files", async () => {
    const text = [
      "<acct-file log/bounces.csv>",
      "records b",
      "</acct-file>",
      "<acct-file /etc/pmta/log/bounces.csv>",
      "records rb",
      "</acct-file>",
      "<acct-file /v/fbl.csv>",
      "records f",
      "</acct-file>",
      "<acct-file /v/fbl-old.csv>",
      "records f",
      "</acct-file>",
    ].join("\n");
    const parsed = await parsePmtaConfig(text, "/etc/pmta/config", memory({}));
    const { acctFiles, problems } = acctFilesFrom(parsed.nodes, "/etc/pmta");
    assert.deepEqual(
      problems.map((p) => [p.code, p.line]),
      [["relative-path", 1]],
    );
    assert.equal(acctFiles[0]?.path, "/etc/pmta/log/bounces.csv");
    const r = inputsFromAcctFiles(acctFiles);
    assert.deepEqual(
      r.inputs.map((i) => i.name),
      ["bounces", "fbl", "fbl-old"],
    );
    assert.deepEqual(
      r.problems.map((p) => [p.code, p.line]),
      [
        ["duplicate-acct-file", 4],
        ["overlapping-inputs", 7],
      ],
    );
  });
});
