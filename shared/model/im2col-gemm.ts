/**
 * Convolutions that Winograd does not cover (strided, other filter sizes,
 * few channels), as GEMMs over the im2col matrix of the input, on Petri's
 * SIMD kernels and on every thread of the pool:
 *
 *   A[p, (a, b, i)] = X[n, y·s + a - top, x·s + b - left, i] for output position p = (n, y, x)
 *   forward:         Y[p, o] = Σ A[p, (a, b, i)] · W[(a, b, i), o]          (shortGemm)
 *   filter gradient: dW[(a, b, i), o] = Σ over p of A[p, (a, b, i)] · dY[p, o]  (tnGemm)
 *
 * With the input zero-padded once (P), a row of A is fh runs of fw·Ci
 * contiguous floats of P, so the gather is block copies (copyRuns). Rows go
 * through in chunks small enough for A to stay in cache, and the images are
 * split between threads (simd-calls.ts); for dW each thread sums its
 * chunks into its own copy, and the copies are added at the end. Channels
 * run padded to fours in and eights out, and the results are cut back.
 *
 * The filter gradient replaced XNNPACK's BatchMatMul of the transposed
 * im2col matrix, whose threads scaled poorly here (33 GFLOP/s on 2
 * threads, 26 on one). The forward conv runs where {@link im2colConvApplies}.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import { repeat4 } from './wasm-batch-norm-relu.ts';
import { f32, free, simdFor, type WasmBackendLike } from './wasm-heap.ts';
import { relaxedSimd, type SimdKernels } from './simd-kernels.ts';
import { addPartials, channelCopy, imagesOfThread, runSimdPrograms, simdThreads, type SimdCall } from './simd-calls.ts';

/** Output positions per chunk: few enough that a chunk's A and its rows of dY or Y fit in `bytes`, about the L2 cache. */
export const im2colChunk = { bytes: 1 << 20 };

/** Tests and benchmarks turn the filter gradient off (the caller's other ways); `used` counts the gradients it computed. */
export const gemmFilterGradSwitch = { enabled: true, used: 0 };

/** Tests and benchmarks turn the forward conv off (XNNPACK's) or on for every shape (`always`); `used` counts the convs it ran. */
export const im2colConvSwitch = { enabled: true, always: false, used: 0 };

const roundUp = (v: number, m: number): number => Math.ceil(v / m) * m;

/** Output rows [y0, y0 + rows) of image `img`. */
interface Piece {
  img: number;
  y0: number;
  rows: number;
}

interface Geometry {
  simd: SimdKernels;
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  oh: number;
  ow: number;
  fh: number;
  fw: number;
  sh: number;
  sw: number;
  top: number;
  left: number;
  /** Channel counts the SIMD loops run on. */
  ciP: number;
  coP: number;
  /** Floats per row of A. */
  taps: number;
  /** The padded input's height and width: exactly what the windows cover. */
  ph: number;
  pw: number;
  /** Input rows and columns copied into P. */
  yn: number;
  xn: number;
  /** Output rows per chunk (big images), images per chunk (small ones). */
  rowsPerChunk: number;
  imagesPerChunk: number;
  /** Most rows of A in a chunk, rounded up to 4 (the forward GEMM works in blocks of four rows). */
  chunkRows: number;
  threads: number;
}

