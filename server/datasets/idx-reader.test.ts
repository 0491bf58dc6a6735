import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeIdxImages, encodeIdxLabels, idxToImageSet, maybeGunzip, readIdxImages, readIdxLabels } from './idx-reader.ts';

const set = {
  shape: [3, 4, 1] as [number, number, number],
  count: 5,
  pixels: new Uint8Array(60).map((_, i) => (i * 37) & 0xff),
  labels: Uint8Array.of(0, 9, 3, 3, 1),
};

describe('IDX reader', () => {
  it('writes the big-endian headers of IDX3 and IDX1', () => {
    const images = encodeIdxImages(set);
    expect(Array.from(images.subarray(0, 16))).toEqual([0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 4]);
    expect(Array.from(encodeIdxLabels(set.labels).subarray(0, 8))).toEqual([0, 0, 8, 1, 0, 0, 0, 5]);
  });

  it('round-trips gzipped images and labels exactly', async () => {
    const images = await maybeGunzip(new Uint8Array(gzipSync(encodeIdxImages(set))), 'i.gz');
    const labels = await maybeGunzip(new Uint8Array(gzipSync(encodeIdxLabels(set.labels))), 'l.gz');
    const back = idxToImageSet(readIdxImages(images, 'i'), readIdxLabels(labels, 'l', 10), 'i');
    expect(back.shape).toEqual([3, 4, 1]);
    expect(back.count).toBe(5);
    expect(Array.from(back.pixels)).toEqual(Array.from(set.pixels));
    expect(Array.from(back.labels)).toEqual(Array.from(set.labels));
  });

  it('passes uncompressed data through maybeGunzip', async () => {
    const raw = encodeIdxLabels(set.labels);
    expect(await maybeGunzip(raw, 'x')).toBe(raw);
  });

  it('rejects wrong magic, truncation, corrupt gzip and label mismatches, naming the file', async () => {
    const images = encodeIdxImages(set);
    const labels = encodeIdxLabels(set.labels);
    expect(() => readIdxImages(labels, 'train-labels')).toThrow(/^train-labels: not an IDX images .*magic 0x00000801/);
    expect(() => readIdxLabels(images, 'imgs', 10)).toThrow(/imgs: not an IDX labels/);
    expect(() => readIdxImages(images.subarray(0, 50), 'train-images')).toThrow(/train-images: 50 bytes, but the header promises 5 images of 3x4/);
    expect(() => readIdxImages(images.subarray(0, 10), 'tiny')).toThrow(/tiny: truncated IDX file/);
    expect(() => readIdxLabels(labels.subarray(0, 10), 'l', 10)).toThrow(/l: 10 bytes, but the header promises 5 labels/);
    expect(() => readIdxLabels(labels, 'l', 5)).toThrow(/l: label 9 at 1 is not below 5/);
    const gz = new Uint8Array(gzipSync(images));
    await expect(maybeGunzip(gz.subarray(0, gz.length - 12), 'cut.gz')).rejects.toThrow(/^cut\.gz: corrupt or truncated gzip/);
    expect(() => idxToImageSet(readIdxImages(images, 'i'), set.labels.subarray(1), 'i')).toThrow(/5 images but 4 labels/);
  });
});
