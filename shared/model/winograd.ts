/**
 * 3x3 stride-1 'same' convolutions on the wasm backend by Winograd's
 * minimal filtering (Lavin & Gray 2016). F(4x4, 3x3) computes a 4x4 block
 * of outputs with 36 multiplies per input/output channel pair instead of
 * 144, so the GEMM work is 1/4 of a direct convolution's; F(2x2, 3x3),
 * used where the height or width is not a multiple of 4, 16 instead of 36.
 * The pieces are SIMD loops of simd-kernels.ts and simd-winograd.ts
 * working in place on the backend's heap (α = 6 or 4 planes a side):
 *
 *   X (NHWC) --pad--> P --input transform--> V[α²][tiles][Ci]
 *   W (HWIO) --filter transform--> U[α²][Ci][Co]
 *   M[ξ] = V[ξ]·U[ξ] (shortGemm, one per ξ; shortGemmPlanes runs them all)
 *   M --output transform--> Y (NHWC)
 *
 * Tiles go through in chunks small enough for V and M to stay in cache,
 * and the images are split between threads (simd-calls.ts). The input
 * gradient of such a conv (wasm-kernels.ts) is again one: dY with the
 * filter rotated by 180° and its channels swapped. The filter gradient is
 * dU[ξ] = Σ V[ξ]ᵀ·dM[ξ] over the tiles, with dM the output gradient's tiles
 * transformed, and dW = Gᵀ·dU·G.
 *
 * The SIMD loops take input channels in fours and output channels in
 * eights; other counts (evolved nets have any) run on copies padded with
 * zero channels, and the results are copied back without the padding.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import { f32, free, simdFor, type WasmBackendLike } from './wasm-heap.ts';
import type { SimdKernels } from './simd-kernels.ts';
import { addPartials, channelCopy, imagesOfThread, runProgram, runSimdPrograms, simdThreads, type SimdCall } from './simd-calls.ts';

type Shape4 = [number, number, number, number];

/**
 * Tiles per chunk: at most `tiles`, and few enough that a chunk's V and M
 * (all planes) fit in `bytes`, about the L2 cache.
 */
export const winogradChunk = { tiles: 64, bytes: 1 << 20 };

/**
 * Tests and benchmarks turn the Winograd path off (XNNPACK's direct
 * convolution) or hold it to F(2x2, 3x3) (`largestTile` 2); `used` counts
 * the convs it ran, `used4` those with 4x4 tiles.
 */
export const winogradSwitch = { enabled: true, largestTile: 4 as 2 | 4, used: 0, used4: 0 };

/** One Winograd algorithm: its output tile, planes, and its SIMD functions as calls. */
interface Variant {
  /** Outputs per tile side. */
  m: 2 | 4;
  /** α² transformed values per tile. */
  planes: number;
  /** The transforms (simd-winograd.ts), by name. */
  input: keyof SimdKernels;
  output: keyof SimdKernels;
  gradOutput: keyof SimdKernels;
  filter(src: number, dst: number, groups: number, planeBytes: number): SimdCall;
  filterGrad(src: number, dst: number, groups: number, planeBytes: number): SimdCall;
}

function variant(m: 2 | 4): Variant {
  return {
    m,
    planes: (m + 2) * (m + 2),
    input: `winograd${m}Input` as keyof SimdKernels,
    output: `winograd${m}Output` as keyof SimdKernels,
    gradOutput: `winograd${m}GradOutput` as keyof SimdKernels,
    filter: (s, d, g, p) => [`winograd${m}Filter`, s, d, 1, g, 0, p, 1, 0, 0],
    filterGrad: (s, d, g, p) => [`winograd${m}FilterGrad`, s, d, 1, g, 0, p, 1, 0, 0],
  };
}

const F2 = variant(2);
const F4 = variant(4);

/** F(4x4, 3x3) where the image splits into 4x4 tiles, F(2x2, 3x3) otherwise. */
function variantFor(h: number, w: number): Variant {
  return winogradSwitch.largestTile === 4 && h % 4 === 0 && w % 4 === 0 ? F4 : F2;
}

/**
 * Fewest channels, in and out, for Winograd: below them the padded GEMMs
 * are mostly zeros (a first layer on RGB images stays on XNNPACK).
 */
export const WINOGRAD_MIN_CHANNELS = 8;

/**
 * Smallest Ci·Co for Winograd. Below it the transforms (memory passes)
 * cost more than the GEMM work saved: on this 2-core machine, 2 threads,
 * batch 50, XNNPACK was faster at 16->16 and 8->8 and even at 12->12;
 * Winograd was faster from about 12->24 up (20->28: 1.2x, 60->70: 1.8x).
 */
export const WINOGRAD_MIN_CHANNEL_PRODUCT = 512;

const roundUp = (v: number, m: number): number => Math.ceil(v / m) * m;

