/** Accuracy of a built model on an ImageSet (inference mode, batched, one read-back). */
import * as tf from '@tensorflow/tfjs';
import { imageBytes, type ImageSet } from '../data/image-set.ts';
import type { BuiltModel } from './build.ts';
import { inferenceLogits } from './train-graph.ts';
import { submitGpuWork } from './webgpu-submit.ts';

export interface EvaluationResult {
  readonly correct: number;
  readonly count: number;
  readonly accuracy: number;
  /** Predicted class of every image, when asked for. */
  readonly predictions?: Int32Array;
}

export async function evaluateModel(
  built: BuiltModel,
  data: ImageSet,
  options: { batchSize?: number; keepPredictions?: boolean } = {},
): Promise<EvaluationResult> {
  const batchSize = options.batchSize ?? 250;
  const size = imageBytes(data.shape);
  const predictions = options.keepPredictions ? new Int32Array(data.count) : undefined;
  let correct = tf.scalar(0, 'int32');
  for (let start = 0; start < data.count; start += batchSize) {
    const n = Math.min(batchSize, data.count - start);
    const pixels = new Float32Array(n * size);
    pixels.set(data.pixels.subarray(start * size, (start + n) * size));
    const [count, predicted] = tf.tidy(() => {
      const x = tf.tensor4d(pixels, [n, ...data.shape]);
      const logits = inferenceLogits(built, x);
      const argmax = tf.argMax(logits, 1).cast('int32');
      const labels = tf.tensor1d(Int32Array.from(data.labels.subarray(start, start + n)), 'int32');
      return [tf.sum(tf.equal(argmax, labels).cast('int32')), argmax];
    });
    submitGpuWork();
    const next = tf.add(correct, count);
    correct.dispose();
    count.dispose();
    correct = next as tf.Scalar;
    if (predictions !== undefined) predictions.set(await predicted.data(), start);
    predicted.dispose();
  }
  const total = (await correct.data())[0] as number;
  correct.dispose();
  return { correct: total, count: data.count, accuracy: data.count === 0 ? 0 : total / data.count, predictions };
}
