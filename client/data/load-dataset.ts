/**
 * Gets a dataset's training split into the tab: the manifest from the
 * server, then every shard from the cache or the network, each checked
 * against the SHA-256 the manifest names. A cached shard that fails the
 * check is dropped and downloaded again; a downloaded one that fails is
 * downloaded again (bypassing the HTTP cache) a few times before giving up.
 * Once the data is in, shards of other versions of the same dataset are
 * evicted from the cache.
 */
import { concatImageSets } from '../../shared/data/assemble.ts';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { parseManifest, type Manifest, type ShardEntry } from '../../shared/data/manifest.ts';
import { decodeShard } from '../../shared/data/shard-format.ts';
import type { DatasetProgress } from '../train/messages.ts';
import { isQuotaError, type ShardCache } from './shard-cache.ts';

export interface LoadDatasetOptions {
  /** The server's base URL (the page's origin). */
  readonly base: string;
  readonly manifestUrl: string;
  /** Null: no cache (every visit downloads). */
  readonly cache: ShardCache | null;
  readonly sha256: (bytes: Uint8Array) => Promise<string>;
  readonly fetch?: typeof fetch;
  readonly onProgress?: (progress: DatasetProgress) => void;
  /** Downloads of one shard before giving up (default 3). */
  readonly attempts?: number;
}

export interface LoadedDataset {
  readonly manifest: Manifest;
  readonly data: ImageSet;
  readonly progress: DatasetProgress;
  /** Shards dropped from the cache: damaged, or of another version. */
  readonly evicted: number;
}

/** A download failed (network, HTTP error): worth retrying later. */
export class DownloadError extends Error {
  override readonly name = 'DownloadError';
}

/** The server sent bytes that do not match their SHA-256, again and again. */
export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';
}

export async function loadDataset(options: LoadDatasetOptions): Promise<LoadedDataset> {
  const doFetch = options.fetch ?? fetch.bind(globalThis);
  const attempts = options.attempts ?? 3;
  const manifestUrl = new URL(options.manifestUrl, options.base).href;
  let response: Response;
  try {
    // Revalidate (ETag) every time: a re-prepared dataset must be noticed.
    response = await doFetch(manifestUrl, { cache: 'no-cache' });
  } catch (err) {
    throw new DownloadError(`could not reach the server for the dataset manifest (${errorText(err)})`);
  }
  if (!response.ok) throw new DownloadError(`the server answered HTTP ${response.status} for ${options.manifestUrl}`);
  const manifest = parseManifest(await response.json());
  const owner = { dataset: manifest.dataset, version: manifest.version };
  const bytesTotal = manifest.shards.reduce((n, s) => n + s.bytes, 0);
  let progress: DatasetProgress = {
    dataset: manifest.dataset,
    version: manifest.version,
    shards: manifest.shards.length,
    shardsDone: 0,
    bytesTotal,
    bytesDone: 0,
    bytesDownloaded: 0,
    done: false,
  };
  const report = (change: Partial<DatasetProgress>) => {
    progress = { ...progress, ...change };
    options.onProgress?.(progress);
  };
  report({});

  let cache = options.cache;
  let evicted = 0;
  let doneBytes = 0;
  let downloaded = 0;
  const sets: ImageSet[] = [];
  for (const shard of manifest.shards) {
    let bytes: Uint8Array | undefined;
    if (cache !== null) {
      const cached = await cache.get(shard.sha256).catch(() => undefined);
      if (cached !== undefined) {
        if (cached.length === shard.bytes && (await options.sha256(cached)) === shard.sha256) bytes = cached;
        else {
          await cache.delete(shard.sha256).catch(() => {});
          evicted++;
        }
      }
    }
    if (bytes === undefined) {
      bytes = await downloadShard(doFetch, options, shard, attempts, (received) =>
        report({ bytesDone: doneBytes + Math.min(received, shard.bytes), bytesDownloaded: downloaded + received }),
      );
      downloaded += bytes.length;
      if (cache !== null) {
        try {
          await cache.put(shard.sha256, owner, bytes);
        } catch (err) {
          // Train anyway from memory; only the next visit pays.
          const why = isQuotaError(err) ? 'the browser refused more storage (quota exceeded)' : `the cache failed (${errorText(err)})`;
          report({ cacheWarning: `the dataset could not be kept for next time: ${why}` });
          cache = null;
        }
      }
    }
    sets.push(decodeShard(bytes, { source: shard.url, count: shard.count, shape: manifest.imageShape, numClasses: manifest.numClasses }).images);
    doneBytes += shard.bytes;
    report({ shardsDone: sets.length, bytesDone: doneBytes, bytesDownloaded: downloaded });
  }
  if (options.cache !== null) evicted += await evictOtherVersions(options.cache, manifest);
  report({ done: true, bytesDone: bytesTotal });
  return { manifest, data: concatImageSets(sets), progress, evicted };
}

/** Removes cached shards of this dataset that the current version does not list. */
export async function evictOtherVersions(cache: ShardCache, manifest: Manifest): Promise<number> {
  const keep = new Set(manifest.shards.map((s) => s.sha256));
  let evicted = 0;
  for (const info of await cache.list()) {
    if (info.dataset === manifest.dataset && !keep.has(info.sha256)) {
      await cache.delete(info.sha256);
      evicted++;
    }
  }
  return evicted;
}

async function downloadShard(
  doFetch: typeof fetch,
  options: LoadDatasetOptions,
  shard: ShardEntry,
  attempts: number,
  onBytes: (received: number) => void,
): Promise<Uint8Array> {
  const url = new URL(shard.url, options.base).href;
  let lastError = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let bytes: Uint8Array;
    try {
      // A retry bypasses the HTTP cache, which may hold the bad copy.
      const response = await doFetch(url, attempt === 1 ? {} : { cache: 'reload' });
      if (!response.ok) throw new DownloadError(`HTTP ${response.status}`);
      bytes = await readBody(response, shard.bytes, onBytes);
    } catch (err) {
      lastError = errorText(err);
      if (attempt === attempts) throw new DownloadError(`could not download ${shard.url}: ${lastError}`);
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      continue;
    }
    if (bytes.length === shard.bytes && (await options.sha256(bytes)) === shard.sha256) return bytes;
    lastError = `the bytes received do not match the shard's SHA-256`;
  }
  throw new IntegrityError(`${shard.url}: ${lastError} after ${attempts} downloads; the server or something between it and this browser damages the data`);
}

/** Reads a response body into one buffer, reporting bytes as they arrive. */
async function readBody(response: Response, expected: number, onBytes: (received: number) => void): Promise<Uint8Array> {
  const reader = response.body?.getReader();
  if (reader === undefined) {
    const all = new Uint8Array(await response.arrayBuffer());
    onBytes(all.length);
    return all;
  }
  let buffer = new Uint8Array(expected);
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (received + value.length > buffer.length) {
      const grown = new Uint8Array(Math.max(buffer.length * 2, received + value.length));
      grown.set(buffer.subarray(0, received));
      buffer = grown;
    }
    buffer.set(value, received);
    received += value.length;
    onBytes(received);
  }
  return received === buffer.length ? buffer : buffer.slice(0, received);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
