// The npm registry reachable from our machines has lacked some platform binary packages (Biome's
// non-Linux ones), so `npm install` wrote a package-lock.json without them and `npm ci` then refused
// the lock ("Missing: @biomejs/cli-darwin-arm64 from lock file"). This adds the missing entries of
// every package below that ships its binary as per-platform optional dependencies, gated by os/cpu
// (and libc) so npm never fetches them elsewhere. Run it after any `npm install` that rewrites the lock.
import { readFileSync, writeFileSync } from "node:fs";

/** Packages whose optionalDependencies are platform binaries named <scope>/[cli-]<os>-<cpu>[-musl]. */
const PLATFORM_PARENTS = ["@biomejs/biome", "esbuild"];

const lock = JSON.parse(readFileSync("package-lock.json", "utf8"));
let added = 0;
for (const parent of PLATFORM_PARENTS) {
  const entry = lock.packages[`node_modules/${parent}`];
  const wanted = Object.entries(entry?.optionalDependencies ?? {});
  // A platform entry npm did write (the one for this machine) gives license, engines and dev flag.
  const template = wanted.map(([name]) => lock.packages[`node_modules/${name}`]).find(Boolean) ?? {
    license: entry?.license,
    ...(entry?.engines ? { engines: entry.engines } : {}),
  };
  for (const [name, version] of wanted) {
    const key = `node_modules/${name}`;
    if (lock.packages[key]) continue;
    const [, os, cpu, libc] = /\/(?:cli-)?([a-z0-9]+)-([a-z0-9]+?)(?:-(musl))?$/.exec(name) ?? [];
    if (!os) continue;
    lock.packages[key] = {
      version,
      cpu: [cpu],
      ...(entry?.dev ? { dev: true } : {}),
      license: template.license,
      optional: true,
      os: [os],
      // Biome's Linux packages say glibc or musl; esbuild's say neither.
      ...(libc ? { libc: [libc] } : os === "linux" && template.libc ? { libc: ["glibc"] } : {}),
      ...(template.engines ? { engines: template.engines } : {}),
    };
    added++;
  }
}
const sorted = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)),
);
lock.packages = sorted;
writeFileSync("package-lock.json", `${JSON.stringify(lock, null, 2)}\n`);
console.log(`added ${added} platform entries`);
