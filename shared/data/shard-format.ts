/**
 * The Petri shard: a compact binary holding a batch of labelled uint8 images.
 *
 * The server writes the training split as shards, browsers download and decode
 * them, and the server keeps its private validation and test splits in the
 * same form. This module is shared by both sides, so it uses only ECMAScript
 * (DataView, TextDecoder-free byte compares): no Node or DOM APIs.
 *
 * Layout (all integers little-endian uint32, fixed on every platform):
 *
 * | offset | size  | field                                   |
 * |--------|-------|-----------------------------------------|
 * | 0      | 8     | magic, ASCII "PETRISHD"                 |
 * | 8      | 4     | format version (SHARD_FORMAT_VERSION)   |
 * | 12     | 4     | count: number of images                 |
 * | 16     | 4     | height                                  |
 * | 20     | 4     | width                                   |
 * | 24     | 4     | channels                                |
 * | 28     | 4     | numClasses                              |
 * | 32     | count | labels, one byte each, < numClasses     |
 * | 32+count | count*h*w*c | pixels, image after image, HWC |
 *
 * Labels come before pixels so that a reader can inspect the class balance of
 * a shard without touching the (much larger) pixel block.
 */
import type { ImageSet } from './image-set.ts';
import { imageBytes } from './image-set.ts';

/** The 8 magic bytes, ASCII "PETRISHD". */
export const SHARD_MAGIC: readonly number[] = [0x50, 0x45, 0x54, 0x52, 0x49, 0x53, 0x48, 0x44];
/** Version of the layout written by {@link encodeShard}; decoders reject others. */
export const SHARD_FORMAT_VERSION = 1;
/** Bytes before the labels. */
export const SHARD_HEADER_BYTES = 32;

/** Largest height or width accepted; guards against absurd headers allocating gigabytes. */
const MAX_SIDE = 4096;
/** uint8 labels cannot name more than 256 classes. */
const MAX_CLASSES = 256;

/** A malformed shard; the message names the shard (its source) and what is wrong. */
export class ShardFormatError extends Error {
  override readonly name = 'ShardFormatError';
}

/** A decoded shard: the images plus the class count the header declared. */
export interface DecodedShard {
  readonly images: ImageSet;
  readonly numClasses: number;
}

/** What the caller already knows about a shard (from a manifest); any mismatch is an error. */
export interface ShardExpectations {
  /** Name used in error messages, e.g. the shard URL or file path. */
  readonly source?: string;
  readonly count?: number;
  readonly shape?: readonly [number, number, number];
  readonly numClasses?: number;
}

/** Total encoded size of a shard with these dimensions. */
export function shardByteLength(count: number, shape: readonly [number, number, number]): number {
  return SHARD_HEADER_BYTES + count * (1 + imageBytes(shape));
}

/**
 * Encodes a set of images as one shard. Checks the set is consistent (pixel and
 * label lengths, label range) so that a shard that encodes always decodes.
 */
export function encodeShard(images: ImageSet, numClasses: number): Uint8Array {
  const [height, width, channels] = images.shape;
  checkDims(height, width, channels, numClasses, 'encodeShard');
  const size = imageBytes(images.shape);
  if (images.labels.length !== images.count) {
    throw new RangeError(`encodeShard: ${images.labels.length} labels for ${images.count} images`);
  }
  if (images.pixels.length !== images.count * size) {
    throw new RangeError(
      `encodeShard: ${images.pixels.length} pixel bytes, expected ${images.count} x ${size}`,
    );
  }
  const bad = firstLabelOutOfRange(images.labels, numClasses);
  if (bad >= 0) {
    throw new RangeError(`encodeShard: label ${images.labels[bad]} of image ${bad} is not below numClasses ${numClasses}`);
  }
  const out = new Uint8Array(shardByteLength(images.count, images.shape));
  out.set(SHARD_MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, SHARD_FORMAT_VERSION, true);
  view.setUint32(12, images.count, true);
  view.setUint32(16, height, true);
  view.setUint32(20, width, true);
  view.setUint32(24, channels, true);
  view.setUint32(28, numClasses, true);
  out.set(images.labels, SHARD_HEADER_BYTES);
  out.set(images.pixels, SHARD_HEADER_BYTES + images.count);
  return out;
}

