import { dirname, isAbsolute, join, resolve } from "node:path";

/**
 * A parser of PowerMTA's configuration syntax (User's Guide 5.0 §3.1, §3.3.1.31), pure: files are
 * read through the callbacks in {@link ParseSources}, so it is tested without touching the disk.
 *
 * What the guide documents and this parser does:
 * - one directive per line, `keyword value…`; `#` starts a comment that runs to the end of the line
 *   (a literal `#` in a pattern is written `\x23`). A `#` inside double quotes is kept, since quoted
 *   values (`custom-dsn-from-header "…"`, `privacy-policy redact "X"`) are data.
 * - blocks `<name arg>` … `</name>`, nested (`<virtual-mta>` holding `<domain>`).
 * - `include FILE`, wildcards allowed, at global level and inside blocks; the included lines become
 *   part of the block the `include` sits in.
 * - no line continuation: the guide documents none, so a trailing backslash stays part of the value.
 *
 * What the guide does not say, and the choice made here: a relative include is resolved against the
 * directory of the including file (for `/etc/pmta/config` that is `/etc/pmta`, PowerMTA's own
 * directory); wildcard matches are included in name order; a wildcard that matches nothing is a note,
 * not an error (an empty `conf.d/*.conf` is a normal state).
 */

export type Severity = "error" | "warn" | "info";

export interface Problem {
  readonly severity: Severity;
  /** Stable identifier, e.g. `unclosed-block`, `missing-field`; for tests and `--json` consumers. */
  readonly code: string;
  readonly message: string;
  /** What to do about it. */
  readonly fix: string;
  readonly file?: string;
  readonly line?: number;
}

export interface DirectiveNode {
  readonly kind: "directive";
  /** Keyword as written. */
  readonly name: string;
  /** Everything after the keyword, comment removed, trimmed. */
  readonly value: string;
  /** `value` split on white space; double-quoted parts are one argument, quotes removed. */
  readonly args: readonly string[];
  readonly file: string;
  readonly line: number;
}

export interface BlockNode {
  readonly kind: "block";
  /** Tag name as written, e.g. `acct-file`, `virtual-mta`. */
  readonly name: string;
  /** Text after the tag name, e.g. the path of `<acct-file /var/log/pmta/bounces.csv>`. */
  readonly arg: string;
  readonly file: string;
  readonly line: number;
  /** Line of the closing tag; undefined when the block was never closed (an error is reported). */
  endLine?: number;
  readonly children: ConfigNode[];
}

export type ConfigNode = DirectiveNode | BlockNode;

export interface ParsedPmtaConfig {
  /** Top-level directives and blocks, includes expanded in place. */
  readonly nodes: readonly ConfigNode[];
  /** Every file read, the main file first. */
  readonly files: readonly string[];
  readonly problems: readonly Problem[];
}

/** How the parser reaches files. Errors thrown carry a Node `code` (ENOENT, EACCES, EISDIR, …). */
export interface ParseSources {
  readFile(path: string): Promise<string>;
  /** Names in a directory (for include wildcards). */
  listDir(dir: string): Promise<string[]>;
}

export interface ParseOptions {
  /** Deepest include nesting followed; deeper includes are reported, not read. Default 16. */
  readonly maxIncludeDepth?: number;
}

const DEFAULT_MAX_DEPTH = 16;

/** Parses `text` as the content of `file`, following includes through `sources`. */
export async function parsePmtaConfig(
  text: string,
  file: string,
  sources: ParseSources,
  options: ParseOptions = {},
): Promise<ParsedPmtaConfig> {
  const state: ParseState = {
    sources,
    problems: [],
    files: [file],
    maxDepth: options.maxIncludeDepth ?? DEFAULT_MAX_DEPTH,
  };
  const nodes: ConfigNode[] = [];
  await parseInto(text, file, nodes, [file], state);
  return { nodes, files: state.files, problems: state.problems };
}

interface ParseState {
  readonly sources: ParseSources;
  readonly problems: Problem[];
  readonly files: string[];
  readonly maxDepth: number;
}

