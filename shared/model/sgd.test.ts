import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../../server/tf-backend.ts';
import { SGD_KERNEL, sgdMomentumStep } from './sgd.ts';
import { simdSwitch } from './wasm-heap.ts';
import { values } from './numeric-checks.ts';

/** Three updates of one variable on `backend`; the final weights and velocity. */
async function threeSteps(backend: string, shape: number[], weightDecay: number): Promise<[Float32Array, Float32Array]> {
  await tf.setBackend(backend);
  const n = shape.reduce((a, b) => a * b, 1);
  const w = tf.variable(tf.tensor(values(n, 1), shape));
  const v = tf.variable(tf.zeros(shape), false);
  const before = tf.memory().numTensors;
  for (let k = 0; k < 3; k++) {
    tf.tidy(() => sgdMomentumStep(w, v, tf.tensor(values(n, 10 + k), shape), 0.1, 0.9, weightDecay));
  }
  expect(tf.memory().numTensors).toBe(before);
  const out: [Float32Array, Float32Array] = [w.dataSync().slice() as Float32Array, v.dataSync().slice() as Float32Array];
  tf.dispose([w, v]);
  return out;
}

beforeAll(async () => {
  expect((await initNodeBackend('wasm')).backend).toBe('wasm');
});

describe('sgdMomentumStep', () => {
  it('has its one-pass kernel on wasm only', () => {
    expect(tf.getKernel(SGD_KERNEL, 'wasm')).toBeDefined();
    expect(tf.getKernel(SGD_KERNEL, 'cpu')).toBeUndefined();
  });

  it.each([[[1]], [[3]], [[4]], [[7]], [[3, 3, 5, 6]], [[1001]]])('on wasm (SIMD and JavaScript) equals the tf ops on cpu bit for bit, shape %j', async (shape) => {
    for (const decay of [1e-4, 0]) {
      const cpu = await threeSteps('cpu', shape, decay);
      const used = simdSwitch.used;
      const simd = await threeSteps('wasm', shape, decay);
      if ((shape as number[]).reduce((a, b) => a * b, 1) >= 4) expect(simdSwitch.used).toBeGreaterThan(used);
      simdSwitch.enabled = false;
      const js = await threeSteps('wasm', shape, decay).finally(() => { simdSwitch.enabled = true; });
      expect(simd).toEqual(cpu);
      expect(js).toEqual(cpu);
    }
    await tf.setBackend('wasm');
  });
});
