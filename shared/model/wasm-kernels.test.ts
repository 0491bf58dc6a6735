import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend, nodeWasmThreads } from '../../server/tf-backend.ts';
import { BATCH_NORM_GRAD_KERNEL, registerWasmTrainingKernels, WASM_TRAINING_KERNELS } from './wasm-kernels.ts';
import { gemmFilterGradSwitch, im2colChunk, im2colConvApplies, im2colConvSwitch } from './im2col-gemm.ts';
import { relaxedSimd } from './simd-kernels.ts';
import { winogradSwitch } from './winograd.ts';
import { simdSwitch } from './wasm-heap.ts';
import { relErr, values } from './numeric-checks.ts';
import { expectPassesOnTwoThreads, relaxedSimdOnlyInRerun, TWO_THREADS_TIMEOUT_MS } from '../../test/threaded-rerun.ts';

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
type Shape4 = [number, number, number, number];

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
// The rerun (the last test) checks the GEMMs' fused multiply-add (relaxed SIMD) too.
relaxedSimdOnlyInRerun();

const wasmDataIds = () => (tf.findBackend('wasm') as unknown as { numDataIds(): number }).numDataIds();

let maxErr = 0;
const track = (e: number) => { maxErr = Math.max(maxErr, e); return e; };

/** dL/dx and dL/dfilter of sum(conv2d(x, f) * dy) on `backend`, plus leak counts. */
async function convGrads(backend: string, xShape: Shape4, fShape: Shape4, strides: number | [number, number], pad: Pad) {
  await tf.setBackend(backend);
  const x = tf.tensor4d(values(size(xShape), 1), xShape);
  const f = tf.tensor4d(values(size(fShape), 2), fShape);
  const outShape = tf.tidy(() => tf.conv2d(x, f, strides, pad).shape);
  const dy = tf.tensor(values(size(outShape), 3), outShape);
  const tensors = tf.memory().numTensors;
  const ids = backend === 'wasm' ? wasmDataIds() : 0;
  const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad))([x, f], dy);
  const out = { dx: dx!.dataSync().slice(), df: df!.dataSync().slice() };
  tf.dispose([dx!, df!]);
  const leaked = tf.memory().numTensors - tensors;
  const leakedIds = backend === 'wasm' ? wasmDataIds() - ids : 0;
  tf.dispose([x, f, dy]);
  return { ...out, leaked, leakedIds };
}

/**
 * What initNodeBackend('wasm') reports: PETRI_WASM_THREADS=2 runs this whole
 * file on tf.js's threaded build with two XNNPACK threads.
 */
const WASM_INFO = nodeWasmThreads() > 1 ? { backend: 'wasm', threads: nodeWasmThreads() } : { backend: 'wasm' };

beforeAll(async () => {
  const init = await initNodeBackend('wasm');
  expect(init).toEqual(WASM_INFO);
});

describe('registerWasmTrainingKernels', () => {
  it('fills the gap in tfjs-backend-wasm and is idempotent', () => {
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    const before = WASM_TRAINING_KERNELS.map((k) => tf.getKernel(k, 'wasm')?.kernelFunc);
    registerWasmTrainingKernels();
    registerWasmTrainingKernels({ replaceSlow: false });
    expect(WASM_TRAINING_KERNELS.map((k) => tf.getKernel(k, 'wasm')?.kernelFunc)).toEqual(before);
  });

  it('initNodeBackend is idempotent and can switch to cpu and back', async () => {
    expect(await initNodeBackend('cpu')).toEqual({ backend: 'cpu' });
    expect(await initNodeBackend()).toEqual(WASM_INFO);
    expect(await initNodeBackend('wasm')).toEqual(WASM_INFO);
  });
});

