import { ConfigError, loadRunConfig, type RunConfig } from "../config/run-config.js";
import { parseDuration } from "../config/units.js";
import { HttpSettingsError, parseHttpSettings } from "../deliver/http-output.js";

/**
 * Config loading shared by the operations commands (status, doctor, import-sincedb), done exactly as
 * `pmta-ingest run` does it — YAML file, then every other `--key` / `--a.b` flag as an override, then
 * `${VAR}` expansion — so that a command pointed at the daemon's config sees the daemon's paths.
 */
export interface OpsConfigSource {
  /** `--config FILE`; without it only flags and defaults apply (as for `run`). */
  readonly config?: string;
  /** Config keys given as flags (`--stateDir`, `--output.http.url`). */
  readonly flags?: Readonly<Record<string, unknown>>;
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Where the commands print: stdout for the report, stderr for errors (tests pass collectors). */
export interface OpsStreams {
  readonly out: { write(text: string): unknown };
  readonly err: { write(text: string): unknown };
}

export type LoadedConfig =
  | { readonly ok: true; readonly config: RunConfig }
  | { readonly ok: false; readonly message: string };

/** Exit code of every ops command when the config is unusable: the same as `run` (a usage error). */
export const CONFIG_ERROR_EXIT = 2;

/**
 * Loads and validates the config (including `output.http`, as `run` does before starting). A config
 * mistake comes back as a message naming the file and key, never as an exception.
 *
 * `readOnly` (status) skips loadRunConfig's stateDir probe (create it, write and remove a file), so a
 * read-only command writes nothing and works on a state directory it can only read.
 */
export async function loadOpsConfig(source: OpsConfigSource, readOnly = false): Promise<LoadedConfig> {
  let config: RunConfig;
  try {
    config = await loadRunConfig({
      ...(source.config === undefined ? {} : { file: source.config }),
      flags: source.flags ?? {},
      env: source.env ?? process.env,
      probeStateDir: !readOnly,
    });
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, message: err.message };
    throw err;
  }
  if (config.output.kind === "http") {
    try {
      parseHttpSettings(config.output.settings, parseDuration);
    } catch (err) {
      if (err instanceof HttpSettingsError) return { ok: false, message: `${config.source}: ${err.message}` };
      throw err;
    }
  }
  return { ok: true, config };
}

/**
 * The config-key flags among parsed yargs arguments: everything but yargs' own keys, the command's
 * own options (`own`) and dashed spellings (yargs also gives `dryRun` for `--dry-run`), as `run` does.
 */
export function configFlagsFromArgs(
  args: Readonly<Record<string, unknown>>,
  own: readonly string[],
): Record<string, unknown> {
  const skip = new Set(["_", "$0", "config", "c", ...own]);
  const flags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    if (skip.has(k) || k.includes("-") || v === undefined) continue;
    flags[k] = v;
  }
  return flags;
}

/**
 * What every ops command takes from its parsed yargs arguments: the config source (file, config-key
 * flags minus the command's `own` options, environment), `--json`, and the process's streams.
 */
export function opsArgs(
  args: Readonly<Record<string, unknown>>,
  own: readonly string[],
): OpsConfigSource & OpsStreams & { readonly json: boolean } {
  return {
    ...(typeof args.config === "string" ? { config: args.config } : {}),
    flags: configFlagsFromArgs(args, ["json", ...own]),
    env: process.env,
    json: args.json === true,
    out: process.stdout,
    err: process.stderr,
  };
}
