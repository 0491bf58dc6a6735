/**
 * The CIFAR binary format: fixed-size records, each label byte(s) followed by
 * 3072 pixel bytes as three 32x32 planes (all red, then green, then blue,
 * each row-major), i.e. CHW. Petri keeps images HWC, so records are
 * transposed on the way in and out.
 *
 * CIFAR-10 records have one label byte; CIFAR-100 records have two (coarse,
 * then fine). The same code reads the synthetic dataset, which is written in
 * the CIFAR-10 layout on purpose so that it exercises this reader.
 */
import type { ImageSet } from '../../shared/data/image-set.ts';
import { DatasetError } from './errors.ts';

/** CIFAR images are 32x32 RGB. */
export const CIFAR_SHAPE = [32, 32, 3] as const;
const PLANE = 32 * 32;
const PIXELS = PLANE * 3;

/** How labels are laid out in a record. */
export interface CifarRecordLayout {
  /** Label bytes at the start of each record: 1 (CIFAR-10) or 2 (CIFAR-100). */
  readonly labelBytes: number;
  /** Which of those bytes is the label used (CIFAR-100: 1, the fine label). */
  readonly labelIndex: number;
  /** Labels must be below this. */
  readonly numClasses: number;
}

/** CIFAR-10: one label byte, 10 classes. */
export const CIFAR10_RECORD: CifarRecordLayout = { labelBytes: 1, labelIndex: 0, numClasses: 10 };
/** CIFAR-100: coarse then fine label byte; Petri uses the 100 fine classes. */
export const CIFAR100_RECORD: CifarRecordLayout = { labelBytes: 2, labelIndex: 1, numClasses: 100 };

/**
 * Decodes one CIFAR binary file into an HWC ImageSet (a copy).
 * @param expectedCount when given, the file must hold exactly this many records
 *   (the official files hold 10,000 each), so truncation is caught by size.
 * @throws DatasetError naming `source` when the size or a label is wrong.
 */
export function readCifarBatch(
  bytes: Uint8Array,
  layout: CifarRecordLayout,
  source: string,
  expectedCount?: number,
): ImageSet {
  const record = layout.labelBytes + PIXELS;
  if (bytes.length % record !== 0 || bytes.length === 0) {
    throw new DatasetError(
      `${source}: ${bytes.length} bytes is not a whole number of ${record}-byte CIFAR records (truncated or not a CIFAR binary file)`,
    );
  }
  const count = bytes.length / record;
  if (expectedCount !== undefined && count !== expectedCount) {
    throw new DatasetError(`${source}: holds ${count} records, expected ${expectedCount} (truncated or wrong file)`);
  }
  const labels = new Uint8Array(count);
  const pixels = new Uint8Array(count * PIXELS);
  for (let i = 0; i < count; i++) {
    const base = i * record;
    const label = bytes[base + layout.labelIndex] as number;
    if (label >= layout.numClasses) {
      throw new DatasetError(`${source}: record ${i} has label ${label}, expected below ${layout.numClasses} (corrupt)`);
    }
    labels[i] = label;
    const src = base + layout.labelBytes;
    const dst = i * PIXELS;
    for (let p = 0; p < PLANE; p++) {
      const o = dst + p * 3;
      pixels[o] = bytes[src + p] as number;
      pixels[o + 1] = bytes[src + PLANE + p] as number;
      pixels[o + 2] = bytes[src + 2 * PLANE + p] as number;
    }
  }
  return { shape: CIFAR_SHAPE, count, pixels, labels };
}

/**
 * Encodes 32x32x3 HWC images as CIFAR binary records (the inverse of
 * {@link readCifarBatch}). With two label bytes, `coarse` supplies the first.
 */
export function encodeCifarBatch(set: ImageSet, labelBytes: 1 | 2 = 1, coarse?: Uint8Array): Uint8Array {
  if (set.shape[0] !== 32 || set.shape[1] !== 32 || set.shape[2] !== 3) {
    throw new RangeError(`CIFAR records hold 32x32x3 images, not ${set.shape.join('x')}`);
  }
  const record = labelBytes + PIXELS;
  const out = new Uint8Array(set.count * record);
  for (let i = 0; i < set.count; i++) {
    const base = i * record;
    if (labelBytes === 2) out[base] = coarse?.[i] ?? 0;
    out[base + labelBytes - 1] = set.labels[i] as number;
    const src = i * PIXELS;
    for (let p = 0; p < PLANE; p++) {
      const o = src + p * 3;
      out[base + labelBytes + p] = set.pixels[o] as number;
      out[base + labelBytes + PLANE + p] = set.pixels[o + 1] as number;
      out[base + labelBytes + 2 * PLANE + p] = set.pixels[o + 2] as number;
    }
  }
  return out;
}
