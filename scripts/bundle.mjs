// Builds dist/pmta-ingest.mjs: the whole CLI and every dependency in one ES module, so a PowerMTA
// host needs only Node.js and this file (no npm, no node_modules). Run with `npm run bundle`.
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

/**
 * Our own `await import("…")` calls made static for the bundle. In dist/ they keep `classify` and
 * `--version` from loading the daemon's modules; in one file esbuild keeps them lazy by wrapping
 * every module reachable only through them in an `__esm` initialiser, which turns each module-level
 * `const` into a `var` declared first and assigned at init, out of reach of restoreConsts below
 * (whose measurements say why that matters). Static imports evaluate everything at start instead
 * (the file is parsed whole anyway). Only src/ and only relative specifiers are rewritten: a package
 * imported on demand (yargs, for every command but a plain `run --config FILE`) stays lazy, and out
 * of the daemon's memory, and dependencies are bundled as they are.
 */
const DYNAMIC_IMPORT = /await import\(\s*("\.{1,2}\/[^"]+")\s*\)/g;
export const staticImports = {
  name: "static-imports",
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
      const source = readFileSync(args.path, "utf8");
      if (!source.includes("await import(")) return undefined;
      const imports = [];
      const contents = source.replace(DYNAMIC_IMPORT, (_, spec) => {
        const name = `__static${imports.length}`;
        imports.push(`import * as ${name} from ${spec};`);
        return name;
      });
      // After a shebang, which must stay the first line.
      const shebang = contents.startsWith("#!") ? contents.indexOf("\n") + 1 : 0;
      return {
        contents: `${contents.slice(0, shebang)}${imports.join("\n")}\n${contents.slice(shebang)}`,
        loader: "ts",
      };
    });
  },
};

/** esbuild options shared by the bundle and test/bundle.test.ts (which bundles probes with them). */
export const bundleOptions = {
  plugins: [staticImports],
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

/**
 * Gives our modules' top-level constants back their `const`. esbuild declares every top-level
 * binding of a bundle with `var` (on purpose, and with no option to keep them), and on Node 20 a
 * module-level `var` is a slot V8 must load and check at each use, where a `const` is folded into
 * the optimised code: the hot loops (field split, diagnostic hash, event writer) reach dozens of
 * them, and the bundle ran the 1M catch-up ~11 % slower than dist/ (5.86 vs 5.27 s).
 *
 * Safe by construction: within each `// src/<file>.ts` section esbuild writes, only `var NAME =`
 * lines whose NAME that file declares `const` at top level change; a name esbuild renamed (NAME2)
 * or one the file declares with `let` stays `var`. The unbundled code ran with these very `const`s,
 * so none of them is assigned or read before its declaration.
 */
export function restoreConsts(bundled, readSource) {
  const lines = bundled.split("\n");
  let consts = new Set();
  let restored = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const section = /^\/\/ (src\/[\w/.-]+\.ts)$/.exec(line);
    if (section !== null) {
      const source = readSource(section[1]);
      consts = new Set(Array.from(source.matchAll(/^(?:export )?const ([A-Za-z_$][\w$]*)\b/gm), (m) => m[1]));
      continue;
    }
    if (line.startsWith("// ") && !line.startsWith("// src/")) consts = new Set();
    const decl = /^var ([A-Za-z_$][\w$]*) = /.exec(line);
    if (decl !== null && consts.has(decl[1])) {
      lines[i] = `const ${line.slice(4)}`;
      restored++;
    }
  }
  return { text: lines.join("\n"), restored };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outfile = `${root}/${BUNDLE}`;
  await build({ ...bundleOptions, entryPoints: ["src/cli/main.ts"], outfile });
  const { text, restored } = restoreConsts(readFileSync(outfile, "utf8"), (file) =>
    readFileSync(`${root}/${file}`, "utf8"),
  );
  writeFileSync(outfile, text);
  chmodSync(outfile, 0o755);
  console.log(
    `${BUNDLE}: ${(statSync(outfile).size / 1024).toFixed(0)} KiB, ${restored} top-level consts kept`,
  );
}