/** Parses one file's text, appending its nodes to `target` (the enclosing block's children). */
async function parseInto(
  text: string,
  file: string,
  target: ConfigNode[],
  chain: readonly string[],
  state: ParseState,
): Promise<void> {
  const problem = (p: Omit<Problem, "file"> & { line: number }) => state.problems.push({ ...p, file });
  // Blocks opened in this file; a block must be closed in the file that opened it.
  const open: BlockNode[] = [];
  const children = (): ConfigNode[] =>
    open.length > 0 ? (open[open.length - 1] as BlockNode).children : target;
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const content = stripComment(lines[i] as string).trim();
    if (content === "") continue;

    if (content.startsWith("</")) {
      const name = content.endsWith(">") ? content.slice(2, -1).trim() : content.slice(2).trim();
      if (!content.endsWith(">")) {
        problem({
          severity: "error",
          code: "bad-tag",
          line: lineNo,
          message: `closing tag "${content}" does not end with ">"`,
          fix: `write </${name}>`,
        });
      }
      const top = open[open.length - 1];
      if (top === undefined) {
        problem({
          severity: "error",
          code: "stray-close",
          line: lineNo,
          message: `</${name}> closes nothing: no <${name}> is open here${chain.length > 1 ? " (blocks opened in the including file cannot be closed in an included file)" : ""}`,
          fix: `remove the line or add the missing <${name} …> above it`,
        });
        continue;
      }
      if (sameTag(top.name, name)) {
        top.endLine = lineNo;
        open.pop();
        continue;
      }
      const deeper = findOpen(open, name);
      if (deeper === -1) {
        problem({
          severity: "error",
          code: "mismatched-close",
          line: lineNo,
          message: `</${name}> does not match <${top.name}${top.arg ? ` ${top.arg}` : ""}> opened at ${file}:${top.line}`,
          fix: `write </${top.name}> here, or open <${name} …> before it`,
        });
        continue;
      }
      // </outer> while inner blocks are still open: the inner ones were left unclosed.
      for (let j = open.length - 1; j > deeper; j--) {
        const inner = open[j] as BlockNode;
        problem({
          severity: "error",
          code: "mismatched-close",
          line: lineNo,
          message: `</${name}> closes <${(open[deeper] as BlockNode).name}> but <${inner.name}${inner.arg ? ` ${inner.arg}` : ""}> opened at ${file}:${inner.line} is still open`,
          fix: `add </${inner.name}> before line ${lineNo}`,
        });
      }
      (open[deeper] as BlockNode).endLine = lineNo;
      open.length = deeper;
      continue;
    }

    if (content.startsWith("<")) {
      const close = content.lastIndexOf(">");
      if (close === -1) {
        problem({
          severity: "error",
          code: "bad-tag",
          line: lineNo,
          message: `tag "${content}" does not end with ">"`,
          fix: `end the line with ">", e.g. <${content.slice(1)}>`,
        });
        continue;
      }
      const inner = content.slice(1, close).trim();
      const trailing = content.slice(close + 1).trim();
      const m = /^(\S+)\s*(.*)$/.exec(inner);
      if (m === null) {
        problem({
          severity: "error",
          code: "bad-tag",
          line: lineNo,
          message: "empty tag <>",
          fix: "name the block, e.g. <acct-file /var/log/pmta/bounces.csv>",
        });
        continue;
      }
      if (trailing !== "") {
        problem({
          severity: "warn",
          code: "text-after-tag",
          line: lineNo,
          message: `text after the tag's ">" ("${trailing}") is not part of the tag`,
          fix: "put the directive on its own line below the tag",
        });
      }
      const block: BlockNode = {
        kind: "block",
        name: m[1] as string,
        arg: (m[2] as string).trim(),
        file,
        line: lineNo,
        children: [],
      };
      children().push(block);
      open.push(block);
      continue;
    }

    const m = /^(\S+)\s*(.*)$/.exec(content) as RegExpExecArray;
    const directive: DirectiveNode = {
      kind: "directive",
      name: m[1] as string,
      value: (m[2] as string).trim(),
      args: splitArgs((m[2] as string).trim()),
      file,
      line: lineNo,
    };
    if (directive.name.toLowerCase() === "include") {
      await include(directive, children(), chain, state);
      continue;
    }
    children().push(directive);
  }

  for (const block of open) {
    problem({
      severity: "error",
      code: "unclosed-block",
      line: block.line,
      message: `<${block.name}${block.arg ? ` ${block.arg}` : ""}> is never closed (end of ${file} reached)`,
      fix: `add </${block.name}> after the block's last directive`,
    });
  }
}