describe('conv2d gradients on wasm match cpu', () => {
  // [x shape, filter shape, strides, pad]
  const cases: Array<[Shape4, Shape4, number | [number, number], Pad]> = [
    [[1, 7, 7, 1], [1, 1, 1, 1], 1, 'same'],
    [[2, 8, 8, 3], [3, 3, 3, 4], 1, 'same'],
    [[2, 7, 7, 3], [3, 3, 3, 2], 1, 'same'],
    [[1, 9, 9, 16], [3, 3, 16, 4], 1, 'same'],
    [[3, 8, 8, 5], [1, 3, 5, 6], 1, 'same'],
    [[2, 9, 7, 4], [3, 1, 4, 7], 1, 'same'],
    [[2, 9, 9, 3], [5, 3, 3, 8], 1, 'same'],
    [[1, 8, 9, 2], [3, 5, 2, 3], 1, 'same'],
    [[2, 16, 16, 3], [7, 7, 3, 4], 1, 'same'],
    [[4, 8, 8, 6], [1, 1, 6, 12], 1, 'same'],
    [[4, 28, 28, 3], [3, 3, 3, 16], 1, 'same'],
    [[4, 7, 7, 16], [3, 3, 16, 16], 1, 'same'],
    [[3, 16, 16, 12], [3, 5, 12, 10], 1, 'same'],
    [[2, 8, 8, 3], [3, 3, 3, 4], 2, 'same'],
    [[4, 16, 16, 16], [3, 3, 16, 16], 2, 'same'],
    [[3, 28, 28, 8], [5, 3, 8, 8], 2, 'same'],
    [[4, 28, 28, 16], [1, 1, 16, 16], 2, 'same'],
    [[2, 7, 7, 4], [3, 3, 4, 2], 2, 'same'],
    [[2, 9, 9, 3], [5, 3, 3, 5], 2, 'same'],
    [[1, 16, 16, 8], [3, 5, 8, 16], 2, 'same'],
    [[2, 28, 28, 1], [7, 7, 1, 4], 2, 'same'],
    [[3, 8, 8, 4], [1, 1, 4, 8], 2, 'same'],
    [[2, 9, 9, 5], [1, 1, 5, 3], 2, 'same'],
    [[2, 16, 16, 3], [1, 3, 3, 6], 2, 'same'],
    [[2, 8, 8, 3], [3, 3, 3, 4], 4, 'same'],
    [[2, 9, 9, 2], [3, 1, 2, 5], 4, 'same'],
    [[1, 16, 16, 4], [7, 7, 4, 3], 4, 'same'],
    [[2, 28, 28, 2], [1, 1, 2, 16], 4, 'same'],
    [[1, 16, 16, 3], [5, 3, 3, 2], 4, 'same'],
    [[1, 16, 16, 2], [3, 3, 2, 2], 8, 'same'],
    [[1, 9, 9, 3], [3, 3, 3, 4], 8, 'same'],
    [[2, 1, 1, 3], [3, 3, 3, 4], 2, 'same'],
    [[1, 17, 17, 2], [15, 15, 2, 2], 16, 'same'],
    [[2, 10, 10, 2], [3, 3, 2, 4], 3, 'same'],
    [[1, 5, 5, 2], [3, 3, 2, 2], 1, 3],
    [[1, 5, 6, 2], [3, 3, 2, 2], 2, [[0, 0], [4, 0], [0, 5], [0, 0]]],
    [[2, 8, 8, 3], [1, 1, 3, 4], 2, [[0, 0], [1, 0], [0, 1], [0, 0]]],
    [[2, 9, 9, 3], [3, 3, 3, 4], 1, 'valid'],
    [[2, 9, 8, 3], [3, 5, 3, 4], 2, 'valid'],
    [[1, 16, 16, 2], [5, 5, 2, 3], 4, 'valid'],
    [[2, 8, 8, 3], [3, 3, 3, 4], 1, 1],
    [[2, 9, 9, 3], [5, 5, 3, 2], 2, 1],
    [[2, 8, 8, 3], [3, 3, 3, 4], [1, 2], 'same'],
    [[2, 8, 8, 3], [3, 3, 3, 4], 1, [[0, 0], [0, 2], [1, 0], [0, 0]]],
    [[1, 9, 9, 2], [3, 3, 2, 3], 2, [[0, 0], [2, 1], [0, 0], [0, 0]]],
    // Channel counts the GEMM takes as they are (fours in, eights out), and conv3's strided layers.
    [[3, 16, 16, 3], [3, 3, 3, 32], 1, 'same'],
    [[3, 16, 16, 4], [3, 3, 4, 8], 2, 'same'],
    [[2, 9, 9, 8], [3, 3, 8, 16], 1, 'same'],
    [[2, 10, 10, 7], [3, 3, 7, 16], 2, 'valid'],
    [[2, 16, 16, 32], [3, 3, 32, 64], 2, 'same'],
    [[3, 8, 8, 64], [3, 3, 64, 128], 2, 'same'],
  ];

  // Each case on wasm three ways: as it runs (the filter gradient as one GEMM over the output
  // positions on Petri's SIMD kernels), with chunks of at most four positions (one output row or
  // less each; the chunks' products summed), and without the SIMD kernels (the correlation readings).
  // Winograd is off here: winograd.test.ts checks its convs.
  it.each(cases)('x %j filter %j stride %j pad %j', async (xShape, fShape, strides, pad) => {
    winogradSwitch.enabled = false;
    const cpu = await convGrads('cpu', xShape, fShape, strides, pad);
    const used = gemmFilterGradSwitch.used;
    const wasm = await convGrads('wasm', xShape, fShape, strides, pad).finally(() => { winogradSwitch.enabled = true; });
    const pointwise = fShape[0] === 1 && fShape[1] === 1;
    if (!pointwise) expect(gemmFilterGradSwitch.used - used, 'the GEMM filter gradient ran').toBe(1);
    const bytes = im2colChunk.bytes;
    im2colChunk.bytes = 1;
    const chunked = await convGrads('wasm', xShape, fShape, strides, pad).finally(() => { im2colChunk.bytes = bytes; });
    simdSwitch.enabled = false;
    const plain = await convGrads('wasm', xShape, fShape, strides, pad).finally(() => { simdSwitch.enabled = true; });
    for (const got of [wasm, chunked, plain]) {
      expect(track(relErr(cpu.dx, got.dx))).toBeLessThan(1e-4);
      expect(track(relErr(cpu.df, got.df))).toBeLessThan(1e-4);
      expect(got.leaked).toBe(0);
      expect(got.leakedIds).toBe(0);
    }
  });

  // The forward conv as an im2col GEMM (Petri's SIMD kernels), on every case, against cpu.
  it.each(cases)('forward as an im2col GEMM: x %j filter %j stride %j pad %j', async (xShape, fShape, strides, pad) => {
    const forward = async (backend: string) => {
      await tf.setBackend(backend);
      return tf.tidy(() => tf.conv2d(
        tf.tensor4d(values(size(xShape), 4), xShape), tf.tensor4d(values(size(fShape), 5), fShape), strides, pad,
      ).dataSync().slice());
    };
    const cpu = await forward('cpu');
    winogradSwitch.enabled = false;
    im2colConvSwitch.always = true;
    const used = im2colConvSwitch.used;
    const ids = wasmDataIds();
    const wasm = await forward('wasm').finally(() => {
      winogradSwitch.enabled = true;
      im2colConvSwitch.always = false;
    });
    expect(im2colConvSwitch.used - used).toBe(1);
    expect(wasmDataIds()).toBe(ids);
    expect(track(relErr(cpu, wasm))).toBeLessThan(1e-5);
  });

  it('fuses a per-channel bias and ReLU (a folded batch norm) into the im2col GEMM conv', async () => {
    const run = async (backend: string, shape: Shape4, f: Shape4) => {
      await tf.setBackend(backend);
      return tf.tidy(() => tf.fused.conv2d({
        x: tf.tensor4d(values(size(shape), 6), shape),
        filter: tf.tensor4d(values(size(f), 7), f),
        strides: 2,
        pad: 'same',
        bias: tf.tensor1d(values(f[3], 8)),
        activation: 'relu',
      }).dataSync().slice());
    };
    // Output rows a multiple of four positions, and not (the GEMM's last block of a chunk is partly spare).
    for (const [shape, f] of [[[3, 16, 16, 32], [3, 3, 32, 64]], [[2, 9, 7, 12], [3, 3, 12, 20]]] as Array<[Shape4, Shape4]>) {
      const cpu = await run('cpu', shape, f);
      im2colConvSwitch.always = true;
      const used = im2colConvSwitch.used;
      const wasm = await run('wasm', shape, f).finally(() => { im2colConvSwitch.always = false; });
      expect(im2colConvSwitch.used - used).toBe(1);
      expect(track(relErr(cpu, wasm))).toBeLessThan(1e-5);
      // ReLU cut some outputs to zero, and left others positive.
      expect(wasm.some((v) => v === 0) && wasm.some((v) => v > 0)).toBe(true);
    }
  });

  it('runs the forward conv as an im2col GEMM only where it measured faster than XNNPACK', () => {
    const info = (x: Shape4, f: Shape4, stride: number) =>
      tf.backend_util.computeConv2DInfo(x, f, stride, 1, 'same', undefined, false, 'channelsLast');
    const fma = relaxedSimd();
    expect(im2colConvApplies(info([50, 32, 32, 32], [3, 3, 32, 64], 2))).toBe(fma);
    expect(im2colConvApplies(info([50, 16, 16, 30], [5, 5, 30, 50], 1))).toBe(fma);
    expect(im2colConvApplies(info([50, 32, 32, 3], [3, 3, 3, 32], 1))).toBe(false);
    expect(im2colConvApplies(info([50, 32, 32, 3], [3, 3, 3, 32], 2))).toBe(false);
    expect(im2colConvApplies(info([50, 32, 32, 16], [3, 3, 16, 16], 1))).toBe(false);
    expect(im2colConvApplies(info([50, 16, 16, 32], [3, 3, 32, 32], 1))).toBe(false);
    // A phase of the input gradient of conv3's last layer: a 2x2 conv of dY (128 channels) into 64.
    expect(im2colConvApplies(info([50, 8, 8, 128], [2, 2, 128, 64], 1))).toBe(fma);
  });

  it('rejects NCHW with a clear message', async () => {
    await tf.setBackend('wasm');
    const x = tf.zeros([1, 3, 4, 4]);
    const dy = tf.zeros([1, 2, 4, 4]);
    expect(() => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
      strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 3, 2],
    })).toThrow(/NHWC/);
    tf.dispose([x, dy]);
  });
});

