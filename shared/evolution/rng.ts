/**
 * The one seeded random generator of the evolution core.
 *
 * xoshiro128** over 32-bit integer arithmetic (Math.imul, >>>), so the same
 * seed yields the same stream bit for bit in Node and in every browser.
 * Seeds are strings or uint32 numbers; strings are hashed with a 32-bit
 * FNV-1a + SplitMix32 expansion into the 128-bit state.
 */
export interface Rng {
  /** A uint32. */
  nextUint32(): number;
  /** A float in [0, 1) with 32 bits of randomness. */
  next(): number;
  /** An integer in [min, max] inclusive. */
  int(min: number, max: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** A uniformly chosen element; throws on an empty array. */
  pick<T>(items: readonly T[]): T;
  /** A new generator derived from this one's state and a label, not disturbing other forks. */
  fork(label: string): Rng;
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function splitMix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Creates a generator from a seed (a string or a uint32). */
export function createRng(seed: string | number): Rng {
  const mix = { s: typeof seed === 'number' ? seed >>> 0 : fnv1a(seed) };
  let a = splitMix32(mix);
  let b = splitMix32(mix);
  let c = splitMix32(mix);
  let d = splitMix32(mix);
  if ((a | b | c | d) === 0) a = 1;

  const nextUint32 = (): number => {
    const result = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
    const t = (b << 9) >>> 0;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return result;
  };

  const rng: Rng = {
    nextUint32,
    next: () => nextUint32() / 4294967296,
    int(min, max) {
      if (!Number.isInteger(min) || !Number.isInteger(max) || max < min) {
        throw new RangeError(`rng.int: bad range [${min}, ${max}]`);
      }
      const span = max - min + 1;
      // Rejection sampling keeps the draw exactly uniform.
      const limit = Math.floor(4294967296 / span) * span;
      let x = nextUint32();
      while (x >= limit) x = nextUint32();
      return min + (x % span);
    },
    chance: (p) => nextUint32() / 4294967296 < p,
    pick(items) {
      if (items.length === 0) throw new RangeError('rng.pick: empty array');
      return items[rng.int(0, items.length - 1)] as (typeof items)[number];
    },
    fork(label) {
      return createRng(`${nextUint32()}:${label}`);
    },
  };
  return rng;
}
