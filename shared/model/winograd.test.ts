import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend, nodeWasmThreads } from '../../server/tf-backend.ts';
import { petriSimdThreads } from './simd-threads.ts';
import { relErr, values } from './numeric-checks.ts';
import { expectPassesOnTwoThreads, relaxedSimdOnlyInRerun, TWO_THREADS_TIMEOUT_MS } from '../../test/threaded-rerun.ts';
import { relaxedSimd } from './simd-kernels.ts';
import { winogradChunk, winogradSwitch } from './winograd.ts';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
// Relative to the largest value. The transforms and, in the rerun, the GEMMs' fused multiply-add
// round differently from the cpu backend's direct sums: up to 1.3e-5 was seen.
const TOLERANCE = 3e-5;
// The rerun (the last test) checks the GEMMs' fused multiply-add too.
const relaxed = relaxedSimdOnlyInRerun();

beforeAll(async () => {
  const init = await initNodeBackend('wasm');
  expect(init.simdThreadsFallback).toBeUndefined();
  // PETRI_WASM_THREADS=2 (the last test) runs this file with the convs split over a worker pool,
  // and with relaxed SIMD (the GEMMs' fused multiply-add).
  expect(petriSimdThreads()).toBe(nodeWasmThreads());
  expect(relaxedSimd()).toBe(relaxed);
});

afterEach(() => {
  winogradChunk.tiles = 64;
  winogradSwitch.enabled = true;
  winogradSwitch.largestTile = 4;
});

/**
 * conv2d, its input gradient and filter gradient for dy on `backend`, and
 * how many Winograd convs ran (tf.grads runs the forward conv again).
 */
async function convAll(backend: string, xShape: Shape4, fShape: Shape4, pad: Pad, strides = 1) {
  await tf.setBackend(backend);
  const x = tf.tensor4d(values(size(xShape), 11), xShape);
  const f = tf.tensor4d(values(size(fShape), 12), fShape);
  const before = winogradSwitch.used;
  const tensors = tf.memory().numTensors;
  const y = tf.conv2d(x, f, strides, pad);
  const dy = tf.tensor(values(size(y.shape), 13), y.shape);
  const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad))([x, f], dy);
  const out = { y: y.dataSync().slice(), dx: dx!.dataSync().slice(), df: df!.dataSync().slice(), used: winogradSwitch.used - before };
  tf.dispose([y, dy, dx!, df!]);
  const leaked = tf.memory().numTensors - tensors;
  tf.dispose([x, f]);
  return { ...out, leaked };
}

