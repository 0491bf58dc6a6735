import { describe, expect, it } from 'vitest';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { CIFAR10_RECORD, CIFAR100_RECORD, encodeCifarBatch, readCifarBatch } from './cifar-reader.ts';

function randomSet(count: number, numClasses: number): ImageSet {
  let s = 12345;
  const byte = (): number => (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  return {
    shape: [32, 32, 3],
    count,
    pixels: new Uint8Array(count * 3072).map(byte),
    labels: new Uint8Array(count).map(() => byte() % numClasses),
  };
}

describe('CIFAR binary reader', () => {
  it('transposes CHW records to HWC: red plane first, then green, then blue, rows first', () => {
    const record = new Uint8Array(3073);
    record[0] = 7;
    // Pixel at row 2, column 5: red, green and blue planes each 1024 bytes apart.
    record[1 + 2 * 32 + 5] = 11;
    record[1 + 1024 + 2 * 32 + 5] = 22;
    record[1 + 2048 + 2 * 32 + 5] = 33;
    const set = readCifarBatch(record, CIFAR10_RECORD, 'one.bin');
    expect(set.shape).toEqual([32, 32, 3]);
    expect(set.labels[0]).toBe(7);
    const at = (2 * 32 + 5) * 3;
    expect(Array.from(set.pixels.subarray(at, at + 3))).toEqual([11, 22, 33]);
    expect(set.pixels.reduce((a, b) => a + b, 0)).toBe(66);
  });

  it('round-trips pixels and labels exactly (CIFAR-10 records)', () => {
    const set = randomSet(25, 10);
    const bytes = encodeCifarBatch(set);
    expect(bytes.length).toBe(25 * 3073);
    const back = readCifarBatch(bytes, CIFAR10_RECORD, 'b.bin', 25);
    expect(Buffer.from(back.pixels).equals(Buffer.from(set.pixels))).toBe(true);
    expect(Array.from(back.labels)).toEqual(Array.from(set.labels));
  });

  it('reads the fine label (second byte) of CIFAR-100 records', () => {
    const set = randomSet(12, 100);
    const coarse = new Uint8Array(12).fill(19);
    const bytes = encodeCifarBatch(set, 2, coarse);
    expect(bytes.length).toBe(12 * 3074);
    expect(bytes[0]).toBe(19);
    expect(bytes[1]).toBe(set.labels[0]);
    const back = readCifarBatch(bytes, CIFAR100_RECORD, 'train.bin');
    expect(Array.from(back.labels)).toEqual(Array.from(set.labels));
    expect(Buffer.from(back.pixels).equals(Buffer.from(set.pixels))).toBe(true);
  });

  it('rejects truncated and wrong-sized files, naming them', () => {
    const bytes = encodeCifarBatch(randomSet(3, 10));
    expect(() => readCifarBatch(bytes.subarray(0, 3073 * 2 + 100), CIFAR10_RECORD, 'data_batch_1.bin')).toThrow(
      /^data_batch_1\.bin: .* not a whole number of 3073-byte CIFAR records \(truncated/,
    );
    expect(() => readCifarBatch(bytes, CIFAR10_RECORD, 'data_batch_2.bin', 10_000)).toThrow(
      /data_batch_2\.bin: holds 3 records, expected 10000/,
    );
    expect(() => readCifarBatch(new Uint8Array(0), CIFAR10_RECORD, 'empty.bin')).toThrow(/empty\.bin/);
  });

  it('rejects labels out of range as corrupt', () => {
    const bytes = encodeCifarBatch(randomSet(3, 10));
    bytes[3073] = 10;
    expect(() => readCifarBatch(bytes, CIFAR10_RECORD, 'test_batch.bin')).toThrow(/test_batch\.bin: record 1 has label 10/);
  });
});
