import { existsSync, readFileSync } from "node:fs";
import type { Workspace } from "./run-harness.js";

/**
 * Minimal bounce files whose records carry their own id in the X-FBLId column, so a test can tell
 * which records arrived, how often and in what order.
 */
export const ID_HEADER = "type,timeLogged,rcpt,dsnStatus,dsnDiag,header_X-FBLId\r\n";

export const idRow = (id: string): string =>
  `b,2025-01-14 10:00:00+0000,${id}@example.com,5.1.1,"smtp;550 5.1.1 user unknown",${id}\r\n`;

/** The ids of the events in the workspace's output file, in order. */
export function deliveredIds(ws: Workspace): string[] {
  if (!existsSync(ws.output)) return [];
  const lines = readFileSync(ws.output, "utf8").split("\n");
  lines.pop(); // the last line is complete only if the file ends in "\n"
  return lines.map((l) => (JSON.parse(l) as { headers: Record<string, string> }).headers["X-FBLId"] ?? "");
}
