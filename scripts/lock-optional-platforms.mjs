// The npm registry reachable from our machines lacks Biome's non-Linux binary packages, so
// `npm install` writes a package-lock.json without them and `npm ci` then refuses the lock
// ("Missing: @biomejs/cli-darwin-arm64 from lock file"). This adds the missing entries, gated by
// os/cpu so npm never fetches them on Linux. Run it after any `npm install` that rewrites the lock.
import { readFileSync, writeFileSync } from "node:fs";

const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
const biome = lock.packages["node_modules/@biomejs/biome"];
let added = 0;
for (const [name, version] of Object.entries(biome?.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`;
  if (lock.packages[key]) continue;
  const [, os, cpu, libc] = /cli-(\w+)-(\w+?)(?:-(musl))?$/.exec(name) ?? [];
  if (!os) continue;
  lock.packages[key] = {
    version,
    cpu: [cpu],
    dev: true,
    license: "MIT OR Apache-2.0",
    optional: true,
    os: [os],
    ...(libc ? { libc: [libc] } : {}),
    engines: { node: ">=14.21.3" },
  };
  added++;
}
const sorted = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)),
);
lock.packages = sorted;
writeFileSync("package-lock.json", `${JSON.stringify(lock, null, 2)}\n`);
console.log(`added ${added} platform entries`);
