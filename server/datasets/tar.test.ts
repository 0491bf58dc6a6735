import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { readTar, writeTar } from './tar.ts';

const hasTar = (() => {
  try {
    execFileSync('tar', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('tar reader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'petri-tar-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads back what writeTar wrote: names, types and exact bytes', () => {
    const big = new Uint8Array(1500).map((_, i) => i % 251);
    const entries = readTar(
      writeTar([{ name: 'top/' }, { name: 'top/a.bin', data: big }, { name: 'top/empty.txt', data: new Uint8Array(0) }]),
      'x.tar',
    );
    expect(entries.map((e) => [e.name, e.type, e.data.length])).toEqual([
      ['top', 'directory', 0],
      ['top/a.bin', 'file', 1500],
      ['top/empty.txt', 'file', 0],
    ]);
    expect(Array.from(entries[1]!.data)).toEqual(Array.from(big));
  });

  it('rejects a truncated archive, naming the file', () => {
    const archive = writeTar([{ name: 'a.bin', data: new Uint8Array(3000) }]);
    expect(() => readTar(archive.subarray(0, 2048), 'cut.tar')).toThrow(/^cut\.tar: truncated tar archive/);
  });

  it('rejects a corrupt header, naming the file', () => {
    const archive = writeTar([{ name: 'a.bin', data: new Uint8Array(10) }]);
    archive[3] = 0x41;
    expect(() => readTar(archive, 'bad.tar')).toThrow(/^bad\.tar: not a tar archive or corrupt \(bad header checksum/);
    expect(() => readTar(new TextEncoder().encode('hello'.repeat(200)), 'text.txt')).toThrow(/text\.txt: not a tar archive/);
  });

  it.runIf(hasTar)('reads archives written by the system tar (gnu long names and pax)', () => {
    const root = join(dir, 'src');
    const long = `${'d'.repeat(60)}/${'f'.repeat(120)}.bin`;
    mkdirSync(join(root, 'd'.repeat(60)), { recursive: true });
    writeFileSync(join(root, long), Uint8Array.of(1, 2, 3));
    writeFileSync(join(root, 'short.bin'), new Uint8Array(700).fill(9));
    for (const format of ['gnu', 'pax', 'ustar']) {
      if (format === 'ustar') continue; // ustar cannot hold a 120-byte file name
      const out = join(dir, `${format}.tar.gz`);
      execFileSync('tar', [`--format=${format}`, '-czf', out, '-C', root, '.']);
      const entries = readTar(new Uint8Array(gunzipSync(readFileSync(out))), out);
      const byName = new Map(entries.map((e) => [e.name, e]));
      expect(Array.from(byName.get(long)?.data ?? [])).toEqual([1, 2, 3]);
      expect(byName.get('short.bin')?.data.length).toBe(700);
    }
  });
});
