/**
 * 3x3 stride-1 'same' convolutions on the wasm backend as Winograd
 * F(2x2, 3x3) (Lavin & Gray 2016): each 2x2 block of outputs costs 16
 * multiplies per input/output channel pair instead of 36, so the GEMM work
 * is 4/9 of a direct convolution's. The pieces are SIMD loops of
 * simd-kernels.ts working in place on the backend's heap:
 *
 *   X (NHWC) --pad--> P --winogradInput--> V[16][tiles][Ci]
 *   W (HWIO) --winogradFilter--> U[16][Ci][Co]
 *   M[ξ] = V[ξ]·U[ξ] (shortGemm, one per ξ)
 *   M --winogradOutput--> Y (NHWC)
 *
 * Tiles go through in chunks small enough for V and M to stay in cache,
 * and the images are split between threads (simd-calls.ts). The input
 * gradient of such a conv (wasm-kernels.ts) is again one: dY with the
 * filter rotated by 180° and its channels swapped.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import { f32, free, simdFor, type WasmBackendLike } from './wasm-heap.ts';
import type { SimdKernels } from './simd-kernels.ts';
import { runSimdPrograms, simdThreads, type SimdCall } from './simd-calls.ts';

type Shape4 = [number, number, number, number];

/** Tiles per chunk: V and M of a chunk (16 planes each) stay in L2 for up to ~128 channels. */
export const winogradChunk = { tiles: 64 };

/** Tests and benchmarks turn the Winograd path off to compare with XNNPACK's direct convolution. */
export const winogradSwitch = { enabled: true, used: 0 };

/**
 * Whether a conv of this shape runs as Winograd here: a 3x3 filter, stride
 * and dilation 1, one pixel of padding on every side, even height and width,
 * input channels a multiple of 4 and output channels a multiple of 8 (the
 * SIMD loops' widths).
 */
export function winogradApplies(info: tf.backend_util.Conv2DInfo): boolean {
  const p = info.padInfo;
  return winogradSwitch.enabled &&
    info.filterHeight === 3 && info.filterWidth === 3 &&
    info.strideHeight === 1 && info.strideWidth === 1 &&
    info.dilationHeight === 1 && info.dilationWidth === 1 &&
    p.top === 1 && p.bottom === 1 && p.left === 1 && p.right === 1 &&
    info.inHeight % 2 === 0 && info.inWidth % 2 === 0 && info.inHeight >= 2 && info.inWidth >= 2 &&
    info.outHeight === info.inHeight && info.outWidth === info.inWidth &&
    info.inChannels % 4 === 0 && info.outChannels % 8 === 0 && info.batchSize >= 1;
}

/** U = G·g·Gᵀ of an HWIO [3,3,Ci,Co] filter, as [16, Ci, Co]. */
export function winogradFilter(backend: WasmBackendLike, simd: SimdKernels, filter: TensorInfo): TensorInfo {
  const [, , ci, co] = filter.shape as Shape4;
  const u = backend.makeOutput([16, ci, co], 'float32');
  const cc = ci * co;
  simd.winogradFilter(f32(backend, filter).byteOffset, f32(backend, u).byteOffset, cc / 4, cc * 4);
  return u;
}

/**
 * Y = conv3x3(X, W) for NHWC X [n, h, w, ci] and the transformed filter
 * `u` ([16, ci, co], {@link winogradFilter}).
 */
