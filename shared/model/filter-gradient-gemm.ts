/**
 * The filter gradient of any NHWC conv (strided, any filter size, any
 * padding) as one GEMM over the output positions, on Petri's SIMD kernels
 * and on every thread of the pool:
 *
 *   dW[(a, b, i), o] = Σ over positions p of A[p, (a, b, i)] · dY[p, o]
 *
 * with A the im2col matrix of the input, one row per output position. With
 * the input zero-padded once (P), a row of A is fh runs of fw·Ci contiguous
 * floats of P, so the gather is block copies (copyRuns). Rows go through
 * in chunks small enough to stay in cache; each thread sums its images'
 * chunks into its own dW (tnGemm, C += Aᵀ·B), and the sums are added at the
 * end. Channels run padded to fours in and eights out, and dW is cut back.
 *
 * It replaced, for the convs Winograd does not cover (conv3's strided
 * layers), XNNPACK's BatchMatMul of the transposed im2col matrix, whose
 * threads scaled poorly here (33 GFLOP/s on 2 threads, 26 on one).
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorInfo } from '@tensorflow/tfjs';
import { f32, free, simdFor, type WasmBackendLike } from './wasm-heap.ts';
import { runSimdPrograms, simdThreads, type SimdCall } from './simd-calls.ts';

/** Output positions per chunk: few enough that a chunk's A and dY rows fit in `bytes`, about the L2 cache. */
export const gemmFilterGradChunk = { bytes: 1 << 20 };

/** Tests and benchmarks turn this path off (the caller's other ways); `used` counts the gradients it computed. */
export const gemmFilterGradSwitch = { enabled: true, used: 0 };

const roundUp = (v: number, m: number): number => Math.ceil(v / m) * m;

/** Output rows [y0, y0 + rows) of image `img`. */
interface Piece {
  img: number;
  y0: number;
  rows: number;
}

/**
 * dW [fh, fw, Ci, Co] of the conv described by `info`, for input `x` and
 * output gradient `dy`; null where Petri's SIMD kernels do not run on this
 * heap, or the switch is off.
 */
