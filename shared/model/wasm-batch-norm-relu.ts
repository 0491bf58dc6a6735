/**
 * The two kernels of batch-norm-relu.ts for the wasm backend, working on
 * the wasm heap in place: per-channel sums in float64, then one
 * elementwise pass. The passes run in WebAssembly SIMD (simd-kernels.ts)
 * on blocks of four rows; the rows left over, and every row where SIMD is
 * not available, run as JavaScript loops with the same arithmetic. They
 * replace about twenty activation-sized tf.js kernels per layer and step.
 */
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { asWasmBackend, f32, simdFor, size } from './wasm-heap.ts';
import type { SimdKernels } from './simd-kernels.ts';

type KernelArgs = { inputs: NamedTensorInfoMap; backend: unknown; attrs?: NamedAttrMap };

function channelsOf(x: TensorInfo, kernel: string, perChannel: readonly (TensorInfo | undefined)[]): number {
  const c = x.shape[x.shape.length - 1] ?? 0;
  if (x.dtype !== 'float32' || x.shape.length < 2 || c === 0) {
    throw new Error(`wasm ${kernel}: x must be float32 with channels last, got ${x.dtype} [${x.shape.join(',')}]`);
  }
  for (const t of perChannel) {
    if (t === undefined || t.dtype !== 'float32' || size(t.shape) !== c) {
      throw new Error(`wasm ${kernel}: per-channel inputs must be float32 of size ${c}`);
    }
  }
  return c;
}

/** Per-channel coefficients repeated four times (one SIMD block of four rows) into `dst` at `at`. */
export function repeat4(dst: Float32Array, at: number, values: ArrayLike<number>, c: number): void {
  for (let t = 0; t < 4; t++) for (let j = 0; j < c; j++) dst[at + t * c + j] = values[j] as number;
}

/**
 * y = max(x*a + b, 0) over m rows of c channels: the first `blocks` blocks
 * of four rows by the SIMD loop (with a and b repeated into `sv` at 0 and
 * 4c), the rest in JavaScript with the same float32 rounding.
 */
function applyAffineRelu(
  simd: SimdKernels | null, blocks: number, xv: Float32Array, yv: Float32Array, sv: Float32Array,
  a: ArrayLike<number>, b: ArrayLike<number>, c: number, m: number,
): void {
  const L = 4 * c;
  if (simd !== null && blocks > 0) {
    repeat4(sv, 0, a, c);
    repeat4(sv, L, b, c);
    simd.affineRelu(xv.byteOffset, yv.byteOffset, sv.byteOffset, sv.byteOffset + 4 * L, 4 * L, blocks);
  }
  for (let o = blocks * L; o < m * c; o += c) {
    for (let j = 0; j < c; j++) {
      const t = Math.fround((xv[o + j] as number) * (a[j] as number)) + (b[j] as number);
      yv[o + j] = t > 0 ? t : 0;
    }
  }
}

/** Adds float64 block accumulators ([2][4][c] at byte offset `byteAt`) into two per-channel sums. */
function foldSums(buffer: ArrayBufferLike, byteAt: number, c: number, s1: Float64Array, s2: Float64Array): void {
  const acc = new Float64Array(buffer, byteAt, 8 * c);
  for (let t = 0; t < 4; t++) {
    for (let j = 0; j < c; j++) {
      s1[j] = (s1[j] as number) + (acc[t * c + j] as number);
      s2[j] = (s2[j] as number) + (acc[4 * c + t * c + j] as number);
    }
  }
}