/**
 * Whether a conv of this shape runs as Winograd here: a 3x3 filter, stride
 * and dilation 1, one pixel of padding on every side, even height and
 * width, at least {@link WINOGRAD_MIN_CHANNELS} channels in and out and
 * {@link WINOGRAD_MIN_CHANNEL_PRODUCT} channel pairs.
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
    info.inChannels >= WINOGRAD_MIN_CHANNELS && info.outChannels >= WINOGRAD_MIN_CHANNELS &&
    info.inChannels * info.outChannels >= WINOGRAD_MIN_CHANNEL_PRODUCT && info.batchSize >= 1;
}

/** Sizes of one Winograd conv; `ciP`/`coP` are the channel counts the SIMD loops run on. */
interface Geometry {
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  ciP: number;
  coP: number;
  /** Padded image height and width. */
  ph: number;
  pw: number;
  /** Tile rows per image, tiles per tile row and per image. */
  th: number;
  tw: number;
  perImage: number;
  /** Tile rows per chunk (big images), images per chunk (small ones). */
  rowsPerChunk: number;
  imagesPerChunk: number;
  /** Tiles a chunk's planes have room for (its most tiles, rounded up to 4). */
  chunk: number;
  threads: number;
  v: Variant;
}

function geometry(simd: SimdKernels, x: readonly number[], co: number): Geometry {
  const [n, h, w, ci] = x as Shape4;
  const v = variantFor(h, w);
  const ciP = roundUp(ci, 4);
  const coP = roundUp(co, 8);
  const fit = Math.floor(winogradChunk.bytes / (v.planes * (ciP + coP) * 4) / 4) * 4;
  const cap = Math.max(4, Math.min(winogradChunk.tiles, fit));
  const th = h / v.m;
  const tw = w / v.m;
  const perImage = th * tw;
  // Chunks of whole tile rows of one image, or of whole images where an image has fewer tiles than `cap`.
  const rowsPerChunk = perImage > cap ? Math.max(1, Math.floor(cap / tw)) : th;
  const imagesPerChunk = perImage > cap ? 1 : Math.max(1, Math.floor(cap / perImage));
  return {
    n, h, w, ci, co, ciP, coP, v, th, tw, perImage, rowsPerChunk, imagesPerChunk,
    ph: h + 2,
    pw: w + 2,
    // A multiple of 4: the GEMM works in blocks of four tiles, into the plane's spare rows.
    chunk: roundUp(rowsPerChunk * tw * imagesPerChunk, 4),
    threads: Math.max(1, Math.min(simdThreads(simd), n)),
  };
}

/** Whole tile rows of images: `rows` rows from tile row `ty` of image `img`, or `rows` whole one-row images from `img`. */
interface Piece {
  img: number;
  ty: number;
  rows: number;
  /** Each row is a whole image (images one tile row high): rows are an image apart. */
  images: boolean;
}

/** Images [i0, i1) as chunks of at most `chunk` tiles: each chunk's pieces, in tile order. */
function chunksOf(g: Geometry, i0: number, i1: number): { tiles: number; pieces: Piece[] }[] {
  const out: { tiles: number; pieces: Piece[] }[] = [];
  if (g.imagesPerChunk === 1) {
    for (let img = i0; img < i1; img++) {
      for (let ty = 0; ty < g.th; ty += g.rowsPerChunk) {
        const rows = Math.min(g.rowsPerChunk, g.th - ty);
        out.push({ tiles: rows * g.tw, pieces: [{ img, ty, rows, images: false }] });
      }
    }
    return out;
  }
  for (let img = i0; img < i1; img += g.imagesPerChunk) {
    const count = Math.min(g.imagesPerChunk, i1 - img);
    const pieces: Piece[] = g.th === 1
      ? [{ img, ty: 0, rows: count, images: true }]
      : Array.from({ length: count }, (_, k) => ({ img: img + k, ty: 0, rows: g.th, images: false }));
    out.push({ tiles: count * g.perImage, pieces });
  }
  return out;
}

/** The input transform of one piece of the padded input (at pAt) into a chunk's V (its tiles from vAt on). */
function inputCall(g: Geometry, pAt: number, vAt: number, vPlane: number, piece: Piece): SimdCall {
  const rowIn = g.pw * g.ciP * 4;
  const { img, ty, rows, images } = piece;
  return [
    g.v.input, pAt + (img * g.ph + g.v.m * ty) * rowIn, vAt, g.tw, g.ciP / 4, rowIn, vPlane,
    rows, images ? g.ph * rowIn : g.v.m * rowIn, g.tw * g.ciP * 4,
  ];
}

/**
 * U = G·g·Gᵀ of an HWIO [3,3,Ci,Co] filter, as [planes, ciP, coP] (zero
 * where the channels are padding).
 */
