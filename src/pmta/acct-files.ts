import { basename, dirname, extname, isAbsolute, join, resolve } from "node:path";
import { PMTA_DEFAULT_COLUMNS } from "../decode/header.js";
import { type BlockNode, type ConfigNode, findBlocks, type Problem } from "./pmta-config-parser.js";

/**
 * `<acct-file>` blocks of a parsed PowerMTA config, with PowerMTA's documented defaults applied
 * (User's Guide 5.0 §3.3.11), and their mapping to pmta-ingest inputs.
 */

export const RECORD_TYPES = ["d", "b", "t", "tq", "r", "f", "rb", "rs"] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

/** Long names the guide accepts in `records` / `record-fields` (`fbl` appears in map-header-to-field). */
const ALIASES: Readonly<Record<string, RecordType>> = {
  delivery: "d",
  bounce: "b",
  transient: "t",
  "transient-queue": "tq",
  receipt: "r",
  "feedback-loop": "f",
  fbl: "f",
  "remote-bounce": "rb",
  "remote-status": "rs",
};

export function recordType(word: string): RecordType | undefined {
  const w = word.toLowerCase();
  if ((RECORD_TYPES as readonly string[]).includes(w)) return w as RecordType;
  return ALIASES[w];
}

/** Record types pmta-ingest turns into bounce and complaint events. */
export const INGEST_TYPES: readonly RecordType[] = ["b", "rb", "f"];

/** Directives the guide documents inside `<acct-file>` (5.0, plus the 5.x HTTP webhook family). */
export const ACCT_FILE_DIRECTIVES: readonly string[] = [
  "delete-after",
  "move-to",
  "move-interval",
  "max-size",
  "queue-filter",
  "retry-interval",
  "iso-times",
  "user-string",
  "write-timeout",
  "map-header-to-field",
  "records",
  "record-fields",
  "world-readable",
  "count-moved-records",
  "sync",
  "privacy-policy",
];

export interface Located {
  readonly file: string;
  readonly line: number;
}

export interface RecordFieldsSpec extends Located {
  /** Items as written, in order: `*`, `!orcpt`, `timeLogged`, `header_X-FBLId`. */
  readonly items: readonly string[];
}

export interface AcctFile extends Located {
  /** The block's argument as written. */
  readonly spec: string;
  /** Absolute path of the configured file (the "live" name PowerMTA dates: bounces.csv → bounces-YYYY-MM-DD-NNNN.csv). */
  readonly path: string;
  /** `<acct-file |command>`: records go to a program, there is no file to read. */
  readonly pipe: boolean;
  /** Effective record types (default `d, b` when `records` is absent). */
  readonly records: readonly RecordType[];
  readonly recordsAt?: Located;
  /** Explicit `record-fields` per type; a type without an entry logs `*` (all default fields). */
  readonly recordFields: Readonly<Partial<Record<RecordType, RecordFieldsSpec>>>;
  readonly moveTo?: string;
  readonly moveToAt?: Located;
  /** As written; PowerMTA's default is 1d (only used with move-to). */
  readonly moveInterval?: string;
  /** As written; PowerMTA's default is 250M. */
  readonly maxSize?: string;
  /** As written; PowerMTA's default is 8d, and it only applies without move-to. */
  readonly deleteAfter?: string;
  readonly deleteAfterAt?: Located;
  readonly worldReadable: boolean;
  readonly isoTimes: boolean;
  readonly privacyPolicy?: string;
  readonly privacyPolicyAt?: Located;
  readonly queueFilter?: string;
  /** Every directive of the block (for checks that need a line). */
  readonly directives: ReadonlyArray<{ readonly name: string; readonly value: string } & Located>;
  readonly endLine?: number;
}

export interface AcctFilesResult {
  readonly acctFiles: readonly AcctFile[];
  readonly problems: readonly Problem[];
}

/**
 * Reads every `<acct-file>` block. `configDir` resolves relative paths (PowerMTA resolves them
 * against its own directory, which for /etc/pmta/config is the config's directory; a warning says
 * to write them absolute).
 */
export function acctFilesFrom(nodes: readonly ConfigNode[], configDir: string): AcctFilesResult {
  const problems: Problem[] = [];
  const acctFiles: AcctFile[] = [];
  for (const block of findBlocks(nodes, "acct-file")) {
    acctFiles.push(readBlock(block, configDir, problems));
  }
  return { acctFiles, problems };
}

