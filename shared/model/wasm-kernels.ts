/**
 * Training kernels for the tf.js WASM backend.
 *
 * @tensorflow/tfjs-backend-wasm 4.22 is the fastest tf.js backend on a CPU,
 * but it cannot train conv nets: it has no `Conv2DBackpropFilter`. That is
 * the only kernel missing for Petri's training graph (rescaling, conv, batch
 * norm in training mode, ReLU, add, global average pooling, dense, softmax
 * cross-entropy, L2, SGD/momentum/Adam updates). Several kernels it does
 * have make a training step slow, so they are replaced too (measured on a
 * 3-conv net, batch 50, Node 20, SIMD, one thread):
 *
 * - Conv2DBackpropInput: a plain loop nest, 5-15x the forward conv's time;
 * - Tile (the batch-norm gradient tiles per-channel vectors): ~100x slower
 *   than a block copy, ~40% of a step once the conv gradients were fast;
 * - Sum/Mean over the leading axes (batch-norm statistics and gradients),
 *   or over height and width (global average pooling): a slow generic
 *   transpose first; 3x faster as a column sum;
 * - FusedBatchNorm forward: 3x faster as x*a + b with the backend's own
 *   Multiply and Add;
 * - Identity (and Cast to the same dtype): a full copy, called for every
 *   tensor saved for backprop.
 *
 * Both conv gradients run their arithmetic on the backend's XNNPACK (GEMM via
 * `BatchMatMul`, or forward `Conv2D`) or on Petri's SIMD module:
 *
 * - filter gradient: Winograd's for 3x3 stride-1 convs (winograd.ts); for
 *   the others the im2col matrix of the input times the output gradient,
 *   one GEMM over all output positions on Petri's SIMD kernels and threads
 *   (im2col-gemm.ts); without SIMD, a correlation of the input
 *   with the output gradient in which the batch is the contracted channel
 *   axis and the input (or output) channels play the batch, the stride
 *   becoming a dilation;
 * - input gradient: a sub-pixel ("phase") decomposition of the transposed
 *   convolution into stride-1 convolutions of the output gradient, one per
 *   output phase, each with the taps of the filter that reach that phase.
 *
 * The kernels call other wasm kernels directly (not through tf ops), so no
 * engine tensors are created and every intermediate is freed before return.
 */
import * as tf from '@tensorflow/tfjs';
import type {
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  KernelConfig,
  KernelFunc,
  NamedAttrMap,
  NamedTensorInfoMap,
  TensorInfo,
} from '@tensorflow/tfjs';
import { AFFINE_RELU_KERNEL, BN_RELU_GRAD_KERNEL, BN_RELU_KERNEL } from './batch-norm-relu.ts';
import { SGD_KERNEL } from './sgd.ts';
import { biasReluInPlace, wasmAffineRelu, wasmBatchNormRelu, wasmBatchNormReluGrad } from './wasm-batch-norm-relu.ts';
import { BACKEND, asWasmBackend, f32, free, run, simdFor, size, type WasmBackendLike } from './wasm-heap.ts';
import { gemmFilterGradient, im2colConv2D } from './im2col-gemm.ts';
import { winogradConv2D, winogradFilterGradient } from './winograd.ts';

type Shape4 = [number, number, number, number];
type ExplicitPads = [[number, number], [number, number], [number, number], [number, number]];

function shape4(t: TensorInfo, what: string): Shape4 {
  if (t.shape.length !== 4) throw new Error(`wasm training kernels: ${what} must be rank 4, got [${t.shape.join(',')}]`);
  return t.shape as Shape4;
}

function checkNhwc(dataFormat: string, kernel: string): void {
  if (dataFormat !== 'NHWC') {
    throw new Error(`wasm ${kernel}: only dataFormat 'NHWC' is supported (got '${dataFormat}')`);
  }
}

/** Stride-1 conv over NHWC `x` with an HWIO `filter`; explicit pads, optional dilation. */
function conv(
  backend: WasmBackendLike,
  x: TensorInfo,
  filter: TensorInfo,
  pads: [number, number, number, number],
  dilations: [number, number] = [1, 1],
): TensorInfo {
  const pad: ExplicitPads = [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]];
  return run(backend, 'Conv2D', { x, filter }, {
    strides: [1, 1],
    pad,
    dataFormat: 'NHWC',
    dilations,
    dimRoundingMode: undefined,
  } as unknown as NamedAttrMap);
}

// ---------------------------------------------------------------------------
// Conv2D and FusedConv2D: 3x3 stride-1 convs by Winograd (winograd.ts),
// strided and large-filter convs as im2col GEMMs (im2col-gemm.ts)

interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | ExplicitPads;
  dataFormat: string;
  dilations: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
}

/**
 * The conv by Winograd, else as an im2col GEMM (with a per-channel bias and
 * ReLU applied where `biasRelu` is given), or null where neither applies
 * (XNNPACK runs it).
 */
function petriConv(
  backend: WasmBackendLike, x: TensorInfo, filter: TensorInfo, attrs: ConvAttrs, biasRelu: TensorInfo | null,
): TensorInfo | null {
  if (attrs.dataFormat !== 'NHWC' || x.shape.length !== 4 || filter.shape.length !== 4) return null;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4, filter.shape as Shape4, attrs.strides, attrs.dilations, attrs.pad as 'same', attrs.dimRoundingMode,
    false, 'channelsLast',
  );
  const y = winogradConv2D(backend, x, filter, info);
  if (y === null) return im2colConv2D(backend, x, filter, info, biasRelu);
  if (biasRelu !== null) biasReluInPlace(backend, y, biasRelu);
  return y;
}