function winogradFilter(backend: WasmBackendLike, simd: SimdKernels, filter: TensorInfo, g: Geometry): TensorInfo {
  const { ci, co, ciP, coP } = g;
  const cc = ciP * coP;
  let padded: TensorInfo | null = null;
  if (ci !== ciP || co !== coP) {
    padded = backend.makeOutput([3, 3, ciP, coP], 'float32');
  }
  const u = backend.makeOutput([g.v.planes, ciP, coP], 'float32');
  try {
    let src = f32(backend, filter).byteOffset;
    if (padded !== null) {
      const view = f32(backend, padded);
      view.fill(0);
      simd.copyRuns(src, view.byteOffset, 9, ci * co * 4, cc * 4, ci, co * 4, co * 4, coP * 4);
      src = view.byteOffset;
    }
    runProgram(simd, [g.v.filter(src, f32(backend, u).byteOffset, cc / 4, cc * 4)]);
    return u;
  } finally {
    if (padded !== null) free(backend, padded);
  }
}

/**
 * The zero-padded input P [n, h+2, w+2, ciP]: zeroes what the copies leave
 * (the frame, or everything when channels are padded too; the heap is not
 * zeroed) and returns the copy of image i as a call for its thread.
 */
function paddedInput(g: Geometry, view: Float32Array, xAt: number): (i: number) => SimdCall {
  if (g.ciP !== g.ci) view.fill(0);
  else zeroBorder(view, g.n, g.ph, g.pw, g.ci);
  const pAt = view.byteOffset;
  const { h, w, ci, ciP, pw, ph } = g;
  return (i) => {
    const src = xAt + i * h * w * ci * 4;
    const dst = pAt + ((i * ph + 1) * pw + 1) * ciP * 4;
    return ci === ciP
      ? ['copyRuns', src, dst, h, w * ci * 4, pw * ci * 4, 1, w * ci * 4, 0, 0]
      : ['copyRuns', src, dst, h, w * ci * 4, pw * ciP * 4, w, ci * 4, ci * 4, ciP * 4];
  };
}

/**
 * Y = conv3x3(X, W) for NHWC X [n, h, w, ci] and the transformed filter
 * `u` ([planes, ciP, coP], {@link winogradFilter}); Y has `co` channels.
 */
function winogradConv(backend: WasmBackendLike, simd: SimdKernels, x: TensorInfo, u: TensorInfo, g: Geometry): TensorInfo {
  const { n, h, w, co, ciP, coP, ph, pw, tw, chunk, v } = g;
  const { m, planes } = v;
  const scratchFloats = planes * chunk * (ciP + coP);

  const padded = backend.makeOutput([n, ph, pw, ciP], 'float32');
  const scratch = backend.makeOutput([g.threads, scratchFloats], 'float32');
  // Output channels padded: the transform writes coP channels, copied down to co after.
  const wide = coP !== co ? backend.makeOutput([n, h, w, coP], 'float32') : null;
  const y = backend.makeOutput([n, h, w, co], 'float32');
  try {
    // Views after the last allocation.
    const pView = f32(backend, padded);
    const pAt = pView.byteOffset;
    const pad = paddedInput(g, pView, f32(backend, x).byteOffset);
    const uAt = f32(backend, u).byteOffset;
    const yAt = f32(backend, y).byteOffset;
    const outAt = wide === null ? yAt : f32(backend, wide).byteOffset;
    const sAt = f32(backend, scratch).byteOffset;

    const vPlane = chunk * ciP * 4;
    const mPlane = chunk * coP * 4;
    const programs: SimdCall[][] = [];
    for (let t = 0; t < g.threads; t++) {
      const calls: SimdCall[] = [];
      const [i0, i1] = imagesOfThread(g.n, g.threads, t);
      const vAt = sAt + t * scratchFloats * 4;
      const mAt = vAt + planes * vPlane;
      for (let i = i0; i < i1; i++) calls.push(pad(i));
      const yRow = w * coP * 4;
      for (const { tiles, pieces } of chunksOf(g, i0, i1)) {
        let at = 0;
        for (const piece of pieces) {
          calls.push(inputCall(g, pAt, vAt + at * ciP * 4, vPlane, piece));
          at += piece.rows * tw;
        }
        calls.push([
          'shortGemmPlanes', vAt, uAt, mAt, Math.ceil(tiles / 4), coP / 8, ciP, ciP * 4, coP * 4,
          planes, vPlane, ciP * coP * 4, mPlane,
        ]);
        at = 0;
        for (const { img, ty, rows, images } of pieces) {
          calls.push([
            v.output, mAt + at * coP * 4, outAt + (img * h + m * ty) * yRow, tw, coP / 4, yRow, mPlane,
            rows, tw * coP * 4, images ? h * yRow : m * yRow,
          ]);
          at += rows * tw;
        }
      }
      if (wide !== null && i1 > i0) {
        const pixels = (i1 - i0) * h * w;
        calls.push(channelCopy(outAt + i0 * h * w * coP * 4, yAt + i0 * h * w * co * 4, pixels, coP, co));
      }
      programs.push(calls);
    }
    runSimdPrograms(simd, programs);
    count(v);
    return y;
  } catch (e) {
    free(backend, y);
    throw e;
  } finally {
    free(backend, padded, scratch);
    if (wide !== null) free(backend, wide);
  }
}

