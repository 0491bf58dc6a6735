/**
 * Training batches from an ImageSet: seeded epoch shuffles and the paper's
 * augmentation (pad 4 and random crop back to size, random horizontal flip),
 * done on bytes in plain JS so the accelerator only sees ready batches.
 */
import type { Rng } from '../evolution/rng.ts';
import { imageBytes, type ImageSet } from '../data/image-set.ts';

/** Images smaller than this on a side are not augmented (cropping would destroy them). */
export const MIN_AUGMENT_SIDE = 16;
export const AUGMENT_PAD = 4;

export interface Batch {
  /** batch * h * w * c raw pixel values (0..255) as floats. */
  readonly pixels: Float32Array;
  /** batch class indices. */
  readonly labels: Int32Array;
  readonly size: number;
}

/** An endless stream of shuffled batches, one full shuffle per epoch. */
export class BatchStream {
  private order: Uint32Array;
  private cursor: number;
  private readonly pixels: Float32Array;
  private readonly labels: Int32Array;

  constructor(
    private readonly data: ImageSet,
    private readonly batchSize: number,
    private readonly rng: Rng,
    private readonly augment: boolean,
  ) {
    if (data.count === 0) throw new Error('cannot train on an empty dataset');
    this.order = new Uint32Array(data.count);
    this.cursor = data.count;
    this.pixels = new Float32Array(batchSize * imageBytes(data.shape));
    this.labels = new Int32Array(batchSize);
  }

  /** True when this dataset's images are large enough to augment. */
  get augments(): boolean {
    return this.augment && this.data.shape[0] >= MIN_AUGMENT_SIDE && this.data.shape[1] >= MIN_AUGMENT_SIDE;
  }

  private reshuffle(): void {
    for (let i = 0; i < this.order.length; i++) this.order[i] = i;
    for (let i = this.order.length - 1; i > 0; i--) {
      const j = this.rng.int(0, i);
      const t = this.order[i] as number;
      this.order[i] = this.order[j] as number;
      this.order[j] = t;
    }
    this.cursor = 0;
  }

  /** The next batch. Its arrays are reused by the following call. */
  next(): Batch {
    const [h, w, c] = this.data.shape;
    const size = imageBytes(this.data.shape);
    const augment = this.augments;
    for (let b = 0; b < this.batchSize; b++) {
      if (this.cursor >= this.order.length) this.reshuffle();
      const index = this.order[this.cursor++] as number;
      this.labels[b] = this.data.labels[index] as number;
      const src = index * size;
      const dst = b * size;
      if (!augment) {
        for (let i = 0; i < size; i++) this.pixels[dst + i] = this.data.pixels[src + i] as number;
        continue;
      }
      const dy = this.rng.int(-AUGMENT_PAD, AUGMENT_PAD);
      const dx = this.rng.int(-AUGMENT_PAD, AUGMENT_PAD);
      const flip = this.rng.chance(0.5);
      for (let y = 0; y < h; y++) {
        const sy = y + dy;
        for (let x = 0; x < w; x++) {
          const sx = (flip ? w - 1 - x : x) + dx;
          const o = dst + (y * w + x) * c;
          if (sy < 0 || sy >= h || sx < 0 || sx >= w) {
            for (let k = 0; k < c; k++) this.pixels[o + k] = 0;
          } else {
            const s = src + (sy * w + sx) * c;
            for (let k = 0; k < c; k++) this.pixels[o + k] = this.data.pixels[s + k] as number;
          }
        }
      }
    }
    return { pixels: this.pixels, labels: this.labels, size: this.batchSize };
  }
}
