/**
 * RFC 4180 row formatting the way PowerMTA writes its accounting files: only fields that contain a comma,
 * a double quote, CR or LF are quoted, embedded quotes are doubled and nothing is trimmed.
 */

export type LineEnding = "\r\n" | "\n";

const NEEDS_QUOTING = /[",\r\n]/;

export function needsQuoting(value: string): boolean {
  return NEEDS_QUOTING.test(value);
}

export function formatCsvField(value: string): string {
  return needsQuoting(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

export function formatCsvRow(values: readonly string[], lineEnding: LineEnding): string {
  return values.map(formatCsvField).join(",") + lineEnding;
}
