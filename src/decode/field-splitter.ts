/**
 * Splits one record's text into fields. Unquoted records (the common case) take a plain split;
 * quoted ones go through an RFC 4180 state machine that is lenient the way a postmaster would want:
 * a quote in the middle of an unquoted field is kept as data, and text after a closing quote is kept
 * too — both with a warning — instead of swallowing the following fields or records.
 */

export interface SplitResult {
  readonly values: string[];
  /** Set when the record broke RFC 4180 quoting rules (the values are still the best reading). */
  readonly quoteWarning?: string;
}

export function splitFields(text: string, quoted: boolean): SplitResult {
  if (!quoted) return { values: text.split(",") };
  return splitQuoted(text);
}

function splitQuoted(text: string): SplitResult {
  const values: string[] = [];
  const n = text.length;
  let warning: string | undefined;
  let i = 0;
  for (;;) {
    if (i < n && text.charCodeAt(i) === 0x22) {
      // Quoted field: read to the closing quote, un-doubling "" pairs.
      let value = "";
      let from = i + 1;
      let closed = false;
      for (;;) {
        const q = text.indexOf('"', from);
        if (q < 0) {
          value += text.slice(from);
          i = n;
          break;
        }
        value += text.slice(from, q);
        if (text.charCodeAt(q + 1) === 0x22) {
          value += '"';
          from = q + 2;
          continue;
        }
        i = q + 1;
        closed = true;
        break;
      }
      if (!closed) warning ??= `unterminated quoted field ${values.length + 1}`;
      // Anything between the closing quote and the next comma is malformed; keep it rather than lose it.
      if (i < n && text.charCodeAt(i) !== 0x2c) {
        const comma = text.indexOf(",", i);
        const stray = comma < 0 ? text.slice(i) : text.slice(i, comma);
        value += stray;
        warning ??= `text after closing quote in field ${values.length + 1}`;
        i = comma < 0 ? n : comma;
      }
      values.push(value);
    } else {
      const comma = text.indexOf(",", i);
      const value = comma < 0 ? text.slice(i) : text.slice(i, comma);
      if (value.includes('"')) warning ??= `quote inside unquoted field ${values.length + 1}`;
      values.push(value);
      i = comma < 0 ? n : comma;
    }
    if (i >= n) break;
    i++; // past the comma
    if (i === n) {
      values.push("");
      break;
    }
  }
  return warning === undefined ? { values } : { values, quoteWarning: warning };
}
