/**
 * Command-line options of `npm run bench`: `--name value`, `--flag`, `--no-flag`. Unknown options are
 * an error naming the option and the known ones, so a typo never silently runs the default benchmark.
 */

export interface BenchOptions {
  /** Records in the catch-up file. */
  readonly records: number;
  /** Measured runs of each shipper (median reported). */
  readonly runs: number;
  /** Seed of the generated file (the same seed gives the same bytes). */
  readonly seed: number;
  readonly latency: boolean;
  /** Seconds of appending in --latency mode. */
  readonly seconds: number;
  /** Append rate (records/s) in --latency and --steady modes. */
  readonly rate: number;
  readonly idle: boolean;
  /** Seconds of each idle measurement. */
  readonly idleSeconds: number;
  /** Minutes of the steady run (0 = off). */
  readonly steady: number;
  readonly pathological: boolean;
  /** Seconds each pathological case may run at most. */
  readonly pathoSeconds: number;
  /** Run only this pathological case (1-3; 0 = all). */
  readonly pathoCase: number;
  readonly syslogNg: boolean;
  /** Run decode-only / classify-only figures (bench/decode-classify.js). */
  readonly stages: boolean;
  /** Records for the decode/classify stage figures. */
  readonly stageRecords: number;
  /** The catch-up (throughput) measurement; on unless only other modes were asked for. */
  readonly catchUp: boolean;
  /** One extra daemon run with --cpu-prof and one with a heap snapshot at mid-run; summaries printed. */
  readonly profile: boolean;
  /** Keep the work directories (configs, logs, profiles) instead of deleting them. */
  readonly keep: boolean;
  /** Write the results as JSON to this path too. */
  readonly json?: string;
}

const HELP = `npm run bench -- [options]

  --records N        records in the catch-up file (default 1000000)
  --runs K           measured runs per shipper, median reported (default 3)
  --seed S           generator seed (default 1)
  --no-syslog-ng     do not run syslog-ng side by side even if installed
  --no-stages        skip the decode-only / classify-only figures
  --stage-records N  records for the stage figures (default 300000)
  --latency          append at --rate records/s for --seconds; p50/p99/max append → acknowledgement
  --seconds S        (default 60)
  --rate R           (default 2000)
  --idle             CPU of an idle daemon over --idle-seconds (empty dir, then a quiet caught-up file)
  --idle-seconds S   (default 60)
  --steady MINUTES   RSS flatness at --rate with a rotation every minute, RSS sampled every 5 s
  --pathological     64 MiB unterminated record, 100,000 tiny archived files, lines of only quotes
  --patho-seconds S  time limit per pathological case (default 60)
  --patho-case N     only case N (1 unterminated record, 2 tiny archived files, 3 quote lines)
  --profile          one extra catch-up run with --cpu-prof and one with a heap snapshot; summaries
  --keep             keep work directories (configs, daemon logs, profiles)
  --json PATH        also write all results as JSON

With --latency, --idle, --steady, --pathological or --profile only those run, unless --catch-up is given.`;

export class UsageError extends Error {
  override name = "UsageError";
}

export function parseArgs(argv: readonly string[]): BenchOptions | "help" {
  const values = new Map<string, string | boolean>();
  const numeric = new Set([
    "records",
    "runs",
    "seed",
    "seconds",
    "rate",
    "idle-seconds",
    "steady",
    "patho-seconds",
    "patho-case",
    "stage-records",
  ]);
  const flags = new Set([
    "latency",
    "idle",
    "pathological",
    "syslog-ng",
    "stages",
    "keep",
    "catch-up",
    "profile",
  ]);
  const strings = new Set(["json"]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--help" || a === "-h") return "help";
    if (!a.startsWith("--")) throw new UsageError(`unexpected argument "${a}"\n\n${HELP}`);
    const name = a.slice(2);
    if (name.startsWith("no-") && flags.has(name.slice(3))) {
      values.set(name.slice(3), false);
    } else if (flags.has(name)) {
      values.set(name, true);
    } else if (numeric.has(name) || strings.has(name)) {
      const v = argv[i + 1];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`--${name} needs a value\n\n${HELP}`);
      if (numeric.has(name) && !(Number(v.replaceAll("_", "").replaceAll(",", "")) >= 0))
        throw new UsageError(`--${name} expects a number, got "${v}"`);
      values.set(name, v);
      i++;
    } else {
      throw new UsageError(`unknown option "${a}"\n\n${HELP}`);
    }
  }
  const num = (k: string, d: number): number => {
    const v = values.get(k);
    return typeof v === "string" ? Number(v.replaceAll("_", "").replaceAll(",", "")) : d;
  };
  const flag = (k: string, d: boolean): boolean => {
    const v = values.get(k);
    return typeof v === "boolean" ? v : d;
  };
  const steady = num("steady", 0);
  const onlyModes =
    flag("latency", false) ||
    flag("idle", false) ||
    steady > 0 ||
    flag("pathological", false) ||
    flag("profile", false);
  const json = values.get("json");
  return {
    records: Math.max(1, Math.round(num("records", 1_000_000))),
    runs: Math.max(1, Math.round(num("runs", 3))),
    seed: num("seed", 1),
    latency: flag("latency", false),
    seconds: num("seconds", 60),
    rate: num("rate", 2000),
    idle: flag("idle", false),
    idleSeconds: num("idle-seconds", 60),
    steady,
    pathological: flag("pathological", false),
    pathoSeconds: num("patho-seconds", 60),
    pathoCase: Math.round(num("patho-case", 0)),
    syslogNg: flag("syslog-ng", true),
    stages: flag("stages", !onlyModes),
    stageRecords: Math.round(num("stage-records", 300_000)),
    catchUp: flag("catch-up", !onlyModes),
    profile: flag("profile", false),
    keep: flag("keep", false),
    ...(typeof json === "string" ? { json } : {}),
  };
}

export { HELP };
