/**
 * Helpers for the dataset tests: archives in the official CIFAR layouts with
 * predictable pixels, and a local HTTP file server that can misbehave
 * (cut a response off, corrupt it, ignore Range) the way real networks do.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { encodeCifarBatch } from './cifar-reader.ts';
import { writeTar } from './tar.ts';

/** The pixel value the fixtures put at byte `p` (HWC) of image `i`: checkable without storing. */
export function fixturePixel(i: number, p: number): number {
  return (i * 7 + p * 13 + (p >> 7)) & 0xff;
}

/** The label the fixtures give image `i` of `numClasses`. */
export function fixtureLabel(i: number, numClasses: number): number {
  return (i * 3 + (i >> 4)) % numClasses;
}

/** `count` 32x32x3 fixture images numbered from `first`. */
export function fixtureImages(first: number, count: number, numClasses: number): ImageSet {
  const pixels = new Uint8Array(count * 3072);
  const labels = new Uint8Array(count);
  for (let k = 0; k < count; k++) {
    labels[k] = fixtureLabel(first + k, numClasses);
    for (let p = 0; p < 3072; p++) pixels[k * 3072 + p] = fixturePixel(first + k, p);
  }
  return { shape: [32, 32, 3], count, pixels, labels };
}

/**
 * A tar.gz in the layout of the official cifar-10-binary.tar.gz: 5 x 10,000
 * training records (images 0..49,999) and 10,000 test records (50,000..).
 */
export function cifar10Archive(): Uint8Array {
  const dir = 'cifar-10-batches-bin';
  const members: { name: string; data?: Uint8Array }[] = [{ name: `${dir}/` }];
  members.push({ name: `${dir}/batches.meta.txt`, data: new TextEncoder().encode('a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n') });
  for (let b = 0; b < 5; b++) {
    members.push({ name: `${dir}/data_batch_${b + 1}.bin`, data: encodeCifarBatch(fixtureImages(b * 10_000, 10_000, 10)) });
  }
  members.push({ name: `${dir}/test_batch.bin`, data: encodeCifarBatch(fixtureImages(50_000, 10_000, 10)) });
  members.push({ name: `${dir}/readme.html`, data: new TextEncoder().encode('<p>fixture</p>') });
  return new Uint8Array(gzipSync(writeTar(members), { level: 1 }));
}

/** MD5 of bytes, hex. */
export function md5Hex(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('hex');
}

/** How the fixture server answers. */
export interface ServeMode {
  /** Close the connection after this many body bytes, on the first full (non-Range) request only. */
  cutFirstAt?: number;
  /** Answer Range requests with the whole file (200), like servers without Range support. */
  ignoreRange?: boolean;
}

/** A started fixture server; `url(path)` gives full URLs, `requests` logs what arrived. */
export interface FixtureServer {
  readonly server: Server;
  readonly requests: { path: string; range: string | undefined }[];
  url(path: string): string;
  close(): Promise<void>;
}

/** Serves `files` (path -> bytes) on 127.0.0.1 at a free port, with Range support. */
export async function serveFiles(files: ReadonlyMap<string, Uint8Array>, mode: ServeMode = {}): Promise<FixtureServer> {
  const requests: { path: string; range: string | undefined }[] = [];
  let cut = false;
  const server = createServer((req: IncomingMessage, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const range = req.headers.range;
    requests.push({ path, range });
    if (path.startsWith('/redirect/')) {
      res.writeHead(302, { location: path.slice('/redirect'.length) }).end();
      return;
    }
    const body = files.get(path);
    if (body === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    if (m !== null && !mode.ignoreRange) {
      const start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, {
        'content-length': body.length - start,
        'content-range': `bytes ${start}-${body.length - 1}/${body.length}`,
      });
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' });
    if (mode.cutFirstAt !== undefined && !cut) {
      cut = true;
      res.write(body.subarray(0, mode.cutFirstAt), () => {
        // Give the bytes a moment to leave, then drop the connection mid-body.
        setTimeout(() => res.socket?.destroy(), 20);
      });
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    requests,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A URL on which nothing listens (a port just released), for offline tests. */
export async function refusedUrl(path: string): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}${path}`;
}
