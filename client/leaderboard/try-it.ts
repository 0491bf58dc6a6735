/**
 * "Try it": loads an individual's export with plain `tf.loadLayersModel`
 * (the same URL anyone can download, which proves it is a standard tf.js
 * LayersModel) and classifies training images or an image the visitor
 * drops on the page. tf.js is loaded on first use only.
 *
 * Training images come from the public train split (the dataset manifest
 * and a shard, decoded with the shared shard reader); the validation and
 * test splits never leave the server.
 */
import type * as TF from '@tensorflow/tfjs';
import { parseManifest, type Manifest } from '../../shared/data/manifest.ts';
import { decodeShard } from '../../shared/data/shard-format.ts';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { modelUrl } from './api.ts';

type Tf = typeof TF;

let tfLoading: Promise<Tf> | null = null;

/**
 * tf.js, imported on demand. `?backend=cpu` (or webgl, wasm if registered)
 * picks the backend; by default tf.js chooses (WebGL where it works).
 */
export function loadTf(): Promise<Tf> {
  tfLoading ??= import('@tensorflow/tfjs').then(async (tf) => {
    const wanted = new URLSearchParams(location.search).get('backend');
    if (wanted !== null && wanted !== '') await tf.setBackend(wanted);
    await tf.ready();
    return tf;
  });
  return tfLoading;
}

const models = new Map<string, Promise<TF.LayersModel>>();

/** The individual's exported model, loaded once per page. */
export function loadModel(id: string): Promise<TF.LayersModel> {
  let loading = models.get(id);
  if (loading === undefined) {
    loading = loadTf().then((tf) => tf.loadLayersModel(modelUrl(id)));
    models.set(id, loading);
    loading.catch(() => models.delete(id));
  }
  return loading;
}

export interface Predictions {
  /** Predicted class per image. */
  readonly classes: Int32Array;
  /** Class probabilities, image after image (numClasses each). */
  readonly probabilities: Float32Array;
}

/** Runs the model on `count` images of raw uint8 pixels (HWC); the model rescales them itself. */
export async function predict(model: TF.LayersModel, pixels: Uint8Array, count: number, shape: readonly [number, number, number]): Promise<Predictions> {
  const tf = await loadTf();
  const [probs, argmax] = tf.tidy(() => {
    const x = tf.tensor4d(Float32Array.from(pixels.subarray(0, count * shape[0] * shape[1] * shape[2])), [count, shape[0], shape[1], shape[2]]);
    const p = model.predict(x) as TF.Tensor;
    return [p, tf.argMax(p, 1)];
  });
  const [probabilities, classes] = await Promise.all([probs.data() as Promise<Float32Array>, argmax.data()]);
  probs.dispose();
  argmax.dispose();
  return { probabilities, classes: Int32Array.from(classes) };
}

const manifests = new Map<string, Promise<Manifest>>();
const samples = new Map<string, Promise<ImageSet>>();

/** The dataset's public manifest (image shape, class names, shards). */
export function loadManifest(dataset: string): Promise<Manifest> {
  let loading = manifests.get(dataset);
  if (loading === undefined) {
    loading = fetch(`/data/${encodeURIComponent(dataset)}/manifest.json`).then(async (r) => {
      if (!r.ok) throw new Error(`no manifest for ${dataset} (HTTP ${r.status})`);
      return parseManifest(await r.json());
    });
    manifests.set(dataset, loading);
    loading.catch(() => manifests.delete(dataset));
  }
  return loading;
}

/** The first shard of the training split, decoded. */
export function loadTrainingSample(dataset: string): Promise<ImageSet> {
  let loading = samples.get(dataset);
  if (loading === undefined) {
    loading = loadManifest(dataset).then(async (manifest) => {
      const shard = manifest.shards[0];
      if (shard === undefined) throw new Error(`${dataset} has no training shard`);
      const response = await fetch(shard.url);
      if (!response.ok) throw new Error(`shard ${shard.url}: HTTP ${response.status}`);
      const bytes = new Uint8Array(await response.arrayBuffer());
      return decodeShard(bytes, { source: shard.url, count: shard.count, shape: manifest.imageShape, numClasses: manifest.numClasses }).images;
    });
    samples.set(dataset, loading);
    loading.catch(() => samples.delete(dataset));
  }
  return loading;
}

/**
 * An image file resized to the dataset's input shape: centre-cropped to the
 * target's aspect ratio, scaled, and reduced to grey when the dataset has
 * one channel. Returns HWC uint8 pixels and a preview canvas.
 */
export async function imageToPixels(file: Blob, shape: readonly [number, number, number]): Promise<{ pixels: Uint8Array; canvas: HTMLCanvasElement }> {
  const bitmap = await createImageBitmap(file);
  const [height, width, channels] = shape;
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  if (ctx === null) throw new Error('no 2D canvas');
  const targetAspect = width / height;
  let sw = bitmap.width;
  let sh = bitmap.height;
  if (sw / sh > targetAspect) sw = sh * targetAspect;
  else sh = sw / targetAspect;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, (bitmap.width - sw) / 2, (bitmap.height - sh) / 2, sw, sh, 0, 0, width, height);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const pixels = new Uint8Array(height * width * channels);
  for (let i = 0; i < height * width; i++) {
    const r = rgba[i * 4] as number;
    const g = rgba[i * 4 + 1] as number;
    const b = rgba[i * 4 + 2] as number;
    if (channels === 1) pixels[i] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    else {
      pixels[i * channels] = r;
      if (channels > 1) pixels[i * channels + 1] = g;
      if (channels > 2) pixels[i * channels + 2] = b;
      for (let c = 3; c < channels; c++) pixels[i * channels + c] = 255;
    }
  }
  return { pixels, canvas };
}

/** A canvas showing one image of a set (for thumbnails). */
export function imageCanvas(pixels: Uint8Array, index: number, shape: readonly [number, number, number]): HTMLCanvasElement {
  const [height, width, channels] = shape;
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  if (ctx === null) return canvas;
  const image = ctx.createImageData(width, height);
  const base = index * height * width * channels;
  for (let i = 0; i < height * width; i++) {
    const at = base + i * channels;
    const r = pixels[at] as number;
    image.data[i * 4] = r;
    image.data[i * 4 + 1] = channels > 1 ? (pixels[at + 1] as number) : r;
    image.data[i * 4 + 2] = channels > 2 ? (pixels[at + 2] as number) : r;
    image.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}