/**
 * Decodes and validates a shard: magic, version, dimensions, exact length
 * (truncated or over-long shards are rejected), every label below numClasses,
 * and anything given in `expect`. The returned pixels and labels are views of
 * `bytes` (no copy).
 *
 * @throws ShardFormatError naming `expect.source` and the problem.
 */
export function decodeShard(bytes: Uint8Array, expect: ShardExpectations = {}): DecodedShard {
  const source = expect.source ?? 'shard';
  const fail = (what: string): never => {
    throw new ShardFormatError(`${source}: ${what}`);
  };
  if (bytes.length < SHARD_HEADER_BYTES) {
    fail(`truncated: ${bytes.length} bytes, shorter than the ${SHARD_HEADER_BYTES}-byte header`);
  }
  for (let i = 0; i < SHARD_MAGIC.length; i++) {
    if (bytes[i] !== SHARD_MAGIC[i]) fail('not a Petri shard (bad magic bytes)');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== SHARD_FORMAT_VERSION) {
    fail(`unsupported shard format version ${version} (this reader supports ${SHARD_FORMAT_VERSION})`);
  }
  const count = view.getUint32(12, true);
  const height = view.getUint32(16, true);
  const width = view.getUint32(20, true);
  const channels = view.getUint32(24, true);
  const numClasses = view.getUint32(28, true);
  try {
    checkDims(height, width, channels, numClasses, 'header');
  } catch (err) {
    fail((err as Error).message);
  }
  const shape = [height, width, channels] as const;
  const expected = shardByteLength(count, shape);
  if (bytes.length < expected) {
    fail(`truncated: ${bytes.length} bytes, the header promises ${count} images of ${height}x${width}x${channels} (${expected} bytes)`);
  }
  if (bytes.length > expected) {
    fail(`${bytes.length - expected} unexpected bytes after ${count} images (${expected} bytes expected)`);
  }
  if (expect.count !== undefined && expect.count !== count) {
    fail(`holds ${count} images, expected ${expect.count}`);
  }
  if (expect.shape !== undefined && !sameShape(expect.shape, shape)) {
    fail(`images are ${height}x${width}x${channels}, expected ${expect.shape.join('x')}`);
  }
  if (expect.numClasses !== undefined && expect.numClasses !== numClasses) {
    fail(`declares ${numClasses} classes, expected ${expect.numClasses}`);
  }
  const labels = bytes.subarray(SHARD_HEADER_BYTES, SHARD_HEADER_BYTES + count);
  const bad = firstLabelOutOfRange(labels, numClasses);
  if (bad >= 0) fail(`label ${labels[bad]} of image ${bad} is not below numClasses ${numClasses} (corrupt)`);
  const pixels = bytes.subarray(SHARD_HEADER_BYTES + count, expected);
  return { images: { shape, count, pixels, labels }, numClasses };
}

function checkDims(height: number, width: number, channels: number, numClasses: number, where: string): void {
  const ok = (n: number, max: number): boolean => Number.isInteger(n) && n >= 1 && n <= max;
  if (!ok(height, MAX_SIDE) || !ok(width, MAX_SIDE)) {
    throw new RangeError(`${where}: image size ${height}x${width} outside 1..${MAX_SIDE}`);
  }
  if (!ok(channels, 4)) throw new RangeError(`${where}: ${channels} channels, expected 1 to 4`);
  if (!ok(numClasses, MAX_CLASSES)) {
    throw new RangeError(`${where}: numClasses ${numClasses} outside 1..${MAX_CLASSES}`);
  }
}

function firstLabelOutOfRange(labels: Uint8Array, numClasses: number): number {
  for (let i = 0; i < labels.length; i++) {
    if ((labels[i] as number) >= numClasses) return i;
  }
  return -1;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
