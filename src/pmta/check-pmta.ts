import { constants } from "node:fs";
import { access, readdir, readFile, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import {
  type AcctFile,
  acctFilesFrom,
  effectiveFields,
  INGEST_TYPES,
  inputGlob,
  inputsFromAcctFiles,
  KNOWN_FIELDS,
  type PmtaInput,
  type RecordType,
} from "./acct-files.js";
import {
  type ConfigNode,
  findBlocks,
  globToRegExp,
  type ParsedPmtaConfig,
  type Problem,
  parsePmtaConfig,
} from "./pmta-config-parser.js";

/**
 * `check-pmta`: reads a PowerMTA config the way pmta-ingest will, and says what pmta-ingest will
 * read and what stands in the way — missing columns, record types PowerMTA is not writing, an
 * archive on another filesystem, files the service user cannot read, archives nothing cleans up.
 * Static checks (config only) are pure; the filesystem checks go through {@link FsProbe} so tests
 * can stand in for devices and owners they cannot create.
 */

export const DEFAULT_PMTA_CONFIG = "/etc/pmta/config";

export interface FileStat {
  readonly dev: number;
  readonly ino: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly isDirectory: boolean;
}

export interface FsProbe {
  readFile(path: string): Promise<string>;
  listDir(dir: string): Promise<string[]>;
  /** undefined when the path does not exist; other errors are thrown. */
  stat(path: string): Promise<FileStat | undefined>;
  /** access(2) for the user running the check. */
  access(path: string, mode: number): Promise<boolean>;
}

export const realFs: FsProbe = {
  readFile: (path) => readFile(path, "utf8"),
  listDir: (dir) => readdir(dir),
  async stat(path) {
    try {
      const st = await stat(path);
      return {
        dev: st.dev,
        ino: st.ino,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        isDirectory: st.isDirectory(),
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  },
  access: (path, mode) =>
    access(path, mode).then(
      () => true,
      () => false,
    ),
};

export interface ServiceUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  /** Primary and supplementary groups. */
  readonly gids: readonly number[];
}

export interface CheckOptions {
  /** Service user to check access for (name or uid). */
  readonly user?: string;
  /** Also read `d` records. */
  readonly deliveries?: boolean;
  /** Message-id headers the sending platform sets (checked as `header_<name>`); default X-FBLId (Octeth). */
  readonly idHeaders?: readonly string[];
  readonly fs?: FsProbe;
  /** uid running the check (default process.getuid()). Root's access(2) always succeeds. */
  readonly currentUid?: number;
  readonly passwdFile?: string;
  readonly groupFile?: string;
  /** Where clean-up rules for the archive may live (tmpfiles.d, cron, logrotate). */
  readonly retentionPlaces?: readonly string[];
}

export interface CheckReport {
  readonly configPath: string;
  /** false when the config itself could not be read: nothing else was checked. */
  readonly readable: boolean;
  readonly files: readonly string[];
  readonly acctFiles: readonly AcctFile[];
  readonly inputs: readonly PmtaInput[];
  readonly problems: readonly Problem[];
  /** The user whose access was checked, if any. */
  readonly user?: ServiceUser;
  readonly counts: { readonly error: number; readonly warn: number; readonly info: number };
}

const RETENTION_PLACES = [
  "/etc/tmpfiles.d",
  "/usr/lib/tmpfiles.d",
  "/run/tmpfiles.d",
  "/etc/cron.d",
  "/etc/cron.daily",
  "/etc/cron.weekly",
  "/etc/crontab",
  "/var/spool/cron/crontabs",
  "/etc/logrotate.d",
];

/** Reads and parses the config with its includes. */
export async function loadPmtaConfig(
  configPath: string,
  fs: FsProbe = realFs,
): Promise<{ parsed?: ParsedPmtaConfig; problem?: Problem }> {
  const path = resolve(configPath);
  let text: string;
  try {
    text = await fs.readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    return {
      problem: {
        severity: "error",
        code: "config-unreadable",
        file: path,
        message: `cannot read the PowerMTA config ${path} (${code})`,
        fix:
          code === "ENOENT"
            ? "give the config's path: pmta-ingest check-pmta /path/to/config (PowerMTA's default is /etc/pmta/config)"
            : code === "EACCES"
              ? `run the check as a user that can read ${path} (root, or a member of group pmta)`
              : code === "EISDIR"
                ? `${path} is a directory; give the config file inside it (usually ${join(path, "config")})`
                : "check the path",
      },
    };
  }
  const parsed = await parsePmtaConfig(text, path, { readFile: fs.readFile, listDir: fs.listDir });
  return { parsed };
}

/**
 * For `run`'s `pmtaConfig:` key: the inputs the config describes and the problems found in the config
 * itself (no filesystem probing beyond reading the config and its includes). Start-up should stop
 * when a problem has severity "error".
 */
export async function inputsFromPmtaConfig(
  configPath: string,
  options: Pick<CheckOptions, "deliveries" | "idHeaders" | "fs"> = {},
): Promise<{ inputs: PmtaInput[]; problems: Problem[] }> {
  const { parsed, problem } = await loadPmtaConfig(configPath, options.fs);
  if (parsed === undefined) return { inputs: [], problems: [problem as Problem] };
  const { inputs, problems } = analyse(parsed, dirname(resolve(configPath)), options);
  return { inputs, problems };
}

function analyse(
  parsed: ParsedPmtaConfig,
  configDir: string,
  options: Pick<CheckOptions, "deliveries" | "idHeaders">,
): { acctFiles: readonly AcctFile[]; inputs: PmtaInput[]; problems: Problem[] } {
  const { acctFiles, problems: acctProblems } = acctFilesFrom(parsed.nodes, configDir);
  const { inputs, problems: inputProblems } = inputsFromAcctFiles(acctFiles, {
    deliveries: options.deliveries ?? false,
  });
  const problems = [
    ...parsed.problems,
    ...acctProblems,
    ...staticChecks(parsed.nodes, acctFiles, options),
    ...inputProblems,
  ];
  return { acctFiles, inputs, problems };
}

/** Whole check: config, then the files and directories it names. */
export async function checkPmta(configPath: string, options: CheckOptions = {}): Promise<CheckReport> {
  const fs = options.fs ?? realFs;
  const path = resolve(configPath);
  const { parsed, problem } = await loadPmtaConfig(path, fs);
  if (parsed === undefined) {
    return report(path, false, [], [], [], [problem as Problem]);
  }
  const { acctFiles, inputs, problems } = analyse(parsed, dirname(path), options);
  const { user, problems: userProblems } = await resolveUser(options);
  problems.push(...userProblems);
  for (const input of inputs) {
    const acct = acctFiles.find((a) => inputGlob(a) === input.path) as AcctFile;
    problems.push(...(await fsChecks(acct, input, fs, user, options)));
  }
  return report(path, true, parsed.files, acctFiles, inputs, problems, user);
}

function report(
  configPath: string,
  readable: boolean,
  files: readonly string[],
  acctFiles: readonly AcctFile[],
  inputs: readonly PmtaInput[],
  problems: readonly Problem[],
  user?: ServiceUser,
): CheckReport {
  const order = { error: 0, warn: 1, info: 2 } as const;
  // Inputs sharing a directory (bounces and fbl both in /var/log/pmta) find the same thing twice.
  const seen = new Set<string>();
  const unique = problems.filter((p) => {
    const key = `${p.code}\u0000${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const sorted = unique.sort((a, b) => order[a.severity] - order[b.severity]);
  const counts = { error: 0, warn: 0, info: 0 };
  for (const p of sorted) counts[p.severity]++;
  return {
    configPath,
    readable,
    files,
    acctFiles,
    inputs,
    problems: sorted,
    ...(user === undefined ? {} : { user }),
    counts,
  };
}

// ---------------------------------------------------------------------------------------------
// Static checks

interface FieldNeed {
  readonly field: string;
  readonly severity: "error" | "warn" | "info";
  readonly why: string;
}

const BOUNCE_NEEDS: readonly FieldNeed[] = [
  { field: "timeLogged", severity: "error", why: "the event time" },
  { field: "rcpt", severity: "error", why: "the address that bounced" },
  { field: "dsnStatus", severity: "error", why: "the enhanced status code the classifier starts from" },
  { field: "dsnDiag", severity: "error", why: "the SMTP reply text the classifier reads" },
  { field: "bounceCat", severity: "warn", why: "PowerMTA's own category, a classifier fallback" },
  {
    field: "dsnMta",
    severity: "warn",
    why: "the remote MTA, which tells the provider rules which ISP answered",
  },
  { field: "orig", severity: "info", why: "the envelope sender (VERP) as event.sender" },
];
const B_ONLY_NEEDS: readonly FieldNeed[] = [
  { field: "dsnAction", severity: "info", why: "tells a delayed report from a failure" },
  { field: "jobId", severity: "info", why: "the campaign/job in event.jobId" },
  { field: "vmta", severity: "info", why: "the VirtualMTA in event.vmta" },
];
const FBL_NEEDS: readonly FieldNeed[] = [
  { field: "timeLogged", severity: "error", why: "the event time" },
  { field: "feedbackType", severity: "warn", why: "abuse / fraud / not-spam" },
  { field: "format", severity: "warn", why: "arf or jmrp" },
  { field: "reportedDomain", severity: "info", why: "the domain the report is about" },
];

function staticChecks(
  nodes: readonly ConfigNode[],
  acctFiles: readonly AcctFile[],
  options: Pick<CheckOptions, "deliveries" | "idHeaders">,
): Problem[] {
  const problems: Problem[] = [];
  const idHeaders = options.idHeaders ?? ["X-FBLId"];
  if (acctFiles.length === 0) {
    problems.push({
      severity: "error",
      code: "no-acct-file",
      message:
        "the config has no <acct-file> block: PowerMTA writes no accounting file pmta-ingest could read",
      fix: "paste pmta/acct-bounces.conf and pmta/acct-fbl.conf from pmta-ingest into the config and run pmta reload",
    });
    return problems;
  }
  const hasBounceProcessor = findBlocks(nodes, "bounce-processor").length > 0;
  const hasFblProcessor = findBlocks(nodes, "feedback-loop-processor").length > 0;
  const typeOwners = new Map<RecordType, AcctFile>();
  const where = (acct: AcctFile) => ({ file: acct.file, line: acct.line });
  const label = (acct: AcctFile) => `<acct-file ${acct.spec}>`;

  for (const acct of acctFiles) {
    if (acct.pipe) {
      problems.push({
        ...where(acct),
        severity: "info",
        code: "pipe",
        message: `${label(acct)} writes to a program, not a file; pmta-ingest does not read it`,
        fix: "nothing to do unless you meant a file; pmta-ingest needs <acct-file /path/name.csv>",
      });
      continue;
    }
    const wanted = acct.records.filter(
      (t) => INGEST_TYPES.includes(t) || (options.deliveries === true && t === "d"),
    );
    const recordsAt = acct.recordsAt ?? where(acct);
    if (wanted.length === 0) {
      const dOnly = acct.records.every((t) => t === "d");
      problems.push({
        ...recordsAt,
        severity: "info",
        code: dOnly ? "deliveries-only" : "no-ingest-records",
        message: dOnly
          ? `${label(acct)} holds deliveries (d) only; pmta-ingest reads it only when deliveries are enabled`
          : `${label(acct)} writes ${acct.records.join(", ")} records, none of which pmta-ingest reads (b, rb, f)`,
        fix: dOnly
          ? "nothing to do, unless you want delivery events (bounce-rate denominators)"
          : "nothing to do if this file is for something else; bounces need records b, rb and complaints records f",
      });
      continue;
    }
    if (acct.recordsAt === undefined) {
      problems.push({
        ...where(acct),
        severity: "info",
        code: "default-records",
        message: `${label(acct)} has no "records" line, so PowerMTA writes its default d, b: no remote bounces (rb), no complaints (f), and every delivery`,
        fix: "write records b, rb (and a separate <acct-file> with records f) to say what the file is for",
      });
    }
    for (const t of wanted) {
      const owner = typeOwners.get(t);
      if (owner !== undefined && INGEST_TYPES.includes(t)) {
        problems.push({
          ...recordsAt,
          severity: "warn",
          code: "type-in-two-files",
          message: `${t} records are written to ${label(acct)} and to ${label(owner)} (${owner.file}:${owner.line}); pmta-ingest reads both, so every ${t} record becomes two events`,
          fix: `remove ${t} from the records line of one of them`,
        });
      } else typeOwners.set(t, acct);
    }
    if (wanted.includes("rb") && !hasBounceProcessor) {
      problems.push({
        ...recordsAt,
        severity: "warn",
        code: "no-bounce-processor",
        message: `${label(acct)} asks for rb records, but the config has no <bounce-processor>: PowerMTA parses no remote bounces, so no rb record is ever written`,
        fix: "add a <bounce-processor> with an <address-list> of your bounce (return-path) domains; see pmta/README.md",
      });
    }
    if (wanted.includes("f") && !hasFblProcessor) {
      problems.push({
        ...recordsAt,
        severity: "warn",
        code: "no-feedback-loop-processor",
        message: `${label(acct)} asks for f records, but the config has no <feedback-loop-processor>: PowerMTA parses no complaint reports, so no f record is ever written`,
        fix: "add a <feedback-loop-processor> with an <address-list> of your FBL addresses; see pmta/README.md",
      });
    }
    for (const t of wanted) problems.push(...fieldChecks(acct, t, idHeaders));

    if (acct.moveTo !== undefined && acct.deleteAfter !== undefined) {
      problems.push({
        ...(acct.deleteAfterAt ?? where(acct)),
        severity: "warn",
        code: "delete-after-ignored",
        message: `delete-after ${acct.deleteAfter} has no effect together with move-to: PowerMTA only deletes files it did not move (User's Guide, delete-after)`,
        fix: `remove the line and clean ${acct.moveTo} with a tmpfiles.d rule or a cron job instead (see pmta/README.md)`,
      });
    }
    if (acct.moveTo === undefined) {
      problems.push({
        ...where(acct),
        severity: "info",
        code: "no-move-to",
        message: `${label(acct)} has no move-to: files stay in ${dirname(acct.path)} and PowerMTA deletes them after ${acct.deleteAfter ?? "8d (the default delete-after)"}, read or not`,
        fix: "fine while pmta-ingest keeps up; add move-to (same filesystem) to keep files until you delete them",
      });
    } else if (acct.moveTo === dirname(acct.path)) {
      problems.push({
        ...(acct.moveToAt ?? where(acct)),
        severity: "warn",
        code: "move-to-same-dir",
        message: `move-to ${acct.moveTo} is the directory PowerMTA writes in; the guide requires a different one`,
        fix: `move-to ${join(dirname(acct.path), "archive")} (a subdirectory is on the same filesystem)`,
      });
    }
    if (!acct.worldReadable) {
      problems.push({
        ...where(acct),
        severity: "warn",
        code: "not-world-readable",
        message: `${label(acct)} has no "world-readable yes": new files are readable by PowerMTA's user only, so pmta-ingest running as its own user may be refused the next file`,
        fix: "add world-readable yes (and keep the directory closed to others: group pmta, mode 0750, pmta-ingest in group pmta)",
      });
    }
    if (acct.privacyPolicy !== undefined && acct.privacyPolicy.toLowerCase() !== "retain") {
      problems.push({
        ...(acct.privacyPolicyAt ?? where(acct)),
        severity: "warn",
        code: "privacy-policy",
        message: `privacy-policy ${acct.privacyPolicy} replaces recipients' local parts: events carry no usable address, so a bounce cannot suppress anyone`,
        fix: "use privacy-policy retain for the files pmta-ingest reads (keep a redacted file for other readers if needed)",
      });
    }
    if (acct.queueFilter !== undefined && wanted.includes("b")) {
      problems.push({
        ...where(acct),
        severity: "info",
        code: "queue-filter",
        message: `queue-filter ${acct.queueFilter} drops b records of other queues (rb and f are written regardless)`,
        fix: "nothing to do if intended; filtered-out b records are lost for pmta-ingest",
      });
    }
  }
  return problems;
}

function fieldChecks(acct: AcctFile, type: RecordType, idHeaders: readonly string[]): Problem[] {
  const problems: Problem[] = [];
  const spec = acct.recordFields[type];
  const at = spec === undefined ? { file: acct.file, line: acct.line } : { file: spec.file, line: spec.line };
  const fields = effectiveFields(acct, type);
  const has = (f: string) => fields.includes(f);
  const line = `record-fields ${type}`;
  const missing = (need: FieldNeed, extra = "") =>
    problems.push({
      ...at,
      severity: need.severity,
      code: "missing-field",
      message: `<acct-file ${acct.spec}> does not log ${need.field} for ${type} records (${need.why})${extra}`,
      fix: spec === undefined ? `add "${line} *,${need.field}"` : `add ${need.field} to "${line} …"`,
    });

  const needs =
    type === "f"
      ? FBL_NEEDS
      : type === "d"
        ? BOUNCE_NEEDS.slice(0, 2)
        : type === "b"
          ? [...BOUNCE_NEEDS, ...B_ONLY_NEEDS]
          : BOUNCE_NEEDS;
  for (const need of needs) if (!has(need.field)) missing(need);

  if (type === "f") {
    const ids = idHeaders.map((h) => `header_${h}`);
    if (!has("rcpt") && !has("header_To") && !ids.some(has)) {
      problems.push({
        ...at,
        severity: "error",
        code: "missing-field",
        message: `<acct-file ${acct.spec}> logs neither rcpt, header_To nor ${ids.join("/")} for f records: a complaint cannot be tied to a recipient`,
        fix: `add rcpt,header_To,${ids[0] ?? "header_X-FBLId"} to "${line} …"`,
      });
    }
  }
  if (type !== "d") {
    for (const id of idHeaders) {
      if (!has(`header_${id}`)) {
        problems.push({
          ...at,
          severity: "warn",
          code: "missing-id-header",
          message: `<acct-file ${acct.spec}> does not log header_${id} for ${type} records: the backend cannot match the event to the message it sent${type === "f" ? " (ISPs often redact the recipient in complaints)" : ""}`,
          fix: `add header_${id} to "${line} …" (or pass the header your platform sets)`,
        });
      }
    }
  }
  // Spelling: the decoder looks columns up by exact name, and PowerMTA writes the name as configured.
  for (const item of spec?.items ?? []) {
    const name = item.replace(/^!/, "");
    if (name === "*" || /^(header|arf)_/i.test(name)) continue;
    if (KNOWN_FIELDS.includes(name)) continue;
    const exact = KNOWN_FIELDS.find((k) => k.toLowerCase() === name.toLowerCase());
    problems.push({
      ...at,
      severity: exact === undefined ? "info" : "warn",
      code: exact === undefined ? "unknown-field" : "field-case",
      message:
        exact === undefined
          ? `"${name}" in ${line} is not a field name this check knows`
          : `"${name}" in ${line} is spelled "${exact}" in PowerMTA's documentation; pmta-ingest looks columns up by exact name`,
      fix: exact === undefined ? "check the spelling against the PowerMTA User's Guide" : `write ${exact}`,
    });
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Filesystem checks

async function resolveUser(options: CheckOptions): Promise<{ user?: ServiceUser; problems: Problem[] }> {
  const currentUid = options.currentUid ?? process.getuid?.() ?? -1;
  const fs = options.fs ?? realFs;
  const passwdFile = options.passwdFile ?? "/etc/passwd";
  const groupFile = options.groupFile ?? "/etc/group";
  if (options.user === undefined) {
    if (currentUid !== 0) return { problems: [] };
    // Root's access(2) always succeeds, which would hide every permission problem: check the usual
    // service user instead when it exists.
    const user = await lookupUser("pmta-ingest", fs, passwdFile, groupFile);
    if (user !== undefined) return { user, problems: [] };
    return {
      problems: [
        {
          severity: "info",
          code: "access-not-checked",
          message:
            "running as root, which can read every file: whether the service user can read them was not checked",
          fix: "pass --user <the user pmta-ingest runs as>",
        },
      ],
    };
  }
  const user = await lookupUser(options.user, fs, passwdFile, groupFile);
  if (user === undefined) {
    return {
      problems: [
        {
          severity: "error",
          code: "unknown-user",
          file: passwdFile,
          message: `user "${options.user}" is not in ${passwdFile}`,
          fix: "create the service user (useradd --system --groups pmta pmta-ingest) or give an existing one",
        },
      ],
    };
  }
  return { user, problems: [] };
}

/** A user by name or uid, from passwd/group files (the service users this is for are local). */
export async function lookupUser(
  nameOrUid: string,
  fs: FsProbe,
  passwdFile: string,
  groupFile: string,
): Promise<ServiceUser | undefined> {
  const passwd = await fs.readFile(passwdFile).catch(() => "");
  let found: ServiceUser | undefined;
  for (const line of passwd.split("\n")) {
    const [name, , uid, gid] = line.split(":");
    if (name === undefined || uid === undefined || gid === undefined) continue;
    if (name === nameOrUid || uid === nameOrUid) {
      found = { name, uid: Number(uid), gid: Number(gid), gids: [Number(gid)] };
      break;
    }
  }
  if (found === undefined) return undefined;
  const groups = await fs.readFile(groupFile).catch(() => "");
  const gids = new Set(found.gids);
  for (const line of groups.split("\n")) {
    const [, , gid, members] = line.split(":");
    if (gid === undefined || members === undefined) continue;
    if (
      members
        .split(",")
        .map((m) => m.trim())
        .includes(found.name)
    )
      gids.add(Number(gid));
  }
  return { ...found, gids: [...gids] };
}

/** Permission bits the user gets on a file: owner, else group, else other (ACLs are not read). */
export function permits(st: FileStat, user: ServiceUser, want: number): boolean {
  if (user.uid === 0) return true;
  let bits: number;
  if (st.uid === user.uid) bits = (st.mode >> 6) & 7;
  else if (user.gids.includes(st.gid)) bits = (st.mode >> 3) & 7;
  else bits = st.mode & 7;
  return (bits & want) === want;
}

async function fsChecks(
  acct: AcctFile,
  input: PmtaInput,
  fs: FsProbe,
  user: ServiceUser | undefined,
  options: CheckOptions,
): Promise<Problem[]> {
  const problems: Problem[] = [];
  const at = { file: acct.file, line: acct.line };
  const liveDir = dirname(acct.path);
  const inspect = async (path: string): Promise<FileStat | undefined | "error"> => {
    try {
      return await fs.stat(path);
    } catch (err) {
      problems.push({
        ...at,
        severity: "warn",
        code: "cannot-inspect",
        message: `cannot inspect ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
        fix: "run the check as root with --user <service user>",
      });
      return "error";
    }
  };

  const live = await inspect(liveDir);
  if (live === undefined) {
    problems.push({
      ...at,
      severity: "warn",
      code: "live-dir-missing",
      message: `${liveDir} does not exist (yet): PowerMTA creates files there once the config is loaded`,
      fix: `install -d -o pmta -g pmta -m 0750 ${liveDir}, then pmta reload`,
    });
  }
  let archive: FileStat | undefined | "error";
  if (acct.moveTo !== undefined) {
    const moveAt = acct.moveToAt ?? at;
    archive = await inspect(acct.moveTo);
    if (archive === undefined) {
      problems.push({
        ...moveAt,
        severity: "warn",
        code: "archive-missing",
        message: `move-to directory ${acct.moveTo} does not exist`,
        fix: `install -d -o pmta -g pmta -m 0750 ${acct.moveTo}`,
      });
    } else if (archive !== "error" && live !== undefined && live !== "error" && archive.dev !== live.dev) {
      problems.push({
        ...moveAt,
        severity: "error",
        code: "cross-device",
        message: `move-to ${acct.moveTo} is on another filesystem than ${liveDir} (device ${archive.dev} vs ${live.dev}): the move becomes copy + delete, the file gets a new identity, and a file being read can be cut short`,
        fix: `use a directory on the same filesystem, e.g. move-to ${join(liveDir, "archive")}`,
      });
    }
    if (archive !== undefined && archive !== "error")
      problems.push(...(await retentionCheck(acct, fs, options)));
  }

  const glob = input.path.slice(liveDir.length + 1);
  const places: Array<[string, FileStat | undefined | "error"]> = [[liveDir, live]];
  if (acct.moveTo !== undefined && acct.moveTo !== liveDir) places.push([acct.moveTo, archive]);
  for (const [dir, st] of places) {
    if (st === undefined || st === "error") continue;
    problems.push(...(await accessChecks(acct, dir, glob, fs, user)));
  }
  return problems;
}

async function accessChecks(
  acct: AcctFile,
  dir: string,
  glob: string,
  fs: FsProbe,
  user: ServiceUser | undefined,
): Promise<Problem[]> {
  const at = { file: acct.file, line: acct.line };
  const who = user === undefined ? "the current user" : `user ${user.name}`;
  const canRead = async (path: string, dirMode: boolean): Promise<boolean> => {
    if (user === undefined)
      return fs.access(path, dirMode ? constants.R_OK | constants.X_OK : constants.R_OK);
    const st = await fs.stat(path).catch(() => undefined);
    return st !== undefined && permits(st, user, dirMode ? 5 : 4);
  };
  // Every directory on the way needs search (x) permission.
  const ancestors: string[] = [];
  for (let d = dirname(dir); ; d = dirname(d)) {
    ancestors.unshift(d);
    if (d === dirname(d)) break;
  }
  for (const a of ancestors) {
    const ok =
      user === undefined
        ? await fs.access(a, constants.X_OK)
        : await fs.stat(a).then(
            (st) => st !== undefined && permits(st, user, 1),
            () => false,
          );
    if (!ok) {
      return [
        {
          ...at,
          severity: "error",
          code: "dir-not-searchable",
          message: `${who} cannot enter ${a}, so it cannot reach ${dir}`,
          fix: `chmod o+x ${a} (or g+x with a group ${user?.name ?? "the service user"} is in)`,
        },
      ];
    }
  }
  if (!(await canRead(dir, true))) {
    return [
      {
        ...at,
        severity: "error",
        code: "dir-unreadable",
        message: `${who} cannot list ${dir}`,
        fix: `chgrp pmta ${dir} && chmod 0750 ${dir}, and add ${user?.name ?? "the service user"} to group pmta (usermod -aG pmta ${user?.name ?? "pmta-ingest"})`,
      },
    ];
  }
  const pattern = globToRegExp(glob);
  const names = (await fs.listDir(dir).catch(() => [] as string[])).filter((n) => pattern.test(n)).sort();
  const refused: string[] = [];
  for (const name of names) {
    if (!(await canRead(join(dir, name), false))) refused.push(name);
  }
  if (refused.length === 0) return [];
  return [
    {
      ...at,
      severity: "error",
      code: "file-unreadable",
      message: `${who} cannot read ${refused.length} of ${names.length} files in ${dir} (${refused.slice(0, 3).join(", ")}${refused.length > 3 ? ", …" : ""})`,
      fix: acct.worldReadable
        ? `chmod o+r ${join(dir, glob)} (world-readable yes is set, so these files predate it or were changed since)`
        : `chmod o+r ${join(dir, glob)} once, and add world-readable yes to <acct-file ${acct.spec}> so new files are readable`,
    },
  ];
}

async function retentionCheck(acct: AcctFile, fs: FsProbe, options: CheckOptions): Promise<Problem[]> {
  const archive = acct.moveTo as string;
  const at = acct.moveToAt ?? { file: acct.file, line: acct.line };
  for (const place of options.retentionPlaces ?? RETENTION_PLACES) {
    const st = await fs.stat(place).catch(() => undefined);
    if (st === undefined) continue;
    const files = st.isDirectory
      ? (await fs.listDir(place).catch(() => [] as string[])).map((n) => join(place, n))
      : [place];
    for (const f of files) {
      const text = await fs.readFile(f).catch(() => "");
      if (text.includes(archive)) {
        return [
          {
            ...at,
            severity: "info",
            code: "retention-found",
            message: `${f} mentions ${archive}: assumed to clean up old archived files`,
            fix: "nothing to do; keep files longer than pmta-ingest may be stopped",
          },
        ];
      }
    }
  }
  return [
    {
      ...at,
      severity: "warn",
      code: "no-retention",
      message: `nothing deletes old files in ${archive}: PowerMTA's delete-after does not apply to moved files, and pmta-ingest never deletes`,
      fix: `add /etc/tmpfiles.d/pmta-archive.conf with "e ${archive} - - - 14d", or a daily cron: find ${archive} -name '*.csv' -mtime +14 -delete`,
    },
  ];
}
