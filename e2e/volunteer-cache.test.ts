/**
 * The volunteer tab's data path, without a server: the shard-cache
 * contract against the in-memory cache (Node) and the IndexedDB cache
 * (Chromium), the dataset loader (verification, re-download of bad shards,
 * eviction of old versions, quota), and the duty-cycle arithmetic.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { loadDataset, IntegrityError } from '../client/data/load-dataset.ts';
import { MemoryShardCache } from '../client/data/shard-cache.ts';
import { DutyCycle, clampDuty, restAfter } from '../client/train/duty-cycle.ts';
import type { DatasetProgress } from '../client/train/messages.ts';
import { shardUrl, type Manifest } from '../shared/data/manifest.ts';
import { encodeShard } from '../shared/data/shard-format.ts';
import { launchChromium } from './support/browser.ts';
import { buildTestPage } from './support/build-page.ts';
import { SHARD_CACHE_CONTRACT } from './support/shard-cache-contract.ts';
import { serveStatic } from './support/static-server.ts';

const sha256 = async (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('shard cache contract: in memory', () => {
  const stores = new Map<string, MemoryShardCache>();
  const open = async (name: string) => {
    let cache = stores.get(name);
    if (cache === undefined) stores.set(name, (cache = new MemoryShardCache()));
    return cache;
  };
  for (const [i, c] of SHARD_CACHE_CONTRACT.entries()) it(c.name, () => c.run(open, `memory-${i}`));
});

describe('shard cache contract: IndexedDB in Chromium', () => {
  let browser: Browser;
  let site: Awaited<ReturnType<typeof serveStatic>>;
  beforeAll(async () => {
    site = await serveStatic(await buildTestPage('e2e/support/shard-cache-page.ts'));
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await site?.close();
  });

  it('passes every check of the contract', async () => {
    const page = await browser.newPage();
    // IndexedDB wants a real origin: the static server's.
    await page.goto(site.url);
    await page.waitForFunction(() => document.title === 'done', null, { timeout: 60_000 });
    const results = await page.evaluate(() => window.petriContract ?? []);
    await page.close();
    expect(results.map((r) => r.name)).toEqual(SHARD_CACHE_CONTRACT.map((c) => c.name));
    expect(results.filter((r) => r.error !== null)).toEqual([]);
  });
});

// ---- the dataset loader, with a fake server ------------------------------------------

interface FakeServer {
  manifest: Manifest;
  shards: Map<string, Uint8Array>;
  requests: string[];
  /** Shard URLs to corrupt on the next N downloads. */
  corrupt: Map<string, number>;
  fetch: typeof fetch;
}

function fakeDataset(version: string, seeds: number[], dataset = 'synthetic'): { manifest: Manifest; shards: Map<string, Uint8Array> } {
  const shards = new Map<string, Uint8Array>();
  const entries = seeds.map((seed) => {
    const count = 20;
    const pixels = new Uint8Array(count * 8 * 8 * 3).map((_, i) => (i * 31 + seed * 7) & 0xff);
    const labels = new Uint8Array(count).map((_, i) => (i + seed) % 10);
    const bytes = encodeShard({ shape: [8, 8, 3], count, pixels, labels }, 10);
    const sha = createHash('sha256').update(bytes).digest('hex');
    shards.set(shardUrl(sha), bytes);
    return { url: shardUrl(sha), bytes: bytes.length, count, sha256: sha };
  });
  const manifest: Manifest = {
    formatVersion: 1,
    dataset,
    version,
    description: 'test',
    imageShape: [8, 8, 3],
    numClasses: 10,
    classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
    splits: { train: entries.reduce((n, e) => n + e.count, 0), validation: 0, test: 0 },
    shards: entries,
  };
  return { manifest, shards };
}

function fakeServer(data: { manifest: Manifest; shards: Map<string, Uint8Array> }): FakeServer {
  const server: FakeServer = {
    ...data,
    requests: [],
    corrupt: new Map(),
    fetch: async (input) => {
      const path = new URL(String(input)).pathname;
      server.requests.push(path);
      if (path === `/data/${server.manifest.dataset}/manifest.json`) return new Response(JSON.stringify(server.manifest));
      const bytes = server.shards.get(path);
      if (bytes === undefined) return new Response('no', { status: 404 });
      const bad = server.corrupt.get(path) ?? 0;
      if (bad > 0) {
        server.corrupt.set(path, bad - 1);
        const copy = new Uint8Array(bytes);
        copy[copy.length - 1] = ((copy[copy.length - 1] ?? 0) + 1) & 0xff;
        return new Response(copy);
      }
      return new Response(new Uint8Array(bytes));
    },
  };
  return server;
}

const shardRequests = (s: FakeServer) => s.requests.filter((r) => r.startsWith('/data/shards/')).length;

