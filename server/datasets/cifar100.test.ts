import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeCifarBatch } from './cifar-reader.ts';
import { importDataset, loadSplit } from './index.ts';
import { fixtureImages, fixtureLabel, fixturePixel } from './test-support.ts';

describe('CIFAR-100 import', () => {
  const root = mkdtempSync(join(tmpdir(), 'petri-c100-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('reads the fine label of 3074-byte records from the official folder layout', async () => {
    const folder = join(root, 'cifar-100-binary');
    mkdirSync(folder, { recursive: true });
    const coarse = (n: number): Uint8Array => new Uint8Array(n).fill(99); // never a valid fine label's stand-in
    writeFileSync(join(folder, 'train.bin'), encodeCifarBatch(fixtureImages(0, 50_000, 100), 2, coarse(50_000)));
    writeFileSync(join(folder, 'test.bin'), encodeCifarBatch(fixtureImages(50_000, 10_000, 100), 2, coarse(10_000)));
    const names = Array.from({ length: 100 }, (_, i) => `class_${i}`);
    writeFileSync(join(folder, 'fine_label_names.txt'), `${names.join('\n')}\n`);

    const ds = await importDataset(join(root, 'data'), 'cifar100', root);
    expect(ds.manifest.numClasses).toBe(100);
    expect(ds.manifest.classNames).toEqual(names);
    expect(ds.manifest.splits).toEqual({ train: 45_000, validation: 5000, test: 10_000 });
    const test = await loadSplit(join(root, 'data'), 'cifar100', 'test');
    for (const k of [0, 777, 9999]) {
      expect(test.labels[k]).toBe(fixtureLabel(50_000 + k, 100));
      expect(test.pixels[k * 3072 + 2049]).toBe(fixturePixel(50_000 + k, 2049));
    }
    const counts = new Set(test.labels);
    expect(counts.size).toBe(100);
  });
});