function makeConv2D(native: KernelFunc | undefined): KernelFunc {
  if (native === undefined) throw new Error('wasm Conv2D: the backend has no native Conv2D to fall back to');
  return (args) => {
    const backend = asWasmBackend(args.backend);
    const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
    return petriConv(backend, x, filter, args.attrs as unknown as ConvAttrs, null) ?? native(args);
  };
}

/**
 * FusedConv2D by Petri's convs: the layers' convs (no bias, no activation),
 * and evaluation's convs with batch norm folded in (a per-channel bias,
 * then ReLU). Other fusions run native.
 */
function makeFusedConv2D(native: KernelFunc | undefined): KernelFunc {
  if (native === undefined) throw new Error('wasm FusedConv2D: the backend has no native FusedConv2D to fall back to');
  return (args) => {
    const backend = asWasmBackend(args.backend);
    const { x, filter, bias, preluActivationWeights } = args.inputs as Record<string, TensorInfo | undefined>;
    const attrs = args.attrs as unknown as ConvAttrs;
    const activation = attrs.activation ?? 'linear';
    const plain = bias == null && activation === 'linear';
    const biasRelu = bias != null && activation === 'relu' && bias.dtype === 'float32' &&
      size(bias.shape) === filter?.shape[3];
    if (x === undefined || filter === undefined || preluActivationWeights != null || !(plain || biasRelu)) {
      return native(args);
    }
    return petriConv(backend, x, filter, attrs, biasRelu ? bias : null) ?? native(args);
  };
}

// ---------------------------------------------------------------------------
// Conv2DBackpropFilter

/**
 * [N,H,W,C] -> [C,H,W,N]. The backend's generic 4-D transpose is 3-5x slower
 * for this permutation than a 2-D transpose followed by a permutation that
 * keeps the innermost axis, so it is done in those two steps.
 */
function swapBatchAndChannels(backend: WasmBackendLike, x: TensorInfo): TensorInfo {
  const [n, h, w, c] = shape4(x, 'x');
  if (n === 1 || c === 1) {
    // Only one real axis moves: the backend squeezes it to a 2-D transpose.
    return run(backend, 'Transpose', { x }, { perm: [3, 1, 2, 0] });
  }
  const flat = run(backend, 'Reshape', { x }, { shape: [n, h * w * c] });
  const t1 = run(backend, 'Transpose', { x: flat }, { perm: [1, 0] });
  free(backend, flat);
  const pcn = run(backend, 'Reshape', { x: t1 }, { shape: [h * w, c, n] });
  free(backend, t1);
  const cpn = run(backend, 'Transpose', { x: pcn }, { perm: [1, 0, 2] });
  free(backend, pcn);
  const out = run(backend, 'Reshape', { x: cpn }, { shape: [c, h, w, n] });
  free(backend, cpn);
  return out;
}

/**
 * dW[a,b,i,o] = sum over n,y,x of X[n, y*s+a-top, x*s+b-left, i] * dY[n,y,x,o].
 * 1x1 filters: one GEMM on XNNPACK. With Petri's SIMD kernels: Winograd
 * (3x3 stride 1), else the im2col GEMM of im2col-gemm.ts. Without
 * them, it is read as a forward correlation in which the batch axis n is the channel axis
 * that gets contracted. Two readings of it, both landing on XNNPACK's
 * GEMM-based Conv2D with no im2col buffer:
 *
 * - "input as batch": Xᵀ = [Ci,H,W,N] correlated with dYᵀ = [oh,ow,N,Co] as
 *   the filter, the stride becoming a dilation; output [Ci,fh,fw,Co].
 * - "output-grad as batch" (stride 1 only): dYᵀ = [Co,oh,ow,N] correlated
 *   with [H,W,N,Ci] = X as the filter; output [Co,fh,fw,Ci], flipped.
 *
 * The wasm Conv2D re-lays-out and packs its filter on every call (our
 * "filters" are fresh activations each step), so the cheaper reading is the
 * one whose filter is smaller. Both beat per-tap matmuls by far here: wasm
 * BatchMatMul with a transposed operand is a scalar loop.
 */
