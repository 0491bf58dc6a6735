import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ImageSet } from '../data/image-set.ts';
import { initialDna, type Dna } from '../evolution/dna.ts';
import { convChain } from '../evolution/fixtures.ts';
import { planInheritance } from '../evolution/inheritance.ts';
import { applyMutation, mutate } from '../evolution/mutations.ts';
import { createRng } from '../evolution/rng.ts';
import { tensorSpecs } from '../evolution/tensors.ts';
import { buildModel, disposeModel } from './build.ts';
import { evaluateModel } from './evaluate.ts';
import { trainModel } from './train.ts';
import { firstNonFinite, inheritWeights, readWeights, writeWeights } from './weights.ts';
import { WeightsFormatError, decodeWeights, encodeWeights } from './weights-codec.ts';
import { initNodeBackend } from '../../server/tf-backend.ts';

/**
 * Four classes of 12x12 grey images with the same mean brightness:
 * horizontal stripes, vertical stripes, checkerboard, diagonal stripes. A
 * pooled linear model cannot tell them apart; one 3x3 conv can.
 */
function patternSet(count: number, seed: string): ImageSet {
  const rng = createRng(seed);
  const side = 12;
  const pixels = new Uint8Array(count * side * side);
  const labels = new Uint8Array(count);
  for (let n = 0; n < count; n++) {
    const label = rng.int(0, 3);
    labels[n] = label;
    const phase = rng.int(0, 1);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        const on = [y, x, x + y, x - y + side][label] as number;
        const bit = label === 2 ? (x + y + phase) % 2 : Math.floor((on + phase) / 2) % 2;
        pixels[n * side * side + y * side + x] = bit === 1 ? 170 + rng.int(0, 40) : 45 + rng.int(0, 40);
      }
    }
  }
  return { shape: [side, side, 1], count, pixels, labels };
}

async function randomWeights(dna: Dna, seed: string) {
  const built = buildModel(dna);
  const w = inheritWeights(planInheritance(null, dna), null, createRng(seed));
  writeWeights(built, w);
  return { built, weights: await readWeights(built) };
}

beforeAll(async () => {
  // The backend Node workers and the server use (wasm with Petri's gradient kernels).
  expect((await initNodeBackend('wasm')).backend).toBe('wasm');
});

describe('models built from DNA', () => {
  it('property: a sample of random mutation children builds, outputs [n, 10] and takes a training step', async () => {
    const data = patternSet(20, 'sample');
    const wide: ImageSet = { ...data, shape: [12, 12, 1] };
    let built = 0;
    for (let c = 0; c < 12; c++) {
      const rng = createRng(`model-chain-${c}`);
      let dna = initialDna([12, 12, 1], 10);
      for (let i = 0; i < 8 + c; i++) dna = mutate(dna, rng, c % 3 === 0 ? 5 : 1).child;
      const before = tf.memory().numTensors;
      const model = buildModel(dna);
      const x = tf.zeros([3, 12, 12, 1]);
      const out = model.model.predict(x) as tf.Tensor;
      expect(out.shape).toEqual([3, 10]);
      tf.dispose([x, out]);
      const result = await trainModel(model, { ...wide, labels: wide.labels.map((l) => l % 10) }, { steps: 1, batchSize: 4, seed: c });
      expect(result.stepsDone).toBe(1);
      disposeModel(model);
      expect(tf.memory().numTensors).toBe(before);
      built++;
    }
    expect(built).toBe(12);
  });

  it('exports as a standard LayersModel that plain tf.loadLayersModel loads and runs identically', async () => {
    const dna = convChain([12, 12, 1], 4, [{ channels: 4 }, { channels: 6, stride: 2 }], [[0, 2]]);
    const { built } = await randomWeights(dna, 'export');
    let saved: tf.io.ModelArtifacts | undefined;
    await built.model.save(tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
    }));
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved as tf.io.ModelArtifacts));
    const x = tf.randomUniform([2, 12, 12, 1], 0, 255, 'float32', 1);
    const a = (built.model.predict(x) as tf.Tensor).arraySync() as number[][];
    const b = (loaded.predict(x) as tf.Tensor).arraySync() as number[][];
    expect(b[0]?.[0]).toBeCloseTo(a[0]?.[0] as number, 5);
    expect(b).toEqual(a);
    tf.dispose([x]);
    loaded.dispose();
    disposeModel(built);
  });
});