function geometry(backend: WasmBackendLike, x: TensorInfo, info: tf.backend_util.Conv2DInfo): Geometry | null {
  if (x.dtype !== 'float32' || info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  const simd = simdFor(backend, f32(backend, x));
  if (simd === null) return null;
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const ciP = roundUp(ci, 4);
  const coP = roundUp(co, 8);
  const taps = fh * fw * ciP;
  const ph = (oh - 1) * sh + fh;
  const pw = (ow - 1) * sw + fw;
  const yn = Math.min(h, ph - top);
  const xn = Math.min(w, pw - left);
  if (n === 0 || oh <= 0 || ow <= 0 || yn <= 0 || xn <= 0 || top < 0 || left < 0) return null;
  const perImage = oh * ow;
  const cap = Math.max(4, Math.floor(im2colChunk.bytes / ((taps + coP) * 4)));
  const rowsPerChunk = perImage > cap ? Math.max(1, Math.floor(cap / ow)) : oh;
  const imagesPerChunk = perImage > cap ? 1 : Math.max(1, Math.floor(cap / perImage));
  return {
    simd, n, h, w, ci, co, oh, ow, fh, fw, sh, sw, top, left, ciP, coP, taps, ph, pw, yn, xn,
    rowsPerChunk, imagesPerChunk,
    chunkRows: roundUp(rowsPerChunk * ow * imagesPerChunk, 4),
    threads: Math.max(1, Math.min(simdThreads(simd), n)),
  };
}

/** Images [i0, i1) as chunks: whole images, several a chunk, or runs of output rows of one image. */
function chunksOf(g: Geometry, i0: number, i1: number): Piece[][] {
  const out: Piece[][] = [];
  if (g.imagesPerChunk === 1) {
    for (let img = i0; img < i1; img++) {
      for (let y0 = 0; y0 < g.oh; y0 += g.rowsPerChunk) out.push([{ img, y0, rows: Math.min(g.rowsPerChunk, g.oh - y0) }]);
    }
    return out;
  }
  for (let img = i0; img < i1; img += g.imagesPerChunk) {
    const count = Math.min(g.imagesPerChunk, i1 - img);
    out.push(Array.from({ length: count }, (_, k) => ({ img: img + k, y0: 0, rows: g.oh })));
  }
  return out;
}

/**
 * Zeroes what the input copies leave of P (the heap is not zeroed):
 * everything when channels are padded, else the rows above and below the
 * copied block and the columns either side of it. Returns the copy of
 * image i into P as a call for its thread.
 */
function paddedInput(g: Geometry, p: Float32Array, xAt: number): (i: number) => SimdCall {
  const { n, h, w, ci, ciP, ph, pw, top, left, yn, xn } = g;
  const row = pw * ciP;
  if (ci !== ciP) {
    p.fill(0);
  } else {
    for (let i = 0; i < n; i++) {
      const img = i * ph * row;
      p.fill(0, img, img + top * row);
      p.fill(0, img + (top + yn) * row, img + ph * row);
      for (let r = top; r < top + yn; r++) {
        const at = img + r * row;
        p.fill(0, at, at + left * ciP);
        p.fill(0, at + (left + xn) * ciP, at + row);
      }
    }
  }
  const pAt = p.byteOffset;
  return (i) => {
    const src = xAt + i * h * w * ci * 4;
    const dst = pAt + ((i * ph + top) * pw + left) * ciP * 4;
    return ci === ciP
      ? ['copyRuns', src, dst, yn, w * ci * 4, row * 4, 1, xn * ci * 4, 0, 0]
      : ['copyRuns', src, dst, yn, w * ci * 4, row * 4, xn, ci * 4, ci * 4, ciP * 4];
  };
}

/** The gather of one chunk's rows of A (to aAt) from P (at pAt); returns the calls and the chunk's row count. */
function gather(g: Geometry, pAt: number, aAt: number, pieces: readonly Piece[]): { calls: SimdCall[]; rows: number } {
  const { ph, pw, ciP, taps, ow, fh, fw, sh, sw } = g;
  const rowIn = pw * ciP * 4;
  const calls: SimdCall[] = [];
  let at = 0;
  for (const { img, y0, rows } of pieces) {
    for (let a = 0; a < fh; a++) {
      calls.push([
        'copyRuns', pAt + (img * ph + y0 * sh + a) * rowIn, aAt + (at * taps + a * fw * ciP) * 4,
        rows, sh * rowIn, ow * taps * 4, ow, fw * ciP * 4, sw * ciP * 4, taps * 4,
      ]);
    }
    at += rows * ow;
  }
  return { calls, rows: at };
}

/** Byte offset of a piece's first output position in an [n, oh, ow, c] tensor at `at`. */
function positionAt(g: Geometry, at: number, piece: Piece, c: number): number {
  return at + ((piece.img * g.oh + piece.y0) * g.ow) * c * 4;
}

/** Channel pairs (Ci·Co) from which a stride-1 conv of at most 3x3 runs here; see {@link im2colConvApplies}. */
export const IM2COL_MIN_CHANNEL_PRODUCT = 2048;

/**
 * Whether the forward conv runs here rather than on XNNPACK: where the
 * GEMM multiply-adds with relaxed SIMD, with 8 or more channels in and
 * out, for strided convs, filters larger than 3x3, and other convs with
 * {@link IM2COL_MIN_CHANNEL_PRODUCT} channel pairs (among them the phases
 * of a strided conv's input gradient, wasm-kernels.ts). Measured on this
 * 2-core machine, 2 threads, against XNNPACK (docs/BENCHMARKS.md): 0.69-0.94x
 * its time on conv3's strided layers, 0.76-0.78x on a 5x5 conv, 0.78-0.92x on
 * stride-1 convs of 2048 channel pairs and more; with mul+add, 1.1-1.15x;
 * slower on the RGB first layer and 1.0-1.3x on 3x3 stride-1 convs of
 * 16->16 and 32->32.
 */
export function im2colConvApplies(info: tf.backend_util.Conv2DInfo): boolean {
  if (!im2colConvSwitch.enabled) return false;
  if (im2colConvSwitch.always) return true;
  const strided = info.strideHeight > 1 || info.strideWidth > 1;
  const large = info.filterHeight * info.filterWidth > 9;
  const wide = info.inChannels * info.outChannels >= IM2COL_MIN_CHANNEL_PRODUCT;
  return relaxedSimd() && (strided || large || wide) && info.inChannels >= 8 && info.outChannels >= 8;
}

/**
 * Y = conv(X, W) for the conv described by `info`, then with `biasRelu`
 * (a per-channel bias) Y = max(Y + bias, 0), where
 * {@link im2colConvApplies} and Petri's SIMD kernels run on this heap;
 * null otherwise.
 */
export function im2colConv2D(
  backend: WasmBackendLike, x: TensorInfo, filter: TensorInfo, info: tf.backend_util.Conv2DInfo,
  biasRelu: TensorInfo | null = null,
): TensorInfo | null {
  if (!im2colConvApplies(info) || filter.dtype !== 'float32') return null;
  const g = geometry(backend, x, info);
  if (g === null) return null;
  const { n, ci, co, ciP, coP, taps, ph, pw, oh, ow, fh, fw, simd } = g;
  const padded = backend.makeOutput([n, ph, pw, ciP], 'float32');
  // Per thread: a chunk of A, and of Y with coP channels (a whole number of four-row blocks).
  const scratch = backend.makeOutput([g.threads, g.chunkRows * (taps + coP)], 'float32');
  // The filter with padded channels, then for biasRelu the affine pass's scale (ones) and bias, each repeated for four rows.
  const L = 4 * coP;
  const wide = backend.makeOutput([taps * coP + (biasRelu === null ? 0 : 2 * L)], 'float32');
  const y = backend.makeOutput([n, oh, ow, co], 'float32');
  try {
    // Views after the last allocation.
    const pad = paddedInput(g, f32(backend, padded), f32(backend, x).byteOffset);
    const pAt = f32(backend, padded).byteOffset;
    const wView = f32(backend, wide);
    if (ci !== ciP || co !== coP) wView.fill(0);
    // [fh*fw][ci][co] -> [fh*fw][ciP][coP].
    simd.copyRuns(f32(backend, filter).byteOffset, wView.byteOffset, fh * fw, ci * co * 4, ciP * coP * 4, ci, co * 4, co * 4, coP * 4);
    const wAt = wView.byteOffset;
    const affineAt = wAt + taps * coP * 4;
    if (biasRelu !== null) {
      const bias = new Float32Array(coP);
      bias.set(f32(backend, biasRelu));
      repeat4(wView, taps * coP, new Float32Array(coP).fill(1), coP);
      repeat4(wView, taps * coP + L, bias, coP);
    }
    const yAt = f32(backend, y).byteOffset;
    const sAt = f32(backend, scratch).byteOffset;
    const programs: SimdCall[][] = [];
    for (let t = 0; t < g.threads; t++) {
      const [i0, i1] = imagesOfThread(g.n, g.threads, t);
      const aAt = sAt + t * g.chunkRows * (taps + coP) * 4;
      const cAt = aAt + g.chunkRows * taps * 4;
      const calls: SimdCall[] = [];
      for (let i = i0; i < i1; i++) calls.push(pad(i));
      for (const pieces of chunksOf(g, i0, i1)) {
        const { calls: gathers, rows } = gather(g, pAt, aAt, pieces);
        calls.push(...gathers);
        calls.push(['shortGemm', aAt, wAt, cAt, Math.ceil(rows / 4), coP / 8, taps, taps * 4, coP * 4]);
        if (biasRelu !== null) calls.push(['affineRelu', cAt, cAt, affineAt, affineAt + L * 4, L * 4, Math.ceil(rows / 4)]);
        // The chunk's rows of Y are contiguous.
        calls.push(channelCopy(cAt, positionAt(g, yAt, pieces[0] as Piece, co), rows, coP, co));
      }
      programs.push(calls);
    }
    runSimdPrograms(simd, programs);
    im2colConvSwitch.used++;
    return y;
  } catch (e) {
    free(backend, y);
    throw e;
  } finally {
    free(backend, padded, scratch, wide);
  }
}

/**
 * dW [fh, fw, Ci, Co] of the conv described by `info`, for input `x` and
 * output gradient `dy`; null where Petri's SIMD kernels do not run on this
 * heap, or the switch is off.
 */
export function gemmFilterGradient(
  backend: WasmBackendLike, x: TensorInfo, dy: TensorInfo, info: tf.backend_util.Conv2DInfo,
): TensorInfo | null {
  if (!gemmFilterGradSwitch.enabled || dy.dtype !== 'float32') return null;
  const g = geometry(backend, x, info);
  if (g === null) return null;
  const { n, ci, co, ciP, coP, taps, ph, pw, oh, ow, fh, fw, simd } = g;
  const perImage = oh * ow;
  const sumFloats = taps * coP;
  const padded = backend.makeOutput([n, ph, pw, ciP], 'float32');
  const scratch = backend.makeOutput([g.threads, g.chunkRows * taps], 'float32');
  const sums = backend.makeOutput([g.threads, sumFloats], 'float32');
  const wideDy = coP !== co ? backend.makeOutput([n, oh, ow, coP], 'float32') : null;
  const dw = backend.makeOutput([fh, fw, ci, co], 'float32');
  try {
    // Views after the last allocation.
    const pad = paddedInput(g, f32(backend, padded), f32(backend, x).byteOffset);
    const pAt = f32(backend, padded).byteOffset;
    const dyAt = f32(backend, dy).byteOffset;
    let dyUsed = dyAt;
    if (wideDy !== null) {
      const view = f32(backend, wideDy);
      view.fill(0);
      dyUsed = view.byteOffset;
    }
    const sView = f32(backend, sums);
    sView.fill(0);
    const sAt = sView.byteOffset;
    const scratchAt = f32(backend, scratch).byteOffset;
    const programs: SimdCall[][] = [];
    for (let t = 0; t < g.threads; t++) {
      const [i0, i1] = imagesOfThread(g.n, g.threads, t);
      const aAt = scratchAt + t * g.chunkRows * taps * 4;
      const dW = sAt + t * sumFloats * 4;
      const calls: SimdCall[] = [];
      for (let i = i0; i < i1; i++) calls.push(pad(i));
      if (wideDy !== null && i1 > i0) {
        const pixels = (i1 - i0) * perImage;
        calls.push(channelCopy(dyAt + i0 * perImage * co * 4, dyUsed + i0 * perImage * coP * 4, pixels, co, coP));
      }
      for (const pieces of chunksOf(g, i0, i1)) {
        const { calls: gathers, rows } = gather(g, pAt, aAt, pieces);
        calls.push(...gathers);
        // The chunk's rows of dY are contiguous.
        calls.push(['tnGemm', aAt, positionAt(g, dyUsed, pieces[0] as Piece, coP), dW, taps / 4, coP / 8, rows, taps * 4, coP * 4, coP * 4]);
      }
      programs.push(calls);
    }
    runSimdPrograms(simd, programs);
    addPartials(simd, sAt, g.threads, sumFloats);
    // [fh*fw][ciP][coP] -> [fh*fw][ci][co].
    simd.copyRuns(sAt, f32(backend, dw).byteOffset, fh * fw, ciP * coP * 4, ci * co * 4, ci, co * 4, coP * 4, co * 4);
    gemmFilterGradSwitch.used++;
    return dw;
  } catch (e) {
    free(backend, dw);
    throw e;
  } finally {
    free(backend, padded, scratch, sums);
    if (wideDy !== null) free(backend, wideDy);
  }
}