async function include(
  directive: DirectiveNode,
  target: ConfigNode[],
  chain: readonly string[],
  state: ParseState,
): Promise<void> {
  const at = { file: directive.file, line: directive.line };
  const spec = directive.args[0];
  if (spec === undefined || directive.args.length > 1) {
    state.problems.push({
      ...at,
      severity: "error",
      code: "bad-include",
      message:
        spec === undefined
          ? "include names no file"
          : `include takes one file name (got "${directive.value}")`,
      fix: "write one file per line: include /etc/pmta/vmtas.conf",
    });
    return;
  }
  const path = isAbsolute(spec) ? spec : resolve(dirname(directive.file), spec);
  let targets: string[];
  if (hasWildcard(path)) {
    targets = await expandGlob(path, state.sources);
    if (targets.length === 0) {
      state.problems.push({
        ...at,
        severity: "info",
        code: "include-no-match",
        message: `include ${spec} matches no file (${path})`,
        fix: "nothing to do if that is intended; otherwise check the pattern",
      });
      return;
    }
  } else {
    targets = [path];
  }

  for (const target_ of targets) {
    if (chain.includes(target_)) {
      state.problems.push({
        ...at,
        severity: "error",
        code: "include-loop",
        message: `include loop: ${[...chain, target_].join(" → ")}`,
        fix: `remove the include of ${target_} from ${directive.file}:${directive.line}`,
      });
      continue;
    }
    if (chain.length > state.maxDepth) {
      state.problems.push({
        ...at,
        severity: "error",
        code: "include-depth",
        message: `includes nested deeper than ${state.maxDepth} files (${[...chain, target_].join(" → ")})`,
        fix: "flatten the include chain",
      });
      continue;
    }
    let text: string;
    try {
      text = await state.sources.readFile(target_);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      state.problems.push({
        ...at,
        severity: "error",
        code: code === "ENOENT" ? "include-missing" : "include-unreadable",
        message:
          code === "ENOENT"
            ? `included file ${target_} does not exist`
            : code === "EISDIR"
              ? `included ${target_} is a directory`
              : `cannot read included file ${target_} (${code})`,
        fix:
          code === "ENOENT"
            ? `create ${target_} or remove the include line (PowerMTA refuses to start with a missing include)`
            : code === "EISDIR"
              ? `include the files in it with a wildcard: include ${join(target_, "*.conf")}`
              : `give the user running this check read access to ${target_}`,
      });
      continue;
    }
    if (!state.files.includes(target_)) state.files.push(target_);
    await parseInto(text, target_, target, [...chain, target_], state);
  }
}

function sameTag(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function findOpen(open: readonly BlockNode[], name: string): number {
  for (let i = open.length - 1; i >= 0; i--) if (sameTag((open[i] as BlockNode).name, name)) return i;
  return -1;
}

/** Removes a `#` comment; a `#` inside double quotes is data. */
export function stripComment(line: string): string {
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "\\" && quoted) {
      i++;
      continue;
    }
    if (c === '"') quoted = !quoted;
    else if (c === "#" && !quoted) return line.slice(0, i);
  }
  return line;
}

/** Splits a directive value on white space; `"a b"` is one argument (`\"` inside is a quote). */
export function splitArgs(value: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inArg = false;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (quoted) {
      if (c === "\\" && (value[i + 1] === '"' || value[i + 1] === "\\")) {
        cur += value[i + 1];
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
      continue;
    }
    if (c === '"') {
      quoted = true;
      inArg = true;
    } else if (/\s/.test(c)) {
      if (inArg) out.push(cur);
      cur = "";
      inArg = false;
    } else {
      cur += c;
      inArg = true;
    }
  }
  if (inArg) out.push(cur);
  return out;
}

function hasWildcard(path: string): boolean {
  return /[*?[]/.test(path);
}

/** Expands `*`, `?` and `[…]` in any path segment, in name order. Unreadable directories match nothing. */
async function expandGlob(path: string, sources: ParseSources): Promise<string[]> {
  const segments = path.split("/").filter((s, i) => s !== "" || i === 0);
  let bases = [segments[0] === "" ? "/" : (segments[0] as string)];
  for (const segment of segments.slice(1)) {
    const next: string[] = [];
    for (const base of bases) {
      if (!hasWildcard(segment)) {
        next.push(join(base, segment));
        continue;
      }
      const re = globToRegExp(segment);
      const names = await sources.listDir(base).catch(() => [] as string[]);
      for (const name of names.sort())
        if (re.test(name) && !name.startsWith(".")) next.push(join(base, name));
    }
    bases = next;
  }
  return bases;
}

export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end === -1) re += "\\[";
      else {
        const body = glob
          .slice(i + 1, end)
          .replace(/^!/, "^")
          .replace(/\\/g, "\\\\");
        re += `[${body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Every block named `name` (case-insensitive), at any depth, in file order. */
export function findBlocks(nodes: readonly ConfigNode[], name: string): BlockNode[] {
  const out: BlockNode[] = [];
  const walk = (list: readonly ConfigNode[]) => {
    for (const n of list) {
      if (n.kind !== "block") continue;
      if (sameTag(n.name, name)) out.push(n);
      walk(n.children);
    }
  };
  walk(nodes);
  return out;
}