function conv2dBackpropFilter(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const backend = asWasmBackend(args.backend);
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as Conv2DBackpropFilterAttrs;
  checkNhwc(attrs.dataFormat, 'Conv2DBackpropFilter');
  const xShape = shape4(x, 'x');
  const [n, h, w, ci] = xShape;
  const [, oh, ow, co] = shape4(dy, 'dy');
  const filterShape = attrs.filterShape;
  const [fh, fw] = filterShape;
  const info = tf.backend_util.computeConv2DInfo(
    xShape, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
  );
  const sh = info.strideHeight;
  const sw = info.strideWidth;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  if (oh !== info.outHeight || ow !== info.outWidth || co !== filterShape[3] || ci !== filterShape[2]) {
    throw new Error(`wasm Conv2DBackpropFilter: dy [${dy.shape.join(',')}] does not match the conv`);
  }
  // Rows/columns past the last window are never read (negative when the
  // stride skips the tail of the input).
  const bottom = (oh - 1) * sh + fh - top - h;
  const right = (ow - 1) * sw + fw - left - w;

  if (fh === 1 && fw === 1 && top === 0 && left === 0 && bottom <= 0 && right <= 0) {
    return filterGradPointwise(backend, x, dy, sh, sw);
  }
  const winograd = winogradFilterGradient(backend, x, dy, info);
  if (winograd !== null) return winograd;
  const gemm = gemmFilterGradient(backend, x, dy, info);
  if (gemm !== null) return gemm;
  if (sh === 1 && sw === 1 && ci < co && top < fh && left < fw && bottom >= 0 && right >= 0) {
    return filterGradOutputAsBatch(backend, x, dy, fh, fw, top, left);
  }

  let xUsed = x;
  if (bottom < 0 || right < 0) {
    xUsed = run(backend, 'Slice', { x }, {
      begin: [0, 0, 0, 0],
      size: [n, h + Math.min(bottom, 0), w + Math.min(right, 0), ci],
    });
  }
  const xT = swapBatchAndChannels(backend, xUsed);
  if (xUsed !== x) free(backend, xUsed);
  const dyT = run(backend, 'Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
  const corr = conv(backend, xT, dyT, [top, Math.max(bottom, 0), left, Math.max(right, 0)], [sh, sw]);
  free(backend, xT, dyT);
  // corr is [Ci, fh, fw, Co].
  const dw = run(backend, 'Transpose', { x: corr }, { perm: [1, 2, 0, 3] });
  free(backend, corr);
  return dw;
}

/**
 * 1x1 filters (Petri's shape adapters): dW = Xsᵀ·dY with Xs the strided
 * subsample of X as [P, Ci]. The wasm BatchMatMul is fast when neither
 * operand is transposed (~12x its transposed path), and this is 2-3x faster
 * than the correlation for 1x1 filters.
 */
function filterGradPointwise(backend: WasmBackendLike, x: TensorInfo, dy: TensorInfo, sh: number, sw: number): TensorInfo {
  const [n, h, w, ci] = x.shape as Shape4;
  const [, oh, ow, co] = dy.shape as Shape4;
  const p = n * oh * ow;
  let xs: TensorInfo;
  if (oh === h && ow === w) {
    xs = run(backend, 'Reshape', { x }, { shape: [p, ci] });
  } else {
    xs = backend.makeOutput([p, ci], 'float32');
    const src = f32(backend, x);
    const dst = f32(backend, xs);
    let d = 0;
    for (let b = 0; b < n; b++) {
      for (let i = 0; i < oh; i++) {
        let s = ((b * h + i * sh) * w) * ci;
        for (let j = 0; j < ow; j++, s += sw * ci) {
          for (let c = 0; c < ci; c++) dst[d++] = src[s + c] as number;
        }
      }
    }
  }
  const xsT = run(backend, 'Transpose', { x: xs }, { perm: [1, 0] });
  free(backend, xs);
  const dy2 = run(backend, 'Reshape', { x: dy }, { shape: [p, co] });
  const prod = run(backend, 'BatchMatMul', { a: xsT, b: dy2 }, { transposeA: false, transposeB: false });
  free(backend, xsT, dy2);
  const dw = run(backend, 'Reshape', { x: prod }, { shape: [1, 1, ci, co] });
  free(backend, prod);
  return dw;
}

/**
 * Stride-1 filter gradient with dY as the batch: out[o, t, u, i] =
 * dW[fh-1-t, fw-1-u, i, o] once dY is padded by fh-1-top rows on top.
 */
function filterGradOutputAsBatch(
  backend: WasmBackendLike, x: TensorInfo, dy: TensorInfo, fh: number, fw: number, top: number, left: number,
): TensorInfo {
  const [, h, w, ci] = x.shape as Shape4;
  const [, oh, ow, co] = dy.shape as Shape4;
  const pt = fh - 1 - top;
  const pl = fw - 1 - left;
  const dyT = swapBatchAndChannels(backend, dy);
  const xT = run(backend, 'Transpose', { x }, { perm: [1, 2, 0, 3] });
  const corr = conv(backend, dyT, xT, [pt, fh - 1 + h - oh - pt, pl, fw - 1 + w - ow - pl]);
  free(backend, dyT, xT);
  const dw = backend.makeOutput([fh, fw, ci, co], 'float32');
  const src = f32(backend, corr);
  const dst = f32(backend, dw);
  // Flip both spatial axes and move o innermost; filter-sized, so cheap.
  const srcTap = ci;
  const srcRow = fw * srcTap;
  const srcOut = fh * srcRow;
  let d = 0;
  for (let a = 0; a < fh; a++) {
    for (let b = 0; b < fw; b++) {
      const base = (fh - 1 - a) * srcRow + (fw - 1 - b) * srcTap;
      for (let i = 0; i < ci; i++) {
        let s = base + i;
        for (let o = 0; o < co; o++, s += srcOut) dst[d++] = src[s] as number;
      }
    }
  }
  free(backend, corr);
  return dw;
}

// ---------------------------------------------------------------------------
// Conv2DBackpropInput

/**
 * One phase along one spatial axis of the transposed convolution: the input
 * positions p = q*s + r - pad for q in [q0, q1] receive exactly the filter
 * taps r, r+s, r+2s, ... (k of them). For k > 0 they are computed by a
 * stride-1 correlation of dy with those taps reversed, whose output index
 * t maps to q = t + qStart.
 */
interface Phase {
  r: number;
  k: number;
  q0: number;
  q1: number;
  qStart: number;
  padBefore: number;
  padAfter: number;
}

function phasesAlong(stride: number, filter: number, padBefore: number, inSize: number, outSize: number): Phase[] {
  const phases: Phase[] = [];
  for (let r = 0; r < stride; r++) {
    const q0 = Math.ceil((padBefore - r) / stride);
    const q1 = Math.floor((inSize - 1 + padBefore - r) / stride);
    if (q1 < q0) continue;
    const k = r < filter ? Math.ceil((filter - r) / stride) : 0;
    // Pads cannot be negative; when q0 > k-1 the first q0-(k-1) rows are
    // computed and skipped rather than cropping dy.
    const pb = Math.max(0, k - 1 - q0);
    const qStart = k - 1 - pb;
    const need = q1 - qStart + 1;
    const pa = Math.max(0, need - (outSize + pb - k + 1));
    phases.push({ r, k, q0, q1, qStart, padBefore: pb, padAfter: pa });
  }
  return phases;
}

/**
 * dX[n,p,q,i] = sum of dY[n,y,x,o] * W[a,b,i,o] over p = y*s+a-top,
 * q = x*s+b-left. Split by (p+top) mod s and (q+left) mod s, each phase is a
 * dense stride-1 correlation of dY with a sub-filter (the taps of that
 * phase, reversed, with in/out channels swapped), so the total work equals
 * the forward conv's and every FLOP runs in XNNPACK. The phases are then
 * interleaved into dX.
 */
function conv2dBackpropInput(args: { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap }): TensorInfo {
  const backend = asWasmBackend(args.backend);
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as Conv2DBackpropInputAttrs;
  checkNhwc(attrs.dataFormat, 'Conv2DBackpropInput');
  const inputShape = attrs.inputShape as Shape4;
  const [n, h, w, ci] = inputShape;
  const [, oh, ow, co] = shape4(dy, 'dy');
  const filterShape = shape4(filter, 'filter');
  const [fh, fw] = filterShape;
  const info = tf.backend_util.computeConv2DInfo(
    inputShape, filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
  );
  const sh = info.strideHeight;
  const sw = info.strideWidth;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const rows = phasesAlong(sh, fh, top, h, oh);
  const cols = phasesAlong(sw, fw, left, w, ow);

  // [fh, fw, Co, Ci]: each tap becomes one contiguous block to copy.
  const wT = run(backend, 'Transpose', { x: filter }, { perm: [0, 1, 3, 2] });
  const tapSize = co * ci;

  const subFilter = (pr: Phase, pc: Phase): TensorInfo => {
    const g = backend.makeOutput([pr.k, pc.k, co, ci], 'float32');
    const src = f32(backend, wT);
    const dst = f32(backend, g);
    for (let m1 = 0; m1 < pr.k; m1++) {
      const a = pr.r + (pr.k - 1 - m1) * sh;
      for (let m2 = 0; m2 < pc.k; m2++) {
        const b = pc.r + (pc.k - 1 - m2) * sw;
        const from = (a * fw + b) * tapSize;
        dst.set(src.subarray(from, from + tapSize), (m1 * pc.k + m2) * tapSize);
      }
    }
    return g;
  };

  try {
    // Stride 1 (and pads no larger than the filter): the single phase is dX.
    const pr0 = rows[0];
    const pc0 = cols[0];
    if (rows.length === 1 && cols.length === 1 && pr0 && pc0 && pr0.k > 0 && pc0.k > 0 &&
        phaseLength(pr0, oh) === h && phaseLength(pc0, ow) === w && pr0.q0 === pr0.qStart && pc0.q0 === pc0.qStart) {
      const g = subFilter(pr0, pc0);
      const out = conv(backend, dy, g, [pr0.padBefore, pr0.padAfter, pc0.padBefore, pc0.padAfter]);
      free(backend, g);
      return out;
    }

    const dx = backend.makeOutput([n, h, w, ci], 'float32');
    let covered = 0;
    for (const pr of rows) for (const pc of cols) if (pr.k > 0 && pc.k > 0) covered += (pr.q1 - pr.q0 + 1) * (pc.q1 - pc.q0 + 1);
    // Phases with no taps are zero; malloc'd heap memory is not.
    if (covered !== h * w) f32(backend, dx).fill(0);

    for (const pr of rows) {
      if (pr.k === 0) continue;
      for (const pc of cols) {
        if (pc.k === 0) continue;
        const g = subFilter(pr, pc);
        const part = conv(backend, dy, g, [pr.padBefore, pr.padAfter, pc.padBefore, pc.padAfter]);
        free(backend, g);
        scatterPhase(backend, part, dx, inputShape, pr, pc, sh, sw, top, left);
        free(backend, part);
      }
    }
    return dx;
  } finally {
    free(backend, wT);
  }
}

/** Length of a phase's correlation output along its axis. */
function phaseLength(p: Phase, outSize: number): number {
  return outSize + p.padBefore + p.padAfter - p.k + 1;
}

function scatterPhase(
  backend: WasmBackendLike, part: TensorInfo, dx: TensorInfo, dstShape: Shape4,
  pr: Phase, pc: Phase, sh: number, sw: number, top: number, left: number,
): void {
  // Views after the allocations: heap growth detaches old ones.
  const src = f32(backend, part);
  const dst = f32(backend, dx);
  const [n, h, w, c] = dstShape;
  const [, lh, lw] = part.shape as Shape4;
  const ncols = pc.q1 - pc.q0 + 1;
  const x0 = pc.q0 * sw + pc.r - left;
  const simd = sw === 1 ? null : simdFor(backend, src);
  for (let b = 0; b < n; b++) {
    if (simd !== null) {
      // Every row of this image's phase: runs of c floats, sw*c apart in dX.
      const rows = pr.q1 - pr.q0 + 1;
      const s = ((b * lh + (pr.q0 - pr.qStart)) * lw + (pc.q0 - pc.qStart)) * c;
      const d = ((b * h + pr.q0 * sh + pr.r - top) * w + x0) * c;
      simd.copyRuns(src.byteOffset + 4 * s, dst.byteOffset + 4 * d, rows, 4 * lw * c, 4 * sh * w * c, ncols, 4 * c, 4 * c, 4 * sw * c);
      continue;
    }
    for (let q = pr.q0; q <= pr.q1; q++) {
      const y = q * sh + pr.r - top;
      let s = ((b * lh + (q - pr.qStart)) * lw + (pc.q0 - pc.qStart)) * c;
      let d = ((b * h + y) * w + x0) * c;
      if (sw === 1) {
        dst.set(src.subarray(s, s + ncols * c), d);
        continue;
      }
      const step = sw * c;
      for (let p = 0; p < ncols; p++, s += c, d += step) {
        for (let k = 0; k < c; k++) dst[d + k] = src[s + k] as number;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Batch-norm backward helpers and pooling: Tile, Sum/Mean over a run of axes, Identity

type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap };

/**
 * The batch-norm gradient tiles per-channel vectors to activation size. The
 * backend's Tile computes an index per element and took ~40% of a training
 * step; this one copies the input once and then doubles copied blocks
 * with copyWithin (memmove speed).
 */
function makeTile(native: KernelFunc | undefined): KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: TensorInfo };
    const reps = (args.attrs as { reps: number[] }).reps;
    if (x.dtype === 'string' || x.dtype === 'complex64' || reps.length !== x.shape.length) {
      if (!native) throw new Error(`wasm Tile: unsupported dtype ${x.dtype}`);
      return native(args as Parameters<KernelFunc>[0]);
    }
    const backend = asWasmBackend(args.backend);
    const rank = x.shape.length;
    const outShape = x.shape.map((d, i) => d * (reps[i] as number));
    const out = backend.makeOutput(outShape, x.dtype);
    if (size(outShape) === 0) return out;
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(out);
    if (rank === 0) {
      dst[0] = src[0] as number;
      return out;
    }
    const inStride = new Array<number>(rank);
    const outStride = new Array<number>(rank);
    inStride[rank - 1] = 1;
    outStride[rank - 1] = 1;
    for (let i = rank - 2; i >= 0; i--) {
      inStride[i] = (inStride[i + 1] as number) * (x.shape[i + 1] as number);
      outStride[i] = (outStride[i + 1] as number) * (outShape[i + 1] as number);
    }
    const fill = (axis: number, from: number, to: number): void => {
      const d = x.shape[axis] as number;
      const chunk = d * (outStride[axis] as number);
      if (axis === rank - 1) {
        dst.set(src.subarray(from, from + d), to);
      } else {
        for (let i = 0; i < d; i++) fill(axis + 1, from + i * (inStride[axis] as number), to + i * (outStride[axis] as number));
      }
      const total = chunk * (reps[axis] as number);
      for (let done = chunk; done < total; done *= 2) {
        dst.copyWithin(to + done, to, to + Math.min(done, total - done));
      }
    };
    fill(0, 0, 0);
    return out;
  }) as unknown as KernelFunc;
}

