import { runDoctor } from "../ops/doctor.js";
import { configFlagsFromArgs } from "../ops/ops-config.js";

/** `pmta-ingest doctor` from parsed yargs arguments; resolves to the exit code. */
export async function doctorCommand(args: Readonly<Record<string, unknown>>): Promise<number> {
  return runDoctor({
    ...(typeof args.config === "string" ? { config: args.config } : {}),
    flags: configFlagsFromArgs(args, ["json"]),
    env: process.env,
    json: args.json === true,
    out: process.stdout,
    err: process.stderr,
  });
}
