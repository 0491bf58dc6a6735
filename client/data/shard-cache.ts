/**
 * The tab's cache of dataset shards: content-addressed (by SHA-256), each
 * shard tagged with the dataset and version it was downloaded for, so that
 * a new version of a dataset can evict the old one. Two implementations
 * pass one contract suite (e2e/support/shard-cache-contract.ts): the
 * IndexedDB one the page uses (idb-shard-cache.ts) and this in-memory one
 * (for tests, and for browsers where IndexedDB is unavailable).
 */

/** What the cache knows about a shard without reading its bytes. */
export interface ShardInfo {
  readonly sha256: string;
  readonly dataset: string;
  readonly version: string;
  readonly size: number;
  readonly storedAt: number;
}

export interface ShardCache {
  /** The stored bytes, or undefined. The caller verifies them (a disk can corrupt). */
  get(sha256: string): Promise<Uint8Array | undefined>;
  /** Stores (or replaces) a shard. @throws QuotaError when the browser refuses the space. */
  put(sha256: string, owner: { dataset: string; version: string }, bytes: Uint8Array): Promise<void>;
  delete(sha256: string): Promise<void>;
  list(): Promise<ShardInfo[]>;
  clear(): Promise<void>;
  close(): void;
}

/** The browser would not give the cache more space. */
export class QuotaError extends Error {
  override readonly name = 'QuotaError';
}

/** True for the errors browsers raise when storage is full or denied. */
export function isQuotaError(err: unknown): boolean {
  if (err instanceof QuotaError) return true;
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'QuotaExceededError' || name === 'NS_ERROR_DOM_QUOTA_REACHED';
}

/** A copy of the bytes, as an independent buffer (callers may transfer theirs). */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

export class MemoryShardCache implements ShardCache {
  private readonly shards = new Map<string, { info: ShardInfo; bytes: Uint8Array }>();

  /** `quotaBytes` limits the total size, to exercise quota handling in tests. */
  constructor(
    private readonly quotaBytes = Number.POSITIVE_INFINITY,
    private readonly now: () => number = Date.now,
  ) {}

  async get(sha256: string): Promise<Uint8Array | undefined> {
    const entry = this.shards.get(sha256);
    return entry === undefined ? undefined : copyBytes(entry.bytes);
  }

  async put(sha256: string, owner: { dataset: string; version: string }, bytes: Uint8Array): Promise<void> {
    const others = [...this.shards.values()].filter((s) => s.info.sha256 !== sha256).reduce((n, s) => n + s.info.size, 0);
    if (others + bytes.length > this.quotaBytes) throw new QuotaError(`the cache is limited to ${this.quotaBytes} bytes`);
    this.shards.set(sha256, {
      info: { sha256, dataset: owner.dataset, version: owner.version, size: bytes.length, storedAt: this.now() },
      bytes: copyBytes(bytes),
    });
  }

  async delete(sha256: string): Promise<void> {
    this.shards.delete(sha256);
  }

  async list(): Promise<ShardInfo[]> {
    return [...this.shards.values()].map((s) => ({ ...s.info }));
  }

  async clear(): Promise<void> {
    this.shards.clear();
  }

  close(): void {}

  /** Test helper: flips a byte of a stored shard, as a failing disk would. */
  corrupt(sha256: string): void {
    const entry = this.shards.get(sha256);
    if (entry !== undefined && entry.bytes.length > 0) entry.bytes[entry.bytes.length - 1] = ((entry.bytes[entry.bytes.length - 1] ?? 0) + 1) & 0xff;
  }
}
