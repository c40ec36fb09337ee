import { type CheckOptions, type CheckReport, checkPmta, DEFAULT_PMTA_CONFIG } from "../pmta/check-pmta.js";
import type { Problem } from "../pmta/pmta-config-parser.js";

/**
 * `pmta-ingest check-pmta [config]`: prints what pmta-ingest will read from this PowerMTA config and
 * what is wrong with it. Exit 0 when nothing is an error, 1 when something is, 2 when the config
 * cannot be read at all.
 */
export interface CheckPmtaArgs extends Omit<CheckOptions, "user"> {
  readonly configPath?: string;
  readonly json?: boolean;
  readonly user?: string;
  /** Where the report goes (default stdout); the "cannot read" message also goes to `err`. */
  readonly out?: (text: string) => void;
  readonly err?: (text: string) => void;
}

export async function runCheckPmta(args: CheckPmtaArgs): Promise<number> {
  const out = args.out ?? ((t: string) => process.stdout.write(t));
  const err = args.err ?? ((t: string) => process.stderr.write(t));
  const configPath = args.configPath ?? DEFAULT_PMTA_CONFIG;
  const report = await checkPmta(configPath, args);
  if (args.json) out(`${JSON.stringify(toJson(report), null, 2)}\n`);
  else if (report.readable) out(formatReport(report));
  if (!report.readable) {
    const p = report.problems[0] as Problem;
    err(`pmta-ingest: ${p.message}; ${p.fix}\n`);
    return 2;
  }
  return report.counts.error > 0 ? 1 : 0;
}

function toJson(report: CheckReport): Record<string, unknown> {
  return {
    ok: report.readable && report.counts.error === 0,
    configPath: report.configPath,
    readable: report.readable,
    files: report.files,
    inputs: report.inputs,
    acctFiles: report.acctFiles.map((a) => ({
      path: a.path,
      file: a.file,
      line: a.line,
      pipe: a.pipe,
      records: a.records,
      recordFields: Object.fromEntries(Object.entries(a.recordFields).map(([t, s]) => [t, s?.items])),
      moveTo: a.moveTo,
      moveInterval: a.moveInterval,
      maxSize: a.maxSize,
      deleteAfter: a.deleteAfter,
      worldReadable: a.worldReadable,
    })),
    user: report.user,
    counts: report.counts,
    problems: report.problems,
  };
}

const TAG = { error: "FAIL", warn: "WARN", info: "note" } as const;

export function formatReport(report: CheckReport): string {
  const lines: string[] = [];
  const extra = report.files.length > 1 ? ` (+${report.files.length - 1} included)` : "";
  lines.push(`PowerMTA config: ${report.configPath}${extra}`);
  if (report.user !== undefined)
    lines.push(`Access checked for user ${report.user.name} (uid ${report.user.uid})`);
  lines.push("");
  if (report.readable) {
    if (report.inputs.length === 0) lines.push("Inputs pmta-ingest will read: none");
    else {
      lines.push("Inputs pmta-ingest will read:");
      const width = Math.max(...report.inputs.map((i) => i.name.length));
      for (const i of report.inputs) {
        lines.push(
          `  ${i.name.padEnd(width)}  ${i.path}  types ${i.types.join(",")}${i.archive === undefined ? "" : `  archive ${i.archive}`}`,
        );
      }
    }
    lines.push("");
  }
  if (report.problems.length > 0) {
    lines.push("Findings:");
    for (const p of report.problems) {
      const where = p.file === undefined ? "" : `${p.file}${p.line === undefined ? "" : `:${p.line}`}  `;
      lines.push(`  ${TAG[p.severity]}  ${where}${p.message}`);
      lines.push(`        fix: ${p.fix}`);
    }
    lines.push("");
  }
  const { error, warn, info } = report.counts;
  const verdict = !report.readable
    ? "CANNOT READ"
    : error > 0
      ? "FAIL"
      : warn > 0
        ? "PASS with warnings"
        : "PASS";
  lines.push(
    `Result: ${verdict} (${plural(error, "error")}, ${plural(warn, "warning")}, ${plural(info, "note")})`,
  );
  return `${lines.join("\n")}\n`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