export function gemmFilterGradient(
  backend: WasmBackendLike, x: TensorInfo, dy: TensorInfo, info: tf.backend_util.Conv2DInfo,
): TensorInfo | null {
  if (!gemmFilterGradSwitch.enabled || x.dtype !== 'float32' || dy.dtype !== 'float32') return null;
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
  const simd = simdFor(backend, f32(backend, x));
  if (simd === null) return null;
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const { filterHeight: fh, filterWidth: fw, strideHeight: sh, strideWidth: sw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const ciP = roundUp(ci, 4);
  const coP = roundUp(co, 8);
  const taps = fh * fw * ciP;
  // The padded input covers every window: rows and columns past the last one are never read.
  const ph = (oh - 1) * sh + fh;
  const pw = (ow - 1) * sw + fw;
  const yn = Math.min(h, ph - top);
  const xn = Math.min(w, pw - left);
  if (n === 0 || oh === 0 || ow === 0 || yn <= 0 || xn <= 0) return null;

  const threads = Math.max(1, Math.min(simdThreads(simd), n));
  const perImage = oh * ow;
  const cap = Math.max(4, Math.floor(gemmFilterGradChunk.bytes / ((taps + coP) * 4)));
  const rowsPerChunk = perImage > cap ? Math.max(1, Math.floor(cap / ow)) : oh;
  const imagesPerChunk = perImage > cap ? 1 : Math.max(1, Math.floor(cap / perImage));
  const chunkRows = rowsPerChunk * ow * imagesPerChunk;
  const sumFloats = taps * coP;

  const padded = backend.makeOutput([n, ph, pw, ciP], 'float32');
  const scratch = backend.makeOutput([threads, chunkRows * taps], 'float32');
  const sums = backend.makeOutput([threads, sumFloats], 'float32');
  const wideDy = coP !== co ? backend.makeOutput([n, oh, ow, coP], 'float32') : null;
  const dw = backend.makeOutput([fh, fw, ci, co], 'float32');
  try {
    // Views after the last allocation.
    const pView = f32(backend, padded);
    zeroFrame(pView, n, ph, pw, ciP, ci !== ciP ? null : { top, left, yn, xn });
    const pAt = pView.byteOffset;
    const xAt = f32(backend, x).byteOffset;
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
    const aAt = f32(backend, scratch).byteOffset;

    const rowIn = pw * ciP * 4;
    const programs: SimdCall[][] = [];
    for (let t = 0; t < threads; t++) {
      const calls: SimdCall[] = [];
      const i0 = Math.floor((n * t) / threads);
      const i1 = Math.floor((n * (t + 1)) / threads);
      const a0 = aAt + t * chunkRows * taps * 4;
      const dW = sAt + t * sumFloats * 4;
      for (let i = i0; i < i1; i++) {
        const dst = pAt + ((i * ph + top) * pw + left) * ciP * 4;
        calls.push(ci === ciP
          ? ['copyRuns', xAt + i * h * w * ci * 4, dst, yn, w * ci * 4, rowIn, 1, xn * ci * 4, 0, 0]
          : ['copyRuns', xAt + i * h * w * ci * 4, dst, yn, w * ci * 4, rowIn, xn, ci * 4, ci * 4, ciP * 4]);
      }
      if (wideDy !== null && i1 > i0) {
        const pixels = (i1 - i0) * perImage;
        calls.push(['copyRuns', dyAt + i0 * perImage * co * 4, dyUsed + i0 * perImage * coP * 4, 1, 0, 0, pixels, co * 4, co * 4, coP * 4]);
      }
      for (const pieces of chunks(i0, i1, oh, rowsPerChunk, imagesPerChunk)) {
        let at = 0;
        for (const { img, y0, rows } of pieces) {
          for (let a = 0; a < fh; a++) {
            calls.push([
              'copyRuns', pAt + ((img * ph + y0 * sh + a) * pw) * ciP * 4, a0 + (at * taps + a * fw * ciP) * 4,
              rows, sh * rowIn, ow * taps * 4, ow, fw * ciP * 4, sw * ciP * 4, taps * 4,
            ]);
          }
          at += rows * ow;
        }
        // This chunk's rows of dY are contiguous: its pieces follow one another.
        const first = pieces[0] as Piece;
        const dyRows = dyUsed + ((first.img * oh + first.y0) * ow) * coP * 4;
        calls.push(['tnGemm', a0, dyRows, dW, taps / 4, coP / 8, at, taps * 4, coP * 4, coP * 4]);
      }
      programs.push(calls);
    }
    runSimdPrograms(simd, programs);
    for (let t = 1; t < threads; t++) simd.addInto(sAt, sAt + t * sumFloats * 4, sumFloats / 4);
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

/** Images [i0, i1) as chunks: whole images, several a chunk, or runs of output rows of one image. */
function chunks(i0: number, i1: number, oh: number, rowsPerChunk: number, imagesPerChunk: number): Piece[][] {
  const out: Piece[][] = [];
  if (imagesPerChunk === 1) {
    for (let img = i0; img < i1; img++) {
      for (let y0 = 0; y0 < oh; y0 += rowsPerChunk) out.push([{ img, y0, rows: Math.min(rowsPerChunk, oh - y0) }]);
    }
    return out;
  }
  for (let img = i0; img < i1; img += imagesPerChunk) {
    const count = Math.min(imagesPerChunk, i1 - img);
    out.push(Array.from({ length: count }, (_, k) => ({ img: img + k, y0: 0, rows: oh })));
  }
  return out;
}

/**
 * Zeroes what the input copies leave of P [n, ph, pw, c] (the heap is not
 * zeroed): everything when channels are padded (`inner` null), else the
 * rows above and below the copied block and the columns either side of it.
 */
function zeroFrame(
  p: Float32Array, n: number, ph: number, pw: number, c: number,
  inner: { top: number; left: number; yn: number; xn: number } | null,
): void {
  if (inner === null) {
    p.fill(0);
    return;
  }
  const { top, left, yn, xn } = inner;
  const row = pw * c;
  for (let i = 0; i < n; i++) {
    const img = i * ph * row;
    p.fill(0, img, img + top * row);
    p.fill(0, img + (top + yn) * row, img + ph * row);
    for (let r = top; r < top + yn; r++) {
      const at = img + r * row;
      p.fill(0, at, at + left * c);
      p.fill(0, at + (left + xn) * c, at + row);
    }
  }
}
