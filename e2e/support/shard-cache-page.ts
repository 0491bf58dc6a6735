/**
 * Test page: runs the shard-cache contract against the IndexedDB cache in
 * Chromium and publishes the results on `window.petriContract`.
 */
import { deleteDB } from 'idb';
import { IdbShardCache } from '../../client/data/idb-shard-cache.ts';
import { SHARD_CACHE_CONTRACT } from './shard-cache-contract.ts';

declare global {
  interface Window {
    petriContract?: { name: string; error: string | null }[];
  }
}

async function main(): Promise<void> {
  const results: { name: string; error: string | null }[] = [];
  for (const [i, c] of SHARD_CACHE_CONTRACT.entries()) {
    const name = `petri-contract-${i}`;
    await deleteDB(name);
    try {
      await c.run((n) => IdbShardCache.open(n), name);
      results.push({ name: c.name, error: null });
    } catch (err) {
      results.push({ name: c.name, error: err instanceof Error ? err.message : String(err) });
    }
    await deleteDB(name);
  }
  window.petriContract = results;
  document.title = 'done';
}

void main();
