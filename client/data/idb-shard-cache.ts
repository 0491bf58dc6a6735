/**
 * The shard cache in IndexedDB (through idb): one store of bytes keyed by
 * SHA-256 and one of small metadata records, written in one transaction, so
 * listing the cache never reads a shard.
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import { QuotaError, isQuotaError, type ShardCache, type ShardInfo } from './shard-cache.ts';

interface ShardDb extends DBSchema {
  bytes: { key: string; value: Uint8Array };
  meta: { key: string; value: ShardInfo };
}

export const SHARD_DB_NAME = 'petri-shards';

export class IdbShardCache implements ShardCache {
  private constructor(
    private readonly db: IDBPDatabase<ShardDb>,
    private readonly now: () => number,
  ) {}

  /** Opens (creating if needed) the cache database. @throws when IndexedDB is unavailable. */
  static async open(name = SHARD_DB_NAME, now: () => number = Date.now): Promise<IdbShardCache> {
    if (typeof indexedDB === 'undefined') throw new Error('this browser has no IndexedDB');
    const db = await openDB<ShardDb>(name, 1, {
      upgrade(database) {
        database.createObjectStore('bytes');
        database.createObjectStore('meta', { keyPath: 'sha256' });
      },
    });
    return new IdbShardCache(db, now);
  }

  async get(sha256: string): Promise<Uint8Array | undefined> {
    return this.db.get('bytes', sha256);
  }

  async put(sha256: string, owner: { dataset: string; version: string }, bytes: Uint8Array): Promise<void> {
    try {
      const tx = this.db.transaction(['bytes', 'meta'], 'readwrite');
      await Promise.all([
        tx.objectStore('bytes').put(bytes, sha256),
        tx.objectStore('meta').put({ sha256, dataset: owner.dataset, version: owner.version, size: bytes.length, storedAt: this.now() }),
        tx.done,
      ]);
    } catch (err) {
      if (isQuotaError(err)) throw new QuotaError(`the browser refused to store ${bytes.length} more bytes (storage quota exceeded)`);
      throw err;
    }
  }

  async delete(sha256: string): Promise<void> {
    const tx = this.db.transaction(['bytes', 'meta'], 'readwrite');
    await Promise.all([tx.objectStore('bytes').delete(sha256), tx.objectStore('meta').delete(sha256), tx.done]);
  }

  async list(): Promise<ShardInfo[]> {
    return this.db.getAll('meta');
  }

  async clear(): Promise<void> {
    const tx = this.db.transaction(['bytes', 'meta'], 'readwrite');
    await Promise.all([tx.objectStore('bytes').clear(), tx.objectStore('meta').clear(), tx.done]);
  }

  close(): void {
    this.db.close();
  }
}
