/**
 * CIFAR end to end: a generated archive in the official layout, served by a
 * local HTTP server, fetched through ensureDataset (good, corrupt, cut off,
 * offline) and imported from a local copy.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetError, ensureDataset, getDataset, importDataset, loadSplit } from './index.ts';
import { sha256Hex } from './hash.ts';
import { splitIndices } from './split.ts';
import { readTar } from './tar.ts';
import { cifar10Archive, fixtureLabel, fixturePixel, md5Hex, refusedUrl, serveFiles } from './test-support.ts';

const ARCHIVE = '/cifar-10-binary.tar.gz';

describe('CIFAR-10 fetch and import', () => {
  const root = mkdtempSync(join(tmpdir(), 'petri-cifar-'));
  let archive: Uint8Array;
  let md5: string;
  let n = 0;
  const dataDir = (): string => join(root, `data-${++n}`);
  beforeAll(() => {
    archive = cifar10Archive();
    md5 = md5Hex(archive);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('downloads the archive, checks its MD5 and prepares 45,000 / 5,000 / 10,000', async () => {
    const server = await serveFiles(new Map([[ARCHIVE, archive]]));
    const dir = dataDir();
    try {
      const ds = await ensureDataset(dir, 'cifar10', { url: server.url(ARCHIVE), md5 });
      const m = ds.manifest;
      expect(m.dataset).toBe('cifar10');
      expect(m.imageShape).toEqual([32, 32, 3]);
      expect(m.splits).toEqual({ train: 45_000, validation: 5000, test: 10_000 });
      expect(m.shards.map((s) => s.count)).toEqual(new Array(9).fill(5000));
      expect(m.classNames).toEqual('abcdefghij'.split('')); // from batches.meta.txt
      for (const [i, shard] of m.shards.entries()) {
        const bytes = readFileSync(ds.shardPaths[i]!);
        expect(sha256Hex(bytes)).toBe(shard.sha256);
        expect(bytes.length).toBe(shard.bytes);
      }
      expect(ds.info.source).toContain(`MD5 ${md5} verified`);

      // Pixels and labels survive archive -> CHW records -> HWC -> split -> shards exactly.
      const split = splitIndices(50_000, 5000, 2017);
      const check = (set: { pixels: Uint8Array; labels: Uint8Array }, k: number, original: number): void => {
        expect(set.labels[k]).toBe(fixtureLabel(original, 10));
        for (const p of [0, 1, 2, 1000, 3071]) expect(set.pixels[k * 3072 + p]).toBe(fixturePixel(original, p));
      };
      const train = await loadSplit(dir, 'cifar10', 'train');
      const validation = await loadSplit(dir, 'cifar10', 'validation');
      const test = await loadSplit(dir, 'cifar10', 'test');
      expect([train.count, validation.count, test.count]).toEqual([45_000, 5000, 10_000]);
      for (const k of [0, 1, 12_345, 44_999]) check(train, k, split.train[k]!);
      for (const k of [0, 4999]) check(validation, k, split.validation[k]!);
      for (const k of [0, 9999]) check(test, k, 50_000 + k);

      // A second call uses what is there.
      await ensureDataset(dir, 'cifar10', { url: server.url(ARCHIVE), md5 });
      expect(server.requests).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('refuses a corrupted download (MD5 mismatch) and prepares nothing', async () => {
    const bad = Uint8Array.from(archive);
    bad[Math.floor(bad.length / 2)]! ^= 0xff;
    const server = await serveFiles(new Map([[ARCHIVE, bad]]));
    const dir = dataDir();
    try {
      const run = ensureDataset(dir, 'cifar10', { url: server.url(ARCHIVE), md5 });
      await expect(run).rejects.toThrow(DatasetError);
      await expect(run).rejects.toThrow(/cifar-10-binary\.tar\.gz: MD5 mismatch/);
      expect(await getDataset(dir, 'cifar10')).toBeUndefined();
      expect(existsSync(join(dir, 'datasets', 'cifar10'))).toBe(false);
      expect(existsSync(join(dir, 'shards'))).toBe(false);
      expect(readdirSync(join(dir, 'downloads'))).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('resumes a download cut off half way with a Range request', async () => {
    const server = await serveFiles(new Map([[ARCHIVE, archive]]), { cutFirstAt: Math.floor(archive.length / 2) });
    const dir = dataDir();
    try {
      const ds = await ensureDataset(dir, 'cifar10', { url: server.url(ARCHIVE), md5, download: { retryDelayMs: 10 } });
      expect(ds.manifest.splits.train).toBe(45_000);
      expect(server.requests).toHaveLength(2);
      expect(server.requests[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
    } finally {
      await server.close();
    }
  });

  it('offline: says what was tried and how to proceed', async () => {
    const url = await refusedUrl(ARCHIVE);
    const dir = dataDir();
    const error = await ensureDataset(dir, 'cifar10', { url }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatasetError);
    const message = (error as Error).message;
    expect(message).toContain(`could not download ${url}: ECONNREFUSED`);
    expect(message).toContain(`npx petri data import cifar10 /path/to/cifar-10-binary.tar.gz --data-dir ${dir}`);
    expect(message).toContain('cifar-10-batches-bin/');
    expect(message).toContain('npx petri data fetch synthetic');
    expect(message).toContain('fashion-mnist');
    expect(await getDataset(dir, 'cifar10')).toBeUndefined();
  });

  it('imports the extracted folder; a truncated copy fails naming the file and leaves the prepared dataset intact', async () => {
    const dir = dataDir();
    const copy = join(root, 'copy');
    for (const entry of readTar(gunzipSync(archive), 'fixture')) {
      if (entry.type === 'directory') mkdirSync(join(copy, entry.name), { recursive: true });
      else writeFileSync(join(copy, entry.name), entry.data);
    }
    const ds = await importDataset(dir, 'cifar10', copy);
    expect(ds.manifest.splits).toEqual({ train: 45_000, validation: 5000, test: 10_000 });
    expect(ds.info.source).toBe(`imported from ${copy}`);

    const batch = join(copy, 'cifar-10-batches-bin', 'data_batch_3.bin');
    writeFileSync(batch, readFileSync(batch).subarray(0, 3073 * 5000 + 17));
    await expect(importDataset(dir, 'cifar10', join(copy, 'cifar-10-batches-bin'))).rejects.toThrow(
      /data_batch_3\.bin: .*not a whole number of 3073-byte CIFAR records/,
    );
    const truncated = join(root, 'cut.tar.gz');
    writeFileSync(truncated, archive.subarray(0, archive.length - 1000));
    await expect(importDataset(dir, 'cifar10', truncated)).rejects.toThrow(/cut\.tar\.gz: corrupt or truncated gzip/);
    expect((await getDataset(dir, 'cifar10'))?.manifest.version).toBe(ds.manifest.version);
    expect(readdirSync(join(dir, 'datasets'))).toEqual(['cifar10']);
  });
});
