import { describe, expect, it } from 'vitest';
import type { ImageSet } from './image-set.ts';
import { decodeShard, encodeShard, SHARD_HEADER_BYTES, shardByteLength, ShardFormatError } from './shard-format.ts';

function sampleSet(count: number, shape: [number, number, number], numClasses: number): ImageSet {
  const size = shape[0] * shape[1] * shape[2];
  const pixels = new Uint8Array(count * size).map((_, i) => (i * 31 + 7) & 0xff);
  const labels = new Uint8Array(count).map((_, i) => (i * 3) % numClasses);
  return { shape, count, pixels, labels };
}

describe('shard format', () => {
  it('round-trips pixels, labels, shape and class count exactly', () => {
    const set = sampleSet(17, [5, 4, 3], 10);
    const bytes = encodeShard(set, 10);
    expect(bytes.length).toBe(shardByteLength(17, [5, 4, 3]));
    expect(bytes.length).toBe(SHARD_HEADER_BYTES + 17 + 17 * 60);
    const { images, numClasses } = decodeShard(bytes, { count: 17, shape: [5, 4, 3], numClasses: 10 });
    expect(numClasses).toBe(10);
    expect(images.shape).toEqual([5, 4, 3]);
    expect(images.count).toBe(17);
    expect(Array.from(images.labels)).toEqual(Array.from(set.labels));
    expect(Array.from(images.pixels)).toEqual(Array.from(set.pixels));
  });

  it('starts with the magic and little-endian header fields', () => {
    const bytes = encodeShard(sampleSet(2, [28, 28, 1], 10), 10);
    expect(new TextDecoder().decode(bytes.subarray(0, 8))).toBe('PETRISHD');
    const view = new DataView(bytes.buffer);
    expect([8, 12, 16, 20, 24, 28].map((o) => view.getUint32(o, true))).toEqual([1, 2, 28, 28, 1, 10]);
  });

  it('decodes a shard that sits at an offset inside a larger buffer', () => {
    const bytes = encodeShard(sampleSet(3, [2, 2, 3], 4), 4);
    const big = new Uint8Array(bytes.length + 10);
    big.set(bytes, 5);
    expect(decodeShard(big.subarray(5, 5 + bytes.length)).images.count).toBe(3);
  });

  const good = (): Uint8Array => encodeShard(sampleSet(8, [4, 4, 3], 10), 10);
  const cases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ['empty', () => new Uint8Array(0), /truncated.*header/],
    ['header cut', (b) => b.subarray(0, 20), /truncated.*header/],
    ['body cut half way', (b) => b.subarray(0, Math.floor(b.length / 2)), /truncated.*8 images of 4x4x3/],
    ['one byte short', (b) => b.subarray(0, b.length - 1), /truncated/],
    ['trailing bytes', (b) => Uint8Array.of(...b, 1, 2), /2 unexpected bytes/],
    ['bad magic', (b) => b.map((x, i) => (i === 0 ? 0 : x)), /bad magic/],
    ['future version', (b) => b.map((x, i) => (i === 8 ? 9 : x)), /unsupported shard format version 9/],
    ['zero width', (b) => b.map((x, i) => (i === 20 ? 0 : x)), /image size 4x0/],
    ['5 channels', (b) => b.map((x, i) => (i === 24 ? 5 : x)), /5 channels/],
    ['zero classes', (b) => b.map((x, i) => (i === 28 ? 0 : x)), /numClasses 0/],
    ['label out of range', (b) => b.map((x, i) => (i === SHARD_HEADER_BYTES + 3 ? 10 : x)), /label 10 of image 3/],
  ];
  for (const [name, damage, message] of cases) {
    it(`rejects a ${name} shard with a clear error naming it`, () => {
      const run = (): unknown => decodeShard(damage(good()), { source: 'shards/abc.bin' });
      expect(run).toThrow(ShardFormatError);
      expect(run).toThrow(/^shards\/abc\.bin: /);
      expect(run).toThrow(message);
    });
  }

  it('rejects a shard that does not match what the manifest promised', () => {
    const bytes = good();
    expect(() => decodeShard(bytes, { count: 9 })).toThrow(/holds 8 images, expected 9/);
    expect(() => decodeShard(bytes, { shape: [32, 32, 3] })).toThrow(/4x4x3, expected 32x32x3/);
    expect(() => decodeShard(bytes, { numClasses: 100 })).toThrow(/declares 10 classes, expected 100/);
  });

  it('refuses to encode inconsistent sets', () => {
    const set = sampleSet(4, [2, 2, 1], 5);
    expect(() => encodeShard(set, 2)).toThrow(/label 3 of image 1 .* numClasses 2/);
    expect(() => encodeShard({ ...set, count: 5 }, 5)).toThrow(/4 labels for 5 images/);
    expect(() => encodeShard(set, 300)).toThrow(/numClasses 300/);
  });
});
