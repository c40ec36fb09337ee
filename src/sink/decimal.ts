/** writeDecimal writes numbers below this; in that range `(v / 10) | 0` is exact. */
export const DECIMAL_MAX = 2 ** 31;

/**
 * `n` (0 ≤ n < DECIMAL_MAX) in decimal ASCII digits at `buf[o]`; returns the offset past them. For
 * offsets written per event without a string (event bytes, idempotency keys).
 */
export function writeDecimal(buf: Uint8Array, o: number, n: number): number {
  let digits = 1;
  for (let p = 10; p <= n; p *= 10) digits++;
  const end = o + digits;
  let v = n;
  for (let i = end - 1; i >= o; i--) {
    buf[i] = 0x30 + (v % 10);
    v = (v / 10) | 0;
  }
  return end;
}
