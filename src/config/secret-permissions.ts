import { readFile, stat } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { log as defaultLog, type LogLevel } from "../cli/log.js";
import type { RunConfig } from "./run-config.js";

/**
 * Start-up check that credentials are not readable by every local user: a config file that holds a
 * token, an Octeth signature or an Authorization-like header written out literally, or a tokenFile /
 * keyFile it points to, with the "other" read bit set. It warns (never stops start-up): the
 * operator may have reasons, but a world-readable API token on a shared mail host usually is a
 * mistake made by `cp` under a 022 umask.
 */
export interface SecretExposure {
  /** The world-readable file. */
  readonly file: string;
  /** Config keys whose secret the file exposes, e.g. output.http.token (never the values). */
  readonly keys: readonly string[];
  /** Octal permission bits, e.g. "0644". */
  readonly mode: string;
  /** Shell commands that fix it. */
  readonly fix: string;
}

/** Header names whose values are credentials. */
const SECRET_HEADER = /^(proxy-)?authorization$|api[-_]?key|token|secret|signature|cookie/i;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * A value written out in the file, as opposed to `${VAR}` taken from the environment at start-up
 * (`"Bearer ${TOKEN}"` keeps the secret out of the file too).
 */
function literal(v: unknown): boolean {
  return (typeof v === "string" && v !== "" && !v.includes("${")) || typeof v === "number";
}

/** The config keys under output.http in the file's own text that hold a secret literally. */
function literalSecretKeys(doc: unknown): string[] {
  if (!isObj(doc) || !isObj(doc.output) || !isObj(doc.output.http)) return [];
  const http = doc.output.http;
  const keys: string[] = [];
  if (literal(http.token)) keys.push("output.http.token");
  if (literal(http.octethSignature)) keys.push("output.http.octethSignature");
  if (isObj(http.headers)) {
    for (const [name, value] of Object.entries(http.headers)) {
      if (SECRET_HEADER.test(name) && literal(value)) keys.push(`output.http.headers.${name}`);
    }
  }
  return keys;
}

async function worldReadableMode(file: string): Promise<string | undefined> {
  try {
    const st = await stat(file);
    return (st.mode & 0o004) !== 0 ? `0${(st.mode & 0o777).toString(8)}` : undefined;
  } catch {
    // Unreadable or gone: the loader or the HTTP output reports that with its own message.
    return undefined;
  }
}

function fixFor(file: string): string {
  return `chmod 640 ${file}; chown root:pmta-ingest ${file}`;
}

/**
 * Which world-readable files expose a secret: `configFile` itself (its secrets judged from its own
 * text, so values from flags or the environment do not count) and, for an HTTP output, the files
 * named by tokenFile and keyFile in `config`.
 */
export async function findExposedSecrets(
  configFile: string,
  config: Pick<RunConfig, "output">,
): Promise<SecretExposure[]> {
  const found: SecretExposure[] = [];
  const configMode = await worldReadableMode(configFile);
  if (configMode !== undefined) {
    let doc: unknown;
    try {
      doc = parseYaml(await readFile(configFile, "utf8"));
    } catch {
      doc = undefined; // the loader has already accepted or rejected this file
    }
    const keys = literalSecretKeys(doc);
    if (keys.length > 0) found.push({ file: configFile, keys, mode: configMode, fix: fixFor(configFile) });
  }
  if (config.output.kind === "http") {
    for (const key of ["tokenFile", "keyFile"]) {
      const file = config.output.settings[key];
      if (typeof file !== "string" || file === "") continue;
      const mode = await worldReadableMode(file);
      if (mode !== undefined) found.push({ file, keys: [`output.http.${key}`], mode, fix: fixFor(file) });
    }
  }
  return found;
}

/** Logs one warning per exposed file (names and keys only, never the secret); returns them. */
export async function warnExposedSecrets(
  configFile: string,
  config: Pick<RunConfig, "output">,
  log: (level: LogLevel, msg: string, fields: Record<string, unknown>) => void = defaultLog,
): Promise<SecretExposure[]> {
  const found = await findExposedSecrets(configFile, config);
  for (const e of found) {
    log("warn", "a file holding secrets is readable by every user; restrict it", {
      file: e.file,
      keys: e.keys,
      mode: e.mode,
      fix: e.fix,
    });
  }
  return found;
}
