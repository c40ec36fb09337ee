/** Stand-ins for stdout/stderr that keep what a command printed (the ops commands take streams). */
export function collect() {
  let out = "";
  let err = "";
  return {
    out: { write: (s: string) => (out += s) },
    err: { write: (s: string) => (err += s) },
    stdout: () => out,
    stderr: () => err,
  };
}
