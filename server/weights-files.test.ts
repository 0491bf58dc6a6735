import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BadShaError, WeightsFiles, WeightsTooLargeError } from './weights-files.ts';

function sha(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function bytesOf(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

describe('WeightsFiles', () => {
  let dir: string;
  let files: WeightsFiles;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'petri-weights-'));
    files = new WeightsFiles(join(dir, 'weights'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('round-trips bytes under their SHA-256', async () => {
    const data = bytesOf(10_000);
    const id = await files.putBytes(data);
    expect(id).toBe(sha(data));
    expect(files.has(id)).toBe(true);
    expect(files.path(id)).toBe(join(dir, 'weights', `${id}.bin`));
    const back = await files.read(id);
    expect(back).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
    expect(files.list()).toEqual([id]);
    // Idempotent: the same bytes again give the same single file.
    expect(await files.putBytes(data)).toBe(id);
    expect(readdirSync(files.dir)).toEqual([`${id}.bin`]);
  });

  it('streams from an async iterable and from a Node stream, hashing as it goes', async () => {
    const data = bytesOf(100_003, 2);
    const a = await files.putStream(chunks(data, 4096), data.length);
    expect(a).toEqual({ sha256: sha(data), bytes: data.length });
    const other = bytesOf(5000, 3);
    const b = await files.putStream(Readable.from([Buffer.from(other.subarray(0, 1000)), Buffer.from(other.subarray(1000))]), 1e9);
    expect(b).toEqual({ sha256: sha(other), bytes: other.length });
    expect(files.list()).toEqual([a.sha256, b.sha256].sort());
    expect(Buffer.from(await files.read(b.sha256)).equals(Buffer.from(other))).toBe(true);
  });

  it('stores an empty file', async () => {
    const r = await files.putStream(chunks(new Uint8Array(0), 1), 0);
    expect(r.bytes).toBe(0);
    expect((await files.read(r.sha256)).length).toBe(0);
  });

  it('refuses an upload past its cap and keeps nothing of it', async () => {
    const data = bytesOf(10_000);
    let pulled = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const c of chunks(data, 1000)) {
        pulled++;
        yield c;
      }
    }
    const err = await files.putStream(counted(), 4500).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WeightsTooLargeError);
    expect((err as Error).message).toMatch(/exceeds the limit of 4500 bytes/);
    expect(pulled).toBe(5); // stopped reading at the chunk that went past
    expect(readdirSync(files.dir)).toEqual([]);
    expect(files.has(sha(data))).toBe(false);
    // Exactly at the cap is fine.
    expect((await files.putStream(chunks(data, 1000), 10_000)).bytes).toBe(10_000);
  });

  it('deletes the temporary file when the source stream fails', async () => {
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield bytesOf(100);
      throw new Error('connection reset');
    }
    await expect(files.putStream(broken(), 1e6)).rejects.toThrow('connection reset');
    expect(readdirSync(files.dir)).toEqual([]);
  });

  it('refuses text chunks', async () => {
    await expect(files.putStream(Readable.from(['abc']), 100)).rejects.toThrow(TypeError);
    expect(readdirSync(files.dir)).toEqual([]);
  });

  it('validates the hash on every call: no path traversal', async () => {
    const good = sha(bytesOf(3));
    const bad = ['', '../etc/passwd', `../${good.slice(3)}`, good.toUpperCase(), `${good}0`, good.slice(1), `${good.slice(0, 63)}/`, `${good.slice(0, 63)}g`];
    for (const b of bad) {
      expect(() => files.path(b)).toThrow(BadShaError);
      expect(() => files.has(b)).toThrow(BadShaError);
      expect(() => files.delete(b)).toThrow(BadShaError);
      await expect(files.read(b)).rejects.toThrow(BadShaError);
    }
    expect(() => files.path(undefined as unknown as string)).toThrow(BadShaError);
    expect(files.has(good)).toBe(false);
    await expect(files.read(good)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('delete removes a file and says whether there was one', async () => {
    const id = await files.putBytes(bytesOf(64));
    expect(files.delete(id)).toBe(true);
    expect(files.has(id)).toBe(false);
    expect(files.delete(id)).toBe(false);
  });

  it('gc keeps the referenced files, deletes the others and the stray temporary files', async () => {
    const ids = await Promise.all([1, 2, 3, 4].map((s) => files.putBytes(bytesOf(256, s))));
    const [a, b, c, d] = ids as [string, string, string, string];
    writeFileSync(join(files.dir, '.upload-0123456789abcdef.tmp'), 'half an upload');
    writeFileSync(join(files.dir, 'README'), 'not ours');
    const { deleted } = files.gc(new Set([a, c, 'not-a-sha']));
    expect(deleted).toEqual([b, d].sort());
    expect(files.list()).toEqual([a, c].sort());
    expect(readdirSync(files.dir).sort()).toEqual([`${a}.bin`, `${c}.bin`, 'README'].sort());
    expect(files.gc(new Set([a, c])).deleted).toEqual([]);
  });

  it('gc spares young files when asked to', async () => {
    const old = await files.putBytes(bytesOf(10, 1));
    const fresh = await files.putBytes(bytesOf(10, 2));
    const past = new Date(Date.now() - 3_600_000);
    utimesSync(files.path(old), past, past);
    const oldTemp = join(files.dir, '.upload-aaaaaaaaaaaaaaaa.tmp');
    const newTemp = join(files.dir, '.upload-bbbbbbbbbbbbbbbb.tmp');
    writeFileSync(oldTemp, 'x');
    writeFileSync(newTemp, 'y');
    utimesSync(oldTemp, past, past);
    expect(files.gc(new Set(), { olderThanMs: 60_000 }).deleted).toEqual([old]);
    expect(files.list()).toEqual([fresh]);
    expect(readdirSync(files.dir).sort()).toEqual(['.upload-bbbbbbbbbbbbbbbb.tmp', `${fresh}.bin`].sort());
  });

  it('gc does not touch an upload in progress', async () => {
    const data = bytesOf(3000, 9);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield data.subarray(0, 1000);
      await gate;
      yield data.subarray(1000);
    }
    const put = files.putStream(slow(), 1e6);
    // Wait until the temporary file exists.
    for (let i = 0; i < 200 && readdirSync(files.dir).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(readdirSync(files.dir)).toHaveLength(1);
    files.gc(new Set());
    expect(readdirSync(files.dir)).toHaveLength(1);
    release();
    const r = await put;
    expect(r.sha256).toBe(sha(data));
    expect(files.list()).toEqual([r.sha256]);
  });
});
