import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { CIFAR10_RECORD, readCifarBatch } from './cifar-reader.ts';
import { generateSyntheticImages, SYNTHETIC_CLASSES, writeSyntheticCifar } from './synthetic.ts';

/** Softmax regression by full-batch gradient descent on standardised features; returns test accuracy. */
function linearAccuracy(train: number[][], trainLabels: Uint8Array, test: number[][], testLabels: Uint8Array): number {
  const d = (train[0]?.length ?? 0) + 1;
  const mean = new Float64Array(d - 1);
  const sd = new Float64Array(d - 1);
  for (const row of train) row.forEach((v, j) => (mean[j]! += v / train.length));
  for (const row of train) row.forEach((v, j) => (sd[j]! += (v - mean[j]!) ** 2 / train.length));
  const norm = (rows: number[][]): Float64Array[] =>
    rows.map((r) => Float64Array.from([...r.map((v, j) => (v - mean[j]!) / Math.sqrt(sd[j]! + 1e-9)), 1]));
  const X = norm(train);
  const W = new Float64Array(10 * d);
  const scores = (x: Float64Array): Float64Array => {
    const z = new Float64Array(10);
    for (let k = 0; k < 10; k++) for (let j = 0; j < d; j++) z[k]! += W[k * d + j]! * x[j]!;
    return z;
  };
  for (let it = 0; it < 200; it++) {
    const grad = new Float64Array(10 * d);
    X.forEach((x, i) => {
      const z = scores(x);
      const max = Math.max(...z);
      const e = z.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let k = 0; k < 10; k++) {
        const g = e[k]! / sum - (k === trainLabels[i] ? 1 : 0);
        for (let j = 0; j < d; j++) grad[k * d + j]! += (g * x[j]!) / X.length;
      }
    });
    for (let q = 0; q < W.length; q++) W[q]! -= grad[q]!;
  }
  const T = norm(test);
  const correct = T.filter((x, i) => {
    const z = scores(x);
    return z.indexOf(Math.max(...z)) === testLabels[i];
  }).length;
  return correct / T.length;
}

const images = (set: ImageSet): Uint8Array[] =>
  Array.from({ length: set.count }, (_, i) => set.pixels.subarray(i * 3072, (i + 1) * 3072));

/** The project's linear baseline sees exactly this: the mean of each channel. */
const meanColour = (px: Uint8Array): number[] => {
  const s = [0, 0, 0];
  for (let i = 0; i < px.length; i++) s[i % 3]! += px[i]! / 1024;
  return s;
};

/**
 * What one conv layer with fixed 2-tap kernels plus |.| and global pooling
 * computes: mean absolute differences along 4 orientations at 4 distances,
 * over the grey image, scaled by its contrast.
 */
const localEdges = (px: Uint8Array): number[] => {
  const g = new Float64Array(1024);
  for (let i = 0; i < 1024; i++) g[i] = (px[i * 3]! + px[i * 3 + 1]! + px[i * 3 + 2]!) / 3;
  const m = g.reduce((a, b) => a + b, 0) / 1024;
  const sd = Math.sqrt(g.reduce((a, b) => a + (b - m) ** 2, 0) / 1024) + 1;
  const out: number[] = [];
  for (const d of [1, 2, 3, 4]) {
    for (const [dx, dy] of [[d, 0], [0, d], [d, d], [d, -d]] as const) {
      let sum = 0;
      let n = 0;
      for (let y = Math.max(0, -dy); y < 32 - Math.max(0, dy); y++) {
        for (let x = 0; x < 32 - dx; x++, n++) sum += Math.abs(g[(y + dy) * 32 + x + dx]! - g[y * 32 + x]!);
      }
      out.push(sum / n / sd);
    }
  }
  return out;
};

describe('synthetic dataset', () => {
  const train = generateSyntheticImages(2000, 1);
  const test = generateSyntheticImages(500, 2);

  it('is deterministic from the seed', () => {
    const again = generateSyntheticImages(2000, 1);
    expect(Buffer.from(again.pixels).equals(Buffer.from(train.pixels))).toBe(true);
    expect(Buffer.from(again.labels).equals(Buffer.from(train.labels))).toBe(true);
    expect(Buffer.from(generateSyntheticImages(2000, 3).pixels).equals(Buffer.from(train.pixels))).toBe(false);
  });

  it('has 10 balanced classes of 32x32x3 images', () => {
    expect(train.shape).toEqual([32, 32, 3]);
    const counts = new Array(10).fill(0);
    for (const l of train.labels) counts[l]++;
    expect(counts).toEqual(new Array(10).fill(200));
    expect(SYNTHETIC_CLASSES).toHaveLength(10);
  });

  it('mean colour says nothing about the class, local edges say a lot', () => {
    const gap = linearAccuracy(images(train).map(meanColour), train.labels, images(test).map(meanColour), test.labels);
    const conv = linearAccuracy(images(train).map(localEdges), train.labels, images(test).map(localEdges), test.labels);
    expect(gap).toBeLessThan(0.2); // chance is 0.1
    expect(conv).toBeGreaterThan(0.7);
  });

  describe('written as CIFAR-10 binary files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'petri-syn-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('splits training data into files of at most 10,000 records, readable by the CIFAR reader', async () => {
      const files = await writeSyntheticCifar(dir, { train: 10_050, test: 20, seed: 5 });
      expect(files).toEqual(['data_batch_1.bin', 'data_batch_2.bin']);
      const first = readCifarBatch(new Uint8Array(readFileSync(join(dir, files[0]!))), CIFAR10_RECORD, files[0]!, 10_000);
      const second = readCifarBatch(new Uint8Array(readFileSync(join(dir, files[1]!))), CIFAR10_RECORD, files[1]!, 50);
      const generated = generateSyntheticImages(10_050, 5);
      expect(Buffer.from(first.pixels).equals(Buffer.from(generated.pixels.subarray(0, 10_000 * 3072)))).toBe(true);
      expect(Buffer.from(second.labels).equals(Buffer.from(generated.labels.subarray(10_000)))).toBe(true);
      const testSet = readCifarBatch(new Uint8Array(readFileSync(join(dir, 'test_batch.bin'))), CIFAR10_RECORD, 'test', 20);
      expect(testSet.count).toBe(20);
      expect(readFileSync(join(dir, 'batches.meta.txt'), 'utf8').trim().split('\n')).toEqual([...SYNTHETIC_CLASSES]);
    });
  });
});
