/** `petri data` as a user runs it, through the CLI dispatcher. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { main } from '../cli/main.ts';
import { refusedUrl } from './test-support.ts';

describe('petri data', () => {
  const dir = mkdtempSync(join(tmpdir(), 'petri-cli-'));
  let out: MockInstance;
  let err: MockInstance;
  const stdout = (): string => out.mock.calls.map((c) => c.join(' ')).join('\n');
  const stderr = (): string => err.mock.calls.map((c) => c.join(' ')).join('\n');
  beforeEach(() => {
    out = vi.spyOn(console, 'log').mockImplementation(() => {});
    err = vi.spyOn(console, 'error').mockImplementation(() => {});
  });
  afterEach(() => vi.restoreAllMocks());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fetch synthetic, then list', async () => {
    expect(await main(['data', 'fetch', 'synthetic', '--data-dir', dir, '--train', '300', '--test', '50', '--shard-size', '100'])).toBe(0);
    expect(stdout()).toMatch(/^synthetic .*32x32x3, 10 classes .*train 270 \(3 shards, .*\) \/ validation 30 \/ test 50/);
    expect(stderr()).toMatch(/split 300 training images into 270 train \/ 30 validation/);
    out.mockClear();
    expect(await main(['data', 'list', '--data-dir', dir])).toBe(0);
    expect(stdout()).toMatch(/synthetic +version [0-9a-f]{16}/);
    expect(stdout()).toMatch(/cifar10 +not prepared \(npx petri data fetch cifar10\)/);
    out.mockClear();
    expect(await main(['data', 'list', '--json', '--data-dir', dir])).toBe(0);
    expect(JSON.parse(stdout())[0].manifest.splits).toEqual({ train: 270, validation: 30, test: 50 });
  });

  it('fetch of an unreachable archive fails with what was tried and what to do', async () => {
    const url = await refusedUrl('/cifar-10-binary.tar.gz');
    expect(await main(['data', 'fetch', 'cifar10', '--url', url, '--data-dir', dir])).toBe(1);
    expect(stderr()).toContain(`petri data: could not get CIFAR-10, binary version (Krizhevsky 2009): could not download ${url}: ECONNREFUSED`);
    expect(stderr()).toContain(`npx petri data import cifar10 /path/to/cifar-10-binary.tar.gz --data-dir ${dir}`);
  });

  it('explains usage errors with exit code 2', async () => {
    expect(await main(['data', 'fetch'])).toBe(2);
    expect(await main(['data', 'fetch', 'mnist'])).toBe(2);
    expect(stderr()).toContain("unknown dataset 'mnist'; known datasets: cifar10, cifar100, fashion-mnist, synthetic");
    expect(await main(['data', 'import', 'cifar10'])).toBe(2);
    expect(await main(['data', 'frobnicate'])).toBe(2);
    expect(await main(['data', 'fetch', 'synthetic', '--bogus'])).toBe(2);
    expect(await main(['data', 'fetch', 'synthetic', '--train', 'many', '--data-dir', dir])).toBe(1);
    expect(stderr()).toContain("--train needs an integer, not 'many'");
    expect(await main(['data', '--help'])).toBe(0);
    expect(stdout()).toContain('Usage: petri data <command> [options]');
  });
});
