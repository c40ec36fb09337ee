/**
 * Small seeded PRNG (sfc32, seeded through splitmix32) for the simulator. Not cryptographic; its only job
 * is that the same seed produces the same records, byte for byte, on every platform.
 */

export type Weighted<T> = readonly (readonly [T, number])[];

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    // splitmix spreads small or similar seeds (0, 1, 2 ...) over the whole sfc32 state.
    const init = splitmix32(Math.trunc(seed));
    this.a = init();
    this.b = init();
    this.c = init();
    this.d = init();
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    if (hi < lo) throw new RangeError(`int(${lo}, ${hi}): empty range`);
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick() from an empty array");
    return items[Math.floor(this.next() * items.length)] as T;
  }

  weighted<T>(entries: Weighted<T>): T {
    let total = 0;
    for (const [, w] of entries) total += w;
    if (!(total > 0)) throw new RangeError("weighted() needs a positive total weight");
    let r = this.next() * total;
    for (const [value, w] of entries) {
      r -= w;
      if (r < 0) return value;
    }
    // Floating-point rounding can leave r at ~0 after the last entry.
    const last = entries[entries.length - 1];
    if (last === undefined) throw new RangeError("weighted() from an empty list");
    return last[0];
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Independent generator derived from this one, so sub-streams do not disturb each other's sequence. */
  fork(): Rng {
    return new Rng(this.nextUint32());
  }
}

export function createRng(seed: number): Rng {
  return new Rng(seed);
}