/**
 * Sums of the columns of a row-major [m, c] float32 matrix, in float64.
 * Eight rows per pass: an eighth of the accumulator traffic, sequential
 * reads (about 4x the native Sum on batch-norm shapes, which transposes first).
 */
function columnSums(src: Float32Array, m: number, c: number): Float64Array {
  const acc = new Float64Array(c);
  const c4 = 4 * c;
  let i = 0;
  let o = 0;
  for (; i + 7 < m; i += 8, o += 8 * c) {
    for (let j = 0; j < c; j++) {
      const p = o + j;
      const q = p + c4;
      acc[j] = (acc[j] as number) +
        ((((src[p] as number) + (src[p + c] as number)) + ((src[p + 2 * c] as number) + (src[p + 3 * c] as number))) +
          (((src[q] as number) + (src[q + c] as number)) + ((src[q + 2 * c] as number) + (src[q + 3 * c] as number))));
    }
  }
  for (; i < m; i++, o += c) {
    for (let j = 0; j < c; j++) acc[j] = (acc[j] as number) + (src[o + j] as number);
  }
  return acc;
}

/**
 * Sum/Mean over a run of consecutive axes that does not include the last:
 * the leading axes of an NHWC tensor (batch-norm statistics and gradients),
 * or its height and width (global average pooling). The backend first
 * transposes the reduced axes innermost with its slow generic transpose;
 * column sums over [M, C], one per index of the axes before the run, need
 * no transpose. Accumulates in float64, like the cpu backend.
 */
