import { readdirSync, readFileSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../../shared/data/manifest.ts';
import { sha256Hex } from './hash.ts';
import { createDatasetRouter, ensureDataset, type PreparedDataset } from './index.ts';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

describe('dataset router', () => {
  const dir = mkdtempSync(join(tmpdir(), 'petri-router-'));
  let server: Server;
  let ds: PreparedDataset;
  let port = 0;

  /** Raw GET: the path goes out exactly as written (no URL normalisation, unlike fetch). */
  const get = (path: string, headers: Record<string, string> = {}): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    ds = await ensureDataset(dir, 'synthetic', { synthetic: { train: 400, test: 100 }, shardSize: 100 });
    const app = express();
    app.use(createDatasetRouter(dir));
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the manifest with a short cache and an ETag', async () => {
    const res = await get('/data/synthetic/manifest.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('public, max-age=60');
    const manifest = parseManifest(JSON.parse(res.body.toString()));
    expect(manifest).toEqual(ds.manifest);
    expect(manifest.splits).toEqual({ train: 360, validation: 40, test: 100 });
    expect(manifest.shards.map((s) => s.count)).toEqual([100, 100, 100, 60]);
    const etag = res.headers.etag as string;
    expect(etag).toMatch(/^"[0-9a-f]+"$/);
    const again = await get('/data/synthetic/manifest.json', { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it('serves every train shard, immutable, with bytes matching its hash', async () => {
    for (const shard of ds.manifest.shards) {
      const res = await get(shard.url);
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(res.headers['content-type']).toBe('application/octet-stream');
      expect(Number(res.headers['content-length'])).toBe(shard.bytes);
      expect(sha256Hex(res.body)).toBe(shard.sha256);
      expect((await get(shard.url, { 'if-none-match': `"${shard.sha256}"` })).status).toBe(304);
    }
  });

  it('answers 404 for unknown datasets, unknown hashes and malformed names', async () => {
    const known = ds.manifest.shards[0]!.sha256;
    for (const path of [
      '/data/cifar10/manifest.json',
      '/data/shards/manifest.json',
      '/data/SYNTHETIC/manifest.json',
      `/data/shards/${'0'.repeat(64)}.bin`,
      `/data/shards/${known.toUpperCase()}.bin`,
      `/data/shards/${known}`,
      `/data/shards/${known}.bin.bak`,
      `/data/shards/${known.slice(1)}.bin`,
      `/data/shards/x${known}.bin`,
    ]) {
      expect((await get(path)).status, path).toBe(404);
    }
  });

  it('never returns validation or test bytes, whatever is asked', async () => {
    const privates = [readFileSync(ds.validationPath), readFileSync(ds.testPath)];
    // A stretch of pixels from the middle of each private split: no response may contain it.
    const needles = privates.map((b) => b.subarray(Math.floor(b.length / 2), Math.floor(b.length / 2) + 1024));
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const name of readdirSync(d)) {
        const path = join(d, name);
        if (statSync(path).isDirectory()) walk(path);
        else files.push(relative(dir, path));
      }
    };
    walk(dir);
    expect(files).toContain(join('datasets', 'synthetic', 'private', 'validation.bin'));
    const paths = new Set<string>([
      `/data/shards/${ds.info.validation.sha256}.bin`,
      `/data/shards/${ds.info.test.sha256}.bin`,
      '/data/synthetic/validation.json',
      '/data/synthetic/private/validation.bin',
      '/data/synthetic/manifest.json/../private/test.bin',
    ]);
    for (const file of files) {
      const base = file.split('/').pop()!;
      const enc = encodeURIComponent(file);
      for (const prefix of ['/', '/data/', '/data/shards/', '/data/synthetic/', '/datasets/']) {
        paths.add(`${prefix}${file}`);
        paths.add(`${prefix}${base}`);
        paths.add(`${prefix}${enc}`);
      }
      paths.add(`/data/shards/../../${file}`);
      paths.add(`/data/shards/..%2F..%2F${enc}`);
      paths.add(`/data/shards/%2e%2e/%2e%2e/${file}`);
      paths.add(`/data/synthetic/..%2F..%2F${enc}`);
      paths.add(`/data/${base.replace(/\.bin$/, '')}/manifest.json`);
    }
    let served = 0;
    for (const path of paths) {
      const res = await get(path);
      if (res.status === 200) served++;
      for (const [i, secret] of privates.entries()) {
        expect(res.body.equals(secret), `${path} returned a private split`).toBe(false);
        expect(res.body.includes(needles[i]!), `${path} contains private bytes`).toBe(false);
      }
    }
    // Only the manifest and the train shards (asked for by name) are ever served.
    expect(served).toBeGreaterThan(0);
  });

  it('follows a re-preparation: new manifest, new shards, old shards gone', async () => {
    const before = ds.manifest;
    const after = await ensureDataset(dir, 'synthetic', { synthetic: { train: 400, test: 100, seed: 9 }, shardSize: 100 });
    expect(after.manifest.version).not.toBe(before.version);
    const res = await get('/data/synthetic/manifest.json');
    expect(parseManifest(JSON.parse(res.body.toString())).version).toBe(after.manifest.version);
    expect((await get(after.manifest.shards[0]!.url)).status).toBe(200);
    expect((await get(before.shards[0]!.url)).status).toBe(404);
    ds = after;
  });
});