describe('weight inheritance on real models', () => {
  const parentDna = convChain([12, 12, 3], 10, [{ channels: 8 }, { channels: 16, stride: 2 }], [[0, 2]]);

  it('after IDENTITY and ALTER-LEARNING-RATE every child tensor equals the parent\'s', async () => {
    const parent = await randomWeights(parentDna, 'p1');
    for (const name of ['IDENTITY', 'ALTER-LEARNING-RATE'] as const) {
      const childDna = applyMutation(parentDna, name, createRng(1))?.dna as Dna;
      const child = buildModel(childDna);
      writeWeights(child, inheritWeights(planInheritance(parentDna, childDna), parent.weights, createRng(2)));
      const got = await readWeights(child);
      for (const [key, values] of parent.weights) expect(got.get(key), key).toEqual(values);
      disposeModel(child);
    }
    disposeModel(parent.built);
  });

  it('after INSERT-CONVOLUTION, ADD-SKIP and ALTER-NUMBER-OF-CHANNELS every copied tensor is equal and the model runs', async () => {
    const parent = await randomWeights(parentDna, 'p2');
    for (const name of ['INSERT-CONVOLUTION', 'ADD-SKIP', 'ALTER-NUMBER-OF-CHANNELS', 'REMOVE-CONVOLUTION', 'FILTER-SIZE'] as const) {
      const childDna = applyMutation(parentDna, name, createRng(name))?.dna as Dna;
      const plan = planInheritance(parentDna, childDna);
      const child = buildModel(childDna);
      writeWeights(child, inheritWeights(plan, parent.weights, createRng(3)));
      const got = await readWeights(child);
      let copied = 0;
      for (const t of plan.tensors) {
        if (t.source.kind !== 'copy') continue;
        expect(got.get(t.key), `${name} ${t.key}`).toEqual(parent.weights.get(t.key));
        copied++;
      }
      expect(copied, name).toBeGreaterThan(0);
      const out = child.model.predict(tf.ones([2, 12, 12, 3])) as tf.Tensor;
      expect(out.shape).toEqual([2, 10]);
      expect(Array.from(await out.data()).every(Number.isFinite)).toBe(true);
      out.dispose();
      disposeModel(child);
    }
    disposeModel(parent.built);
  });

  it('widening keeps the old channels of a reshaped kernel', async () => {
    const parent = await randomWeights(parentDna, 'p3');
    const childDna: Dna = { ...parentDna, edges: parentDna.edges.map((e) => (e.type === 'conv' && e.channels === 8 ? { ...e, channels: 12 } : e)) };
    const plan = planInheritance(parentDna, childDna);
    const weights = inheritWeights(plan, parent.weights, createRng(4));
    const kernel = tensorSpecs(childDna)[0];
    const old = parent.weights.get(kernel?.key as string) as Float32Array;
    const now = weights.get(kernel?.key as string) as Float32Array;
    // [3,3,3,8] -> [3,3,3,12]: the first 8 outputs of each row are the parent's.
    for (let row = 0; row < 27; row++) for (let o = 0; o < 8; o++) expect(now[row * 12 + o]).toBe(old[row * 8 + o]);
    disposeModel(parent.built);
  });
});

describe('weights binary', () => {
  const dna = convChain([12, 12, 3], 10, [{ channels: 8 }]);

  it('round-trips and refuses what does not fit the DNA', async () => {
    const { built, weights } = await randomWeights(dna, 'codec');
    const bytes = encodeWeights(dna, weights);
    expect(decodeWeights(dna, bytes)).toEqual(weights);
    expect(() => decodeWeights(dna, bytes.subarray(0, bytes.length - 4))).toThrow(WeightsFormatError);
    expect(() => decodeWeights(convChain([12, 12, 3], 10, [{ channels: 9 }]), bytes)).toThrow(/exactly/);
    const nan = bytes.slice();
    new DataView(nan.buffer).setFloat32(20, Number.NaN, true);
    expect(() => decodeWeights(dna, nan)).toThrow(/non-finite/);
    const bad = bytes.slice();
    bad[0] = 0;
    expect(() => decodeWeights(dna, bad)).toThrow(/magic/);
    // What a worker checks before it uploads: a non-finite value anywhere makes the child diverged.
    expect(firstNonFinite(weights)).toBeNull();
    const lastKey = [...weights.keys()].at(-1) as string;
    const poisoned = new Map(weights);
    poisoned.set(lastKey, Float32Array.from(weights.get(lastKey) as Float32Array, (x, i) => (i === 1 ? Number.NEGATIVE_INFINITY : x)));
    expect(firstNonFinite(poisoned)).toBe(lastKey);
    disposeModel(built);
  });
});

describe('training', () => {
  const train = patternSet(1000, 'train');
  const valid = patternSet(400, 'valid');

  it('learns: a one-conv DNA goes well above chance and above the linear DNA trained the same way', async () => {
    const accuracyOf = async (dna: Dna) => {
      const built = buildModel(dna);
      writeWeights(built, inheritWeights(planInheritance(null, dna), null, createRng('init')));
      const before = tf.memory().numTensors;
      const result = await trainModel(built, train, { steps: 300, seed: 'learn' });
      const { accuracy } = await evaluateModel(built, valid);
      expect(tf.memory().numTensors, 'no tensor leaks over train + evaluate').toBe(before);
      expect(result.status).toBe('ok');
      disposeModel(built);
      return accuracy;
    };
    const linear = await accuracyOf({ ...initialDna([12, 12, 1], 4) });
    const conv = await accuracyOf(convChain([12, 12, 1], 4, [{ channels: 8 }]));
    expect(conv).toBeGreaterThan(0.8);
    expect(conv).toBeGreaterThan(linear + 0.3);
  });

  it('stops on a non-finite loss and reports the child as diverged, without leaking', async () => {
    const dna = convChain([12, 12, 1], 4, [{ channels: 4 }]);
    const built = buildModel(dna);
    const w = inheritWeights(planInheritance(null, dna), null, createRng('x'));
    (w.get('classifier/kernel') as Float32Array).fill(Number.POSITIVE_INFINITY);
    writeWeights(built, w);
    const before = tf.memory().numTensors;
    const result = await trainModel(built, train, { steps: 50, seed: 1, lossEvery: 5 });
    expect(result.status).toBe('diverged');
    expect(result.stepsDone).toBeLessThanOrEqual(5);
    expect(tf.memory().numTensors).toBe(before);
    disposeModel(built);
  });
});
