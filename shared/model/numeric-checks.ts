/**
 * Helpers for the numerical tests of shared/model (imported by *.test.ts
 * only): deterministic inputs and the error measure the kernels are held to.
 */
import { expect } from 'vitest';

/** Deterministic values in [-1, 1). */
export function values(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

/** max |a - b| / max |a|: error relative to the scale of the reference (lengths must match). */
export function relErr(ref: ArrayLike<number>, got: ArrayLike<number>): number {
  expect(got.length).toBe(ref.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs((ref[i] as number) - (got[i] as number)));
    scale = Math.max(scale, Math.abs(ref[i] as number));
  }
  return scale === 0 ? diff : diff / scale;
}
