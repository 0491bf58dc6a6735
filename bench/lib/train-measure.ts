/**
 * One training/evaluation throughput measurement of a DNA on whatever tf.js
 * backend is active. Runs unchanged in Node and in a browser page, through
 * Petri's own code path: buildModel, seeded initial weights, trainModel
 * (SGD momentum, weight decay, augmentation done in JS) and evaluateModel.
 *
 * Data are random uint8 images of the DNA's input shape: this measures
 * speed, not accuracy.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dna } from '../../shared/evolution/dna.ts';
import { flopsReport } from '../../shared/evolution/flops.ts';
import { planInheritance } from '../../shared/evolution/inheritance.ts';
import { createRng } from '../../shared/evolution/rng.ts';
import { imageBytes, type ImageSet } from '../../shared/data/image-set.ts';
import { buildModel, disposeModel } from '../../shared/model/build.ts';
import { evaluateModel } from '../../shared/model/evaluate.ts';
import { trainModel } from '../../shared/model/train.ts';
import { inheritWeights, writeWeights } from '../../shared/model/weights.ts';

/** How much to run for one (backend, DNA) cell. */
export interface MeasurePlan {
  /** Untimed training steps first (kernel compilation, shader warm-up, allocator). */
  readonly warmupSteps: number;
  /** Timed training steps. */
  readonly steps: number;
  /** Training batch size (the paper's 50). */
  readonly batchSize: number;
  /** Images in the timed evaluation. */
  readonly evalImages: number;
  /** Evaluation batch size. */
  readonly evalBatch: number;
  /** Untimed evaluation batches first. */
  readonly evalWarmupBatches: number;
  /**
   * Times the timed training run (`steps` steps) and the timed evaluation are
   * repeated; the median is reported (default 1). Repeats damp the noise of a
   * shared machine where a cell is cheap enough.
   */
  readonly repeats?: number;
}

export interface CellResult {
  readonly warmupSteps: number;
  /** Timed training steps; 0 when only evaluation was measured (training figures are then null). */
  readonly steps: number;
  readonly batchSize: number;
  readonly warmupSeconds: number;
  /** Median over the repeats of the seconds of `steps` timed steps. */
  readonly trainSeconds: number | null;
  /** Every repeat's seconds. */
  readonly trainSecondsAll: readonly number[];
  readonly trainImagesPerSecond: number | null;
  readonly trainGflops: number | null;
  readonly evalImages: number;
  readonly evalBatch: number;
  /** Seconds of the untimed evaluation batches (inference kernels / shaders warming up). */
  readonly evalWarmupSeconds: number;
  /** Median over the repeats of the seconds of one evaluation of `evalImages` images. */
  readonly evalSeconds: number;
  readonly evalSecondsAll: readonly number[];
  readonly evalImagesPerSecond: number;
  readonly evalGflops: number;
  /** The last training loss read back (a finite number shows training ran); null without training. */
  readonly lastLoss: number | null;
  /** Tensors still alive after the cell minus before it (0: no leak). */
  readonly leakedTensors: number;
}

/** Random labelled uint8 images, deterministic in the seed. */
export function randomImageSet(shape: readonly [number, number, number], count: number, numClasses: number, seed: number): ImageSet {
  const rng = createRng(seed);
  const pixels = new Uint8Array(count * imageBytes(shape));
  for (let i = 0; i < pixels.length; i += 4) {
    const r = rng.nextUint32();
    pixels[i] = r & 255;
    if (i + 1 < pixels.length) pixels[i + 1] = (r >>> 8) & 255;
    if (i + 2 < pixels.length) pixels[i + 2] = (r >>> 16) & 255;
    if (i + 3 < pixels.length) pixels[i + 3] = (r >>> 24) & 255;
  }
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) labels[i] = rng.int(0, numClasses - 1);
  return { shape, count, pixels, labels };
}

const now = (): number => performance.now();

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Builds the DNA's model on the active backend, warms it up, and times training then evaluation. */
export async function measureCell(dna: Dna, plan: MeasurePlan): Promise<CellResult> {
  const flops = flopsReport(dna, plan.batchSize, plan.evalImages);
  // Enough images that the timed steps do not revisit one batch's images.
  const trainSet = randomImageSet(dna.inputShape, Math.max(plan.batchSize * 4, 200), dna.numClasses, 1);
  const evalSet = randomImageSet(dna.inputShape, plan.evalImages, dna.numClasses, 2);
  const warmEvalSet = randomImageSet(dna.inputShape, plan.evalBatch * plan.evalWarmupBatches, dna.numClasses, 3);

  const built = buildModel(dna);
  try {
    writeWeights(built, inheritWeights(planInheritance(null, dna), null, createRng('bench')));

    let t0 = now();
    if (plan.warmupSteps > 0) {
      await trainModel(built, trainSet, { steps: plan.warmupSteps, seed: 'warmup', batchSize: plan.batchSize });
    }
    const warmupSeconds = (now() - t0) / 1000;

    // trainModel reads the loss back on its last step, so the timer stops
    // only once the device has finished every step.
    const repeats = Math.max(1, plan.repeats ?? 1);
    const trainSecondsAll: number[] = [];
    let lastLoss: number | null = null;
    for (let r = 0; r < repeats && plan.steps > 0; r++) {
      t0 = now();
      const trained = await trainModel(built, trainSet, { steps: plan.steps, seed: `timed-${r}`, batchSize: plan.batchSize });
      trainSecondsAll.push((now() - t0) / 1000);
      if (trained.status !== 'ok') throw new Error(`training ended '${trained.status}' after ${trained.stepsDone} steps`);
      lastLoss = trained.lastLoss;
    }
    const trainSeconds = trainSecondsAll.length > 0 ? median(trainSecondsAll) : null;

    t0 = now();
    if (warmEvalSet.count > 0) await evaluateModel(built, warmEvalSet, { batchSize: plan.evalBatch });
    const evalWarmupSeconds = (now() - t0) / 1000;
    const evalSecondsAll: number[] = [];
    for (let r = 0; r < repeats; r++) {
      t0 = now();
      await evaluateModel(built, evalSet, { batchSize: plan.evalBatch });
      evalSecondsAll.push((now() - t0) / 1000);
    }
    const evalSeconds = median(evalSecondsAll);

    return {
      warmupSteps: plan.warmupSteps,
      steps: plan.steps,
      batchSize: plan.batchSize,
      warmupSeconds,
      trainSeconds,
      trainSecondsAll,
      trainImagesPerSecond: trainSeconds === null ? null : (plan.steps * plan.batchSize) / trainSeconds,
      trainGflops: trainSeconds === null ? null : (flops.trainingPerStep * plan.steps) / trainSeconds / 1e9,
      evalImages: plan.evalImages,
      evalBatch: plan.evalBatch,
      evalWarmupSeconds,
      evalSeconds,
      evalSecondsAll,
      evalImagesPerSecond: plan.evalImages / evalSeconds,
      evalGflops: (flops.forwardPerImage * plan.evalImages) / evalSeconds / 1e9,
      lastLoss,
      leakedTensors: 0,
    };
  } finally {
    disposeModel(built);
  }
}

/** measureCell plus a leak count taken after the model is disposed. */
export async function measureCellChecked(dna: Dna, plan: MeasurePlan): Promise<CellResult> {
  const before = tf.memory().numTensors;
  const result = await measureCell(dna, plan);
  return { ...result, leakedTensors: tf.memory().numTensors - before };
}
