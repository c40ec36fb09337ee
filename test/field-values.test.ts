import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  domainOf,
  parseDsnDiag,
  parseDsnMta,
  parseDsnStatus,
  parsePmtaTime,
  plainMtaAt,
} from "../src/decode/field-values.js";
import { createRng } from "../src/simulate/rng.js";

describe("parsePmtaTime", () => {
  it("reads PowerMTA's local time with a numeric offset as UTC", () => {
    assert.equal(parsePmtaTime("2024-05-01 13:13:21-0400"), "2024-05-01T17:13:21Z");
    assert.equal(parsePmtaTime("2014-08-24 16:00:14+0530"), "2014-08-24T10:30:14Z");
    assert.equal(parsePmtaTime("2019-02-08 21:54:05+0000"), "2019-02-08T21:54:05Z");
  });
  it("gives the same answer as Date for every second of a day, with minutes and offsets interleaved", () => {
    // The fast path remembers the last minute and offset; interleaving two files' clocks must not
    // let one file's minute leak into the other's.
    const zones = ["-0400", "+0530", "+0000"];
    for (let s = 0; s < 86_400; s += 7) {
      const zone = zones[s % 3] as string;
      const hh = String(Math.floor(s / 3600)).padStart(2, "0");
      const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
      const ss = String(s % 60).padStart(2, "0");
      const raw = `2024-02-29 ${hh}:${mm}:${ss}${zone}`;
      const want = new Date(`2024-02-29T${hh}:${mm}:${ss}${zone.slice(0, 3)}:${zone.slice(3)}`)
        .toISOString()
        .replace(".000Z", "Z");
      assert.equal(parsePmtaTime(raw), want, raw);
    }
  });
  it("reads Unix seconds (iso-times no) and ISO variants", () => {
    assert.equal(parsePmtaTime("1178807903"), "2007-05-10T14:38:23Z");
    assert.equal(parsePmtaTime("2024-05-01T13:13:21+02:00"), "2024-05-01T11:13:21Z");
    assert.equal(parsePmtaTime("2024-05-01T13:13:21Z"), "2024-05-01T13:13:21Z");
  });
  it("returns undefined for garbage instead of throwing", () => {
    for (const bad of [
      "",
      "yesterday",
      "2024-13-01 00:00:00+0000",
      "2024-05-01 25:00:00+0000",
      "05/01/2024 13:13:21",
    ]) {
      assert.equal(parsePmtaTime(bad), undefined, bad);
    }
  });
});

describe("parseDsnStatus", () => {
  it("splits code and PowerMTA's description", () => {
    assert.deepEqual(parseDsnStatus("5.1.1 (bad destination mailbox address)"), {
      code: "5.1.1",
      cls: 5,
      subject: 1,
      detail: 1,
      text: "bad destination mailbox address",
    });
    assert.equal(parseDsnStatus("4.7.650")?.code, "4.7.650");
    assert.equal(parseDsnStatus("5.1.10 (recipient address has null MX)")?.detail, 10);
  });
  it("rejects values without a code", () => {
    assert.equal(parseDsnStatus("failed"), undefined);
    assert.equal(parseDsnStatus(""), undefined);
    assert.equal(parseDsnStatus(undefined), undefined);
  });
});

describe("parseDsnDiag", () => {
  it("reads the type, the reply code and the enhanced code", () => {
    assert.deepEqual(parseDsnDiag("smtp;550 5.1.1 <a@b.c>... User unknown"), {
      type: "smtp",
      text: "550 5.1.1 <a@b.c>... User unknown",
      smtpCode: 550,
      enhanced: "5.1.1",
    });
    assert.equal(parseDsnDiag("Smtp; 550-5.7.26 Unauthenticated")?.enhanced, "5.7.26");
  });
  it("unwraps x-pmta bounce-queue replies", () => {
    const d = parseDsnDiag(
      "x-pmta;bounce-queue;reply:550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent.",
    );
    assert.equal(d?.type, "x-pmta");
    assert.equal(d?.pmtaAction, "bounce-queue");
    assert.equal(d?.smtpCode, 550);
    assert.equal(d?.enhanced, "5.7.1");
    assert.equal(parseDsnDiag("x-pmta;deleted by administrator")?.text, "deleted by administrator");
  });
  it("finds the reply inside a remote MTA's 'said:' wrapper", () => {
    const d = parseDsnDiag(
      "X-Postfix; host mx.example.net[192.0.2.4] said: 550 5.1.1 <x@example.net>: unknown",
    );
    assert.equal(d?.type, "x-postfix");
    assert.equal(d?.smtpCode, 550);
    assert.equal(d?.enhanced, "5.1.1");
  });
  it("does not take a version number for a status code", () => {
    assert.equal(parseDsnDiag("smtp;550 Rejected by filter 4.2.1 build")?.enhanced, undefined);
  });
});

