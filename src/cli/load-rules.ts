import { readFile } from "node:fs/promises";
import { Classifier } from "../classify/classifier.js";
import { type OperatorRule, parseOperatorRules } from "../classify/operator-rules.js";

/** Builds the classifier, with the operator's rules file when one is given. */
export async function classifierFromRulesFile(path: string | undefined): Promise<Classifier> {
  let rules: OperatorRule[] = [];
  if (path !== undefined) {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      throw new UsageError(
        `cannot read rules file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    rules = parseOperatorRules(text, path);
  }
  return new Classifier({ rules });
}

/** An error the user can fix; the CLI prints its message without a stack and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
