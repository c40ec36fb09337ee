// Builds dist/pmta-ingest.mjs: the whole CLI and every dependency in one ES module, so a PowerMTA
// host needs only Node.js and this file (no npm, no node_modules). Run with `npm run bundle`.
import { chmodSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

/** esbuild options shared by the bundle and test/bundle.test.ts (which bundles probes with them). */
export const bundleOptions = {
  absWorkingDir: root,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // CommonJS dependencies (prom-client, pino, yargs' helpers) call require() for Node's
  // built-ins; an ES module has no `require`, so the bundle gets one. esbuild keeps main.ts's
  // shebang above this banner.
  banner: {
    js: 'import { createRequire as __pmtaIngestCreateRequire } from "node:module";\nconst require = __pmtaIngestCreateRequire(import.meta.url);',
  },
  // yargs finds --version in a package.json near node_modules or the working directory; a bundle
  // has neither, so the version is compiled in (src/version.ts).
  define: { __PMTA_INGEST_VERSION__: JSON.stringify(pkg.version) },
  legalComments: "eof",
  logLevel: "warning",
};

export const BUNDLE = "dist/pmta-ingest.mjs";

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outfile = `${root}/${BUNDLE}`;
  await build({ ...bundleOptions, entryPoints: ["src/cli/main.ts"], outfile });
  chmodSync(outfile, 0o755);
  console.log(`${BUNDLE}: ${(statSync(outfile).size / 1024).toFixed(0)} KiB`);
}
