import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend, nodeWasmThreads } from '../../server/tf-backend.ts';
import { batchNormRelu, BN_RELU_GRAD_KERNEL, BN_RELU_KERNEL } from './batch-norm-relu.ts';
import { simdKernelsFor, simdModuleBytes } from './simd-kernels.ts';
import { simdSwitch } from './wasm-heap.ts';
import { relErr, values } from './numeric-checks.ts';

interface Run {
  y: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  dx: Float32Array;
  dGamma: Float32Array;
  dBeta: Float32Array;
}

/** batchNormRelu forward and its three gradients for an upstream gradient dy, on `backend`. */
async function runOn(backend: string, shape: number[]): Promise<Run> {
  await tf.setBackend(backend);
  const c = shape[shape.length - 1] as number;
  const n = shape.reduce((a, b) => a * b, 1);
  // An offset mean and a spread per channel, so that ReLU cuts a real share.
  const x = tf.tidy(() => tf.add(tf.mul(tf.tensor(values(n, 1), shape), 3), tf.tensor1d(values(c, 2))));
  const gamma = tf.tensor1d(values(c, 3).map((v) => 1 + v / 2));
  const beta = tf.tensor1d(values(c, 4).map((v) => v / 2));
  const dy = tf.tensor(values(n, 5), shape);
  const before = tf.memory().numTensors;
  const stats: tf.Tensor[] = [];
  const f = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
    const r = batchNormRelu(a, g, b, 1e-3);
    stats.push(r.mean, r.variance);
    return r.y;
  };
  const y = tf.tidy(() => f(x, gamma, beta));
  const [dx, dGamma, dBeta] = tf.grads(f)([x, gamma, beta], dy);
  const out: Run = {
    y: y.dataSync().slice() as Float32Array,
    mean: (stats[0] as tf.Tensor).dataSync().slice() as Float32Array,
    variance: (stats[1] as tf.Tensor).dataSync().slice() as Float32Array,
    dx: dx!.dataSync().slice() as Float32Array,
    dGamma: dGamma!.dataSync().slice() as Float32Array,
    dBeta: dBeta!.dataSync().slice() as Float32Array,
  };
  tf.dispose([y, dx!, dGamma!, dBeta!, ...stats]);
  expect(tf.memory().numTensors, 'tensors left behind').toBe(before);
  tf.dispose([x, gamma, beta, dy]);
  return out;
}

beforeAll(async () => {
  expect((await initNodeBackend('wasm')).backend).toBe('wasm');
});

describe('the SIMD module', () => {
  it('is valid WebAssembly and links to unshared and shared memories', () => {
    expect(WebAssembly.validate(simdModuleBytes(false))).toBe(true);
    expect(WebAssembly.validate(simdModuleBytes(true))).toBe(true);
    expect(simdKernelsFor(new WebAssembly.Memory({ initial: 1 }))).not.toBeNull();
    expect(simdKernelsFor(new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true }))).not.toBeNull();
  });

  it('computes y = max(0, x*a + b) on a shared memory as float32 arithmetic does', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const k = simdKernelsFor(memory);
    const c = 3;
    const L = 4 * c;
    const heap = new Float32Array(memory.buffer);
    const x = values(2 * L, 7);
    heap.set(x, 0);
    const a = values(c, 8);
    const b = values(c, 9);
    for (let t = 0; t < 4; t++) for (let j = 0; j < c; j++) {
      heap[4 * L + t * c + j] = a[j] as number;
      heap[5 * L + t * c + j] = b[j] as number;
    }
    k!.affineRelu(0, 4 * 2 * L, 4 * 4 * L, 4 * 5 * L, 4 * L, 2);
    for (let i = 0; i < 2 * L; i++) {
      const j = i % c;
      const want = Math.max(0, Math.fround(Math.fround((x[i] as number) * (a[j] as number)) + (b[j] as number)));
      expect(heap[2 * L + i]).toBe(want);
    }
  });
});

describe('batchNormRelu', () => {
  it('registers its kernels for wasm only', () => {
    expect(tf.getKernel(BN_RELU_KERNEL, 'wasm')).toBeDefined();
    expect(tf.getKernel(BN_RELU_GRAD_KERNEL, 'wasm')).toBeDefined();
    expect(tf.getKernel(BN_RELU_KERNEL, 'cpu')).toBeUndefined();
  });

  // Rows (all axes but the last) a multiple of four or not, fewer than four, channels of any count.
  const shapes: number[][] = [[2, 3, 3, 5], [50, 8, 8, 12], [3, 1, 1, 7], [1, 1, 3, 4], [5, 6, 6, 3], [2, 5, 5, 1], [4, 4, 4, 32], [6, 9]];

  it.each(shapes)('wasm (SIMD and JavaScript passes) agrees with the tf-ops version on cpu, shape %j', async (...shape) => {
    const cpu = await runOn('cpu', shape);
    const used = simdSwitch.used;
    const simd = await runOn('wasm', shape);
    // Forward twice (the output, then under tf.grads) and backward once.
    expect(simdSwitch.used - used, 'the SIMD passes ran').toBe(3);
    simdSwitch.enabled = false;
    let js: Run;
    try {
      js = await runOn('wasm', shape);
    } finally {
      simdSwitch.enabled = true;
    }
    await tf.setBackend('wasm');
    for (const got of [simd, js]) {
      expect(relErr(cpu.y, got.y)).toBeLessThan(1e-5);
      expect(relErr(cpu.mean, got.mean)).toBeLessThan(1e-5);
      expect(relErr(cpu.variance, got.variance)).toBeLessThan(1e-5);
      expect(relErr(cpu.dx, got.dx)).toBeLessThan(1e-4);
      expect(relErr(cpu.dGamma, got.dGamma)).toBeLessThan(1e-4);
      expect(relErr(cpu.dBeta, got.dBeta)).toBeLessThan(1e-4);
    }
    // ReLU really cut something, and let something through.
    expect(cpu.y.some((v) => v === 0) && cpu.y.some((v) => v > 0)).toBe(true);
  });

  it('its tf-ops version matches autodiff through tf.moments, batch norm and ReLU', async () => {
    await tf.setBackend('cpu');
    const shape = [4, 5, 5, 6];
    const n = 4 * 5 * 5 * 6;
    const x = tf.tensor(values(n, 11), shape);
    const gamma = tf.tensor1d(values(6, 12));
    const beta = tf.tensor1d(values(6, 13));
    const dy = tf.tensor(values(n, 14), shape);
    const reference = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const { mean, variance } = tf.moments(a, [0, 1, 2]);
      return tf.relu(tf.batchNorm(a, mean, variance, b, g, 1e-3));
    })([x, gamma, beta], dy);
    const ours = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const r = batchNormRelu(a, g, b, 1e-3);
      r.mean.dispose();
      r.variance.dispose();
      return r.y;
    })([x, gamma, beta], dy);
    for (let i = 0; i < 3; i++) {
      expect(relErr((reference[i] as tf.Tensor).dataSync(), (ours[i] as tf.Tensor).dataSync())).toBeLessThan(1e-5);
    }
    tf.dispose([x, gamma, beta, dy, ...reference, ...ours]);
    await tf.setBackend('wasm');
  });

  it.runIf(nodeWasmThreads() > 1)('uses SIMD on the threaded build too (shared memory)', async () => {
    const used = simdSwitch.used;
    await runOn('wasm', [8, 4, 4, 8]);
    expect(simdSwitch.used - used).toBe(3);
  });
});