describe('replaced reductions, Tile and Identity match cpu', () => {
  async function on<T>(backend: string, f: () => T): Promise<T> {
    await tf.setBackend(backend);
    return f();
  }
  const both = async (f: () => tf.Tensor) => {
    const run = () => tf.tidy(() => { const t = f(); return { data: Array.from(t.dataSync()), shape: t.shape, dtype: t.dtype }; });
    return { cpu: await on('cpu', run), wasm: await on('wasm', run) };
  };

  it.each([
    [[4, 5, 6, 7], [0, 1, 2], false],
    [[4, 5, 6, 7], [0, 1, 2], true],
    [[4, 5, 6, 7], [2, 0, 1], false],
    [[3, 5, 6], [0], false],
    [[4, 5, 6, 7], [0, 1], true],
    [[4, 5, 6, 7], [1, 2], false],
    [[4, 5, 6, 7], [2, 1], true],
    [[3, 9, 9, 16], [1, 2], false],
    [[4, 5, 6, 7], [1], false],
    [[4, 5, 6, 7], [1, 3], false],
    [[4, 5, 6, 7], [-1], false],
    [[4, 5, 6, 7], undefined, false],
    [[9, 3], [0], false],
  ] as Array<[number[], number[] | undefined, boolean]>)('sum and mean of %j over %j keepDims %j', async (shape, axis, keepDims) => {
    for (const op of [tf.sum, tf.mean]) {
      const r = await both(() => op(tf.tensor(values(size(shape), 7).map((v) => v * 100), shape), axis, keepDims));
      expect(r.wasm.shape).toEqual(r.cpu.shape);
      expect(track(relErr(r.cpu.data, r.wasm.data))).toBeLessThan(1e-6);
    }
  });

  it('int32 sums go to the native kernel', async () => {
    const r = await both(() => tf.sum(tf.tensor([[1, 2], [3, 4]], [2, 2], 'int32'), 0));
    expect(r.wasm).toEqual(r.cpu);
  });

  it.each([
    [[1, 1, 1, 5], [3, 4, 2, 1]],
    [[2, 3], [2, 3]],
    [[3], [4]],
    [[2, 1, 3], [1, 5, 2]],
    [[2, 2, 2, 2], [1, 1, 1, 1]],
  ])('tile %j by %j', async (shape, reps) => {
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      const r = await both(() => tf.tile(tf.tensor(values(size(shape), 3).map((v) => Math.round(v * 4)), shape, dtype), reps));
      expect(r.wasm).toEqual(r.cpu);
    }
  });

  it.each([
    [[4, 5, 6, 7], [7], true],
    [[4, 5, 6, 7], [7], false],
    [[3, 8], [8], true],
    [[4, 5, 6, 7], [1, 1, 1, 7], true],
    [[2, 3, 4, 5], [2, 3, 4, 5], true],
  ])('batchNorm of %j with statistics %j, scale/offset %j', async (shape, stat, affine) => {
    const r = await both(() => {
      const x = tf.tensor(values(size(shape), 5).map((v) => v * 3), shape);
      const m = tf.tensor(values(size(stat), 6), stat);
      const v = tf.tensor(values(size(stat), 7).map((u) => u + 1.5), stat);
      const g = affine ? tf.tensor(values(size(stat), 8), stat) : undefined;
      const b = affine ? tf.tensor(values(size(stat), 9), stat) : undefined;
      return tf.batchNorm(x, m, v, b, g, 1e-3);
    });
    expect(r.wasm.shape).toEqual(r.cpu.shape);
    expect(track(relErr(r.cpu.data, r.wasm.data))).toBeLessThan(1e-5);
  });

  it.each([
    ['float32', 'float32'], ['float32', 'int32'], ['int32', 'float32'], ['float32', 'bool'], ['bool', 'int32'], ['int32', 'int32'],
  ] as const)('cast %s to %s', async (from, to) => {
    const r = await both(() => tf.cast(tf.tensor([0, 1.5, -2.7, 3, 0.2], [5], from), to));
    expect(r.wasm).toEqual(r.cpu);
  });

  it('identity shares the buffer without leaks', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor([1, 2, 3]);
    const ids = wasmDataIds();
    const y = tf.clone(x);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    y.dispose();
    expect(wasmDataIds()).toBe(ids - 1);
  });
});