function batchNormRelu(args: KernelArgs): TensorInfo[] {
  const backend = asWasmBackend(args.backend);
  const { x, gamma, beta } = args.inputs as Record<string, TensorInfo | undefined>;
  const eps = (args.attrs as { epsilon: number }).epsilon;
  if (x === undefined) throw new Error('wasm PetriBatchNormRelu: needs x');
  const c = channelsOf(x, 'PetriBatchNormRelu', [gamma, beta]);
  const m = size(x.shape) / c;
  const L = 4 * c;
  const y = backend.makeOutput([...x.shape], 'float32');
  const mean = backend.makeOutput([c], 'float32');
  const variance = backend.makeOutput([c], 'float32');
  // a, b (L each), then float64 accumulators (2L doubles = 4L floats).
  const scratch = backend.makeOutput([6 * L], 'float32');
  try {
    const xv = f32(backend, x);
    const yv = f32(backend, y);
    const sv = f32(backend, scratch);
    const simd = simdFor(backend, xv);
    const blocks = simd === null ? 0 : Math.floor(m / 4);
    const s1 = new Float64Array(c);
    const s2 = new Float64Array(c);
    if (simd !== null && blocks > 0) {
      sv.fill(0, 2 * L, 6 * L);
      simd.sums(xv.byteOffset, 4 * L, blocks, sv.byteOffset + 8 * L);
      foldSums(sv.buffer, sv.byteOffset + 8 * L, c, s1, s2);
    }
    for (let o = blocks * L; o < m * c; o += c) {
      for (let j = 0; j < c; j++) {
        const a = xv[o + j] as number;
        s1[j] = (s1[j] as number) + a;
        s2[j] = (s2[j] as number) + a * a;
      }
    }
    const meanV = f32(backend, mean);
    const varV = f32(backend, variance);
    const g = f32(backend, gamma as TensorInfo);
    const bt = f32(backend, beta as TensorInfo);
    const a = new Float32Array(c);
    const b = new Float32Array(c);
    for (let j = 0; j < c; j++) {
      const mu = (s1[j] as number) / m;
      // E[x²] - mean² in float64: exact enough unless |mean| is ~1e7 standard deviations.
      const v = Math.max(0, (s2[j] as number) / m - mu * mu);
      meanV[j] = mu;
      varV[j] = v;
      const aj = (g[j] as number) / Math.sqrt(v + eps);
      a[j] = aj;
      b[j] = (bt[j] as number) - (meanV[j] as number) * (a[j] as number);
    }
    applyAffineRelu(simd, blocks, xv, yv, sv, a, b, c, m);
  } finally {
    backend.disposeData(scratch.dataId);
  }
  return [y, mean, variance];
}

function batchNormReluGrad(args: KernelArgs): TensorInfo[] {
  const backend = asWasmBackend(args.backend);
  const { x, y, dy, gamma, mean, variance } = args.inputs as Record<string, TensorInfo | undefined>;
  const eps = (args.attrs as { epsilon: number }).epsilon;
  if (x === undefined || y === undefined || dy === undefined) throw new Error('wasm PetriBatchNormReluGrad: needs x, y and dy');
  const c = channelsOf(x, 'PetriBatchNormReluGrad', [gamma, mean, variance]);
  const shape = x.shape.join(',');
  if (y.shape.join(',') !== shape || dy.shape.join(',') !== shape || y.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`wasm PetriBatchNormReluGrad: x, y and dy must be float32 of one shape, got [${shape}], [${y.shape.join(',')}], [${dy.shape.join(',')}]`);
  }
  const m = size(x.shape) / c;
  const L = 4 * c;
  const dx = backend.makeOutput([...x.shape], 'float32');
  const dGamma = backend.makeOutput([c], 'float32');
  const dBeta = backend.makeOutput([c], 'float32');
  // mean, k, p, q (L each), then float64 accumulators (4L floats).
  const scratch = backend.makeOutput([8 * L], 'float32');
  try {
    const xv = f32(backend, x);
    const yv = f32(backend, y);
    const dyv = f32(backend, dy);
    const dxv = f32(backend, dx);
    const sv = f32(backend, scratch);
    const mu = f32(backend, mean as TensorInfo);
    const simd = simdFor(backend, xv);
    const blocks = simd === null ? 0 : Math.floor(m / 4);
    const sumDy = new Float64Array(c);
    const sumDyX = new Float64Array(c);
    if (simd !== null && blocks > 0) {
      repeat4(sv, 0, mu, c);
      sv.fill(0, 4 * L, 8 * L);
      simd.gradSums(xv.byteOffset, yv.byteOffset, dyv.byteOffset, sv.byteOffset, 4 * L, blocks, sv.byteOffset + 16 * L);
      foldSums(sv.buffer, sv.byteOffset + 16 * L, c, sumDy, sumDyX);
    }
    for (let o = blocks * L; o < m * c; o += c) {
      for (let j = 0; j < c; j++) {
        if ((yv[o + j] as number) > 0) {
          const d = dyv[o + j] as number;
          sumDy[j] = (sumDy[j] as number) + d;
          sumDyX[j] = (sumDyX[j] as number) + Math.fround(d * Math.fround((xv[o + j] as number) - (mu[j] as number)));
        }
      }
    }
    const g = f32(backend, gamma as TensorInfo);
    const v = f32(backend, variance as TensorInfo);
    const dg = f32(backend, dGamma);
    const db = f32(backend, dBeta);
    // dx = k*dy' + (x - mean)*p + q, per channel.
    const k = new Float32Array(c);
    const p = new Float32Array(c);
    const q = new Float32Array(c);
    for (let j = 0; j < c; j++) {
      const r = 1 / Math.sqrt((v[j] as number) + eps);
      const kj = (g[j] as number) * r;
      const s = sumDy[j] as number;
      const sx = sumDyX[j] as number;
      dg[j] = sx * r;
      db[j] = s;
      k[j] = kj;
      p[j] = (-kj * r * r * sx) / m;
      q[j] = (-kj * s) / m;
    }
    if (simd !== null && blocks > 0) {
      repeat4(sv, L, k, c);
      repeat4(sv, 2 * L, p, c);
      repeat4(sv, 3 * L, q, c);
      const at = sv.byteOffset;
      simd.gradApply(xv.byteOffset, yv.byteOffset, dyv.byteOffset, at, at + 4 * L, at + 8 * L, at + 12 * L, dxv.byteOffset, 4 * L, blocks);
    }
    for (let o = blocks * L; o < m * c; o += c) {
      for (let j = 0; j < c; j++) {
        const d = (yv[o + j] as number) > 0 ? (dyv[o + j] as number) : 0;
        const xm = Math.fround((xv[o + j] as number) - (mu[j] as number));
        dxv[o + j] = Math.fround(Math.fround(d * (k[j] as number)) + Math.fround(xm * (p[j] as number))) + (q[j] as number);
      }
    }
  } finally {
    backend.disposeData(scratch.dataId);
  }
  return [dx, dGamma, dBeta];
}