describe('dataset loader', () => {
  const load = (server: FakeServer, cache: MemoryShardCache | null, onProgress?: (p: DatasetProgress) => void) =>
    loadDataset({ base: 'http://petri.test/', manifestUrl: `/data/${server.manifest.dataset}/manifest.json`, cache, sha256, fetch: server.fetch, onProgress });

  it('downloads and verifies every shard on a first visit, and none on the next', async () => {
    const server = fakeServer(fakeDataset('00000000000000a1', [1, 2, 3]));
    const cache = new MemoryShardCache();
    const progress: DatasetProgress[] = [];
    const first = await load(server, cache, (p) => progress.push(p));
    expect(first.data.count).toBe(60);
    expect(shardRequests(server)).toBe(3);
    expect(first.progress.done).toBe(true);
    expect(first.progress.bytesDownloaded).toBe(first.progress.bytesTotal);
    expect(progress.at(-1)?.bytesDone).toBe(first.progress.bytesTotal);
    expect(progress.map((p) => p.shardsDone)).toContain(2);

    const second = await load(server, cache);
    expect(shardRequests(server)).toBe(3); // nothing more
    expect(second.progress.bytesDownloaded).toBe(0);
    expect(Array.from(second.data.pixels)).toEqual(Array.from(first.data.pixels));
    expect(Array.from(second.data.labels)).toEqual(Array.from(first.data.labels));
  });

  it('drops a cached shard that fails verification and downloads it again', async () => {
    const server = fakeServer(fakeDataset('00000000000000a2', [4, 5]));
    const cache = new MemoryShardCache();
    await load(server, cache);
    const [bad] = server.manifest.shards;
    cache.corrupt(bad!.sha256);
    const again = await load(server, cache);
    expect(again.evicted).toBe(1);
    expect(server.requests.filter((r) => r === bad!.url)).toHaveLength(2);
    expect(await sha256((await cache.get(bad!.sha256))!)).toBe(bad!.sha256);
  });

  it('downloads a shard again when the bytes received are damaged, and gives up if they always are', async () => {
    const server = fakeServer(fakeDataset('00000000000000a3', [6]));
    const [shard] = server.manifest.shards;
    server.corrupt.set(shard!.url, 1);
    const loaded = await load(server, new MemoryShardCache());
    expect(loaded.data.count).toBe(20);
    expect(server.requests.filter((r) => r === shard!.url)).toHaveLength(2);

    server.corrupt.set(shard!.url, 99);
    await expect(load(server, new MemoryShardCache())).rejects.toBeInstanceOf(IntegrityError);
  });

  it('evicts the shards of an older version of the dataset, and only those', async () => {
    const cache = new MemoryShardCache();
    const other = fakeServer(fakeDataset('00000000000000c1', [20], 'cifar10'));
    await load(other, cache);
    const v1 = fakeServer(fakeDataset('00000000000000b1', [7, 8]));
    await load(v1, cache);
    const v2 = fakeServer(fakeDataset('00000000000000b2', [8, 9]));
    const loaded = await load(v2, cache);
    expect(loaded.evicted).toBe(1); // seed 7's shard; seed 8's is shared by both versions
    const cached = await cache.list();
    expect(cached.filter((s) => s.dataset === 'synthetic').map((s) => s.sha256).sort()).toEqual(v2.manifest.shards.map((s) => s.sha256).sort());
    expect(cached.filter((s) => s.dataset === 'cifar10')).toHaveLength(1);
    expect(shardRequests(v2)).toBe(1); // the shared shard came from the cache
  });

  it('trains from memory when the cache is full, and says so', async () => {
    const server = fakeServer(fakeDataset('00000000000000d1', [10, 11, 12]));
    const oneShard = server.manifest.shards[0]!.bytes;
    const cache = new MemoryShardCache(oneShard + 10);
    const loaded = await load(server, cache);
    expect(loaded.data.count).toBe(60);
    expect(loaded.progress.cacheWarning).toMatch(/quota/);
    expect(await cache.list()).toHaveLength(1);
  });
});

describe('duty cycle', () => {
  it('rests so that work is at most the given share of the time', () => {
    expect(restAfter(100, 100)).toBe(0);
    expect(restAfter(100, 50)).toBe(100);
    expect(restAfter(100, 25)).toBe(300);
    expect(restAfter(100, 1)).toBe(900); // clamped to 10%
    expect(clampDuty(Number.NaN)).toBe(100);
    expect(clampDuty(250)).toBe(100);
    expect(clampDuty(33.3)).toBe(33);
  });

  it('carries short rests over instead of dropping them', () => {
    const duty = new DutyCycle(50, 20);
    expect(duty.afterWork(5)).toBe(0);
    expect(duty.afterWork(5)).toBe(0);
    expect(duty.afterWork(5)).toBe(0);
    expect(duty.afterWork(5)).toBe(20);
    duty.percent = 100;
    expect(duty.afterWork(1000)).toBe(0);
  });
});
