import { isReason, type Reason } from "./taxonomy.js";

/**
 * Rules an operator adds from a file; they are checked before every built-in rule. One rule a line:
 *
 *     # comment
 *     550 5.7.1 Unfortunately, messages from==>Hard     Octeth syntax: substring ==> Hard | Soft
 *     /TSS0[45]/i => sender_reputation                 regex => reason
 *     "mailbox unavailable" => invalid_mailbox          quoted substring => reason
 *     /account suspended/ => mailbox_disabled, soft     an explicit hard/soft after the reason
 *
 * Substrings match case-insensitively. `Hard`/`Soft` alone (Octeth) keep the built-in reason and
 * force the hard flag: that is what Octeth's pattern database means by them.
 */
export interface OperatorRule {
  readonly source: string;
  readonly test: (text: string) => boolean;
  readonly reason?: Reason;
  readonly hard?: boolean;
}

export class RuleSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
    this.name = "RuleSyntaxError";
  }
}

const OCTETH = /^(.*?)\s*==>\s*(hard|soft)\s*$/i;
const MAPPED = /^(\/(?:\\.|[^/\\])+\/[a-z]*|"(?:[^"\\]|\\.)*")\s*=>\s*([a-z_]+)\s*(?:,\s*(hard|soft))?\s*$/i;

/** Parses a rules file's text; errors name the file and line and say what a valid line looks like. */
export function parseOperatorRules(text: string, file: string): OperatorRule[] {
  const rules: OperatorRule[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).trim();
    if (line === "" || line.startsWith("#")) continue;
    const source = `${file}:${i + 1}`;
    const mapped = MAPPED.exec(line);
    if (mapped !== null) {
      const [, matcher, reasonText, hardness] = mapped as unknown as [
        string,
        string,
        string,
        string | undefined,
      ];
      if (!isReason(reasonText)) {
        throw new RuleSyntaxError(
          file,
          i + 1,
          `unknown reason "${reasonText}" (see README "Reasons" for the list)`,
        );
      }
      const hard = hardness === undefined ? undefined : hardness.toLowerCase() === "hard";
      rules.push({
        source,
        test: matcherFor(matcher, file, i + 1),
        reason: reasonText,
        ...(hard === undefined ? {} : { hard }),
      });
      continue;
    }
    const octeth = OCTETH.exec(line);
    if (octeth !== null && (octeth[1] as string) !== "") {
      const needle = (octeth[1] as string).toLowerCase();
      rules.push({
        source,
        test: (t) => t.toLowerCase().includes(needle),
        hard: (octeth[2] as string).toLowerCase() === "hard",
      });
      continue;
    }
    throw new RuleSyntaxError(
      file,
      i + 1,
      'expected "substring==>Hard|Soft", "/regex/flags => reason" or "\\"substring\\" => reason[, hard|soft]"',
    );
  }
  return rules;
}

function matcherFor(matcher: string, file: string, line: number): (text: string) => boolean {
  if (matcher.startsWith('"')) {
    const needle = matcher.slice(1, -1).replace(/\\(.)/g, "$1").toLowerCase();
    return (t) => t.toLowerCase().includes(needle);
  }
  const last = matcher.lastIndexOf("/");
  const body = matcher.slice(1, last);
  const flags = matcher.slice(last + 1);
  let re: RegExp;
  try {
    re = new RegExp(body, flags.includes("i") ? flags : `${flags}i`);
  } catch (err) {
    throw new RuleSyntaxError(file, line, `invalid regular expression: ${(err as Error).message}`);
  }
  if (re.global || re.sticky) re = new RegExp(re.source, re.flags.replace(/[gy]/g, ""));
  return (t) => re.test(t);
}
