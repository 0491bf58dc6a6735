/**
 * Trains one lease: the same computation in a browser tab's Web Worker and
 * in `petri worker` on Node. Fetch the parent's weights, apply the
 * inheritance plan, train the exact number of steps, measure the probe
 * accuracy, upload the weights. All I/O comes in through {@link LeaseIo}.
 */
import type { ImageSet } from '../data/image-set.ts';
import { sliceImageSet } from '../data/image-set.ts';
import { createRng } from '../evolution/rng.ts';
import { parseDna } from '../evolution/validate.ts';
import { buildModel, disposeModel, type BuiltModel } from '../model/build.ts';
import { evaluateModel } from '../model/evaluate.ts';
import { trainModel } from '../model/train.ts';
import { firstNonFinite, inheritWeights, readWeights, writeWeights, type WeightMap } from '../model/weights.ts';
import { decodeWeights, encodeWeights } from '../model/weights-codec.ts';
import { PROBE_IMAGES, type Backend, type Lease } from '../protocol.ts';

export interface LeaseIo {
  /** GET a URL (relative to the server) as bytes. */
  fetchBytes(url: string): Promise<Uint8Array>;
  /** SHA-256 hex of bytes (SubtleCrypto in browsers, node:crypto in Node). */
  sha256(bytes: Uint8Array): Promise<string>;
  /** PUT the weights binary with the lease token; resolves to the server's SHA-256. */
  upload(url: string, token: string, bytes: Uint8Array): Promise<string>;
}

export interface LeaseHooks {
  /** After each step; `imagesPerSecond` averages the run so far. */
  onStep?(step: number, total: number, imagesPerSecond: number): void | Promise<void>;
  /** Polled before each step: stop (pause, SIGTERM, lease lost). */
  shouldStop?(): boolean;
  /** Saves progress now and then, so a reload can continue (browser). */
  checkpoint?(step: number, weights: () => Promise<WeightMap>): Promise<void>;
  /** Continue from a checkpoint: weights and the steps already done. */
  resumeFrom?: { step: number; weights: WeightMap };
  /** Steps between checkpoints (default 100). */
  checkpointEvery?: number;
  now(): number;
}

export type LeaseOutcome =
  | { status: 'ok'; stepsDone: number; weightsSha256: string; claimedAccuracy: number; trainSeconds: number; backend: Backend }
  | { status: 'diverged'; stepsDone: number; trainSeconds: number; backend: Backend }
  | { status: 'stopped'; stepsDone: number };

/** Longest stretch of training without yielding to the event loop. */
const YIELD_EVERY_MS = 50;

/** The child's starting weights: inherited from the parent per the plan, or a checkpoint. */
export async function startingWeights(lease: Lease, io: LeaseIo): Promise<WeightMap> {
  let parent: WeightMap | null = null;
  if (lease.parentWeights !== null) {
    if (lease.parentDna === null) throw new Error('the lease has parent weights but no parent DNA');
    const bytes = await io.fetchBytes(lease.parentWeights.url);
    const sha = await io.sha256(bytes);
    if (sha !== lease.parentWeights.sha256) throw new Error(`the parent's weights do not match their SHA-256 (got ${sha.slice(0, 12)}…)`);
    parent = decodeWeights(parseDna(lease.parentDna), bytes);
  }
  return inheritWeights(lease.plan, parent, createRng(`${lease.seed}:init`));
}

/** Trains a lease to the end (or until stopped) and uploads the weights. */
export async function runLease(lease: Lease, data: ImageSet, io: LeaseIo, hooks: LeaseHooks, backend: Backend): Promise<LeaseOutcome> {
  const dna = parseDna(lease.dna);
  if (dna.inputShape.join('x') !== data.shape.join('x')) {
    throw new Error(`the child takes ${dna.inputShape.join('x')} images but the dataset has ${data.shape.join('x')}`);
  }
  const resume = hooks.resumeFrom;
  const weights = resume?.weights ?? (await startingWeights(lease, io));
  const built: BuiltModel = buildModel(dna);
  const started = hooks.now();
  const firstStep = resume?.step ?? 0;
  const every = hooks.checkpointEvery ?? 100;
  let lastYield = started;
  try {
    writeWeights(built, weights);
    const result = await trainModel(built, data, {
      steps: lease.steps - firstStep,
      batchSize: lease.batchSize,
      momentum: lease.momentum,
      weightDecay: lease.weightDecay,
      augment: lease.augment,
      // A resumed run continues with a different batch order; seeded by where it resumed.
      seed: `${lease.seed}:train:${firstStep}`,
      shouldStop: hooks.shouldStop,
      onStep: async (done) => {
        const step = firstStep + done;
        // tf.js kernels run synchronously (wasm, cpu): give the event loop a
        // turn now and then, so heartbeats, stop requests and sockets get through.
        if (hooks.now() - lastYield >= YIELD_EVERY_MS) {
          await new Promise<void>((resolve) => setTimeout(resolve, 0));
          lastYield = hooks.now();
        }
        const seconds = Math.max(1e-3, (hooks.now() - started) / 1000);
        await hooks.onStep?.(step, lease.steps, (done * lease.batchSize) / seconds);
        if (hooks.checkpoint !== undefined && step % every === 0 && step < lease.steps) {
          await hooks.checkpoint(step, () => readWeights(built));
        }
      },
    });
    const stepsDone = firstStep + result.stepsDone;
    const trainSeconds = (hooks.now() - started) / 1000;
    if (result.status === 'stopped') return { status: 'stopped', stepsDone };
    if (result.status === 'diverged') return { status: 'diverged', stepsDone, trainSeconds, backend };
    const trained = await readWeights(built);
    // A finite loss can hide non-finite weights (batch-norm moving statistics, say): that child diverged
    // too, and the server would refuse its weights.
    if (firstNonFinite(trained) !== null) return { status: 'diverged', stepsDone, trainSeconds, backend };
    const probe = await evaluateModel(built, sliceImageSet(data, 0, Math.min(PROBE_IMAGES, data.count)));
    const bytes = encodeWeights(dna, trained);
    const weightsSha256 = await io.upload(lease.uploadUrl, lease.token, bytes);
    return { status: 'ok', stepsDone, weightsSha256, claimedAccuracy: probe.accuracy, trainSeconds, backend };
  } finally {
    disposeModel(built);
  }
}
