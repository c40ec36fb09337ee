import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { reapOnExit } from "./reap.js";

/** Runs the built CLI as a child process and collects its output (tests of finite commands). */
export const CLI_PATH = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(args: string[], stdin?: string): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = reapOnExit(
      spawn(process.execPath, [CLI_PATH, ...args], { stdio: ["pipe", "pipe", "pipe"] }),
    );
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? "");
  });
}
