import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runCli } from "./support/run-cli.js";

const dir = mkdtempSync(join(tmpdir(), "pmta-demo-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("pmta-ingest demo", () => {
  it("runs simulator → decode → classify → NDJSON through rotations and loses nothing", async () => {
    const work = join(dir, "run");
    const r = await runCli([
      "demo",
      "--records",
      "1500",
      "--rate",
      "3000",
      "--rotate-every",
      "0.2",
      "--dir",
      work,
    ]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /OK: every simulated record arrived as an event/);
    const written = Number(/records written by the simulator: (\d+)/.exec(r.stdout)?.[1]);
    assert.ok(written >= 1500, r.stdout);
    const events = readFileSync(join(work, "events.ndjson"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { id: string; kind: string; bounce?: { reason: string } });
    assert.equal(events.length, written);
    assert.equal(new Set(events.map((e) => e.id)).size, written, "ids are unique");
    assert.ok(events.some((e) => e.kind === "complaint"));
    assert.ok(new Set(events.map((e) => e.bounce?.reason)).size > 10, "varied reasons");
    const archived = readdirSync(join(work, "pmta", "accounting", "bounces"));
    assert.ok(archived.length >= 2, `rotated files in the archive: ${archived.join(", ")}`);
  });

  it("rejects nonsense options with a clear message", async () => {
    const r = await runCli(["demo", "--rate", "-5", "--duration", "1"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--rate must be a positive number \(got -5\)/);
    const d = await runCli(["demo", "--duration", "0"]);
    assert.equal(d.code, 2);
    assert.match(d.stderr, /--duration must be a positive number/);
  });
});