function makeRunReduce(native: KernelFunc | undefined, mean: boolean): KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: TensorInfo };
    const attrs = args.attrs as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = tf.util.parseAxisParam(attrs.axis, x.shape);
    const k = axes.length;
    const sorted = [...axes].sort((a, b) => a - b);
    const first = sorted[0] ?? 0;
    const run = k > 0 && first + k < rank && sorted.every((a, i) => a === first + i);
    if (x.dtype !== 'float32' || !run) {
      if (!native) throw new Error(`wasm ${mean ? 'Mean' : 'Sum'}: unsupported case`);
      return native(args as Parameters<KernelFunc>[0]);
    }
    const backend = asWasmBackend(args.backend);
    const outer = size(x.shape.slice(0, first));
    const m = size(x.shape.slice(first, first + k));
    const c = size(x.shape.slice(first + k));
    const outShape = x.shape.flatMap((d, i) => (i < first || i >= first + k ? [d] : attrs.keepDims ? [1] : []));
    const out = backend.makeOutput(outShape, 'float32');
    const src = f32(backend, x);
    const dst = f32(backend, out);
    const scale = mean ? 1 / m : 1;
    for (let o = 0; o < outer; o++) {
      const acc = columnSums(src.subarray(o * m * c, (o + 1) * m * c), m, c);
      for (let j = 0; j < c; j++) dst[o * c + j] = (acc[j] as number) * scale;
    }
    return out;
  }) as unknown as KernelFunc;
}

/**
 * The backend's Identity copies the buffer; the engine calls it to save
 * every tensor a gradient needs (tens of activation-sized copies per step).
 * Tensors are immutable, so sharing the buffer, as Reshape and the cpu
 * backend's Identity do, is enough.
 */
function makeIdentity(native: KernelFunc | undefined): KernelFunc {
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: TensorInfo };
    const backend = args.backend as Partial<{ incRef(dataId: TensorInfo['dataId']): void }> | null;
    if (x.dtype === 'string' || backend == null || typeof backend.incRef !== 'function') {
      if (!native) throw new Error('wasm Identity: unsupported case');
      return native(args as Parameters<KernelFunc>[0]);
    }
    backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  }) as unknown as KernelFunc;
}

/**
 * Cast to the same dtype copies the buffer on wasm (layers cast every
 * input); share it instead. The native cast of numbers to bool truncates
 * to a byte (-2.7 -> 254) instead of testing for non-zero; fixed here.
 */
