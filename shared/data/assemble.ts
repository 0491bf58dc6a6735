/** Joins decoded shards into one ImageSet (the worker's training data). */
import { imageBytes, type ImageSet } from './image-set.ts';

export function concatImageSets(sets: readonly ImageSet[]): ImageSet {
  const first = sets[0];
  if (first === undefined) throw new Error('no images');
  const size = imageBytes(first.shape);
  const count = sets.reduce((n, s) => n + s.count, 0);
  const pixels = new Uint8Array(count * size);
  const labels = new Uint8Array(count);
  let at = 0;
  for (const s of sets) {
    if (s.shape.join('x') !== first.shape.join('x')) throw new Error(`shard shape ${s.shape.join('x')} differs from ${first.shape.join('x')}`);
    pixels.set(s.pixels.subarray(0, s.count * size), at * size);
    labels.set(s.labels.subarray(0, s.count), at);
    at += s.count;
  }
  return { shape: first.shape, count, pixels, labels };
}