function count(v: Variant): void {
  winogradSwitch.used++;
  if (v.m === 4) winogradSwitch.used4++;
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
  const g = geometry(simd, x.shape, info.outChannels);
  const u = winogradFilter(backend, simd, filter, g);
  try {
    return winogradConv(backend, simd, x, u, g);
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
  const g = geometry(simd, x.shape, info.outChannels);
  const { n, h, w, ci, co, ciP, coP, ph, pw, tw, chunk, v } = g;
  const { m, planes } = v;
  const scratchFloats = planes * chunk * (ciP + coP);
  const uFloats = planes * ciP * coP;

  const padded = backend.makeOutput([n, ph, pw, ciP], 'float32');
  const scratch = backend.makeOutput([g.threads, scratchFloats], 'float32');
  const sums = backend.makeOutput([g.threads, uFloats], 'float32');
  // Output channels padded: a copy of dY with coP channels, and dW with them before it is cut down.
  const wideDy = coP !== co ? backend.makeOutput([n, h, w, coP], 'float32') : null;
  const wideDw = coP !== co || ciP !== ci ? backend.makeOutput([3, 3, ciP, coP], 'float32') : null;
  const dw = backend.makeOutput([3, 3, ci, co], 'float32');
  try {
    const pView = f32(backend, padded);
    const pAt = pView.byteOffset;
    const pad = paddedInput(g, pView, f32(backend, x).byteOffset);
    const dyAt = f32(backend, dy).byteOffset;
    let dyUsed = dyAt;
    if (wideDy !== null) {
      const view = f32(backend, wideDy);
      view.fill(0);
      dyUsed = view.byteOffset;
    }
    const sAt = f32(backend, scratch).byteOffset;
    const uView = f32(backend, sums);
    const uAt = uView.byteOffset;
    uView.fill(0);

    const vPlane = chunk * ciP * 4;
    const mPlane = chunk * coP * 4;
    const programs: SimdCall[][] = [];
    for (let t = 0; t < g.threads; t++) {
      const calls: SimdCall[] = [];
      const [i0, i1] = imagesOfThread(g.n, g.threads, t);
      const vAt = sAt + t * scratchFloats * 4;
      const mAt = vAt + planes * vPlane;
      const dU = uAt + t * uFloats * 4;
      for (let i = i0; i < i1; i++) calls.push(pad(i));
      if (wideDy !== null && i1 > i0) {
        const pixels = (i1 - i0) * h * w;
        calls.push(channelCopy(dyAt + i0 * h * w * co * 4, dyUsed + i0 * h * w * coP * 4, pixels, co, coP));
      }
      const dyRow = w * coP * 4;
      for (const { tiles, pieces } of chunksOf(g, i0, i1)) {
        let at = 0;
        for (const piece of pieces) {
          const { img, ty, rows, images } = piece;
          calls.push(inputCall(g, pAt, vAt + at * ciP * 4, vPlane, piece));
          calls.push([
            v.gradOutput, dyUsed + (img * h + m * ty) * dyRow, mAt + at * coP * 4, tw, coP / 4, dyRow, mPlane,
            rows, images ? h * dyRow : m * dyRow, tw * coP * 4,
          ]);
          at += rows * tw;
        }
        calls.push([
          'tnGemmPlanes', vAt, mAt, dU, ciP / 4, coP / 8, tiles, ciP * 4, coP * 4, coP * 4,
          planes, vPlane, mPlane, ciP * coP * 4,
        ]);
      }
      programs.push(calls);
    }
    runSimdPrograms(simd, programs);
    addPartials(simd, uAt, g.threads, uFloats);
    const cc = ciP * coP;
    const dwAt = f32(backend, dw).byteOffset;
    const outAt = wideDw === null ? dwAt : f32(backend, wideDw).byteOffset;
    runProgram(simd, [v.filterGrad(uAt, outAt, cc / 4, cc * 4)]);
    if (wideDw !== null) simd.copyRuns(outAt, dwAt, 9, cc * 4, ci * co * 4, ci, co * 4, coP * 4, co * 4);
    count(v);
    return dw;
  } catch (e) {
    free(backend, dw);
    throw e;
  } finally {
    free(backend, padded, scratch, sums);
    if (wideDy !== null) free(backend, wideDy);
    if (wideDw !== null) free(backend, wideDw);
  }
}
