/**
 * Test page: trains a small conv net on tf.js WebGPU (SwiftShader here) and
 * reports how many GPUQueue submissions each training step made, with
 * Petri's submission setting (webgpu-submit.ts) or with tf.js's default.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { convChain } from '../../shared/evolution/fixtures.ts';
import { buildModel, disposeModel } from '../../shared/model/build.ts';
import { trainModel } from '../../shared/model/train.ts';
import { configureWebGpuSubmission } from '../../shared/model/webgpu-submit.ts';

declare global {
  interface Window {
    petriSubmitsPerStep: (petriSetting: boolean) => Promise<{ backend: string; perStep: number[]; lastLoss: number }>;
  }
}

interface QueueLike {
  submit(...args: unknown[]): unknown;
}

window.petriSubmitsPerStep = async (petriSetting) => {
  if (petriSetting) configureWebGpuSubmission();
  else tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', 15);
  if (!(await tf.setBackend('webgpu'))) throw new Error('WebGPU did not start');
  const queue = (globalThis as unknown as { GPUQueue: { prototype: QueueLike } }).GPUQueue.prototype;
  const submit = queue.submit;
  let submits = 0;
  queue.submit = function (this: unknown, ...args: unknown[]) {
    submits++;
    return submit.apply(this, args);
  };
  try {
    const dna = convChain([8, 8, 1], 4, [{ channels: 4 }, { channels: 8, stride: 2 }, { channels: 8 }], [[0, 2]]);
    const built = buildModel(dna);
    const count = 16;
    const pixels = new Uint8Array(count * 64).map((_, i) => (i * 37) % 256);
    const data: ImageSet = { shape: [8, 8, 1], count, pixels, labels: new Uint8Array(count).map((_, i) => i % 4) };
    const perStep: number[] = [];
    let last = submits;
    const result = await trainModel(built, data, {
      steps: 6, seed: 1, batchSize: 4, lossEvery: 100,
      onStep: () => {
        perStep.push(submits - last);
        last = submits;
      },
    });
    disposeModel(built);
    return { backend: tf.getBackend(), perStep, lastLoss: result.lastLoss };
  } finally {
    queue.submit = submit;
  }
};
document.title = 'ready';
