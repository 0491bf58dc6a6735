/**
 * Resumable HTTP(S) download with MD5 verification.
 *
 * Bytes go to `<dest>.part`; a broken connection (or a later run) resumes from
 * the part's length with an HTTP Range request. Only once the whole file is
 * there and its MD5 matches is the part renamed to `dest`, so a file at
 * `dest` is always complete and verified.
 */
import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DatasetError } from './errors.ts';
import { hashFile } from './hash.ts';

/** Reported while a download runs. */
export interface DownloadProgress {
  readonly url: string;
  /** Bytes of the file present so far, including those of earlier attempts. */
  readonly received: number;
  /** Size of the whole file when the server said so. */
  readonly total: number | undefined;
  /** Average speed of this run. */
  readonly bytesPerSecond: number;
}

/** Options of {@link downloadFile}. */
export interface DownloadOptions {
  /** Expected MD5 (hex) of the whole file; without it nothing is verified. */
  readonly md5?: string;
  readonly onProgress?: (p: DownloadProgress) => void;
  /** Resume attempts after a broken connection (default 8). */
  readonly maxAttempts?: number;
  /** Give up on a connection silent for this long (default 30 s). */
  readonly idleTimeoutMs?: number;
  /** Pause before resuming (default 300 ms, doubled per attempt). */
  readonly retryDelayMs?: number;
}

