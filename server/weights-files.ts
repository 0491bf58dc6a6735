/**
 * Content-addressed weight files: `<dir>/<sha256>.bin`.
 *
 * A file is written under a temporary name in the same directory
 * (`.upload-<random>.tmp`), hashed as it is written, fsynced, then renamed to
 * its hash (rename is atomic within a directory) and the directory fsynced. A
 * reader therefore sees a complete file or none. A crash leaves at worst a
 * temporary file or an unreferenced `.bin`, both removed by {@link WeightsFiles.gc}.
 *
 * Every method validates the hash (64 lowercase hex digits) before it touches
 * the disk, so a hash from a URL can never name a path outside the directory.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

const SHA256 = /^[0-9a-f]{64}$/;
const BIN = /^([0-9a-f]{64})\.bin$/;
const TEMP = /^\.upload-[0-9a-f]{16}\.tmp$/;

/** A hash that is not 64 lowercase hex digits. */
export class BadShaError extends Error {
  constructor(sha: unknown) {
    super(`not a SHA-256 (64 lowercase hex digits): ${JSON.stringify(String(sha)).slice(0, 80)}`);
    this.name = 'BadShaError';
  }
}

/** An upload that went past its byte cap; nothing was kept. */
export class WeightsTooLargeError extends Error {
  readonly maxBytes: number;
  constructor(maxBytes: number) {
    super(`weights upload exceeds the limit of ${maxBytes} bytes`);
    this.name = 'WeightsTooLargeError';
    this.maxBytes = maxBytes;
  }
}

function checkSha(sha: string): string {
  if (typeof sha !== 'string' || !SHA256.test(sha)) throw new BadShaError(sha);
  return sha;
}

function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some platforms and file systems cannot fsync a directory; the rename is still atomic.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

export interface GcOptions {
  /** Spare files modified less than this many milliseconds ago (default 0: none spared). */
  readonly olderThanMs?: number;
}

export class WeightsFiles {
  readonly dir: string;
  /** Temporary files being written by this instance, never collected. */
  private readonly writing = new Set<string>();
  /** Hashes just renamed into place whose put has not returned yet, never collected. */
  private readonly landing = new Map<string, number>();

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  /** The file of a hash (which need not exist). */
  path(sha: string): string {
    return join(this.dir, `${checkSha(sha)}.bin`);
  }

  has(sha: string): boolean {
    return existsSync(this.path(sha));
  }

  async read(sha: string): Promise<Uint8Array> {
    const buf = await readFile(this.path(sha));
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Stores bytes; returns their SHA-256. Storing bytes already present is a no-op. */
  async putBytes(bytes: Uint8Array): Promise<string> {
    const known = createHash('sha256').update(bytes).digest('hex');
    if (this.has(known)) return known;
    const { sha256 } = await this.putStream([bytes], bytes.byteLength);
    return sha256;
  }

  /**
   * Streams bytes into the store, hashing as they come. Past `maxBytes` it
   * stops reading, deletes the temporary file and throws WeightsTooLargeError.
   */
  async putStream(
    stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | NodeJS.ReadableStream,
    maxBytes: number,
  ): Promise<{ sha256: string; bytes: number }> {
    if (!(maxBytes >= 0)) throw new RangeError(`maxBytes must be a non-negative number, got ${maxBytes}`);
    const name = `.upload-${randomBytes(8).toString('hex')}.tmp`;
    const temp = join(this.dir, name);
    this.writing.add(name);
    let sha256: string | null = null;
    try {
      const hash = createHash('sha256');
      let bytes = 0;
      const file = await open(temp, 'wx');
      try {
        for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
          if (typeof chunk === 'string') throw new TypeError('weights must be bytes, not text (a stream with an encoding set?)');
          bytes += chunk.byteLength;
          if (bytes > maxBytes) throw new WeightsTooLargeError(maxBytes);
          hash.update(chunk);
          let off = 0;
          while (off < chunk.byteLength) {
            const { bytesWritten } = await file.write(chunk, off, chunk.byteLength - off);
            off += bytesWritten;
          }
        }
        await file.sync();
      } finally {
        await file.close();
      }
      sha256 = hash.digest('hex');
      this.landing.set(sha256, (this.landing.get(sha256) ?? 0) + 1);
      await rename(temp, join(this.dir, `${sha256}.bin`));
      fsyncDir(this.dir);
      return { sha256, bytes };
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err;
    } finally {
      this.writing.delete(name);
      if (sha256 !== null) {
        const n = (this.landing.get(sha256) ?? 1) - 1;
        if (n > 0) this.landing.set(sha256, n);
        else this.landing.delete(sha256);
      }
    }
  }

  /** Deletes a file; false when there was none. */
  delete(sha: string): boolean {
    try {
      unlinkSync(this.path(sha));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** The hashes stored, sorted. */
  list(): string[] {
    const out: string[] = [];
    for (const name of readdirSync(this.dir)) {
      const m = BIN.exec(name);
      if (m !== null) out.push(m[1] as string);
    }
    return out.sort();
  }

  /**
   * Deletes every `<sha>.bin` not in `keep` and every stray temporary file
   * (not one this instance is writing). Other files are left alone.
   */
  gc(keep: ReadonlySet<string>, options: GcOptions = {}): { deleted: string[] } {
    const olderThanMs = options.olderThanMs ?? 0;
    const now = Date.now();
    const deleted: string[] = [];
    const young = (file: string): boolean => {
      if (olderThanMs <= 0) return false;
      try {
        return now - statSync(file).mtimeMs < olderThanMs;
      } catch {
        return true; // gone meanwhile
      }
    };
    for (const name of readdirSync(this.dir)) {
      const file = join(this.dir, name);
      const m = BIN.exec(name);
      if (m !== null) {
        const sha = m[1] as string;
        if (keep.has(sha) || this.landing.has(sha) || young(file)) continue;
        if (this.remove(file)) deleted.push(sha);
      } else if (TEMP.test(name)) {
        if (this.writing.has(name) || young(file)) continue;
        this.remove(file);
      }
    }
    return { deleted: deleted.sort() };
  }

  private remove(file: string): boolean {
    try {
      unlinkSync(file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }
}
