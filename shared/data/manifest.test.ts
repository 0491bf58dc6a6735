import { describe, expect, it } from 'vitest';
import { parseManifest, shardUrl } from './manifest.ts';

const HASH_A = 'a'.repeat(64);
const HASH_B = '0123456789abcdef'.repeat(4);

function manifest(): Record<string, unknown> {
  return {
    formatVersion: 1,
    dataset: 'cifar10',
    version: '0123456789abcdef',
    description: 'CIFAR-10',
    imageShape: [32, 32, 3],
    numClasses: 3,
    classNames: ['a', 'b', 'c'],
    splits: { train: 30, validation: 5, test: 10 },
    shards: [
      { url: shardUrl(HASH_A), bytes: 1000, count: 20, sha256: HASH_A },
      { url: shardUrl(HASH_B), bytes: 500, count: 10, sha256: HASH_B },
    ],
  };
}

describe('parseManifest', () => {
  it('accepts a valid manifest and returns it typed', () => {
    const m = parseManifest(manifest());
    expect(m.imageShape).toEqual([32, 32, 3]);
    expect(m.shards[1]?.url).toBe(`/data/shards/${HASH_B}.bin`);
  });

  it('drops unknown fields, so nothing unexpected is ever served', () => {
    expect(parseManifest({ ...manifest(), secret: 'x' })).not.toHaveProperty('secret');
  });

  const bad: [string, (m: Record<string, unknown>) => void, RegExp][] = [
    ['not an object', () => {}, /invalid dataset manifest/],
    ['wrong format version', (m) => (m.formatVersion = 2), /formatVersion/],
    ['bad dataset name', (m) => (m.dataset = '../x'), /dataset: dataset name/],
    ['class names count', (m) => (m.classNames = ['a']), /classNames must have numClasses entries/],
    ['shape with a zero', (m) => (m.imageShape = [32, 0, 3]), /imageShape/],
    ['url not naming its hash', (m) => ((m.shards as { url: string }[])[0]!.url = shardUrl(HASH_B)), /each shard url must name its sha256/],
    ['upper-case hash', (m) => ((m.shards as { sha256: string }[])[0]!.sha256 = 'A'.repeat(64)), /sha256 must be 64 lowercase hex/],
    ['traversal url', (m) => ((m.shards as { url: string }[])[0]!.url = '/data/shards/../x.bin'), /shard url/],
    ['counts not adding up', (m) => ((m.splits as { train: number }).train = 31), /add up to splits.train/],
    ['no shards', (m) => (m.shards = []), /shards/],
  ];
  for (const [name, damage, message] of bad) {
    it(`rejects ${name}`, () => {
      const m = manifest();
      damage(m);
      expect(() => parseManifest(name === 'not an object' ? 'manifest' : m)).toThrow(message);
    });
  }
});
