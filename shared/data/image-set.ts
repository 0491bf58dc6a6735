/**
 * A set of labelled images held as raw bytes: the one in-memory form every
 * dataset takes once read (CIFAR binary, IDX, Petri shards).
 *
 * Pixels are uint8, image after image, each stored height x width x channels
 * (HWC, channels last), which is what tf.js conv layers expect.
 */
export interface ImageSet {
  /** [height, width, channels] of every image. */
  readonly shape: readonly [number, number, number];
  /** Number of images. */
  readonly count: number;
  /** count * height * width * channels bytes, HWC per image. */
  readonly pixels: Uint8Array;
  /** count bytes, each in [0, numClasses). */
  readonly labels: Uint8Array;
}

/** Bytes of one image of the given shape. */
export function imageBytes(shape: readonly [number, number, number]): number {
  return shape[0] * shape[1] * shape[2];
}

/** A view of images [start, end) of a set, sharing its memory. */
export function sliceImageSet(set: ImageSet, start: number, end: number): ImageSet {
  const size = imageBytes(set.shape);
  return {
    shape: set.shape,
    count: end - start,
    pixels: set.pixels.subarray(start * size, end * size),
    labels: set.labels.subarray(start, end),
  };
}
