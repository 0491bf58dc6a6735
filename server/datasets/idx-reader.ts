/**
 * The IDX format of MNIST and Fashion-MNIST: a big-endian header (magic
 * 0x00000803 for uint8 images with count, rows, cols; 0x00000801 for uint8
 * labels with count) followed by the raw bytes. Files are usually gzipped.
 */
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { DatasetError } from './errors.ts';

const IDX_IMAGES = 0x00000803;
const IDX_LABELS = 0x00000801;
const gunzipAsync = promisify(gunzip);

/** Grey images as decoded from an IDX3 file. */
export interface IdxImages {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  /** count * rows * cols bytes, row-major: already HWC with one channel. */
  readonly pixels: Uint8Array;
}

/**
 * Gunzips `bytes` when they start with the gzip magic, else returns them as is.
 * @throws DatasetError naming `source` for a corrupt or truncated gzip stream.
 */
export async function maybeGunzip(bytes: Uint8Array, source: string): Promise<Uint8Array> {
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  try {
    const out = await gunzipAsync(bytes);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (err) {
    throw new DatasetError(`${source}: corrupt or truncated gzip data (${(err as Error).message})`);
  }
}

/** Decodes an (uncompressed) IDX3 uint8 image file. @throws DatasetError naming `source`. */
export function readIdxImages(bytes: Uint8Array, source: string): IdxImages {
  const view = header(bytes, 16, IDX_IMAGES, 'images (magic 0x00000803)', source);
  const count = view.getUint32(4);
  const rows = view.getUint32(8);
  const cols = view.getUint32(12);
  const expected = 16 + count * rows * cols;
  if (bytes.length !== expected) {
    throw new DatasetError(
      `${source}: ${bytes.length} bytes, but the header promises ${count} images of ${rows}x${cols} (${expected} bytes): truncated or corrupt`,
    );
  }
  return { count, rows, cols, pixels: bytes.subarray(16) };
}

/** Decodes an (uncompressed) IDX1 uint8 label file. @throws DatasetError naming `source`. */
export function readIdxLabels(bytes: Uint8Array, source: string, numClasses: number): Uint8Array {
  const view = header(bytes, 8, IDX_LABELS, 'labels (magic 0x00000801)', source);
  const count = view.getUint32(4);
  if (bytes.length !== 8 + count) {
    throw new DatasetError(`${source}: ${bytes.length} bytes, but the header promises ${count} labels: truncated or corrupt`);
  }
  const labels = bytes.subarray(8);
  const bad = labels.findIndex((l) => l >= numClasses);
  if (bad >= 0) throw new DatasetError(`${source}: label ${labels[bad]} at ${bad} is not below ${numClasses} (corrupt)`);
  return labels;
}

/** Pairs an image file with its label file into one ImageSet. */
export function idxToImageSet(images: IdxImages, labels: Uint8Array, source: string): ImageSet {
  if (labels.length !== images.count) {
    throw new DatasetError(`${source}: ${images.count} images but ${labels.length} labels`);
  }
  return { shape: [images.rows, images.cols, 1], count: images.count, pixels: images.pixels, labels };
}

/** Encodes grey HWC images (one channel) as an IDX3 file; for tests and tools. */
export function encodeIdxImages(set: ImageSet): Uint8Array {
  if (set.shape[2] !== 1) throw new RangeError('IDX images have one channel');
  const out = new Uint8Array(16 + set.pixels.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, IDX_IMAGES);
  view.setUint32(4, set.count);
  view.setUint32(8, set.shape[0]);
  view.setUint32(12, set.shape[1]);
  out.set(set.pixels, 16);
  return out;
}

/** Encodes labels as an IDX1 file; for tests and tools. */
export function encodeIdxLabels(labels: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + labels.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, IDX_LABELS);
  view.setUint32(4, labels.length);
  out.set(labels, 8);
  return out;
}

function header(bytes: Uint8Array, size: number, magic: number, what: string, source: string): DataView {
  // Magic first: a wrong kind of file is the more useful diagnosis than its length.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const found = bytes.length >= 4 ? view.getUint32(0) : undefined;
  if (found !== undefined && found !== magic) {
    throw new DatasetError(`${source}: not an IDX ${what} file (magic 0x${found.toString(16).padStart(8, '0')})`);
  }
  if (bytes.length < size) throw new DatasetError(`${source}: truncated IDX file (${bytes.length} bytes)`);
  return view;
}
