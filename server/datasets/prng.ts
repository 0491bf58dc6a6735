/**
 * A small seeded pseudo-random generator (mulberry32). Splits and the
 * synthetic dataset must be reproducible from a seed on every machine, which
 * Math.random cannot give.
 */
export interface Prng {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Uniform float in [lo, hi). */
  range(lo: number, hi: number): number;
  /** Standard normal deviate (Box-Muller). */
  normal(): number;
}

/** Creates a generator whose whole sequence is fixed by `seed` (any 32-bit integer). */
export function createPrng(seed: number): Prng {
  let state = seed >>> 0;
  const next = (): number => {
    // mulberry32: a 32-bit state advanced by a Weyl constant, then mixed.
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    range: (lo, hi) => lo + (hi - lo) * next(),
    normal: () => {
      // 1 - next() lies in (0, 1], so the log is finite.
      const u = 1 - next();
      const w = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * w);
    },
  };
}
