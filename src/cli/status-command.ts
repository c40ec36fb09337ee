import { configFlagsFromArgs } from "../ops/ops-config.js";
import { runStatus } from "../ops/status.js";

/** `pmta-ingest status` from parsed yargs arguments; resolves to the exit code. */
export async function statusCommand(args: Readonly<Record<string, unknown>>): Promise<number> {
  return runStatus({
    ...(typeof args.config === "string" ? { config: args.config } : {}),
    flags: configFlagsFromArgs(args, ["json"]),
    env: process.env,
    json: args.json === true,
    out: process.stdout,
    err: process.stderr,
  });
}