function makeCast(native: KernelFunc | undefined): KernelFunc {
  const identity = makeIdentity(undefined);
  return ((args: KernelArgs) => {
    const { x } = args.inputs as { x: TensorInfo };
    const dtype = (args.attrs as { dtype: string }).dtype;
    if (x.dtype === dtype && x.dtype !== 'string' && x.dtype !== 'complex64') {
      return identity(args as Parameters<KernelFunc>[0]);
    }
    if (dtype === 'bool' && (x.dtype === 'float32' || x.dtype === 'int32')) {
      const backend = asWasmBackend(args.backend);
      const out = backend.makeOutput(x.shape, 'bool');
      const src = backend.typedArrayFromHeap(x);
      const dst = backend.typedArrayFromHeap(out);
      for (let i = 0; i < src.length; i++) dst[i] = src[i] !== 0 ? 1 : 0;
      return out;
    }
    if (!native) throw new Error(`wasm Cast: unsupported cast ${x.dtype} -> ${dtype}`);
    return native(args as Parameters<KernelFunc>[0]);
  }) as unknown as KernelFunc;
}

/**
 * Batch-norm forward with per-channel statistics. The native kernel runs at
 * about a sixth of the speed of the backend's broadcasting Multiply; folding
 * the statistics into y = x*a + b (a, b per channel, computed in float64)
 * and running Multiply then Add is 3x faster.
 */
function makeBatchNorm(native: KernelFunc | undefined): KernelFunc {
  return ((args: KernelArgs) => {
    const { x, mean, variance, offset, scale } = args.inputs as Record<string, TensorInfo | undefined>;
    const eps = (args.attrs as { varianceEpsilon: number }).varianceEpsilon;
    const c = x?.shape[x.shape.length - 1] ?? 0;
    const perChannel = (t: TensorInfo | undefined) => t === undefined || (t.dtype === 'float32' && size(t.shape) === c);
    if (x === undefined || mean === undefined || variance === undefined || x.dtype !== 'float32' || c === 0 ||
        !perChannel(mean) || !perChannel(variance) || !perChannel(offset) || !perChannel(scale)) {
      if (!native) throw new Error('wasm FusedBatchNorm: unsupported case');
      return native(args as Parameters<KernelFunc>[0]);
    }
    const backend = asWasmBackend(args.backend);
    const a = backend.makeOutput([c], 'float32');
    const b = backend.makeOutput([c], 'float32');
    const av = f32(backend, a);
    const bv = f32(backend, b);
    const m = f32(backend, mean);
    const v = f32(backend, variance);
    const o = offset ? f32(backend, offset) : null;
    const g = scale ? f32(backend, scale) : null;
    for (let i = 0; i < c; i++) {
      const ai = (g ? (g[i] as number) : 1) / Math.sqrt((v[i] as number) + eps);
      av[i] = ai;
      bv[i] = (o ? (o[i] as number) : 0) - (m[i] as number) * ai;
    }
    const scaled = run(backend, 'Multiply', { a: x, b: a });
    const out = run(backend, 'Add', { a: scaled, b });
    free(backend, a, b, scaled);
    return out;
  }) as unknown as KernelFunc;
}

// ---------------------------------------------------------------------------
// Batch-norm backward in one kernel

/** Kernel name of the fused batch-norm gradient (wasm only; see {@link registerWasmTrainingKernels}). */
export const BATCH_NORM_GRAD_KERNEL = 'PetriFusedBatchNormGrad';

/**
 * The gradient of FusedBatchNorm with per-channel (rank-1) statistics, all
 * five input gradients at once. tf.js's own gradient builds them from about
 * nine activation-sized elementwise kernels, a Tile and four column sums;
 * they are memory-bound and do not scale with threads. Here: (x - mean) * dy
 * with the backend's Sub and Multiply (float32, as tf.js computes them),
 * the two per-channel sums of it and of dy (float64, like the cpu backend's
 * Sum), then dx = dy * (scale / sqrt(variance + eps)) with the backend's
 * Multiply. Inputs x, dy, mean, variance ([C]) and optionally scale; outputs
 * [dx, dmean, dvariance, dscale, doffset]. Same formulas as tf.js's
 * gradient, so the results agree up to float rounding.
 */
function batchNormGrad(args: KernelArgs): TensorInfo[] {
  const backend = asWasmBackend(args.backend);
  const { x, dy, mean, variance, scale } = args.inputs as Record<string, TensorInfo | undefined>;
  const eps = (args.attrs as { varianceEpsilon: number }).varianceEpsilon;
  if (x === undefined || dy === undefined || mean === undefined || variance === undefined) {
    throw new Error(`wasm ${BATCH_NORM_GRAD_KERNEL}: needs x, dy, mean and variance`);
  }
  const c = x.shape[x.shape.length - 1] ?? 0;
  if (x.dtype !== 'float32' || dy.dtype !== 'float32' || dy.shape.join(',') !== x.shape.join(',') || c === 0 ||
      mean.shape.length !== 1 || size(mean.shape) !== c || size(variance.shape) !== c || (scale !== undefined && size(scale.shape) !== c)) {
    throw new Error(`wasm ${BATCH_NORM_GRAD_KERNEL}: unsupported shapes x [${x.shape.join(',')}], mean [${mean.shape.join(',')}]`);
  }
  const rows = size(x.shape) / c;
  // (x - mean) * dy in float32 with the backend's SIMD kernels, as tf.js's gradient computes it;
  // then both per-channel sums in one JS pass each (float64).
  const xm = run(backend, 'Sub', { a: x, b: mean });
  const prod = run(backend, 'Multiply', { a: xm, b: dy });
  free(backend, xm);
  const k = backend.makeOutput([c], 'float32');
  const dMean = backend.makeOutput([c], 'float32');
  const dVariance = backend.makeOutput([c], 'float32');
  const dScale = backend.makeOutput([c], 'float32');
  const dOffset = backend.makeOutput([c], 'float32');
  // Views only after every allocation: a heap growth makes new buffers.
  const sumDy = columnSums(f32(backend, dy), rows, c);
  const sumDyXm = columnSums(f32(backend, prod), rows, c);
  free(backend, prod);
  const v = f32(backend, variance);
  const g = scale === undefined ? null : f32(backend, scale);
  const kv = f32(backend, k);
  const dm = f32(backend, dMean);
  const dv = f32(backend, dVariance);
  const ds = f32(backend, dScale);
  const dof = f32(backend, dOffset);
  for (let j = 0; j < c; j++) {
    // rsqrt(variance + eps) in float32, as tf.js's gradient has it.
    const r = Math.fround(1 / Math.sqrt(Math.fround((v[j] as number) + eps)));
    const gj = g === null ? 1 : (g[j] as number);
    kv[j] = r * gj;
    dm[j] = -r * gj * (sumDy[j] as number);
    dv[j] = -0.5 * r * r * r * gj * (sumDyXm[j] as number);
    ds[j] = r * (sumDyXm[j] as number);
    dof[j] = sumDy[j] as number;
  }
  const dx = run(backend, 'Multiply', { a: dy, b: k });
  free(backend, k);
  return [dx, dMean, dVariance, dScale, dOffset];
}

