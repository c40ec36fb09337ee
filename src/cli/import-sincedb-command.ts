import { runImportSincedb } from "../ops/import-sincedb.js";
import { configFlagsFromArgs } from "../ops/ops-config.js";

/** `pmta-ingest import-sincedb <sincedb>` from parsed yargs arguments; resolves to the exit code. */
export async function importSincedbCommand(args: Readonly<Record<string, unknown>>): Promise<number> {
  // yargs has already printed the usage when the positional is missing; only the exit code is left.
  if (typeof args.sincedb !== "string" || args.sincedb === "") return 2;
  return runImportSincedb({
    sincedb: args.sincedb,
    ...(typeof args.config === "string" ? { config: args.config } : {}),
    flags: configFlagsFromArgs(args, ["json", "dryRun", "force", "sincedb"]),
    env: process.env,
    json: args.json === true,
    dryRun: args.dryRun === true,
    force: args.force === true,
    out: process.stdout,
    err: process.stderr,
  });
}
