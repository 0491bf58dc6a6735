import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { downloadFile, DownloadError, type DownloadProgress } from './download.ts';
import { createProgressBar, formatBytes, formatProgress } from './progress.ts';
import { md5Hex, refusedUrl, serveFiles, type FixtureServer } from './test-support.ts';

const body = new Uint8Array(300_000).map((_, i) => (i * 31 + (i >> 9)) & 0xff);
const md5 = md5Hex(body);
const files = new Map([['/f.bin', body]]);

describe('downloadFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'petri-dl-'));
  let server: FixtureServer | undefined;
  let n = 0;
  const dest = (): string => join(dir, `out-${++n}.bin`);
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('downloads, reports progress and verifies the MD5', async () => {
    server = await serveFiles(files);
    const out = dest();
    const seen: DownloadProgress[] = [];
    await downloadFile(server.url('/f.bin'), out, { md5, onProgress: (p) => seen.push(p) });
    expect(Buffer.from(readFileSync(out)).equals(Buffer.from(body))).toBe(true);
    expect(existsSync(`${out}.part`)).toBe(false);
    expect(seen.at(-1)).toMatchObject({ received: body.length, total: body.length });
    expect(seen.every((p, i) => i === 0 || p.received >= seen[i - 1]!.received)).toBe(true);
    expect(formatProgress(seen.at(-1)!)).toMatch(/\[#+\] 100\.0% {2}293\.0 KiB \/ 293\.0 KiB {2}.*\/s/);
  });

  it('does nothing when the verified file is already there', async () => {
    server = await serveFiles(files);
    const out = dest();
    await downloadFile(server.url('/f.bin'), out, { md5 });
    await downloadFile(server.url('/f.bin'), out, { md5 });
    expect(server.requests).toHaveLength(1);
  });

  it('resumes with a Range request when the connection breaks half way', async () => {
    server = await serveFiles(files, { cutFirstAt: 150_000 });
    const out = dest();
    await downloadFile(server.url('/f.bin'), out, { md5, retryDelayMs: 10 });
    expect(Buffer.from(readFileSync(out)).equals(Buffer.from(body))).toBe(true);
    expect(server.requests.map((r) => r.range)).toEqual([undefined, expect.stringMatching(/^bytes=\d+-$/)]);
    const resumedAt = Number(/\d+/.exec(server.requests[1]!.range!)![0]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(150_000);
  });

  it('resumes a .part left by an earlier run', async () => {
    server = await serveFiles(files);
    const out = dest();
    writeFileSync(`${out}.part`, body.subarray(0, 123_456));
    await downloadFile(server.url('/f.bin'), out, { md5 });
    expect(server.requests.map((r) => r.range)).toEqual(['bytes=123456-']);
    expect(md5Hex(readFileSync(out))).toBe(md5);
  });

  it('starts over when the server ignores Range', async () => {
    server = await serveFiles(files, { ignoreRange: true });
    const out = dest();
    writeFileSync(`${out}.part`, new Uint8Array(1000).fill(7));
    await downloadFile(server.url('/f.bin'), out, { md5 });
    expect(md5Hex(readFileSync(out))).toBe(md5);
  });

  it('accepts a complete .part (416 on resume) and follows redirects', async () => {
    server = await serveFiles(files);
    const out = dest();
    writeFileSync(`${out}.part`, body);
    await downloadFile(server.url('/redirect/f.bin'), out, { md5 });
    expect(md5Hex(readFileSync(out))).toBe(md5);
  });

  it('rejects an MD5 mismatch, deleting the download', async () => {
    server = await serveFiles(files);
    const out = dest();
    const run = downloadFile(server.url('/f.bin'), out, { md5: '0'.repeat(32) });
    await expect(run).rejects.toThrow(DownloadError);
    await expect(run).rejects.toThrow(/f\.bin: MD5 mismatch \(expected 0{32}, got [0-9a-f]{32}\).*deleted/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.part`)).toBe(false);
  });

  it('reports an HTTP error status with the URL', async () => {
    server = await serveFiles(files);
    await expect(downloadFile(server.url('/missing.bin'), dest())).rejects.toThrow(
      /could not download http:\/\/127\.0\.0\.1:\d+\/missing\.bin: the server answered HTTP 404/,
    );
  });

  it('fails at once and clearly when nothing listens', async () => {
    const url = await refusedUrl('/f.bin');
    await expect(downloadFile(url, dest())).rejects.toThrow(new RegExp(`could not download ${url.replace(/\./g, '\\.')}: ECONNREFUSED`));
  });
});

describe('progress bar', () => {
  const sink = (isTTY: boolean): { out: NodeJS.WriteStream; text: () => string } => {
    const chunks: string[] = [];
    return { out: { isTTY, write: (s: string) => chunks.push(s) } as unknown as NodeJS.WriteStream, text: () => chunks.join('') };
  };
  const at = (received: number): DownloadProgress => ({ url: 'u', received, total: 1000, bytesPerSecond: 2048 });

  it('prints one plain line per 10% when stderr is not a terminal', () => {
    const { out, text } = sink(false);
    const bar = createProgressBar('f.tar.gz', out);
    for (let r = 0; r <= 1000; r += 50) bar.update(at(r));
    bar.finish();
    const lines = text().trim().split('\n');
    expect(lines).toHaveLength(11);
    expect(lines[5]).toBe(`f.tar.gz [${'#'.repeat(15)}${'-'.repeat(15)}]  50.0%  500 B / 1000 B  2.0 KiB/s`);
  });

  it('redraws one line in place on a terminal', () => {
    const { out, text } = sink(true);
    const bar = createProgressBar('f', out);
    bar.update(at(1000));
    bar.finish();
    expect(text().startsWith(`\rf [${'#'.repeat(30)}] 100.0%`)).toBe(true);
    expect(text().endsWith('\u001b[K\n')).toBe(true);
  });

  it('formats sizes for people', () => {
    expect([formatBytes(5), formatBytes(2048), formatBytes(170_052_171), formatBytes(3 * 1024 ** 3)]).toEqual([
      '5 B',
      '2.0 KiB',
      '162.2 MiB',
      '3.00 GiB',
    ]);
    expect(formatProgress({ url: 'u', received: 10, total: undefined, bytesPerSecond: 1 })).toBe('10 B  1 B/s');
  });
});