// ---------------------------------------------------------------------------
// SGD with momentum in one pass (sgd.ts)

function sgdMomentum(args: KernelArgs): TensorInfo[] {
  const backend = asWasmBackend(args.backend);
  const { w, v, g } = args.inputs as Record<string, TensorInfo | undefined>;
  const { lr, momentum, weightDecay } = args.attrs as { lr: number; momentum: number; weightDecay: number };
  if (w === undefined || v === undefined || g === undefined) throw new Error(`wasm ${SGD_KERNEL}: needs w, v and g`);
  const shape = w.shape.join(',');
  if ([w, v, g].some((t) => t.dtype !== 'float32' || t.shape.join(',') !== shape)) {
    throw new Error(`wasm ${SGD_KERNEL}: w, v and g must be float32 of one shape`);
  }
  const n = size(w.shape);
  const newW = backend.makeOutput([...w.shape], 'float32');
  const newV = backend.makeOutput([...w.shape], 'float32');
  const coef = backend.makeOutput([4], 'float32');
  try {
    const wv = f32(backend, w);
    const vv = f32(backend, v);
    const gv = f32(backend, g);
    const nw = f32(backend, newW);
    const nv = f32(backend, newV);
    const cv = f32(backend, coef);
    cv[0] = lr;
    cv[1] = momentum;
    cv[2] = weightDecay;
    const simd = n >= 4 ? simdFor(backend, wv) : null;
    const blocks = simd === null ? 0 : Math.floor(n / 4);
    if (simd !== null && blocks > 0) {
      simd.sgdMomentum(wv.byteOffset, vv.byteOffset, gv.byteOffset, nw.byteOffset, nv.byteOffset, blocks, cv.byteOffset);
    }
    // The same float32 arithmetic, rounded step by step.
    const [flr, fmom, fwd] = [cv[0] as number, cv[1] as number, cv[2] as number];
    for (let i = 4 * blocks; i < n; i++) {
      const wi = wv[i] as number;
      const gi = Math.fround((gv[i] as number) + Math.fround(wi * fwd));
      const vi = Math.fround(Math.fround((vv[i] as number) * fmom) + gi);
      nv[i] = vi;
      nw[i] = Math.fround(wi - Math.fround(vi * flr));
    }
  } finally {
    free(backend, coef);
  }
  return [newW, newV];
}

type GradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: NamedAttrMap) => Record<string, () => tf.Tensor>;
interface GradConfigLike {
  kernelName: string;
  inputsToSave?: string[];
  outputsToSave?: boolean[];
  gradFunc: GradFunc;
}

let ourBatchNormGrad: GradConfigLike | undefined;

/**
 * Puts a FusedBatchNorm gradient in front of tf.js's: on the wasm backend
 * with the fused kernel registered and per-channel statistics it runs
 * {@link batchNormGrad} once for all five gradients; anywhere else (cpu,
 * WebGPU, WebGL, other shapes) it hands over to tf.js's own gradient.
 * Gradients are registered per kernel name, not per backend, hence the check.
 */
function registerBatchNormGradient(): void {
  const current = tf.getGradient('FusedBatchNorm') as GradConfigLike | undefined;
  if (current === undefined || current === ourBatchNormGrad) return;
  const theirs = current;
  const config: GradConfigLike = {
    kernelName: 'FusedBatchNorm',
    inputsToSave: ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dy, saved, attrs) => {
      const [x, mean, variance, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
      const grad = Array.isArray(dy) ? (dy[0] as tf.Tensor) : dy;
      const c = x.shape[x.shape.length - 1] ?? 0;
      const fused = tf.getBackend() === BACKEND && tf.getKernel(BATCH_NORM_GRAD_KERNEL, BACKEND) !== undefined &&
        mean.rank === 1 && x.rank >= 2 && x.dtype === 'float32' && grad.dtype === 'float32' &&
        mean.size === c && variance.size === c && (scale == null || scale.size === c);
      if (!fused) return theirs.gradFunc(dy, saved, attrs);
      // At once, not in the closures: the engine calls each closure in a tidy of its own, which
      // would dispose the other four outputs. Unused ones go with the gradient's outer scope.
      const outs = tf.engine().runKernel(
        BATCH_NORM_GRAD_KERNEL,
        (scale == null ? { x, dy: grad, mean, variance } : { x, dy: grad, mean, variance, scale }) as unknown as tf.NamedTensorMap,
        attrs,
      ) as tf.Tensor[];
      const [dx, dMean, dVariance, dScale, dOffset] = outs as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      return { x: () => dx, mean: () => dMean, variance: () => dVariance, scale: () => dScale, offset: () => dOffset };
    },
  };
  tf.registerGradient(config as unknown as tf.GradConfig);
  ourBatchNormGrad = config;
}

