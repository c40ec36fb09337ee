import { opsArgs } from "../ops/ops-config.js";
import { runStatus } from "../ops/status.js";

/** `pmta-ingest status` from parsed yargs arguments; resolves to the exit code. */
export async function statusCommand(args: Readonly<Record<string, unknown>>): Promise<number> {
  return runStatus(opsArgs(args, []));
}