describe("parseDsnMta / domainOf", () => {
  it("splits host and IP", () => {
    assert.deepEqual(parseDsnMta("mx.xn--bcher-kva.de (87.98.150.101)"), {
      host: "mx.xn--bcher-kva.de",
      ip: "87.98.150.101",
    });
    assert.deepEqual(parseDsnMta("dns;MX1.Example.com"), { host: "mx1.example.com" });
    assert.equal(parseDsnMta(""), undefined);
  });
  it("lower-cases the recipient domain", () => {
    assert.equal(domainOf("xxxx@YMAIL.COM"), "ymail.com");
    assert.equal(domainOf("Jane <jane@Example.org>"), "example.org");
    assert.equal(domainOf("no-at-sign"), undefined);
  });

  it("gives what the general rules give, on the fast path's edges too", () => {
    // The rules as first written (no fast path): the reference.
    const mtaReference = (raw: string): { host?: string; ip?: string } | undefined => {
      if (raw === "") return undefined;
      let value = raw.trim();
      if (value.length > 4 && value.slice(0, 4).toLowerCase() === "dns;") value = value.slice(4).trim();
      const open = value.lastIndexOf("(");
      if (open < 0 || !value.endsWith(")")) return value === "" ? undefined : { host: value.toLowerCase() };
      const host = value.slice(0, open).trim().toLowerCase();
      const ip = value.slice(open + 1, -1).trim();
      const out: { host?: string; ip?: string } = {};
      if (host !== "") out.host = host;
      if (ip !== "") out.ip = ip;
      return out;
    };
    const domainReference = (address: string): string | undefined => {
      const at = address.lastIndexOf("@");
      if (at < 0) return undefined;
      let domain = address.slice(at + 1);
      const close = domain.search(/[>\s,;]/);
      if (close >= 0) domain = domain.slice(0, close);
      domain = domain.trim().toLowerCase().replace(/\.$/, "");
      return domain === "" ? undefined : domain;
    };
    const rng = createRng(3);
    const parts = [
      "mx",
      ".",
      "-",
      "a",
      "Z",
      "9",
      " ",
      "(",
      ")",
      "1",
      ":",
      "f",
      "@",
      ";",
      "dns;",
      "\t",
      ">",
      "é",
    ];
    const edges = [
      "mx1.example.com (192.0.2.1)",
      "mx.a (::1)",
      "a (1)",
      "mx (1.2.3.4) ",
      " mx (1)",
      "mx  (1)",
      "MX (1)",
      "mx (1 )",
      "mx ()",
      "(1)",
      "x@example.com",
      "x@example.com.",
      "x@ex ample.com",
      "x@",
      "@a",
    ];
    let plain = 0;
    const hostParts = ["mx", ".", "-", "a", "9", "Z", "é", " "];
    const ipParts = ["1", ".", ":", "f", "F", "g", " "];
    const some = (from: string[], max: number): string => {
      let out = "";
      for (let k = rng.int(0, max); k > 0; k--) out += rng.pick(from);
      return out;
    };
    for (let n = 0; n < 40_000 + edges.length; n++) {
      let s = edges[n] ?? "";
      const len = n < edges.length ? 0 : rng.int(0, 14);
      // Half the rest near the usual `host (ip)` form, where the byte reading must agree most closely.
      if (n >= edges.length && n % 2 === 0)
        s = `${some(hostParts, 6)} (${some(ipParts, 6)})${some(parts, 1)}`;
      else for (let k = 0; k < len; k++) s += rng.pick(parts);
      assert.deepEqual(parseDsnMta(s), mtaReference(s), JSON.stringify(s));
      assert.equal(domainOf(s), domainReference(s), JSON.stringify(s));
      // The byte reading (encodeEvent), inside a larger buffer as a field is: when it accepts the
      // bytes, host and IP are exactly what the rules give.
      const bytes = Buffer.from(`x,${s},y`);
      const at = plainMtaAt(bytes, 2, bytes.length - 2);
      if (at >= 0) {
        const want = mtaReference(s);
        assert.deepEqual(
          { host: bytes.toString("utf8", 2, at - 1), ip: bytes.toString("utf8", at + 1, bytes.length - 3) },
          want,
          JSON.stringify(s),
        );
        plain++;
      }
    }
    assert.ok(plain > 500, `${plain} values read from their bytes`);
    for (const usual of [
      "mx1.example.com (192.0.2.1)",
      "mx.a (::1)",
      "a (1)",
      "mta7.am0.yahoodns.net (67.195.228.96)",
    ])
      assert.ok(plainMtaAt(Buffer.from(usual), 0, usual.length) > 0, usual);
    for (const other of ["MX (1)", "mx  (1)", "mx (1 )", "mx ()", "(1)", "mx (1.2.3.4) ", "mx", "mx.é (1)"])
      assert.equal(plainMtaAt(Buffer.from(other), 0, Buffer.byteLength(other)), -1, other);
  });
});