export function winogradConv(
  backend: WasmBackendLike, simd: SimdKernels, x: TensorInfo, u: TensorInfo,
): TensorInfo {
  const [n, h, w, ci] = x.shape as Shape4;
  const co = u.shape[2] as number;
  const ph = h + 2;
  const pw = w + 2;
  const th = h / 2;
  const tw = w / 2;
  const perImage = th * tw;
  const chunk = winogradChunk.tiles;
  const threads = Math.max(1, Math.min(simdThreads(simd), n));
  const scratchFloats = 16 * chunk * (ci + co);

  const padded = backend.makeOutput([n, ph, pw, ci], 'float32');
  const scratch = backend.makeOutput([threads, scratchFloats], 'float32');
  const y = backend.makeOutput([n, h, w, co], 'float32');
  try {
    // Views after the last allocation.
    const pView = f32(backend, padded);
    const pAt = pView.byteOffset;
    const xAt = f32(backend, x).byteOffset;
    const uAt = f32(backend, u).byteOffset;
    const yAt = f32(backend, y).byteOffset;
    const sAt = f32(backend, scratch).byteOffset;
    zeroBorder(pView, n, ph, pw, ci);

    const rowIn = pw * ci * 4;
    const vPlane = chunk * ci * 4;
    const mPlane = chunk * co * 4;
    const programs: SimdCall[][] = [];
    for (let t = 0; t < threads; t++) {
      const calls: SimdCall[] = [];
      const i0 = Math.floor((n * t) / threads);
      const i1 = Math.floor((n * (t + 1)) / threads);
      const vAt = sAt + t * scratchFloats * 4;
      const mAt = vAt + 16 * vPlane;
      for (let i = i0; i < i1; i++) {
        // This image into the middle of its padded copy.
        calls.push(['copyRuns', xAt + i * h * w * ci * 4, pAt + ((i * ph + 1) * pw + 1) * ci * 4, h, w * ci * 4, rowIn, 1, w * ci * 4, 0, 0]);
      }
      const first = i0 * perImage;
      const end = i1 * perImage;
      for (let c0 = first; c0 < end; c0 += chunk) {
        const count = Math.min(chunk, end - c0);
        forSegments(c0, count, perImage, tw, (tile, img, ty, tx, len) => {
          calls.push(['winogradInput', pAt + ((img * ph + 2 * ty) * pw + 2 * tx) * ci * 4, vAt + (tile - c0) * ci * 4, len, ci / 4, rowIn, vPlane]);
        });
        for (let xi = 0; xi < 16; xi++) {
          calls.push([
            'shortGemm', vAt + xi * vPlane, uAt + xi * ci * co * 4, mAt + xi * mPlane,
            Math.ceil(count / 4), co / 8, ci, ci * 4, co * 4,
          ]);
        }
        forSegments(c0, count, perImage, tw, (tile, img, ty, tx, len) => {
          calls.push(['winogradOutput', mAt + (tile - c0) * co * 4, yAt + ((img * h + 2 * ty) * w + 2 * tx) * co * 4, len, co / 4, mPlane, w * co * 4]);
        });
      }
      programs.push(calls);
    }
    runSimdPrograms(simd, programs);
    winogradSwitch.used++;
    return y;
  } catch (e) {
    free(backend, y);
    throw e;
  } finally {
    free(backend, padded, scratch);
  }
}

/** Splits tiles [c0, c0 + count) into runs along one tile row of one image. */
function forSegments(
  c0: number, count: number, perImage: number, tw: number,
  fn: (tile: number, img: number, ty: number, tx: number, len: number) => void,
): void {
  let t = c0;
  while (t < c0 + count) {
    const img = Math.floor(t / perImage);
    const r = t - img * perImage;
    const ty = Math.floor(r / tw);
    const tx = r - ty * tw;
    const len = Math.min(tw - tx, c0 + count - t);
    fn(t, img, ty, tx, len);
    t += len;
  }
}

/** Zeroes the one-pixel frame of each padded image (the heap is not zeroed). */
function zeroBorder(p: Float32Array, n: number, ph: number, pw: number, ci: number): void {
  const row = pw * ci;
  for (let i = 0; i < n; i++) {
    const img = i * ph * row;
    p.fill(0, img, img + row);
    p.fill(0, img + (ph - 1) * row, img + ph * row);
    for (let r = 1; r < ph - 1; r++) {
      const at = img + r * row;
      p.fill(0, at, at + ci);
      p.fill(0, at + row - ci, at + row);
    }
  }
}

/**
 * The conv by Winograd where {@link winogradApplies} and Petri's SIMD module
 * runs on this heap; null otherwise (the caller runs XNNPACK's conv).
 */
export function winogradConv2D(
  backend: WasmBackendLike, x: TensorInfo, filter: TensorInfo, info: tf.backend_util.Conv2DInfo,
): TensorInfo | null {
  if (!winogradApplies(info) || x.dtype !== 'float32' || filter.dtype !== 'float32') return null;
  const simd = simdFor(backend, f32(backend, x));
  if (simd === null) return null;
  const u = winogradFilter(backend, simd, filter);
  try {
    return winogradConv(backend, simd, x, u);
  } finally {
    free(backend, u);
  }
}

