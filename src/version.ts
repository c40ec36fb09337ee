import { readFileSync } from "node:fs";

/** Replaced by the version string when scripts/bundle.mjs builds the single-file bundle. */
declare const __PMTA_INGEST_VERSION__: string | undefined;

/**
 * The package version for `--version`. yargs would look for a package.json near node_modules or the
 * working directory, which a bundle copied to /opt/pmta-ingest has not (and a stray package.json in
 * the working directory would print someone else's version), so it is read from ours here.
 */
export const VERSION: string =
  typeof __PMTA_INGEST_VERSION__ === "string"
    ? __PMTA_INGEST_VERSION__
    : (
        JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
          version: string;
        }
      ).version;
