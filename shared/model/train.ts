/**
 * Training per the paper: SGD with momentum 0.9, weight decay 1e-4 on
 * kernels, batch 50, the DNA's learning rate, softmax cross-entropy, the
 * standard augmentation. A non-finite loss stops training early and the
 * child is reported failed, never a crash.
 */
import * as tf from '@tensorflow/tfjs';
import { createRng } from '../evolution/rng.ts';
import type { ImageSet } from '../data/image-set.ts';
import { BatchStream } from './batches.ts';
import type { BuiltModel } from './build.ts';
import { sgdMomentumStep } from './sgd.ts';
import { trainingLogits } from './train-graph.ts';
import { submitGpuWork } from './webgpu-submit.ts';

export interface TrainOptions {
  readonly steps: number;
  readonly batchSize?: number;
  readonly momentum?: number;
  readonly weightDecay?: number;
  readonly augment?: boolean;
  /** Seed of the batch order and augmentation. */
  readonly seed: string | number;
  /** Read the loss back every this many steps (a sync point); default 25. */
  readonly lossEvery?: number;
  /** Called after each step; `loss` is set on the steps where it was read. */
  readonly onStep?: (step: number, loss: number | undefined) => void | Promise<void>;
  /** Checked before each step; training stops when it returns true. */
  readonly shouldStop?: () => boolean;
}

export interface TrainResult {
  readonly status: 'ok' | 'diverged' | 'stopped';
  readonly stepsDone: number;
  /** The last loss read back (NaN when none was). */
  readonly lastLoss: number;
}

export const PAPER_TRAINING = { batchSize: 50, momentum: 0.9, weightDecay: 1e-4 } as const;

/** Trains a built model in place for a number of steps. */
export async function trainModel(built: BuiltModel, data: ImageSet, options: TrainOptions): Promise<TrainResult> {
  const batchSize = options.batchSize ?? PAPER_TRAINING.batchSize;
  const momentum = options.momentum ?? PAPER_TRAINING.momentum;
  const weightDecay = options.weightDecay ?? PAPER_TRAINING.weightDecay;
  const lossEvery = Math.max(1, options.lossEvery ?? 25);
  const lr = built.dna.learningRate;
  const stream = new BatchStream(data, batchSize, createRng(options.seed), options.augment ?? true);
  const [h, w, c] = data.shape;

  const trainable = built.logits.trainableWeights.map((v) => ({
    variable: v.read() as tf.Variable,
    // Kernels decay; BN scales/offsets and biases do not.
    decay: v.name.includes('kernel'),
  }));
  const velocity = trainable.map(({ variable }) => tf.tidy(() => tf.variable(tf.zerosLike(variable), false)));
  const variables = trainable.map((t) => t.variable);

  let lastLoss = Number.NaN;
  let status: TrainResult['status'] = 'ok';
  let step = 0;
  try {
    for (; step < options.steps; step++) {
      if (options.shouldStop?.()) {
        status = 'stopped';
        break;
      }
      const batch = stream.next();
      const loss = tf.tidy(() => {
        const x = tf.tensor4d(batch.pixels, [batchSize, h, w, c]);
        const y = tf.oneHot(tf.tensor1d(batch.labels, 'int32'), built.dna.numClasses);
        const { value, grads } = tf.variableGrads(() => {
          const logits = trainingLogits(built, x);
          return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
        }, variables);
        trainable.forEach(({ variable, decay }, i) => {
          sgdMomentumStep(variable, velocity[i] as tf.Variable, grads[variable.name] as tf.Tensor, lr, momentum, decay ? weightDecay : 0);
        });
        return value;
      });
      const readNow = (step + 1) % lossEvery === 0 || step + 1 === options.steps;
      let read: number | undefined;
      if (readNow) {
        read = (await loss.data())[0] as number;
        lastLoss = read;
      }
      loss.dispose();
      // WebGPU: the whole step as one submission (webgpu-submit.ts).
      submitGpuWork();
      if (read !== undefined && !Number.isFinite(read)) {
        status = 'diverged';
        step++;
        break;
      }
      await options.onStep?.(step + 1, read);
    }
  } finally {
    for (const v of velocity) v.dispose();
  }
  return { status, stepsDone: step, lastLoss };
}
