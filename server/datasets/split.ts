/**
 * Seeded train/validation splitting and the image gathering it needs.
 *
 * The split must be identical on every run and machine (results are compared
 * across runs, and the validation set must never drift into training), so it
 * comes from a seeded shuffle, never from Math.random.
 */
import type { ImageSet } from '../../shared/data/image-set.ts';
import { imageBytes } from '../../shared/data/image-set.ts';
import { createPrng } from './prng.ts';

/** Indices into the official training data, per split. */
export interface SplitIndices {
  readonly train: Uint32Array;
  readonly validation: Uint32Array;
}

/** A permutation of 0..n-1 fixed by `seed` (Fisher-Yates). */
export function seededPermutation(n: number, seed: number): Uint32Array {
  const rng = createPrng(seed);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i] as number;
    order[i] = order[j] as number;
    order[j] = t;
  }
  return order;
}

/**
 * Splits `count` training images into train and validation: the first
 * `count - validationCount` positions of a seeded permutation train, the rest
 * validate. Both keep the shuffled order, so each train shard is a random
 * sample of the classes.
 */
export function splitIndices(count: number, validationCount: number, seed: number): SplitIndices {
  if (!Number.isInteger(validationCount) || validationCount < 0 || validationCount >= count) {
    throw new RangeError(`validation size ${validationCount} must be in [0, ${count})`);
  }
  const order = seededPermutation(count, seed);
  return { train: order.subarray(0, count - validationCount), validation: order.subarray(count - validationCount) };
}

/** Copies the images at `indices` (in that order) into a new set. */
export function takeImages(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const size = imageBytes(set.shape);
  const pixels = new Uint8Array(indices.length * size);
  const labels = new Uint8Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k] as number;
    if (i >= set.count) throw new RangeError(`image index ${i} out of range (${set.count} images)`);
    labels[k] = set.labels[i] as number;
    pixels.set(set.pixels.subarray(i * size, (i + 1) * size), k * size);
  }
  return { shape: set.shape, count: indices.length, pixels, labels };
}

/** Concatenates sets of one shape into a new set (e.g. the five CIFAR-10 batches). */
export function concatImageSets(sets: readonly ImageSet[]): ImageSet {
  const first = sets[0];
  if (first === undefined) throw new RangeError('concatImageSets: no sets');
  const count = sets.reduce((n, s) => n + s.count, 0);
  const pixels = new Uint8Array(count * imageBytes(first.shape));
  const labels = new Uint8Array(count);
  let at = 0;
  for (const s of sets) {
    if (s.shape.some((d, i) => d !== first.shape[i])) {
      throw new RangeError(`concatImageSets: shape ${s.shape.join('x')} differs from ${first.shape.join('x')}`);
    }
    pixels.set(s.pixels, at * imageBytes(first.shape));
    labels.set(s.labels, at);
    at += s.count;
  }
  return { shape: first.shape, count, pixels, labels };
}