describe('the fused batch-norm gradient on wasm matches tf.js\'s on cpu', () => {
  // Always with scale and offset: tf.js cannot record a batchNorm without a scale for backprop
  // (it saves the missing scale for the gradient and fails, on every backend).
  /** All input gradients of sum(batchNorm(x, m, v, b, g) * w) on `backend`, the kernels that ran and the leaks. */
  async function bnGrads(backend: string, shape: number[], stat: number[], seed: number) {
    await tf.setBackend(backend);
    const x = tf.tensor(values(size(shape), seed).map((v) => v * 3 + 0.5), shape);
    const w = tf.tensor(values(size(shape), seed + 1), shape);
    const m = tf.tensor(values(size(stat), seed + 2), stat);
    const v = tf.tensor(values(size(stat), seed + 3).map((u) => u + 1.5), stat);
    const g = tf.tensor(values(size(stat), seed + 4), stat);
    const b = tf.tensor(values(size(stat), seed + 5), stat);
    const f = (...t: tf.Tensor[]) => tf.sum(tf.mul(tf.batchNorm(t[0]!, t[1]!, t[2]!, t[3], t[4], 1e-3), w));
    const profile = await tf.profile(() => {
      tf.dispose(tf.grads(f)([x, m, v, b, g]));
    });
    const tensors = tf.memory().numTensors;
    const ids = backend === 'wasm' ? wasmDataIds() : 0;
    const grads = tf.grads(f)([x, m, v, b, g]);
    const data = grads.map((t) => ({ shape: t.shape, data: t.dataSync().slice() }));
    tf.dispose(grads);
    const leaked = tf.memory().numTensors - tensors;
    const leakedIds = backend === 'wasm' ? wasmDataIds() - ids : 0;
    tf.dispose([x, w, m, v, g, b]);
    return { data, kernels: new Set(profile.kernelNames), leaked, leakedIds };
  }

  it.each([
    [[2, 3, 4, 5], [5]],
    [[4, 5, 6, 7], [7]],
    [[3, 8], [8]],
    [[7, 9], [9]],
    [[1, 1, 1, 5], [5]],
    [[5, 3, 3, 1], [1]],
    [[3, 4, 4, 64], [64]],
    [[50, 4, 4, 32], [32]],
  ] as Array<[number[], number[]]>)('x %j, statistics %j', async (shape, stat) => {
    for (const seed of [21, 57]) {
      const cpu = await bnGrads('cpu', shape, stat, seed);
      const wasm = await bnGrads('wasm', shape, stat, seed);
      expect(wasm.kernels.has(BATCH_NORM_GRAD_KERNEL)).toBe(true);
      expect(cpu.kernels.has(BATCH_NORM_GRAD_KERNEL)).toBe(false);
      expect(wasm.data.map((d) => d.shape)).toEqual(cpu.data.map((d) => d.shape));
      cpu.data.forEach((c, i) => expect(track(relErr(c.data, wasm.data[i]!.data)), `gradient ${i}`).toBeLessThan(2e-5));
      expect(wasm.leaked).toBe(0);
      expect(wasm.leakedIds).toBe(0);
    }
  });

  it('gives the batch-norm layer in training mode the gradient cpu gives', async () => {
    const run = async (backend: string) => {
      await tf.setBackend(backend);
      const layer = tf.layers.batchNormalization({ epsilon: 1e-3 });
      const x = tf.tensor4d(values(6 * 5 * 5 * 16, 31).map((v) => v * 4 + 1), [6, 5, 5, 16]);
      const w = tf.tensor4d(values(6 * 5 * 5 * 16, 32), [6, 5, 5, 16]);
      tf.tidy(() => layer.apply(x, { training: true }) as tf.Tensor);
      const vars = layer.trainableWeights.map((p) => p.read() as tf.Variable);
      const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, w)) as tf.Scalar, vars);
      const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(layer.apply(t, { training: true }) as tf.Tensor, w)))(x);
      const out = [dx, ...vars.map((v) => grads[v.name]!)].map((t) => t.dataSync().slice());
      tf.dispose([x, w, dx, ...Object.values(grads)]);
      layer.dispose();
      return out;
    };
    const cpu = await run('cpu');
    const wasm = await run('wasm');
    cpu.forEach((c, i) => expect(track(relErr(c, wasm[i]!)), `gradient ${i}`).toBeLessThan(2e-5));
  });
});