/** A download that failed; `cause` keeps the underlying error. */
export class DownloadError extends DatasetError {
  constructor(
    readonly url: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const MAX_REDIRECTS = 5;

/**
 * Downloads `url` to `dest`, resuming a previous `.part`, and verifies the MD5.
 * Returns at once when `dest` already exists with the right MD5.
 *
 * @throws DownloadError when the server cannot be reached, answers with an
 *   error status, keeps breaking off without progress, or the MD5 differs
 *   (the corrupt part is deleted so the next run starts afresh).
 */
export async function downloadFile(url: string, dest: string, options: DownloadOptions = {}): Promise<void> {
  const md5 = options.md5?.toLowerCase();
  if (await exists(dest)) {
    if (md5 === undefined || (await hashFile(dest, 'md5')) === md5) return;
    await rm(dest, { force: true }); // a stale or replaced file: fetch it again
  }
  const part = `${dest}.part`;
  const maxAttempts = options.maxAttempts ?? 8;
  const started = Date.now();
  let sessionBytes = 0;
  for (let attempt = 1; ; attempt++) {
    const have = (await exists(part)) ? (await stat(part)).size : 0;
    let outcome: AttemptOutcome;
    try {
      outcome = await attemptOnce(url, part, have, options, (n, total) => {
        sessionBytes += n;
        const seconds = Math.max(0.001, (Date.now() - started) / 1000);
        return { url, received: total.received, total: total.total, bytesPerSecond: sessionBytes / seconds };
      });
    } catch (err) {
      if (err instanceof DownloadError) throw err;
      const e = err as NodeJS.ErrnoException;
      const reason = `${e.code ?? ''}${e.code ? ' ' : ''}${e.message}`;
      // No connection on the first try (refused, DNS, TLS): retrying will not
      // help an offline machine, so say so at once. After a break, the server
      // was reachable a moment ago: keep trying.
      if (attempt === 1 || attempt >= maxAttempts) {
        throw new DownloadError(url, `could not download ${url}: ${reason}`, { cause: err });
      }
      outcome = { complete: false, reason };
    }
    if (outcome.complete) break;
    if (attempt >= maxAttempts) {
      throw new DownloadError(
        url,
        `could not download ${url}: the connection broke ${attempt} times (last: ${outcome.reason}); run the command again to resume from ${part}`,
      );
    }
    await sleep((options.retryDelayMs ?? 300) * 2 ** (attempt - 1));
  }
  if (md5 !== undefined) {
    const actual = await hashFile(part, 'md5');
    if (actual !== md5) {
      await rm(part, { force: true });
      throw new DownloadError(
        url,
        `${url}: MD5 mismatch (expected ${md5}, got ${actual}); the download is corrupt and was deleted, nothing was prepared`,
      );
    }
  }
  await rename(part, dest);
}

type AttemptOutcome = { complete: true } | { complete: false; reason: string };
type Progress = (n: number, at: { received: number; total: number | undefined }) => DownloadProgress;

/** One HTTP request: appends to the part from `have` bytes on. */
async function attemptOnce(
  url: string,
  part: string,
  have: number,
  options: DownloadOptions,
  progress: Progress,
): Promise<AttemptOutcome> {
  const res = await get(url, have, options.idleTimeoutMs ?? 30_000);
  let start = have;
  let total: number | undefined;
  if (res.statusCode === 416 && have > 0) {
    res.resume();
    // Asked for bytes past the end: either the part is already whole or it is junk.
    const size = /^bytes \*\/(\d+)$/.exec(res.headers['content-range'] ?? '')?.[1];
    if (size !== undefined && Number(size) === have) return { complete: true };
    await rm(part, { force: true });
    return { complete: false, reason: 'the partial file did not match the server copy; restarting' };
  }
  if (res.statusCode === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers['content-range'] ?? '');
    if (m === null || Number(m[1]) !== have) {
      res.resume();
      await rm(part, { force: true });
      return { complete: false, reason: 'the server resumed at the wrong offset; restarting' };
    }
    total = m[3] === '*' ? undefined : Number(m[3]);
  } else if (res.statusCode === 200) {
    start = 0; // the server ignored the Range header: start over
    const length = res.headers['content-length'];
    total = length === undefined ? undefined : Number(length);
  } else {
    res.resume();
    const status = `HTTP ${res.statusCode} ${res.statusMessage ?? ''}`.trim();
    if ((res.statusCode ?? 0) >= 500) return { complete: false, reason: status };
    throw new DownloadError(url, `could not download ${url}: the server answered ${status}`);
  }
  let received = start;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      received += chunk.length;
      options.onProgress?.(progress(chunk.length, { received, total }));
      done(null, chunk);
    },
  });
  try {
    await pipeline(res, counter, createWriteStream(part, { flags: start === 0 ? 'w' : 'a' }));
  } catch (err) {
    return { complete: false, reason: (err as Error).message };
  }
  // A server may end the body early without an error; the length tells.
  if (total !== undefined && received < total) {
    return { complete: false, reason: `connection closed after ${received} of ${total} bytes` };
  }
  if (total !== undefined && received > total) {
    await rm(part, { force: true });
    return { complete: false, reason: `received ${received} bytes, more than the ${total} announced; restarting` };
  }
  return { complete: true };
}

/** GET with an optional Range, following redirects; resolves with the response head. */
function get(url: string, from: number, idleTimeoutMs: number, redirects = 0): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const request = target.protocol === 'https:' ? httpsRequest : target.protocol === 'http:' ? httpRequest : undefined;
    if (request === undefined) {
      reject(new DownloadError(url, `cannot download ${url}: only http and https URLs are supported`));
      return;
    }
    const headers: Record<string, string> = { 'user-agent': 'petri-datasets', 'accept-encoding': 'identity' };
    if (from > 0) headers.range = `bytes=${from}-`;
    const req = request(target, { headers }, (res) => {
      const location = res.headers.location;
      if (res.statusCode !== undefined && res.statusCode >= 300 && res.statusCode < 400 && location !== undefined) {
        res.resume();
        if (redirects >= MAX_REDIRECTS) {
          reject(new DownloadError(url, `could not download ${url}: too many redirects`));
          return;
        }
        get(new URL(location, target).toString(), from, idleTimeoutMs, redirects + 1).then(resolve, reject);
        return;
      }
      resolve(res);
    });
    req.setTimeout(idleTimeoutMs, () => req.destroy(new Error(`no data for ${idleTimeoutMs / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