function readBlock(block: BlockNode, configDir: string, problems: Problem[]): AcctFile {
  const at = (n: Located): Located => ({ file: n.file, line: n.line });
  const spec = block.arg;
  const pipe = spec.startsWith("|");
  if (spec === "") {
    problems.push({
      ...at(block),
      severity: "error",
      code: "acct-file-no-path",
      message: "<acct-file> names no file",
      fix: "write the path in the tag: <acct-file /var/log/pmta/bounces.csv>",
    });
  } else if (!pipe && !isAbsolute(spec)) {
    problems.push({
      ...at(block),
      severity: "warn",
      code: "relative-path",
      message: `<acct-file ${spec}> is a relative path; read here as ${resolve(configDir, spec)}`,
      fix: "write the absolute path, so that PowerMTA and pmta-ingest agree on the directory",
    });
  }
  const path = pipe ? spec : resolve(configDir, spec);

  let records: RecordType[] | undefined;
  let recordsAt: Located | undefined;
  const recordFields: Partial<Record<RecordType, RecordFieldsSpec>> = {};
  let moveTo: string | undefined;
  let moveToAt: Located | undefined;
  let moveInterval: string | undefined;
  let maxSize: string | undefined;
  let deleteAfter: string | undefined;
  let deleteAfterAt: Located | undefined;
  let worldReadable = false;
  let isoTimes = true;
  let privacyPolicy: string | undefined;
  let privacyPolicyAt: Located | undefined;
  let queueFilter: string | undefined;
  const directives: Array<{ name: string; value: string } & Located> = [];

  for (const node of block.children) {
    if (node.kind === "block") {
      problems.push({
        ...at(node),
        severity: "warn",
        code: "unknown-in-acct-file",
        message: `<${node.name}> inside <acct-file ${spec}> is not a documented <acct-file> setting`,
        fix: `move <${node.name}> out of the <acct-file> block`,
      });
      continue;
    }
    const name = node.name.toLowerCase();
    directives.push({ name, value: node.value, ...at(node) });
    switch (name) {
      case "records": {
        if (records !== undefined) {
          problems.push({
            ...at(node),
            severity: "warn",
            code: "records-twice",
            message: `"records" appears twice in <acct-file ${spec}> (first at line ${recordsAt?.line}); PowerMTA allows it once`,
            fix: "list every type in one line: records b, rb",
          });
        }
        records = [];
        recordsAt = at(node);
        for (const word of listItems(node.value)) {
          const t = recordType(word);
          if (t === undefined) {
            problems.push({
              ...at(node),
              severity: "error",
              code: "unknown-record-type",
              message: `"${word}" is not a PowerMTA record type`,
              fix: `use d, b, t, tq, r, f, rb or rs (or their long names), e.g. records b, rb`,
            });
          } else if (!records.includes(t)) records.push(t);
        }
        break;
      }
      case "record-fields": {
        const [typeWord, ...rest] = node.args;
        const t = typeWord === undefined ? undefined : recordType(typeWord);
        if (t === undefined) {
          problems.push({
            ...at(node),
            severity: "error",
            code: "unknown-record-type",
            message: `record-fields needs a record type first (got "${typeWord ?? ""}")`,
            fix: "write e.g. record-fields b timeLogged,rcpt,dsnStatus,dsnDiag",
          });
          break;
        }
        if (recordFields[t] !== undefined) {
          problems.push({
            ...at(node),
            severity: "warn",
            code: "record-fields-twice",
            message: `record-fields ${t} appears twice in <acct-file ${spec}> (first at line ${recordFields[t]?.line}); the checks use the last one`,
            fix: "keep one record-fields line per record type",
          });
        }
        recordFields[t] = { items: listItems(rest.join(" ")), ...at(node) };
        break;
      }
      case "move-to":
        moveTo = node.value === "" ? undefined : resolve(configDir, node.args[0] ?? node.value);
        moveToAt = at(node);
        break;
      case "move-interval":
        moveInterval = node.value;
        break;
      case "max-size":
        maxSize = node.value;
        break;
      case "delete-after":
        deleteAfter = node.value;
        deleteAfterAt = at(node);
        break;
      case "world-readable":
        worldReadable = isTrue(node.value);
        break;
      case "iso-times":
        isoTimes = isTrue(node.value);
        break;
      case "privacy-policy":
        privacyPolicy = node.args[0];
        privacyPolicyAt = at(node);
        break;
      case "queue-filter":
        queueFilter = node.value;
        break;
      default:
        if (!ACCT_FILE_DIRECTIVES.includes(name) && !name.startsWith("http-webhook-")) {
          problems.push({
            ...at(node),
            severity: "warn",
            code: "unknown-in-acct-file",
            message: `"${node.name}" is not a documented <acct-file> directive`,
            fix: `check the spelling (known: ${ACCT_FILE_DIRECTIVES.join(", ")}); PowerMTA may refuse the config`,
          });
        }
    }
  }

  return {
    spec,
    path,
    pipe,
    records: records ?? ["d", "b"],
    ...(recordsAt === undefined ? {} : { recordsAt }),
    recordFields,
    ...(moveTo === undefined ? {} : { moveTo }),
    ...(moveToAt === undefined ? {} : { moveToAt }),
    ...(moveInterval === undefined ? {} : { moveInterval }),
    ...(maxSize === undefined ? {} : { maxSize }),
    ...(deleteAfter === undefined ? {} : { deleteAfter }),
    ...(deleteAfterAt === undefined ? {} : { deleteAfterAt }),
    worldReadable,
    isoTimes,
    ...(privacyPolicy === undefined ? {} : { privacyPolicy }),
    ...(privacyPolicyAt === undefined ? {} : { privacyPolicyAt }),
    ...(queueFilter === undefined ? {} : { queueFilter }),
    directives,
    file: block.file,
    line: block.line,
    ...(block.endLine === undefined ? {} : { endLine: block.endLine }),
  };
}

