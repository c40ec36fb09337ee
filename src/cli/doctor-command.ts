import { runDoctor } from "../ops/doctor.js";
import { opsArgs } from "../ops/ops-config.js";

/** `pmta-ingest doctor` from parsed yargs arguments; resolves to the exit code. */
export async function doctorCommand(args: Readonly<Record<string, unknown>>): Promise<number> {
  return runDoctor(opsArgs(args, []));
}
