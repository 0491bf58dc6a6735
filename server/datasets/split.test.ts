import { describe, expect, it } from 'vitest';
import { createPrng } from './prng.ts';
import { concatImageSets, seededPermutation, splitIndices, takeImages } from './split.ts';

describe('seeded split', () => {
  it('the PRNG is a fixed sequence per seed', () => {
    const a = createPrng(42);
    const b = createPrng(42);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(createPrng(43).next()).not.toBe(xs[0]);
  });

  it('same seed, same split; another seed, another split', () => {
    const a = splitIndices(50_000, 5000, 2017);
    const b = splitIndices(50_000, 5000, 2017);
    expect(Buffer.from(a.train.slice().buffer).equals(Buffer.from(b.train.slice().buffer))).toBe(true);
    expect(Array.from(a.validation)).toEqual(Array.from(b.validation));
    expect(Array.from(splitIndices(50_000, 5000, 2018).validation)).not.toEqual(Array.from(a.validation));
  });

  it('splits are disjoint and together cover every image once', () => {
    const { train, validation } = splitIndices(60_000, 5000, 7);
    expect(train.length).toBe(55_000);
    expect(validation.length).toBe(5000);
    const seen = new Uint8Array(60_000);
    for (const i of [...train, ...validation]) seen[i]! += 1;
    expect(seen.every((n) => n === 1)).toBe(true);
  });

  it('the permutation is actually shuffled', () => {
    const p = seededPermutation(1000, 1);
    const fixed = p.filter((v, i) => v === i).length;
    expect(fixed).toBeLessThan(10);
  });

  it('rejects impossible validation sizes', () => {
    expect(() => splitIndices(10, 10, 1)).toThrow(/validation size 10/);
    expect(() => splitIndices(10, -1, 1)).toThrow(/validation size/);
  });

  it('takeImages and concatImageSets move whole images with their labels', () => {
    const set = { shape: [1, 2, 1] as [number, number, number], count: 3, pixels: Uint8Array.of(0, 1, 10, 11, 20, 21), labels: Uint8Array.of(5, 6, 7) };
    const taken = takeImages(set, [2, 0]);
    expect(Array.from(taken.pixels)).toEqual([20, 21, 0, 1]);
    expect(Array.from(taken.labels)).toEqual([7, 5]);
    const both = concatImageSets([taken, set]);
    expect(both.count).toBe(5);
    expect(Array.from(both.labels)).toEqual([7, 5, 5, 6, 7]);
    expect(() => takeImages(set, [3])).toThrow(/out of range/);
  });
});
