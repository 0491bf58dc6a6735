import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initNodeBackend, nodeRelaxedSimd } from '../tf-backend.ts';
import { chooseWorkerThreads, parseThreads } from './threads.ts';

describe('chooseWorkerThreads', () => {
  it('gives each of --workers N processes its share of the cores, from 1 to 4', () => {
    const pick = (cores: number, workers: number) => chooseWorkerThreads({ cores, workers, env: {} }).threads;
    expect(pick(1, 1)).toBe(1);
    expect(pick(2, 1)).toBe(2);
    expect(pick(2, 2)).toBe(1);
    expect(pick(2, 3)).toBe(1);
    expect(pick(3, 1)).toBe(3);
    expect(pick(4, 1)).toBe(4);
    expect(pick(4, 3)).toBe(1);
    expect(pick(8, 1)).toBe(4);
    expect(pick(8, 2)).toBe(4);
    expect(pick(8, 3)).toBe(2);
    expect(pick(16, 4)).toBe(4);
    expect(pick(64, 64)).toBe(1);
    expect(pick(6, 4)).toBe(1);
    // Nonsense inputs count as one core and one worker.
    expect(pick(0, 1)).toBe(1);
    expect(pick(Number.NaN, 1)).toBe(1);
    expect(pick(4, 0)).toBe(4);
    expect(chooseWorkerThreads({ cores: 8, workers: 1, env: {} }).source).toBe('cores');
  });

  it('takes --threads first, then PETRI_WASM_THREADS, then the cores', () => {
    expect(chooseWorkerThreads({ cores: 2, workers: 1, flag: '1', env: { PETRI_WASM_THREADS: '3' } })).toEqual({ threads: 1, source: '--threads' });
    expect(chooseWorkerThreads({ cores: 2, workers: 1, env: { PETRI_WASM_THREADS: '3' } })).toEqual({ threads: 3, source: 'PETRI_WASM_THREADS' });
    expect(chooseWorkerThreads({ cores: 2, workers: 2, flag: '8', env: {} })).toEqual({ threads: 8, source: '--threads' });
    expect(chooseWorkerThreads({ cores: 2, workers: 1, env: { PETRI_WASM_THREADS: ' ' } })).toEqual({ threads: 2, source: 'cores' });
  });

  it('refuses malformed counts with a message naming the flag or variable', () => {
    for (const bad of ['0', '9', '1.5', '-2', 'two', '']) {
      expect(() => chooseWorkerThreads({ cores: 2, workers: 1, flag: bad, env: {} })).toThrow(/--threads must be a whole number from 1 to 8/);
    }
    expect(() => chooseWorkerThreads({ cores: 2, workers: 1, env: { PETRI_WASM_THREADS: '12' } })).toThrow(/PETRI_WASM_THREADS must be/);
    expect(parseThreads(' 4 ', 'x')).toBe(4);
  });
});

describe('nodeRelaxedSimd', () => {
  it('is on unless PETRI_RELAXED_SIMD is 0, and refuses other values', () => {
    expect(nodeRelaxedSimd({})).toBe(true);
    expect(nodeRelaxedSimd({ PETRI_RELAXED_SIMD: '1' })).toBe(true);
    expect(nodeRelaxedSimd({ PETRI_RELAXED_SIMD: '0' })).toBe(false);
    for (const bad of ['yes', 'off', '2']) {
      expect(() => nodeRelaxedSimd({ PETRI_RELAXED_SIMD: bad })).toThrow(/PETRI_RELAXED_SIMD must be 0 \(off\) or 1/);
    }
  });
});

describe('initNodeBackend with threads whose threaded start fails', () => {
  it('runs on the single-threaded wasm build and says why', async () => {
    const info = await initNodeBackend('wasm', {
      threads: 2,
      startThreaded: () => Promise.reject(new Error('the threaded wasm build in Node is only known to work with tfjs-backend-wasm 4.22, not 9.9.9')),
    });
    expect(info).toEqual({ backend: 'wasm', threadsFallback: expect.stringMatching(/only known to work with tfjs-backend-wasm 4\.22/) as unknown });
    expect(tf.getBackend()).toBe('wasm');
    // It trains: a gradient through the wasm training kernels.
    const g = tf.grad((x: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, tf.ones([3, 3, 2, 2]), 1, 'same').sum())(tf.ones([1, 4, 4, 2]));
    expect(Array.from(await g.data()).every(Number.isFinite)).toBe(true);
    // Later calls report the same start.
    expect(await initNodeBackend('wasm')).toEqual(info);
  });
});