/** y = max(x*a + b, 0) with per-channel a and b (batch norm in inference mode, then ReLU). */
function affineRelu(args: KernelArgs): TensorInfo {
  const backend = asWasmBackend(args.backend);
  const { x, a, b } = args.inputs as Record<string, TensorInfo | undefined>;
  if (x === undefined || a === undefined || b === undefined) throw new Error('wasm PetriAffineRelu: needs x, a and b');
  const c = channelsOf(x, 'PetriAffineRelu', [a, b]);
  const m = size(x.shape) / c;
  const L = 4 * c;
  const y = backend.makeOutput([...x.shape], 'float32');
  const scratch = backend.makeOutput([2 * L], 'float32');
  try {
    const xv = f32(backend, x);
    const yv = f32(backend, y);
    const sv = f32(backend, scratch);
    const av = f32(backend, a);
    const bv = f32(backend, b);
    const simd = simdFor(backend, xv);
    applyAffineRelu(simd, simd === null ? 0 : Math.floor(m / 4), xv, yv, sv, av, bv, c, m);
  } finally {
    backend.disposeData(scratch.dataId);
  }
  return y;
}

/**
 * y = max(y + bias, 0) in place, with a per-channel bias: the bias and ReLU
 * of a fused conv whose conv ran without them (the Winograd conv).
 */
export function biasReluInPlace(backendArg: unknown, y: TensorInfo, bias: TensorInfo): void {
  const backend = asWasmBackend(backendArg);
  const c = channelsOf(y, 'FusedConv2D', [bias]);
  const m = size(y.shape) / c;
  const scratch = backend.makeOutput([8 * c], 'float32');
  try {
    // Views after the allocation.
    const yv = f32(backend, y);
    const simd = simdFor(backend, yv);
    const ones = new Float32Array(c).fill(1);
    applyAffineRelu(simd, simd === null ? 0 : Math.floor(m / 4), yv, yv, f32(backend, scratch), ones, f32(backend, bias), c, m);
  } finally {
    backend.disposeData(scratch.dataId);
  }
}

export const wasmAffineRelu = affineRelu as unknown as KernelFunc;
export const wasmBatchNormRelu = batchNormRelu as unknown as KernelFunc;
export const wasmBatchNormReluGrad = batchNormReluGrad as unknown as KernelFunc;
