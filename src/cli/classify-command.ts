import { createInterface } from "node:readline";
import type { Classification, Classifier, ClassifyInput } from "../classify/classifier.js";
import { domainOf } from "../decode/field-values.js";

export interface ClassifyArgs {
  readonly diagnostic?: string;
  readonly status?: string;
  readonly category?: string;
  readonly type?: string;
  readonly action?: string;
  readonly mta?: string;
  readonly rcpt?: string;
}

export function classifyOne(classifier: Classifier, args: ClassifyArgs): Classification {
  return classifier.classify({
    type: args.type ?? "b",
    dsnDiag: args.diagnostic,
    dsnStatus: args.status,
    bounceCat: args.category,
    dsnAction: args.action,
    dsnMta: args.mta,
    recipientDomain: domainOf(args.rcpt),
  });
}

const INPUT_KEYS = [
  "type",
  "dsnStatus",
  "dsnDiag",
  "bounceCat",
  "dsnAction",
  "dsnMta",
  "rcpt",
  "recipientDomain",
  "id",
];

/** One JSON object per input line → one JSON line per input line, in order; bad lines get `error`. */
export function classifyJsonLine(classifier: Classifier, line: string, lineNo: number): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (err) {
    return JSON.stringify({ line: lineNo, error: `invalid JSON: ${(err as Error).message}` });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return JSON.stringify({
      line: lineNo,
      error: "expected a JSON object with dsnDiag, dsnStatus, bounceCat, ...",
    });
  }
  const obj = parsed as Record<string, unknown>;
  for (const key of INPUT_KEYS) {
    const v = obj[key];
    if (v !== undefined && v !== null && typeof v !== "string") {
      return JSON.stringify({ line: lineNo, error: `field "${key}" must be a string` });
    }
  }
  const str = (k: string): string | undefined =>
    typeof obj[k] === "string" && obj[k] !== "" ? (obj[k] as string) : undefined;
  if (
    str("dsnDiag") === undefined &&
    str("dsnStatus") === undefined &&
    str("bounceCat") === undefined &&
    str("type") === undefined
  ) {
    return JSON.stringify({
      line: lineNo,
      error: "nothing to classify: give at least one of dsnDiag, dsnStatus, bounceCat, type",
    });
  }
  const input: ClassifyInput = {
    type: str("type") ?? "b",
    dsnStatus: str("dsnStatus"),
    dsnDiag: str("dsnDiag"),
    bounceCat: str("bounceCat"),
    dsnAction: str("dsnAction"),
    dsnMta: str("dsnMta"),
    recipientDomain: str("recipientDomain") ?? domainOf(str("rcpt")),
  };
  const result = classifier.classify(input);
  const id = str("id");
  return JSON.stringify(id === undefined ? result : { id, ...result });
}

export async function classifyJsonl(
  classifier: Classifier,
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
): Promise<number> {
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  let errors = 0;
  for await (const line of rl) {
    n++;
    if (line.trim() === "") {
      output.write(`${JSON.stringify({ line: n, error: "empty line" })}\n`);
      errors++;
      continue;
    }
    const out = classifyJsonLine(classifier, line, n);
    if (out.startsWith('{"line":')) errors++;
    if (!output.write(`${out}\n`)) await new Promise((r) => output.once("drain", r));
  }
  return errors;
}