/** `d, b,rb` → [d, b, rb]: PowerMTA lists are comma separated; spaces after commas are common. */
function listItems(value: string): string[] {
  return value
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function isTrue(value: string): boolean {
  return /^(yes|true|on|1)$/i.test(value.trim());
}

/**
 * Default (`*`) field lists per record type (User's Guide 5.0 §11.2; research notes
 * pmta-format.md §3.1, §6). `header_*` fields are never part of `*` except the four FBL headers.
 */
const REMOTE_DEFAULT = [
  "timeLogged",
  "orig",
  "rcpt",
  "orcpt",
  "dsnAction",
  "dsnStatus",
  "dsnDiag",
  "dsnMta",
  "dsnReportingMta",
  "bounceCat",
  "srcType",
  "srcMta",
  "envId",
  "format",
];
/**
 * d, b, t and f: the decoder's fallback lists (one source for the same PowerMTA fact). tq, r, rb and
 * rs list more fields than the decoder's (userString, format, ...), which the spelling check needs.
 */
const withoutType = (columns: readonly string[] | undefined): readonly string[] => (columns ?? []).slice(1);
const DBT_DEFAULT = withoutType(PMTA_DEFAULT_COLUMNS.b);
export const DEFAULT_FIELDS: Readonly<Record<RecordType, readonly string[]>> = {
  d: DBT_DEFAULT,
  b: DBT_DEFAULT,
  t: DBT_DEFAULT,
  tq: [
    "timeLogged",
    "queue",
    "vmta",
    "dsnStatus",
    "dsnDiag",
    "dsnMta",
    "dlvType",
    "dlvSourceIp",
    "dlvDestinationIp",
    "userString",
  ],
  r: [
    "timeLogged",
    "orig",
    "rcpt",
    "orcpt",
    "srcType",
    "srcMta",
    "rcvSourceIp",
    "rcvDestinationIp",
    "vmta",
    "vmtaPool",
    "jobId",
    "envId",
    "userString",
    "rcvSmtpUser",
  ],
  rb: REMOTE_DEFAULT,
  rs: REMOTE_DEFAULT,
  f: withoutType(PMTA_DEFAULT_COLUMNS.f),
};

/** Every field name the guide documents, for spelling checks (exact case is what the header carries). */
export const KNOWN_FIELDS: readonly string[] = [
  ...new Set([
    ...Object.values(DEFAULT_FIELDS).flat(),
    "timeImprinted",
    "timeFirstAttempt",
    "totalSecondsQueued",
    "dlvTlsProtocol",
    "dlvTlsCipher",
    "userstring",
  ]),
];

/** The columns a record type will carry, after `*` and `!field` are applied. */
export function effectiveFields(acct: AcctFile, type: RecordType): string[] {
  const spec = acct.recordFields[type];
  const items = spec === undefined ? ["*"] : spec.items;
  const out: string[] = [];
  for (const item of items) {
    if (item === "*") {
      for (const f of DEFAULT_FIELDS[type]) if (!out.includes(f)) out.push(f);
    } else if (item.startsWith("!")) {
      const name = item.slice(1);
      const i = out.indexOf(name);
      if (i !== -1) out.splice(i, 1);
    } else if (!out.includes(item)) out.push(item);
  }
  return out;
}

/** An input for pmta-ingest's run config (`inputs:` entry). */
export interface PmtaInput {
  readonly name: string;
  /** Glob of the live files: PowerMTA writes `<stem>-YYYY-MM-DD-NNNN<ext>`, never `<stem><ext>` itself. */
  readonly path: string;
  readonly archive?: string;
  readonly types: string[];
}

export interface InputsOptions {
  /** Also read `d` records (delivery events, the denominator of bounce rates). Default false. */
  readonly deliveries?: boolean;
}

export interface InputsResult {
  readonly inputs: PmtaInput[];
  readonly problems: Problem[];
}

/** `/var/log/pmta/bounces.csv` → `/var/log/pmta/bounces-*.csv`: the dated names PowerMTA writes. */
export function inputGlob(acct: Pick<AcctFile, "path">): string {
  const ext = extname(acct.path);
  return join(dirname(acct.path), `${basename(acct.path, ext)}-*${ext}`);
}

/**
 * One input per `<acct-file>` that writes records pmta-ingest reads (b, rb, f; d when
 * `deliveries`). The glob matches the dated names PowerMTA gives the file
 * (`bounces.csv` → `bounces-2026-11-23-0000.csv`, pmta-format.md §7.1) in the live directory; the
 * same pattern is listed in the archive (move-to keeps the name).
 */
export function inputsFromAcctFiles(
  acctFiles: readonly AcctFile[],
  options: InputsOptions = {},
): InputsResult {
  const wanted: readonly RecordType[] = options.deliveries ? [...INGEST_TYPES, "d"] : INGEST_TYPES;
  const inputs: PmtaInput[] = [];
  const problems: Problem[] = [];
  const names = new Set<string>();
  const globs = new Map<string, AcctFile>();
  for (const acct of acctFiles) {
    if (acct.pipe || acct.spec === "") continue;
    const types = acct.records.filter((t) => wanted.includes(t));
    if (types.length === 0) continue;
    const path = inputGlob(acct);
    const stem = basename(acct.path, extname(acct.path));
    const other = globs.get(path);
    if (other !== undefined) {
      problems.push({
        file: acct.file,
        line: acct.line,
        severity: "error",
        code: "duplicate-acct-file",
        message: `<acct-file ${acct.spec}> writes the same files as <acct-file ${other.spec}> at ${other.file}:${other.line}`,
        fix: "give every <acct-file> its own file name",
      });
      continue;
    }
    globs.set(path, acct);
    let name = stem;
    for (let n = 2; names.has(name); n++) name = `${stem}-${n}`;
    names.add(name);
    inputs.push({
      name,
      path,
      ...(acct.moveTo === undefined ? {} : { archive: acct.moveTo }),
      // Always explicit: a `d, b` file must not turn every delivery into an event by accident.
      types,
    });
  }
  // `bounces-*.csv` also matches `bounces-old-2026-…csv` written by another <acct-file bounces-old.csv>.
  for (const input of inputs) {
    for (const other of inputs) {
      if (other === input || dirname(other.path) !== dirname(input.path)) continue;
      const prefix = basename(input.path).split("*")[0] as string;
      const otherStem = basename(other.path).split("*")[0] as string;
      if (otherStem.startsWith(prefix) && otherStem !== prefix) {
        const acct = globs.get(input.path) as AcctFile;
        problems.push({
          file: acct.file,
          line: acct.line,
          severity: "error",
          code: "overlapping-inputs",
          message: `the files of input "${input.name}" (${input.path}) also match those of "${other.name}" (${other.path}); records would be read twice`,
          fix: `rename one of the two acct files so that neither name starts with "${prefix}"`,
        });
      }
    }
  }
  return { inputs, problems };
}
