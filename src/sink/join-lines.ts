/** `head` + the parts separated by `sep` + `tail`, as one Buffer (one copy of each part). */
export function joinLines(parts: readonly Buffer[], head: string, sep: string, tail: string): Buffer {
  const h = Buffer.from(head);
  const s = Buffer.from(sep);
  const t = Buffer.from(tail);
  const list: Buffer[] = [h];
  let total = h.length + t.length;
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) {
      list.push(s);
      total += s.length;
    }
    const p = parts[i] as Buffer;
    list.push(p);
    total += p.length;
  }
  list.push(t);
  return Buffer.concat(list, total);
}