describe('Winograd F(2x2,3x3) convs on wasm match cpu', () => {
  // [x, filter, pad, tiles per chunk]
  const cases: Array<[Shape4, Shape4, Pad, number]> = [
    [[2, 8, 8, 16], [3, 3, 16, 32], 'same', 64],
    [[1, 2, 2, 8], [3, 3, 8, 64], 'same', 64],
    [[3, 6, 10, 12], [3, 3, 12, 48], 'same', 64],
    // Chunks that end mid-row and mid-image; a last chunk not a multiple of 4.
    [[3, 6, 10, 12], [3, 3, 12, 48], 'same', 4],
    [[5, 4, 6, 24], [3, 3, 24, 24], 'same', 8],
    [[2, 16, 16, 32], [3, 3, 32, 32], 'same', 64],
    [[2, 8, 8, 64], [3, 3, 64, 128], 1, 64],
    [[1, 4, 4, 16], [3, 3, 16, 40], [[0, 0], [1, 1], [1, 1], [0, 0]], 64],
    // Channel counts an evolved net has: padded to fours in and eights out.
    [[2, 8, 8, 9], [3, 3, 9, 60], 'same', 64],
    [[3, 6, 4, 37], [3, 3, 37, 45], 'same', 8],
    [[2, 4, 4, 64], [3, 3, 64, 9], 'same', 64],
    [[4, 2, 6, 13], [3, 3, 13, 40], 'same', 4],
  ];
  for (const [xShape, fShape, pad, chunk] of cases) {
    for (const largestTile of [4, 2] as const) {
      const fours = largestTile === 4 && xShape[1] % 4 === 0 && xShape[2] % 4 === 0;
      it(`x [${xShape}] filter [${fShape}] pad ${JSON.stringify(pad)} chunk ${chunk}: F(${fours ? 4 : 2}x${fours ? 4 : 2},3x3)`, async () => {
        winogradChunk.tiles = chunk;
        winogradSwitch.largestTile = largestTile;
        const ref = await convAll('cpu', xShape, fShape, pad);
        const before4 = winogradSwitch.used4;
        const got = await convAll('wasm', xShape, fShape, pad);
        // The forward conv twice (tf.grads runs it again), the filter gradient, and the input gradient
        // (a conv of dY into Ci channels).
        expect(got.used).toBe(4);
        expect(winogradSwitch.used4 - before4).toBe(fours ? 4 : 0);
        expect(relErr(ref.y, got.y)).toBeLessThan(TOLERANCE);
        expect(relErr(ref.dx, got.dx)).toBeLessThan(TOLERANCE);
        expect(relErr(ref.df, got.df)).toBeLessThan(TOLERANCE);
        expect(got.leaked).toBe(0);
      });
    }
  }

  it('F(4x4,3x3) stays within the tolerance of cpu on a conv10 layer at batch 4', async () => {
    const xShape: Shape4 = [4, 16, 16, 64];
    const fShape: Shape4 = [3, 3, 64, 64];
    const ref = await convAll('cpu', xShape, fShape, 'same');
    const before4 = winogradSwitch.used4;
    const got = await convAll('wasm', xShape, fShape, 'same');
    expect(winogradSwitch.used4 - before4).toBe(4);
    expect(relErr(ref.y, got.y)).toBeLessThan(TOLERANCE);
    expect(relErr(ref.dx, got.dx)).toBeLessThan(TOLERANCE);
    expect(relErr(ref.df, got.df)).toBeLessThan(TOLERANCE);
  }, 60_000);

  it('agrees with XNNPACK\'s direct conv on the same backend', async () => {
    const xShape: Shape4 = [4, 8, 12, 16];
    const fShape: Shape4 = [3, 3, 16, 32];
    const on = await convAll('wasm', xShape, fShape, 'same');
    winogradSwitch.enabled = false;
    const off = await convAll('wasm', xShape, fShape, 'same');
    expect(on.used).toBe(4);
    expect(relErr(off.df, on.df)).toBeLessThan(TOLERANCE);
    expect(off.used).toBe(0);
    expect(relErr(off.y, on.y)).toBeLessThan(TOLERANCE);
    expect(relErr(off.dx, on.dx)).toBeLessThan(TOLERANCE);
  });

  it('leaves the convs it does not cover to XNNPACK, with the same results as cpu', async () => {
    const cases: Array<[Shape4, Shape4, Pad, number]> = [
      [[2, 7, 7, 32], [3, 3, 32, 32], 'same', 1], // odd size
      [[2, 8, 8, 32], [3, 3, 32, 32], 'same', 2], // stride 2
      [[2, 8, 8, 3], [3, 3, 3, 8], 'same', 1], // 3 input channels
      [[2, 8, 8, 8], [3, 3, 8, 4], 'same', 1], // 4 output channels
      [[2, 8, 8, 7], [3, 3, 7, 128], 'same', 1], // 7 input channels
      [[2, 8, 8, 16], [3, 3, 16, 16], 'same', 1], // 256 channel pairs
      [[2, 8, 8, 32], [3, 3, 32, 32], 'valid', 1],
      [[2, 8, 8, 32], [5, 5, 32, 32], 'same', 1],
      [[2, 8, 8, 32], [3, 1, 32, 32], 'same', 1],
    ];
    for (const [xShape, fShape, pad, strides] of cases) {
      const ref = await convAll('cpu', xShape, fShape, pad, strides);
      const got = await convAll('wasm', xShape, fShape, pad, strides);
      expect(relErr(ref.y, got.y)).toBeLessThan(TOLERANCE);
      expect(relErr(ref.dx, got.dx)).toBeLessThan(TOLERANCE);
      expect(got.used, `x [${xShape}] filter [${fShape}] ${pad}`).toBe(0);
    }
  });

  it('runs FusedConv2D without bias or activation, or with a bias and ReLU (a folded batch norm), and passes the others on', async () => {
    const xShape: Shape4 = [2, 8, 8, 16];
    const fShape: Shape4 = [3, 3, 16, 32];
    const run = async (backend: string, bias: boolean, activation: 'linear' | 'relu') => {
      await tf.setBackend(backend);
      const before = winogradSwitch.used;
      const out = tf.tidy(() => tf.fused.conv2d({
        x: tf.tensor4d(values(size(xShape), 21), xShape),
        filter: tf.tensor4d(values(size(fShape), 22), fShape),
        strides: 1,
        pad: 'same',
        bias: bias ? tf.tensor1d(values(32, 23)) : undefined,
        activation,
      }).dataSync().slice());
      return { out, used: winogradSwitch.used - before };
    };
    for (const [bias, activation] of [[false, 'linear'], [true, 'linear'], [false, 'relu'], [true, 'relu']] as const) {
      const ref = await run('cpu', bias, activation);
      const got = await run('wasm', bias, activation);
      expect(got.used).toBe(bias === (activation === 'relu') ? 1 : 0);
      expect(relErr(ref.out, got.out)).toBeLessThan(TOLERANCE);
      if (activation === 'relu') {
        // ReLU cut some outputs to zero, and left others positive.
        expect(got.out.some((v) => v === 0) && got.out.some((v) => v > 0)).toBe(true);
      }
    }
  });

  it.runIf(nodeWasmThreads() === 1)('passes every test of this file with PETRI_WASM_THREADS=2 (two threads)', () => {
    expectPassesOnTwoThreads(import.meta.url);
  }, TWO_THREADS_TIMEOUT_MS);
});
