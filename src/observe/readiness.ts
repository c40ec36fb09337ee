import { constants } from "node:fs";
import { access } from "node:fs/promises";
import type { ReadinessCheck } from "./metrics-server.js";

/** The output counts as reachable if it answered within this long, even if the last attempt failed. */
const OUTPUT_READY_GRACE_MS = 60_000;

/**
 * What `/readyz` answers: the daemon reports outcomes here as they happen (output attempts,
 * checkpoint writes); the input directories are checked at request time, since a directory can
 * vanish or lose its permissions while nothing else happens.
 */
export class Readiness {
  private outputOk: boolean | undefined;
  private outputError = "";
  private outputSuccessAt = 0;
  private checkpointError: string | undefined;

  constructor(
    private readonly inputs: ReadonlyArray<{
      readonly name: string;
      readonly dir: string;
      readonly archive?: string;
    }>,
    private readonly outputKind: string,
  ) {}

  outputSucceeded(): void {
    this.outputOk = true;
    this.outputSuccessAt = Date.now();
  }

  outputFailed(error: string): void {
    this.outputOk = false;
    this.outputError = error;
  }

  checkpointWritten(): void {
    this.checkpointError = undefined;
  }

  checkpointFailed(error: string): void {
    this.checkpointError = error;
  }

  async checks(): Promise<ReadinessCheck[]> {
    const checks: ReadinessCheck[] = [];
    for (const input of this.inputs) {
      for (const dir of [input.dir, input.archive]) {
        if (dir === undefined) continue;
        const problem = await access(dir, constants.R_OK | constants.X_OK).then(
          () => undefined,
          (err: NodeJS.ErrnoException) => err.code ?? String(err),
        );
        checks.push({
          name: `input ${input.name}: ${dir}`,
          ok: problem === undefined,
          detail: problem === undefined ? "readable" : `cannot list: ${problem}`,
        });
      }
    }
    const sinceOk = Date.now() - this.outputSuccessAt;
    checks.push({
      name: `output ${this.outputKind}`,
      ok: this.outputOk !== false || (this.outputSuccessAt > 0 && sinceOk < OUTPUT_READY_GRACE_MS),
      detail:
        this.outputOk === undefined
          ? "nothing sent yet"
          : this.outputOk
            ? "last attempt succeeded"
            : `last attempt failed (${this.outputError}); last success ${
                this.outputSuccessAt === 0 ? "never" : `${Math.round(sinceOk / 1000)} s ago`
              }`,
    });
    checks.push({
      name: "checkpoint",
      ok: this.checkpointError === undefined,
      detail: this.checkpointError === undefined ? "writable" : `last write failed: ${this.checkpointError}`,
    });
    return checks;
  }
}