describe('one training step of a small Petri-style net', () => {
  const N = 4;
  const H = 12;
  const CLASSES = 10;

  function build() {
    const rescale = tf.layers.rescaling({ scale: 1 / 127.5, offset: -1 });
    const conv1 = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false });
    const bn1 = tf.layers.batchNormalization();
    const conv2 = tf.layers.conv2d({ filters: 8, kernelSize: [1, 3], strides: 1, padding: 'same', useBias: false });
    const bn2 = tf.layers.batchNormalization();
    const adapter = tf.layers.conv2d({
      filters: 8, kernelSize: 1, strides: 2, padding: 'same', useBias: false, trainable: false,
    });
    const add = tf.layers.add();
    const relu = tf.layers.activation({ activation: 'relu' });
    const gap = tf.layers.globalAveragePooling2d({});
    const dense = tf.layers.dense({ units: CLASSES });
    const layers = [conv1, bn1, conv2, bn2, adapter, dense];
    const forward = (x: tf.Tensor): tf.Tensor => {
      const r = rescale.apply(x) as tf.Tensor;
      let h = tf.layers.reLU().apply(bn1.apply(conv1.apply(r), { training: true })) as tf.Tensor;
      h = tf.layers.reLU().apply(bn2.apply(conv2.apply(h), { training: true })) as tf.Tensor;
      const s = relu.apply(add.apply([h, adapter.apply(r) as tf.Tensor])) as tf.Tensor;
      return dense.apply(gap.apply(s)) as tf.Tensor;
    };
    return { forward, layers, kernels: [conv1, conv2] };
  }

  /** Builds the net on `backend`, loads `init` (or keeps fresh weights), takes two SGD steps. */
  async function train(backend: string, init?: Float32Array[]) {
    await tf.setBackend(backend);
    const net = build();
    const x = tf.tensor4d(values(N * H * H * 3, 11).map((v) => (v + 1) * 127.5), [N, H, H, 3]);
    const y = tf.oneHot(tf.tensor1d([1, 3, 5, 9], 'int32'), CLASSES);
    tf.tidy(() => net.forward(x));
    const weights = () => net.layers.flatMap((l) => l.weights);
    if (init) {
      weights().forEach((w, i) => {
        const t = tf.tensor(init[i]!, w.shape as number[]);
        w.write(t);
        t.dispose();
      });
    }
    const initial = weights().map((w) => w.read().dataSync().slice() as Float32Array);
    const optimizer = tf.train.sgd(0.1);
    const lossFn = () => tf.tidy(() => {
      const ce = tf.losses.softmaxCrossEntropy(y, net.forward(x));
      const l2 = tf.addN(net.kernels.map((c) => tf.sum(tf.square(c.getWeights()[0]!))));
      return tf.add(ce, tf.mul(1e-4, l2)) as tf.Scalar;
    });
    // Explicit: a layer with trainable: false still owns engine-trainable variables.
    const trainable = net.layers.flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
    const step = () => {
      const { value, grads } = tf.variableGrads(lossFn, trainable);
      const g = Object.fromEntries(Object.entries(grads).map(([k, t]) => [k, t.dataSync().slice()]));
      optimizer.applyGradients(grads);
      const loss = value.dataSync()[0]!;
      tf.dispose([value, ...Object.values(grads)]);
      return { loss, grads: g };
    };
    const first = step();
    const after = net.layers.flatMap((l) => l.weights.map((w) => ({
      name: w.originalName, trainable: l.trainableWeights.includes(w), data: w.read().dataSync().slice(),
    })));
    const tensors = tf.memory().numTensors;
    const ids = backend === 'wasm' ? wasmDataIds() : 0;
    step();
    const leaked = tf.memory().numTensors - tensors;
    const leakedIds = backend === 'wasm' ? wasmDataIds() - ids : 0;
    const gradNames = Object.keys(first.grads);
    const gradList = gradNames.map((k) => first.grads[k]!);
    tf.dispose([x, y]);
    optimizer.dispose();
    weights().forEach((w) => w.dispose());
    return { initial, loss: first.loss, grads: gradList, after, leaked, leakedIds };
  }

  it('gives the same loss, gradients and weights on wasm as on cpu, without leaks', async () => {
    const cpu = await train('cpu');
    const wasm = await train('wasm', cpu.initial);
    expect(wasm.initial.map((w) => Array.from(w))).toEqual(cpu.initial.map((w) => Array.from(w)));
    expect(track(Math.abs(wasm.loss - cpu.loss) / Math.abs(cpu.loss))).toBeLessThan(1e-5);
    // 2 kernels + 2 x (gamma, beta) + dense kernel and bias; the adapter is fixed.
    expect(cpu.grads).toHaveLength(8);
    cpu.grads.forEach((g, i) => expect(track(relErr(g, wasm.grads[i]!))).toBeLessThan(1e-4));
    const kind = (name: string) => name.replace(/\d+/g, '');
    expect(wasm.after.map((w) => kind(w.name))).toEqual(cpu.after.map((w) => kind(w.name)));
    cpu.after.forEach((w, i) => expect(track(relErr(w.data, wasm.after[i]!.data))).toBeLessThan(1e-4));
    // Trainable weights moved; the adapter did not; BN moving statistics were updated.
    cpu.after.forEach((w, i) => {
      const moved = relErr(cpu.initial[i]!, w.data) > 0;
      expect(moved).toBe(w.trainable || /moving/.test(w.name));
    });
    expect(wasm.leaked).toBe(0);
    expect(wasm.leakedIds).toBe(0);
    expect(cpu.leaked).toBe(0);
  });

  it('reports the largest relative error seen', () => {
    console.log(`max relative error wasm vs cpu: ${maxErr.toExponential(2)}`);
    expect(maxErr).toBeLessThan(1e-4);
  });
});

describe('the threaded wasm build in Node', () => {
  // Run here on the single-threaded build, this file runs itself again on tf.js's threaded build
  // with two XNNPACK threads (server/wasm-node-threads.ts): every check above must hold there too.
  it.runIf(nodeWasmThreads() === 1)('passes every test of this file with PETRI_WASM_THREADS=2', () => {
    expectPassesOnTwoThreads(import.meta.url);
  }, TWO_THREADS_TIMEOUT_MS);
});
