import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  CheckpointStore,
  CheckpointStoreError,
  type FileCheckpoint,
} from "../src/checkpoint/checkpoint-store.js";

const root = mkdtempSync(join(tmpdir(), "pmta-ckpt-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `s${n++}`);

function entry(offset: number): FileCheckpoint {
  return {
    dev: 2049,
    ino: 1234,
    input: "bounces",
    path: "/var/log/pmta/bounces-2026-11-23-0000.csv",
    offset,
    headHash: "a".repeat(64),
    headLen: 1024,
    anchorHash: "b".repeat(64),
    anchorLen: 64,
    header: "type,rcpt",
    fileKey: "0123456789abcdef",
    finished: false,
    updatedAt: 1_700_000_000_000,
  };
}

describe("CheckpointStore", () => {
  it("round-trips, numbers generations and keeps the previous one", async () => {
    const dir = fresh();
    const store = new CheckpointStore(dir);
    assert.equal((await store.load()).source, "none");
    await store.save([entry(100)]);
    await store.save([entry(200)]);
    const loaded = await new CheckpointStore(dir).load();
    assert.equal(loaded.source, "current");
    assert.equal(loaded.snapshot.generation, 2);
    assert.deepEqual(loaded.snapshot.files, [entry(200)]);
    assert.match(readFileSync(`${store.path}.prev`, "utf8"), /"generation":1/);
  });

  it("falls back to the previous generation when the current file is damaged, and says why", async () => {
    const damage: Array<[string, (text: string) => string | Buffer, RegExp]> = [
      ["truncated", (t) => t.slice(0, t.length - 20), /checksum mismatch/],
      ["zeroed", (t) => Buffer.alloc(Buffer.byteLength(t)), /not a checkpoint file/],
      ["garbage", () => "\u0001\u0002garbage\n{}", /not a checkpoint file/],
      ["future", (t) => t.replace("checkpoint v1", "checkpoint v9"), /version 9 is not supported/],
    ];
    for (const [name, mutate, problem] of damage) {
      const dir = fresh();
      const store = new CheckpointStore(dir);
      await store.save([entry(100)]);
      await store.save([entry(200)]);
      writeFileSync(store.path, mutate(readFileSync(store.path, "utf8")));
      const loaded = await new CheckpointStore(dir).load();
      assert.equal(loaded.source, "previous", name);
      assert.deepEqual(loaded.snapshot.files, [entry(100)], name);
      assert.match(loaded.problems.join("\n"), problem, name);
      // Saving again continues from there instead of crash-looping.
      await new CheckpointStore(dir).save([entry(300)]);
    }
  });

  it("starts empty, listing both problems, when every generation is damaged", async () => {
    const dir = fresh();
    const store = new CheckpointStore(dir);
    await store.save([entry(1)]);
    await store.save([entry(2)]);
    writeFileSync(store.path, "x");
    writeFileSync(`${store.path}.prev`, "y");
    const loaded = await store.load();
    assert.equal(loaded.source, "none");
    assert.equal(loaded.snapshot.files.length, 0);
    assert.equal(loaded.problems.length, 2);
  });

  it("survives SIGKILL at each crash point inside a save", () => {
    const storeModule = fileURLToPath(new URL("../src/checkpoint/checkpoint-store.js", import.meta.url));
    for (const point of ["ckpt-after-temp-write", "ckpt-after-fsync", "ckpt-after-rename"]) {
      const dir = fresh();
      const script = `import { CheckpointStore } from ${JSON.stringify(storeModule)};
const s = new CheckpointStore(${JSON.stringify(dir)});
const e = (o) => ({ dev: 1, ino: 2, input: "b", path: "/p", offset: o, headHash: "h", headLen: 1, anchorHash: "a", anchorLen: 1, finished: false, updatedAt: 0 });
await s.save([e(10)]);
await s.save([e(20)]);`;
      const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
        env: { ...process.env, PMTA_INGEST_CRASH_AT: `${point}:2` },
      });
      assert.equal(r.signal, "SIGKILL", `${point}: ${r.stderr}`);
      const verify = spawnSync(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `import { CheckpointStore } from ${JSON.stringify(storeModule)};
const l = await new CheckpointStore(${JSON.stringify(dir)}).load();
console.log(JSON.stringify({ g: l.snapshot.generation, o: l.snapshot.files[0]?.offset }));`,
        ],
        { encoding: "utf8" },
      );
      const { g, o } = JSON.parse(verify.stdout) as { g: number; o: number };
      assert.ok((g === 1 && o === 10) || (g === 2 && o === 20), `${point}: generation ${g} offset ${o}`);
    }
  });

  it("reports an unusable state directory with the path and what to do", async () => {
    const file = join(root, "not-a-dir");
    writeFileSync(file, "x");
    const store = new CheckpointStore(join(file, "state"));
    await assert.rejects(store.save([entry(1)]), (err: unknown) => {
      assert.ok(err instanceof CheckpointStoreError);
      assert.match(err.message, /not-a-dir\/state: ENOTDIR; make the state directory writable/);
      return true;
    });
  });
});
