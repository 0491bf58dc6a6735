/**
 * The contract every ShardCache keeps (client/data/shard-cache.ts), as
 * plain async checks that throw on failure, so the same suite runs in Node
 * against the in-memory cache and inside Chromium against IndexedDB.
 */
import type { ShardCache } from '../../client/data/shard-cache.ts';

/** Opens a cache by name; opening the same name again must see the same contents. */
export type OpenCache = (name: string) => Promise<ShardCache>;

export interface ContractCheck {
  readonly name: string;
  run(open: OpenCache, name: string): Promise<void>;
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function same(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (a === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const SHA = (i: number) => i.toString(16).padStart(64, '0');
const OWNER = { dataset: 'synthetic', version: '0123456789abcdef' };

export const SHARD_CACHE_CONTRACT: readonly ContractCheck[] = [
  {
    name: 'an unknown shard is undefined, and the new cache is empty',
    async run(open, name) {
      const cache = await open(name);
      check((await cache.get(SHA(1))) === undefined, 'get of an unknown shard should be undefined');
      check((await cache.list()).length === 0, 'a new cache should list nothing');
      cache.close();
    },
  },
  {
    name: 'put then get returns the same bytes, as an independent copy',
    async run(open, name) {
      const cache = await open(name);
      const data = bytes(1000, 7);
      await cache.put(SHA(1), OWNER, data);
      data[0] = (data[0] ?? 0) ^ 0xff; // the caller's buffer changes after put
      const got = await cache.get(SHA(1));
      check(same(got, bytes(1000, 7)), 'get should return the bytes as they were put');
      if (got !== undefined) got[1] = (got[1] ?? 0) ^ 0xff; // the caller changes what it got
      check(same(await cache.get(SHA(1)), bytes(1000, 7)), 'changing a returned buffer must not change the cache');
      cache.close();
    },
  },
  {
    name: 'list describes every shard without its bytes',
    async run(open, name) {
      const cache = await open(name);
      await cache.put(SHA(1), OWNER, bytes(10, 1));
      await cache.put(SHA(2), { dataset: 'cifar10', version: 'fedcba9876543210' }, bytes(20, 2));
      const list = (await cache.list()).sort((a, b) => a.sha256.localeCompare(b.sha256));
      check(list.length === 2, `list should have 2 entries, has ${list.length}`);
      const [a, b] = list;
      check(a?.sha256 === SHA(1) && a.dataset === 'synthetic' && a.version === OWNER.version && a.size === 10, `bad first entry ${JSON.stringify(a)}`);
      check(b?.sha256 === SHA(2) && b.dataset === 'cifar10' && b.version === 'fedcba9876543210' && b.size === 20, `bad second entry ${JSON.stringify(b)}`);
      check(typeof a.storedAt === 'number' && a.storedAt > 0, 'storedAt should be a time');
      check(!('bytes' in a), 'list entries should not carry the bytes');
      cache.close();
    },
  },
  {
    name: 'put on an existing shard replaces it and its owner',
    async run(open, name) {
      const cache = await open(name);
      await cache.put(SHA(3), OWNER, bytes(10, 3));
      await cache.put(SHA(3), { dataset: 'synthetic', version: 'aaaaaaaaaaaaaaaa' }, bytes(12, 4));
      const list = await cache.list();
      check(list.length === 1 && list[0]?.version === 'aaaaaaaaaaaaaaaa' && list[0].size === 12, `replacing should leave one updated entry, got ${JSON.stringify(list)}`);
      check(same(await cache.get(SHA(3)), bytes(12, 4)), 'get should return the replacement');
      cache.close();
    },
  },
  {
    name: 'delete removes one shard; deleting an unknown one is harmless',
    async run(open, name) {
      const cache = await open(name);
      await cache.put(SHA(1), OWNER, bytes(10, 1));
      await cache.put(SHA(2), OWNER, bytes(10, 2));
      await cache.delete(SHA(1));
      await cache.delete(SHA(99));
      check((await cache.get(SHA(1))) === undefined, 'a deleted shard should be gone');
      check(same(await cache.get(SHA(2)), bytes(10, 2)), 'the other shard should stay');
      check((await cache.list()).map((s) => s.sha256).join() === SHA(2), 'list should only show the remaining shard');
      cache.close();
    },
  },
  {
    name: 'clear empties the cache',
    async run(open, name) {
      const cache = await open(name);
      for (let i = 1; i <= 5; i++) await cache.put(SHA(i), OWNER, bytes(100, i));
      await cache.clear();
      check((await cache.list()).length === 0, 'list should be empty after clear');
      check((await cache.get(SHA(3))) === undefined, 'get should find nothing after clear');
      cache.close();
    },
  },
  {
    name: 'contents survive closing and opening again (a later visit)',
    async run(open, name) {
      const first = await open(name);
      await first.put(SHA(5), OWNER, bytes(50_000, 5));
      first.close();
      const second = await open(name);
      check(same(await second.get(SHA(5)), bytes(50_000, 5)), 'the shard should still be there after reopening');
      check((await second.list()).length === 1, 'the listing should survive reopening');
      second.close();
    },
  },
  {
    name: 'a shard of several megabytes round-trips',
    async run(open, name) {
      const cache = await open(name);
      const big = bytes(4_000_000, 11);
      await cache.put(SHA(6), OWNER, big);
      check(same(await cache.get(SHA(6)), big), 'the big shard should come back intact');
      cache.close();
    },
  },
];