/**
 * dW of the conv by Winograd, where {@link winogradApplies}: with V the
 * transformed input tiles and dM = A·dy·Aᵀ the transformed output-gradient
 * tiles, dU[ξ] = Σ over tiles of V[ξ]ᵀ·dM[ξ] (tnGemm), and dW = Gᵀ·dU·G.
 * Each thread sums its own images into its own dU; the sums are added at the
 * end. Null where it does not apply (the caller runs its im2col GEMM).
 */
export function winogradFilterGradient(
  backend: WasmBackendLike, x: TensorInfo, dy: TensorInfo, info: tf.backend_util.Conv2DInfo,
): TensorInfo | null {
  if (!winogradApplies(info) || x.dtype !== 'float32' || dy.dtype !== 'float32') return null;
  const simd = simdFor(backend, f32(backend, x));
  if (simd === null) return null;
  const [n, h, w, ci] = x.shape as Shape4;
  const co = info.outChannels;
  const ph = h + 2;
  const pw = w + 2;
  const tw = w / 2;
  const perImage = (h / 2) * tw;
  const chunk = winogradChunk.tiles;
  const threads = Math.max(1, Math.min(simdThreads(simd), n));
  const scratchFloats = 16 * chunk * (ci + co);
  const uFloats = 16 * ci * co;

  const padded = backend.makeOutput([n, ph, pw, ci], 'float32');
  const scratch = backend.makeOutput([threads, scratchFloats], 'float32');
  const sums = backend.makeOutput([threads, uFloats], 'float32');
  const dw = backend.makeOutput([3, 3, ci, co], 'float32');
  try {
    const pView = f32(backend, padded);
    const pAt = pView.byteOffset;
    const xAt = f32(backend, x).byteOffset;
    const dyAt = f32(backend, dy).byteOffset;
    const sAt = f32(backend, scratch).byteOffset;
    const uView = f32(backend, sums);
    const uAt = uView.byteOffset;
    zeroBorder(pView, n, ph, pw, ci);
    uView.fill(0);

    const rowIn = pw * ci * 4;
    const vPlane = chunk * ci * 4;
    const mPlane = chunk * co * 4;
    const programs: SimdCall[][] = [];
    for (let t = 0; t < threads; t++) {
      const calls: SimdCall[] = [];
      const i0 = Math.floor((n * t) / threads);
      const i1 = Math.floor((n * (t + 1)) / threads);
      const vAt = sAt + t * scratchFloats * 4;
      const mAt = vAt + 16 * vPlane;
      const dU = uAt + t * uFloats * 4;
      for (let i = i0; i < i1; i++) {
        calls.push(['copyRuns', xAt + i * h * w * ci * 4, pAt + ((i * ph + 1) * pw + 1) * ci * 4, h, w * ci * 4, rowIn, 1, w * ci * 4, 0, 0]);
      }
      const end = i1 * perImage;
      for (let c0 = i0 * perImage; c0 < end; c0 += chunk) {
        const count = Math.min(chunk, end - c0);
        forSegments(c0, count, perImage, tw, (tile, img, ty, tx, len) => {
          calls.push(['winogradInput', pAt + ((img * ph + 2 * ty) * pw + 2 * tx) * ci * 4, vAt + (tile - c0) * ci * 4, len, ci / 4, rowIn, vPlane]);
          calls.push(['winogradGradOutput', dyAt + ((img * h + 2 * ty) * w + 2 * tx) * co * 4, mAt + (tile - c0) * co * 4, len, co / 4, w * co * 4, mPlane]);
        });
        for (let xi = 0; xi < 16; xi++) {
          calls.push(['tnGemm', vAt + xi * vPlane, mAt + xi * mPlane, dU + xi * ci * co * 4, ci / 4, co / 8, count, ci * 4, co * 4, co * 4]);
        }
      }
      programs.push(calls);
    }
    runSimdPrograms(simd, programs);
    const all = f32(backend, sums);
    for (let t = 1; t < threads; t++) {
      const base = t * uFloats;
      for (let i = 0; i < uFloats; i++) all[i] = (all[i] as number) + (all[base + i] as number);
    }
    simd.winogradFilterGrad(uAt, f32(backend, dw).byteOffset, (ci * co) / 4, ci * co * 4, ci * co * 4);
    winogradSwitch.used++;
    return dw;
  } catch (e) {
    free(backend, dw);
    throw e;
  } finally {
    free(backend, padded, scratch, sums);
  }
}
