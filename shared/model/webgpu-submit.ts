/**
 * One WebGPU queue submission per training step (and per evaluation batch).
 *
 * tf.js's WebGPU backend records dispatches into a command encoder and
 * submits it every `WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE` dispatches (15 by
 * default), so a conv-net training step of a few hundred dispatches went to
 * the GPU as a dozen or more submissions. Training raises the batch size
 * and submits at the end of each step instead. The cap stays finite: buffers
 * freed while their commands are queued are only released at the next
 * submission, so a path that never submitted would hold every intermediate.
 */
import * as tf from '@tensorflow/tfjs';

/** Dispatches after which tf.js submits anyway (a safety cap; a conv10 step is a few hundred). */
export const WEBGPU_DISPATCHES_PER_SUBMIT = 4096;

/** Call after the WebGPU backend package is loaded, before training on it. */
export function configureWebGpuSubmission(): void {
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', WEBGPU_DISPATCHES_PER_SUBMIT);
}

/** The parts of tf.js 4.22's WebGPU backend used here (as its own read-backs use them). */
interface WebGpuBackendLike {
  commandEncoder?: unknown;
  endComputePassEncoder?: () => void;
  submitQueue?: () => void;
}

/** Submits the commands queued so far, on WebGPU; nothing elsewhere, or when nothing is queued. */
export function submitGpuWork(): void {
  if (tf.getBackend() !== 'webgpu') return;
  const backend = tf.backend() as WebGpuBackendLike;
  if (backend.commandEncoder == null || typeof backend.submitQueue !== 'function') return;
  backend.endComputePassEncoder?.();
  backend.submitQueue();
}
