import { runImportSincedb } from "../ops/import-sincedb.js";
import { opsArgs } from "../ops/ops-config.js";

/** `pmta-ingest import-sincedb <sincedb>` from parsed yargs arguments; resolves to the exit code. */
export async function importSincedbCommand(args: Readonly<Record<string, unknown>>): Promise<number> {
  // yargs has already printed the usage when the positional is missing; only the exit code is left.
  if (typeof args.sincedb !== "string" || args.sincedb === "") return 2;
  return runImportSincedb({
    ...opsArgs(args, ["dryRun", "force", "sincedb"]),
    sincedb: args.sincedb,
    dryRun: args.dryRun === true,
    force: args.force === true,
  });
}