// ---------------------------------------------------------------------------
// Registration

interface OurKernel {
  name: string;
  /** Builds our kernel; `native` is the backend's own one, if any, for cases we pass on. */
  make: (native: KernelFunc | undefined) => KernelFunc;
  /** False: only fills a gap. True: replaces a slow native kernel (with `replaceSlow`). */
  replacesNative: boolean;
  /** A new kernel that is part of the replacements: registered only with `replaceSlow`. */
  withReplacements?: boolean;
}

const OURS: readonly OurKernel[] = [
  { name: 'Conv2DBackpropFilter', make: () => conv2dBackpropFilter as unknown as KernelFunc, replacesNative: false },
  // Present in tfjs-backend-wasm 4.22, but as a scalar loop nest.
  { name: 'Conv2DBackpropInput', make: () => conv2dBackpropInput as unknown as KernelFunc, replacesNative: true },
  { name: 'Tile', make: makeTile, replacesNative: true },
  { name: 'Conv2D', make: makeConv2D, replacesNative: true },
  { name: 'FusedConv2D', make: makeFusedConv2D, replacesNative: true },
  { name: 'Sum', make: (n) => makeRunReduce(n, false), replacesNative: true },
  { name: 'Mean', make: (n) => makeRunReduce(n, true), replacesNative: true },
  { name: 'Identity', make: makeIdentity, replacesNative: true },
  { name: 'FusedBatchNorm', make: makeBatchNorm, replacesNative: true },
  { name: 'Cast', make: makeCast, replacesNative: true },
  // Not a tf.js kernel: only the FusedBatchNorm gradient registered below calls it.
  { name: BATCH_NORM_GRAD_KERNEL, make: () => batchNormGrad as unknown as KernelFunc, replacesNative: false, withReplacements: true },
  // Not tf.js kernels: batch-norm-relu.ts (Petri's training graph) calls them where registered.
  { name: BN_RELU_KERNEL, make: () => wasmBatchNormRelu, replacesNative: false, withReplacements: true },
  { name: BN_RELU_GRAD_KERNEL, make: () => wasmBatchNormReluGrad, replacesNative: false, withReplacements: true },
  { name: AFFINE_RELU_KERNEL, make: () => wasmAffineRelu, replacesNative: false, withReplacements: true },
  { name: SGD_KERNEL, make: () => sgdMomentum as unknown as KernelFunc, replacesNative: false, withReplacements: true },
];

/** Kernel functions we registered, by kernel name (to stay idempotent). */
const registered = new Map<string, KernelFunc>();

function registeredFunc(name: string): KernelFunc | undefined {
  return (tf.getKernel(name, BACKEND) as KernelConfig | undefined)?.kernelFunc;
}

/** Options for {@link registerWasmTrainingKernels}. */
export interface WasmTrainingKernelOptions {
  /**
   * Also replace kernels that the wasm backend has but that are slow in
   * training (Conv2DBackpropInput, Tile, Sum/Mean over leading axes,
   * Identity, FusedBatchNorm, same-dtype Cast); cases they do not cover go
   * to the native kernel. Default true. With it, FusedBatchNorm's gradient
   * on wasm is one fused kernel too.
   */
  replaceSlow?: boolean;
  /** Kernels of ours to leave out (benchmarks: `PetriFusedBatchNormGrad` keeps tf.js's batch-norm gradient). */
  exclude?: readonly string[];
}

/**
 * Registers, for the 'wasm' backend, the kernels that training Petri's conv
 * nets needs and tfjs-backend-wasm 4.22 lacks (`Conv2DBackpropFilter`) and,
 * unless `replaceSlow` is false, faster versions of kernels that dominate a
 * training step on it. A native kernel that fills a gap we would fill (a
 * newer tfjs) is left alone. Safe to call any number of times, before or
 * after the backend is set. Import '@tensorflow/tfjs-backend-wasm' first:
 * replacements are only installed over natives that exist (they hand the
 * cases they do not cover to them), and a later import of the package
 * would overwrite them.
 */
export function registerWasmTrainingKernels(options: WasmTrainingKernelOptions = {}): void {
  const replaceSlow = options.replaceSlow ?? true;
  const exclude = new Set(options.exclude ?? []);
  for (const k of OURS) {
    if (exclude.has(k.name)) continue;
    const current = registeredFunc(k.name);
    if (current !== undefined && current === registered.get(k.name)) continue;
    if (k.replacesNative ? current === undefined || !replaceSlow : current !== undefined) continue;
    if (k.withReplacements === true && !replaceSlow) continue;
    const native = current === undefined ? undefined : tf.getKernel(k.name, BACKEND);
    const fn = k.make(current);
    if (native !== undefined) tf.unregisterKernel(k.name, BACKEND);
    // The native kernel we fall back to is bound to the wasm module by its
    // setupFunc, which the engine runs only for registered configs.
    tf.registerKernel({
      kernelName: k.name,
      backendName: BACKEND,
      kernelFunc: fn,
      setupFunc: native?.setupFunc,
      disposeFunc: native?.disposeFunc,
    });
    registered.set(k.name, fn);
  }
  if (replaceSlow && !exclude.has(BATCH_NORM_GRAD_KERNEL)) registerBatchNormGradient();
}

/** Names of the kernels {@link registerWasmTrainingKernels} may register. */
export const WASM_TRAINING_KERNELS: readonly string[] = OURS.map((k) => k.name);
