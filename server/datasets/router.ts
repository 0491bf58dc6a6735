/**
 * HTTP routes through which browsers get training data:
 *
 *   GET /data/<dataset>/manifest.json   short cache, ETag
 *   GET /data/shards/<sha256>.bin       immutable (content-addressed)
 *
 * Only shards listed in some prepared manifest (train splits) are served,
 * looked up by hash in an index built from those manifests; no request path
 * is ever joined onto a file path, so nothing else in the data directory,
 * in particular the validation and test splits, can be reached.
 */
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Router, type Request, type Response } from 'express';
import { DATASET_NAME } from '../../shared/data/manifest.ts';
import { sha256Hex } from './hash.ts';
import { datasetsDir, listPrepared, shardPath } from './store.ts';

const SHARD_FILE = /^([0-9a-f]{64})\.bin$/;
/** Manifests may change when a dataset is prepared again; browsers recheck after a minute. */
const MANIFEST_CACHE = 'public, max-age=60';
const SHARD_CACHE = 'public, max-age=31536000, immutable';

interface ServedIndex {
  readonly manifests: ReadonlyMap<string, { body: string; etag: string }>;
  readonly shards: ReadonlyMap<string, { path: string; bytes: number }>;
}

/**
 * Creates the router serving manifests and train shards from `dataDir`.
 * It notices datasets prepared or replaced after its creation.
 */
export function createDatasetRouter(dataDir: string): Router {
  const router = Router();
  const index = indexLoader(dataDir);

  router.get('/data/:dataset/manifest.json', async (req: Request, res: Response) => {
    const name = String(req.params.dataset);
    const entry = DATASET_NAME.test(name) ? (await index()).manifests.get(name) : undefined;
    if (entry === undefined) {
      res.status(404).json({ error: `no prepared dataset '${name}'` });
      return;
    }
    res.set({ 'Cache-Control': MANIFEST_CACHE, ETag: entry.etag });
    if (notModified(req, entry.etag)) {
      res.status(304).end();
      return;
    }
    res.type('application/json').send(entry.body);
  });

  router.get('/data/shards/:file', async (req: Request, res: Response) => {
    const match = SHARD_FILE.exec(String(req.params.file));
    const sha256 = match?.[1];
    const shard = sha256 === undefined ? undefined : (await index()).shards.get(sha256);
    if (sha256 === undefined || shard === undefined) {
      res.status(404).json({ error: 'no such shard' });
      return;
    }
    const size = (await stat(shard.path).catch(() => undefined))?.size;
    if (size !== shard.bytes) {
      // Missing or damaged on disk: better no bytes than wrong bytes under an immutable URL.
      res.status(404).json({ error: 'shard unavailable' });
      return;
    }
    const etag = `"${sha256}"`;
    res.set({ 'Cache-Control': SHARD_CACHE, ETag: etag });
    if (notModified(req, etag)) {
      res.status(304).end();
      return;
    }
    res.set({ 'Content-Type': 'application/octet-stream', 'Content-Length': String(size) });
    const stream = createReadStream(shard.path);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });

  return router;
}

/**
 * Returns the served index, rebuilt when the set of prepared datasets
 * changes (their completion marks are checked on every call: a few stats).
 */
function indexLoader(dataDir: string): () => Promise<ServedIndex> {
  let signature = '';
  let current: Promise<ServedIndex> | undefined;
  return async () => {
    const now = await preparedSignature(dataDir);
    if (current === undefined || now !== signature) {
      signature = now;
      current = buildIndex(dataDir);
    }
    return current;
  };
}

async function preparedSignature(dataDir: string): Promise<string> {
  const names = await readdir(datasetsDir(dataDir)).catch(() => [] as string[]);
  const parts: string[] = [];
  for (const name of names.sort()) {
    const info = await stat(join(datasetsDir(dataDir), name, 'prepared.json')).catch(() => undefined);
    if (info !== undefined) parts.push(`${name}:${info.mtimeMs}:${info.ino}`);
  }
  return parts.join('|');
}

async function buildIndex(dataDir: string): Promise<ServedIndex> {
  const manifests = new Map<string, { body: string; etag: string }>();
  const shards = new Map<string, { path: string; bytes: number }>();
  const privateHashes = new Set<string>();
  for (const dataset of await listPrepared(dataDir)) {
    // Re-serialised from the validated manifest: only schema fields go out.
    const body = JSON.stringify(dataset.manifest);
    manifests.set(dataset.name, { body, etag: `"${sha256Hex(new TextEncoder().encode(body)).slice(0, 32)}"` });
    for (const s of dataset.manifest.shards) shards.set(s.sha256, { path: shardPath(dataDir, s.sha256), bytes: s.bytes });
    privateHashes.add(dataset.info.validation.sha256).add(dataset.info.test.sha256);
  }
  // Belt and braces: a private split is never served, even if its bytes were listed as a shard.
  for (const hash of privateHashes) shards.delete(hash);
  return { manifests, shards };
}

function notModified(req: Request, etag: string): boolean {
  const header = req.headers['if-none-match'];
  if (header === undefined) return false;
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}
