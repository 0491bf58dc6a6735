/**
 * Training data for `petri worker`: the manifest and shards from the server,
 * each verified by SHA-256 and cached on disk, so a restart downloads nothing.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { concatImageSets } from '../../shared/data/assemble.ts';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { parseManifest, type Manifest } from '../../shared/data/manifest.ts';
import { decodeShard } from '../../shared/data/shard-format.ts';

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status} ${await response.text().catch(() => '')}`.trim());
  return new Uint8Array(await response.arrayBuffer());
}

/** Loads (from cache or server) the whole train split a manifest describes. */
export async function loadTrainingData(serverUrl: string, manifestUrl: string, cacheDir: string, log: (line: string) => void = () => {}): Promise<{ manifest: Manifest; data: ImageSet }> {
  const manifest = parseManifest(JSON.parse(new TextDecoder().decode(await fetchBytes(new URL(manifestUrl, serverUrl).href))));
  mkdirSync(cacheDir, { recursive: true });
  const sets: ImageSet[] = [];
  let downloaded = 0;
  for (const shard of manifest.shards) {
    const path = join(cacheDir, `${shard.sha256}.bin`);
    let bytes: Uint8Array | null = null;
    if (existsSync(path)) {
      const cached = new Uint8Array(await readFile(path));
      if (sha256(cached) === shard.sha256) bytes = cached;
    }
    if (bytes === null) {
      bytes = await fetchBytes(new URL(shard.url, serverUrl).href);
      if (sha256(bytes) !== shard.sha256) throw new Error(`shard ${shard.url} does not match its SHA-256; the server or the network corrupted it`);
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, bytes);
      await rename(tmp, path);
      downloaded += bytes.length;
    }
    sets.push(decodeShard(bytes, { source: shard.url, count: shard.count, shape: manifest.imageShape, numClasses: manifest.numClasses }).images);
  }
  log(`dataset ${manifest.dataset}: ${manifest.splits.train} training images (${(downloaded / 1e6).toFixed(1)} MB downloaded, the rest from ${cacheDir})`);
  return { manifest, data: concatImageSets(sets) };
}

export { sha256 };
