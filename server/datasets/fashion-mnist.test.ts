import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeIdxImages, encodeIdxLabels } from './idx-reader.ts';
import { ensureDataset, loadSplit } from './index.ts';
import { splitIndices } from './split.ts';
import { md5Hex, serveFiles } from './test-support.ts';

const DEBIAN = '/usr/share/datasets/fashion-mnist';

describe('Fashion-MNIST', () => {
  const root = mkdtempSync(join(tmpdir(), 'petri-fmnist-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it.runIf(existsSync(join(DEBIAN, 'train-images-idx3-ubyte.gz')))(
    "prepares the real files of Debian's dataset-fashion-mnist package: 55,000 / 5,000 / 10,000 of 28x28x1",
    async () => {
      const dir = join(root, 'real');
      const ds = await ensureDataset(dir, 'fashion-mnist');
      expect(ds.info.source).toContain(DEBIAN);
      expect(ds.manifest.imageShape).toEqual([28, 28, 1]);
      expect(ds.manifest.numClasses).toBe(10);
      expect(ds.manifest.classNames[9]).toBe('Ankle boot');
      expect(ds.manifest.splits).toEqual({ train: 55_000, validation: 5000, test: 10_000 });
      expect(ds.manifest.shards).toHaveLength(11);
      const [train, validation, test] = await Promise.all(
        (['train', 'validation', 'test'] as const).map((s) => loadSplit(dir, 'fashion-mnist', s)),
      );
      expect(train!.count + validation!.count).toBe(60_000);
      expect(test!.count).toBe(10_000);
      expect(train!.shape).toEqual([28, 28, 1]);
      // The official sets are balanced: 6,000 and 1,000 of each class.
      const perClass = (labels: Uint8Array): number[] => Array.from({ length: 10 }, (_, c) => labels.filter((l) => l === c).length);
      expect(perClass(test!.labels)).toEqual(new Array(10).fill(1000));
      expect(perClass(Uint8Array.of(...train!.labels, ...validation!.labels))).toEqual(new Array(10).fill(6000));
    },
  );

  it('downloads the four IDX files from a mirror when the package is absent, checking each MD5', async () => {
    const image = (count: number, seed: number): Uint8Array =>
      new Uint8Array(gzipSync(encodeIdxImages({ shape: [28, 28, 1], count, pixels: new Uint8Array(count * 784).map((_, i) => (i * seed) & 0xff), labels: new Uint8Array(count) })));
    const labels = (count: number): Uint8Array => new Uint8Array(gzipSync(encodeIdxLabels(new Uint8Array(count).map((_, i) => i % 10))));
    const files = new Map([
      ['/fm/train-images-idx3-ubyte.gz', image(60_000, 3)],
      ['/fm/train-labels-idx1-ubyte.gz', labels(60_000)],
      ['/fm/t10k-images-idx3-ubyte.gz', image(10_000, 5)],
      ['/fm/t10k-labels-idx1-ubyte.gz', labels(10_000)],
    ]);
    const md5 = Object.fromEntries([...files].map(([path, bytes]) => [path.slice(4), md5Hex(bytes)]));
    const server = await serveFiles(files);
    const dir = join(root, 'mirror');
    try {
      const ds = await ensureDataset(dir, 'fashion-mnist', { systemDir: '', mirror: server.url('/fm/'), md5 });
      expect(server.requests.map((r) => r.path).sort()).toEqual([...files.keys()].sort());
      expect(ds.manifest.splits).toEqual({ train: 55_000, validation: 5000, test: 10_000 });
      const validation = await loadSplit(dir, 'fashion-mnist', 'validation');
      const original = splitIndices(60_000, 5000, 2017).validation[0]!;
      expect(validation.labels[0]).toBe(original % 10);
      expect(validation.pixels[100]).toBe((original * 784 + 100) * 3 & 0xff);
    } finally {
      await server.close();
    }
  });
});
