/**
 * The synthetic dataset: 10 classes of 32x32 RGB textures, generated from a
 * seed, for fast tests and demos.
 *
 * Each class is a local spatial pattern (stripes of four orientations,
 * checkerboards of two scales, rings, dots, grid lines, blobs) with random
 * period, phase, colours, lighting gradient and pixel noise. The pattern mask
 * is centred on its own mean before colouring, so every image's mean colour
 * is exactly the random base colour whatever its class: the project's linear
 * baseline (global average pooling, then softmax) stays at chance, while a
 * 3x3 convolution sees edges whose orientation and spacing give the class.
 *
 * The images are written in the real CIFAR-10 binary layout and read back by
 * the CIFAR reader, so the synthetic dataset exercises the same pipeline.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { encodeCifarBatch } from './cifar-reader.ts';
import { createPrng, type Prng } from './prng.ts';
import { seededPermutation } from './split.ts';

/** Class names, in label order. */
export const SYNTHETIC_CLASSES = [
  'horizontal-stripes',
  'vertical-stripes',
  'diagonal-stripes',
  'antidiagonal-stripes',
  'fine-checkerboard',
  'coarse-checkerboard',
  'rings',
  'dots',
  'grid',
  'blobs',
] as const;

/** Size and seed of a synthetic dataset. */
export interface SyntheticOptions {
  /** Official-training images (later split into train and validation). Default 5,000. */
  readonly train: number;
  /** Test images. Default 1,000. */
  readonly test: number;
  /** Everything follows from it. Default 1. */
  readonly seed: number;
}

/** Defaults used when a caller gives no sizes. */
export const SYNTHETIC_DEFAULTS: SyntheticOptions = { train: 5000, test: 1000, seed: 1 };

/** Records per data_batch file, as in CIFAR-10. */
const RECORDS_PER_FILE = 10_000;
const SIDE = 32;
/**
 * Pixel noise: triangular (sum of two uniforms), scaled to a standard
 * deviation of 10 grey levels; cheaper than Gaussian and just as good here.
 */
const NOISE = 10 * Math.sqrt(6);

/**
 * Generates `count` labelled images; classes are balanced (count / 10 each,
 * the remainder spread over the first classes) and in shuffled order.
 */
export function generateSyntheticImages(count: number, seed: number): ImageSet {
  const rng = createPrng(seed);
  const order = seededPermutation(count, seed ^ 0x5bd1e995);
  const pixels = new Uint8Array(count * SIDE * SIDE * 3);
  const labels = new Uint8Array(count);
  const mask = new Float32Array(SIDE * SIDE);
  for (let i = 0; i < count; i++) {
    const label = (order[i] as number) % SYNTHETIC_CLASSES.length;
    labels[i] = label;
    drawMask(label, rng, mask);
    paint(mask, rng, pixels.subarray(i * SIDE * SIDE * 3, (i + 1) * SIDE * SIDE * 3));
  }
  return { shape: [SIDE, SIDE, 3], count, pixels, labels };
}

/**
 * Writes a synthetic dataset as CIFAR-10 binary files in `dir`
 * (data_batch_1.bin ... with up to 10,000 records each, test_batch.bin,
 * batches.meta.txt) and returns the names of the training files.
 */
export async function writeSyntheticCifar(dir: string, options: SyntheticOptions): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  // Train and test come from different seeds, so no test image repeats a training one.
  const train = generateSyntheticImages(options.train, options.seed);
  const test = generateSyntheticImages(options.test, (options.seed ^ 0x9e3779b9) + 1);
  const names: string[] = [];
  for (let start = 0, n = 1; start < train.count; start += RECORDS_PER_FILE, n++) {
    const end = Math.min(train.count, start + RECORDS_PER_FILE);
    const batch: ImageSet = {
      shape: train.shape,
      count: end - start,
      pixels: train.pixels.subarray(start * 3072, end * 3072),
      labels: train.labels.subarray(start, end),
    };
    const name = `data_batch_${n}.bin`;
    await writeFile(join(dir, name), encodeCifarBatch(batch));
    names.push(name);
  }
  await writeFile(join(dir, 'test_batch.bin'), encodeCifarBatch(test));
  await writeFile(join(dir, 'batches.meta.txt'), `${SYNTHETIC_CLASSES.join('\n')}\n`);
  return names;
}

/** Fills `mask` (32x32, values 0 or 1) with a random instance of the class pattern. */
function drawMask(label: number, rng: Prng, mask: Float32Array): void {
  const period = rng.range(4, 8);
  const phase = rng.next();
  const ox = rng.int(8);
  const oy = rng.int(8);
  const stripes = (t: number): number => (frac(t / period + phase) < 0.5 ? 1 : 0);
  const cell = label === 4 ? 2 : 4 + rng.int(2);
  const spacing = 6 + rng.int(3);
  const cx = rng.range(8, 24);
  const cy = rng.range(8, 24);
  const blobs = label === 9 ? randomBlobs(rng) : [];
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      let m: number;
      switch (label) {
        case 0: m = stripes(y); break;
        case 1: m = stripes(x); break;
        case 2: m = stripes((x + y) / Math.SQRT2); break;
        case 3: m = stripes((x - y) / Math.SQRT2); break;
        case 4:
        case 5: m = (Math.floor((x + ox) / cell) + Math.floor((y + oy) / cell)) & 1; break;
        case 6: m = stripes(Math.hypot(x - cx, y - cy)); break;
        case 7: {
          const dx = ((x + ox) % spacing) - spacing / 2 + 0.5;
          const dy = ((y + oy) % spacing) - spacing / 2 + 0.5;
          m = Math.hypot(dx, dy) < spacing * 0.3 ? 1 : 0;
          break;
        }
        case 8: m = (x + ox) % spacing < 2 || (y + oy) % spacing < 2 ? 1 : 0; break;
        default: {
          let field = 0;
          for (const b of blobs) field += b.sign * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.s * b.s));
          m = field > 0 ? 1 : 0;
        }
      }
      mask[y * SIDE + x] = m;
    }
  }
}

function randomBlobs(rng: Prng): { x: number; y: number; s: number; sign: number }[] {
  return Array.from({ length: 8 }, (_, k) => ({
    x: rng.range(-2, 34),
    y: rng.range(-2, 34),
    s: rng.range(3, 6),
    sign: k % 2 === 0 ? 1 : -1,
  }));
}

/**
 * Colours a mask: base colour + contrast x (mask - mean(mask)) + a lighting
 * gradient + noise. Centring the mask keeps the image mean at the base colour
 * whatever the pattern's coverage, which is what defeats mean-colour models.
 */
function paint(mask: Float32Array, rng: Prng, out: Uint8Array): void {
  const coverage = mask.reduce((a, b) => a + b, 0) / mask.length;
  const base = [rng.range(80, 176), rng.range(80, 176), rng.range(80, 176)];
  const contrast = [0, 0, 0].map(() => rng.range(35, 64) * (rng.next() < 0.5 ? -1 : 1));
  const gx = rng.range(-16, 16) / 16;
  const gy = rng.range(-16, 16) / 16;
  for (let p = 0; p < SIDE * SIDE; p++) {
    const centred = (mask[p] as number) - coverage;
    const light = gx * ((p % SIDE) - 15.5) + gy * (Math.floor(p / SIDE) - 15.5);
    for (let c = 0; c < 3; c++) {
      const v = (base[c] as number) + (contrast[c] as number) * centred + light + NOISE * (rng.next() + rng.next() - 1);
      out[p * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
}

function frac(t: number): number {
  return t - Math.floor(t);
}
