/** The preparation pipeline and the server API, on small synthetic datasets. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { decodeShard } from '../../shared/data/shard-format.ts';
import { sha256Hex } from './hash.ts';
import { DatasetError, ensureDataset, getDataset, listDatasets, loadSplit, prepareDataset } from './index.ts';
import { generateSyntheticImages } from './synthetic.ts';

const SMALL = { synthetic: { train: 1000, test: 200, seed: 4 }, shardSize: 300 } as const;

const imageKeys = (set: ImageSet): string[] =>
  Array.from({ length: set.count }, (_, i) => Buffer.from(set.pixels.subarray(i * 3072, (i + 1) * 3072)).toString('latin1'));

describe('dataset preparation', () => {
  const root = mkdtempSync(join(tmpdir(), 'petri-prep-'));
  let n = 0;
  const dataDir = (): string => join(root, `data-${++n}`);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('splits without overlap, keeps the test set apart and shards the train split', async () => {
    const dir = dataDir();
    const ds = await ensureDataset(dir, 'synthetic', SMALL);
    expect(ds.manifest.dataset).toBe('synthetic');
    expect(ds.manifest.description).toMatch(/not CIFAR-10/);
    expect(ds.manifest.splits).toEqual({ train: 900, validation: 100, test: 200 });
    expect(ds.manifest.shards.map((s) => s.count)).toEqual([300, 300, 300]);
    for (const [i, s] of ds.manifest.shards.entries()) {
      const bytes = readFileSync(ds.shardPaths[i]!);
      expect(sha256Hex(bytes)).toBe(s.sha256);
      expect(s.url).toBe(`/data/shards/${s.sha256}.bin`);
      expect(decodeShard(bytes).images.count).toBe(s.count);
    }
    const train = await loadSplit(dir, 'synthetic', 'train');
    const validation = await loadSplit(dir, 'synthetic', 'validation');
    const test = await loadSplit(dir, 'synthetic', 'test');
    // Every generated training image lands in exactly one of train and validation.
    const generated = imageKeys(generateSyntheticImages(1000, 4));
    const trainKeys = imageKeys(train);
    const validationKeys = imageKeys(validation);
    expect(new Set(generated).size).toBe(1000);
    expect([...trainKeys, ...validationKeys].sort()).toEqual([...generated].sort());
    const testKeys = new Set(imageKeys(test));
    expect(generated.some((k) => testKeys.has(k))).toBe(false);
  });

  it('is deterministic: same parameters, same version and shard hashes', async () => {
    const a = await ensureDataset(dataDir(), 'synthetic', SMALL);
    const b = await ensureDataset(dataDir(), 'synthetic', SMALL);
    expect(b.manifest.version).toBe(a.manifest.version);
    expect(b.manifest.shards).toEqual(a.manifest.shards);
    expect(b.info.validation.sha256).toBe(a.info.validation.sha256);
    const other = await ensureDataset(dataDir(), 'synthetic', { ...SMALL, splitSeed: 1 });
    expect(other.manifest.version).not.toBe(a.manifest.version);
  });

  it('reuses a prepared dataset, and prepares again when parameters change', async () => {
    const dir = dataDir();
    const [first, concurrent] = await Promise.all([ensureDataset(dir, 'synthetic', SMALL), ensureDataset(dir, 'synthetic', SMALL)]);
    expect(concurrent.info.preparedAt).toBe(first.info.preparedAt);
    expect((await ensureDataset(dir, 'synthetic')).info.preparedAt).toBe(first.info.preparedAt);
    const resharded = await ensureDataset(dir, 'synthetic', { ...SMALL, shardSize: 450 });
    expect(resharded.manifest.shards.map((s) => s.count)).toEqual([450, 450]);
    const bigger = await ensureDataset(dir, 'synthetic', { synthetic: { train: 1200 } });
    expect(bigger.manifest.splits).toEqual({ train: 1080, validation: 120, test: 1000 });
    expect(bigger.info.params.synthetic).toEqual({ train: 1200, test: 1000, seed: 1 });
    expect((await listDatasets(dir)).map((d) => d.name)).toEqual(['synthetic']);
  });

  it('detects corrupt files on load, naming them', async () => {
    const dir = dataDir();
    const ds = await ensureDataset(dir, 'synthetic', SMALL);
    const shard = ds.shardPaths[1]!;
    const bytes = readFileSync(shard);
    bytes[5000] = bytes[5000]! ^ 1;
    writeFileSync(shard, bytes);
    await expect(loadSplit(dir, 'synthetic', 'train')).rejects.toThrow(
      new RegExp(`${shard.replace(/[.]/g, '\\.')}: corrupt \\(SHA-256 [0-9a-f]{64}, expected ${ds.manifest.shards[1]!.sha256}\\)`),
    );
    writeFileSync(ds.testPath, readFileSync(ds.testPath).subarray(0, 1000));
    await expect(loadSplit(dir, 'synthetic', 'test')).rejects.toThrow(/test\.bin: corrupt/);
    // Preparing again repairs the damage.
    await prepareDataset(dir, 'synthetic', SMALL);
    expect((await loadSplit(dir, 'synthetic', 'train')).count).toBe(900);
  });

  it('ignores incomplete datasets and says how to prepare a missing one', async () => {
    const dir = dataDir();
    mkdirSync(join(dir, 'datasets', 'cifar10', 'private'), { recursive: true });
    writeFileSync(join(dir, 'datasets', 'cifar10', 'manifest.json'), '{}');
    mkdirSync(join(dir, 'datasets', '.tmp-123-abc-synthetic'), { recursive: true });
    expect(await listDatasets(dir)).toEqual([]);
    expect(await getDataset(dir, 'cifar10')).toBeUndefined();
    await expect(loadSplit(dir, 'cifar10', 'validation')).rejects.toThrow(
      `dataset 'cifar10' is not prepared in ${dir}; run: npx petri data fetch cifar10 --data-dir ${dir}`,
    );
    await expect(ensureDataset(dir, 'imagenet')).rejects.toThrow(DatasetError);
    await expect(ensureDataset(dir, 'imagenet')).rejects.toThrow(/unknown dataset 'imagenet'; known datasets: cifar10, cifar100, fashion-mnist, synthetic/);
    await expect(ensureDataset(dir, 'synthetic', { synthetic: { train: 0 } })).rejects.toThrow(/synthetic train must be a positive integer/);
  });
});
