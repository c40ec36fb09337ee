#!/usr/bin/env node
import { hostname } from "node:os";
import { RuleSyntaxError } from "../classify/operator-rules.js";
import { VERSION } from "../version.js";
import { classifyJsonl, classifyOne } from "./classify-command.js";
import { classifierFromRulesFile, UsageError } from "./load-rules.js";

function parseTypes(value: string | undefined): ReadonlySet<string> | undefined {
  if (value === undefined || value === "" || value === "all") return undefined;
  return new Set(value.split(",").map((t) => t.trim()));
}

function parseColumns(value: string | undefined): readonly string[] | undefined {
  if (value === undefined || value === "") return undefined;
  const cols = value.split(",").map((c) => c.trim());
  if (cols[0] !== "type")
    throw new UsageError(`--fallback-columns must start with "type" (got "${cols[0]}")`);
  return cols;
}

function positive(flag: string, value: number): void {
  if (!(Number.isFinite(value) && value > 0))
    throw new UsageError(`${flag} must be a positive number (got ${value})`);
}

/** `run`: load the configuration (file and flags), check it, and run the daemon until stopped. */
async function runCommand(configPath: string | undefined, flags: Record<string, unknown>): Promise<number> {
  const { loadRunConfig, ConfigError } = await import("../config/run-config.js");
  let config: Awaited<ReturnType<typeof loadRunConfig>>;
  try {
    config = await loadRunConfig({
      ...(configPath === undefined ? {} : { file: configPath }),
      flags,
      env: process.env,
    });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  if (config.output.kind === "http") {
    const { parseHttpSettings, HttpSettingsError } = await import("../deliver/http-output.js");
    const { parseDuration } = await import("../config/units.js");
    try {
      parseHttpSettings(config.output.settings, parseDuration);
    } catch (err) {
      if (err instanceof HttpSettingsError) throw new UsageError(`${config.source}: ${err.message}`);
      throw err;
    }
  }
  // The daemon logs to stdout (journald, containers) unless its events go there.
  const { setLogDestination, log } = await import("./log.js");
  setLogDestination(config.output.kind === "stdout" ? "stderr" : "stdout");
  const { reportCrashes, describeError } = await import("../run/crash-report.js");
  reportCrashes(log);
  if (configPath !== undefined) {
    const { warnExposedSecrets } = await import("../config/secret-permissions.js");
    await warnExposedSecrets(configPath, config);
  }
  const classifier = await classifierFromRulesFile(config.rules);
  const { runDaemon } = await import("../run/daemon.js");
  const { MetricsListenError } = await import("../observe/metrics-server.js");
  const { StateDirBusyError } = await import("../checkpoint/state-lock.js");
  try {
    return await runDaemon(config, classifier);
  } catch (err) {
    if (err instanceof MetricsListenError || err instanceof StateDirBusyError)
      throw new UsageError(`${config.source}: ${err.message}`);
    // From here on the daemon's log is where an operator looks: the same JSON line as a crash.
    log("error", "unexpected error; exiting (a bug: please report it with this line)", describeError(err));
    return 1;
  }
}

/**
 * `run --config FILE` exactly, as the systemd unit starts it: handled without loading yargs, which
 * would stay resident for the daemon's whole life (13 MiB of its 74 MiB idle RSS). Anything else,
 * `run --help` and config keys given as flags included, goes through yargs as before.
 */
function plainRun(argv: readonly string[]): string | undefined {
  if (argv[0] !== "run") return undefined;
  if (argv.length === 3 && (argv[1] === "--config" || argv[1] === "-c")) {
    const path = argv[2] as string;
    return path !== "" && !path.startsWith("-") ? path : undefined;
  }
  if (argv.length === 2 && argv[1]?.startsWith("--config=") === true) {
    const path = argv[1].slice("--config=".length);
    return path !== "" ? path : undefined;
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const configPath = plainRun(argv);
  if (configPath !== undefined) return runCommand(configPath, {});
  const { default: yargs } = await import("yargs");
  let exitCode = 0;
  await yargs(argv)
    .scriptName("pmta-ingest")
    .usage(
      "$0 <command> [options]\n\nTails PowerMTA accounting files and ships classified bounce and FBL events.",
    )
    .option("rules", {
      type: "string",
      describe: "operator classification rules file (Octeth 'text==>Hard' or '/regex/ => reason' lines)",
    })
    .command(
      "classify [diagnostic]",
      "classify one bounce diagnostic (or JSON lines on stdin with --jsonl)",
      (y) =>
        y
          .positional("diagnostic", {
            type: "string",
            describe: 'dsnDiag, e.g. "smtp;550 5.1.1 <a@b.c>... User unknown"',
          })
          .option("status", { type: "string", describe: "dsnStatus, e.g. 5.1.1" })
          .option("category", { type: "string", describe: "PowerMTA bounceCat, e.g. bad-mailbox" })
          .option("type", { type: "string", default: "b", describe: "record type: b, rb, t, tq, ..." })
          .option("action", { type: "string", describe: "dsnAction, e.g. failed or delayed" })
          .option("mta", {
            type: "string",
            describe: "dsnMta, e.g. 'gmail-smtp-in.l.google.com (142.250.1.27)'",
          })
          .option("rcpt", { type: "string", describe: "recipient address (its domain picks provider rules)" })
          .option("jsonl", {
            type: "boolean",
            default: false,
            describe:
              "read JSON objects (type, dsnStatus, dsnDiag, bounceCat, dsnAction, dsnMta, rcpt) from stdin",
          }),
      async (args) => {
        const classifier = await classifierFromRulesFile(args.rules);
        if (args.jsonl) {
          await classifyJsonl(classifier, process.stdin, process.stdout);
          return;
        }
        if (args.diagnostic === undefined && args.status === undefined && args.category === undefined) {
          throw new UsageError("give a diagnostic text, --status or --category (or --jsonl to read stdin)");
        }
        const result = classifyOne(classifier, {
          diagnostic: args.diagnostic,
          status: args.status,
          category: args.category,
          type: args.type,
          action: args.action,
          mta: args.mta,
          rcpt: args.rcpt,
        });
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      },
    )
    .command(
      "replay <files..>",
      "decode and classify whole accounting files (e.g. rotated archives) to NDJSON",
      (y) =>
        y
          .positional("files", { type: "string", array: true, demandOption: true })
          .option("output", { alias: "o", type: "string", describe: "write events here instead of stdout" })
          .option("host", { type: "string", default: hostname(), describe: "source.host in events" })
          .option("types", { type: "string", default: "all", describe: "record types to emit, e.g. b,rb,f" })
          .option("max-record-bytes", {
            type: "number",
            default: 1024 * 1024,
            describe: "longer records are set aside",
          })
          .option("fallback-columns", {
            type: "string",
            describe: "columns for rows before any header line, e.g. type,timeLogged,orig,rcpt,dsnDiag",
          })
          .option("event-fields", {
            choices: ["all", "unmapped"] as const,
            default: "all" as const,
            describe: "event `fields`: every column, or only those no other member carries",
          }),
      async (args) => {
        const classifier = await classifierFromRulesFile(args.rules);
        const { runReplay } = await import("./replay-command.js");
        const fallback = parseColumns(args["fallback-columns"]);
        const types = parseTypes(args.types);
        const summary = await runReplay(classifier, {
          files: args.files ?? [],
          host: args.host,
          maxRecordBytes: args["max-record-bytes"],
          fields: args["event-fields"],
          ...(args.output === undefined ? {} : { output: args.output }),
          ...(types === undefined ? {} : { types }),
          ...(fallback === undefined ? {} : { fallbackColumns: fallback }),
        });
        if (summary.filesFailed > 0) exitCode = 1;
      },
    )
    .command(
      "run",
      "tail the accounting files and deliver events until stopped (SIGTERM/SIGINT)",
      (y) =>
        y
          .option("config", {
            alias: "c",
            type: "string",
            describe: "YAML config file (every key can also be given as --key or --a.b)",
          })
          // Any config key is accepted as a flag (--stateDir, --batch.maxEvents); the config loader validates them.
          .strict(false),
      async (args) => {
        const flags: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(args)) {
          if (k === "_" || k === "$0" || k === "config" || k === "c" || k.includes("-") || v === undefined)
            continue;
          flags[k] = v;
        }
        exitCode = await runCommand(args.config, flags);
      },
    )
    .command(
      "demo",
      "run the whole pipeline on a built-in PowerMTA simulator (no external service needed)",
      (y) =>
        y
          .option("duration", { type: "number", describe: "stop after this many seconds" })
          .option("records", { type: "number", describe: "stop after the simulator wrote this many records" })
          .option("rate", {
            type: "number",
            default: 200,
            describe: "records per second written by the simulator",
          })
          .option("rotate-every", {
            type: "number",
            default: 5,
            describe: "seconds between move-to rotations",
          })
          .option("dir", { type: "string", describe: "working directory (default: a new temp directory)" })
          .option("output", {
            alias: "o",
            type: "string",
            describe: "NDJSON events file (default: <dir>/events.ndjson)",
          })
          .option("seed", { type: "number", default: 1, describe: "simulator seed" }),
      async (args) => {
        positive("--rate", args.rate);
        if (!(args["rotate-every"] >= 0))
          throw new UsageError("--rotate-every must be 0 (never) or a number of seconds");
        if (args.duration !== undefined) positive("--duration", args.duration);
        if (args.records !== undefined) positive("--records", args.records);
        const classifier = await classifierFromRulesFile(args.rules);
        const { runDemo } = await import("../demo/run-demo.js");
        const result = await runDemo(classifier, {
          rate: args.rate,
          rotateEverySeconds: args["rotate-every"],
          seed: args.seed,
          ...(args.duration === undefined ? {} : { durationSeconds: args.duration }),
          ...(args.records === undefined ? {} : { records: args.records }),
          ...(args.dir === undefined ? {} : { dir: args.dir }),
          ...(args.output === undefined ? {} : { output: args.output }),
        });
        if (!result.complete) exitCode = 1;
      },
    )
    .command(
      "check-pmta [config]",
      "check a PowerMTA config: which accounting files pmta-ingest will read and what stands in the way",
      (y) =>
        y
          .positional("config", {
            type: "string",
            default: "/etc/pmta/config",
            describe: "PowerMTA config file (includes are followed)",
          })
          .option("json", { type: "boolean", default: false, describe: "print the report as JSON" })
          .option("user", {
            type: "string",
            describe: "check read access for this service user (default: pmta-ingest when run as root)",
          }),
      async (args) => {
        const { runCheckPmta } = await import("./check-pmta-command.js");
        exitCode = await runCheckPmta({
          configPath: args.config,
          json: args.json,
          ...(args.user === undefined ? {} : { user: args.user }),
        });
      },
    )
    .command(
      "status",
      "show how far every accounting file has been read and delivered (checkpoint against disk; read-only)",
      (y) =>
        y
          .option("config", {
            alias: "c",
            type: "string",
            describe: "the daemon's YAML config file (config keys can also be given as --key, as for run)",
          })
          .option("json", { type: "boolean", default: false, describe: "print JSON instead of a table" })
          .strict(false),
      async (args) => {
        const { statusCommand } = await import("./status-command.js");
        exitCode = await statusCommand(args);
      },
    )
    .command(
      "doctor",
      "check the setup: config, directories, same filesystem, stateDir fsync, dead-letter path, output, metrics port",
      (y) =>
        y
          .option("config", {
            alias: "c",
            type: "string",
            describe: "the daemon's YAML config file (config keys can also be given as --key, as for run)",
          })
          .option("json", {
            type: "boolean",
            default: false,
            describe: "print JSON instead of one line per check",
          })
          .strict(false),
      async (args) => {
        const { doctorCommand } = await import("./doctor-command.js");
        exitCode = await doctorCommand(args);
      },
    )
    .command(
      "import-sincedb <sincedb>",
      "turn a Logstash file-input sincedb into checkpoints, to switch over without a gap or a re-send",
      (y) =>
        y
          .positional("sincedb", {
            type: "string",
            demandOption: true,
            describe: "the Logstash sincedb file",
          })
          .option("config", {
            alias: "c",
            type: "string",
            describe: "the daemon's YAML config file (config keys can also be given as --key, as for run)",
          })
          .option("dry-run", {
            type: "boolean",
            default: false,
            describe: "print the plan and write nothing",
          })
          .option("force", {
            type: "boolean",
            default: false,
            describe: "replace existing pmta-ingest checkpoints (stop the daemon first)",
          })
          .option("json", { type: "boolean", default: false, describe: "print JSON instead of text" })
          .strict(false),
      async (args) => {
        const { importSincedbCommand } = await import("./import-sincedb-command.js");
        exitCode = await importSincedbCommand(args);
      },
    )
    .demandCommand(
      1,
      "name a command: run, demo, check-pmta, doctor, status, import-sincedb, classify or replay",
    )
    .strict()
    .help()
    .version(VERSION)
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`${y.help()}\n\n${msg}\n`);
      exitCode = 2;
    })
    .parseAsync();
  return exitCode;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError || err instanceof RuleSyntaxError) {
      process.stderr.write(`pmta-ingest: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(
      `pmta-ingest: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
