import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../../server/tf-backend.ts';
import { convChain } from '../evolution/fixtures.ts';
import { planInheritance } from '../evolution/inheritance.ts';
import { createRng } from '../evolution/rng.ts';
import { buildModel, disposeModel, type BuiltModel } from './build.ts';
import { inferenceLogits, trainingLogits } from './train-graph.ts';
import { inheritWeights, readWeights, writeWeights } from './weights.ts';
import { relErr, values } from './numeric-checks.ts';
import { winogradSwitch } from './winograd.ts';

// Convs of stride 1 and 2, an identity skip, and a skip that needs the fixed strided 1x1 adapter (4 -> 6 channels).
const dna = convChain([12, 12, 3], 10, [{ channels: 4 }, { channels: 4 }, { channels: 6, stride: 2 }, { channels: 6, filter: [1, 3] }], [[0, 2], [1, 3], [2, 4]]);

interface Step {
  loss: number;
  grads: Float32Array[];
  weightsAfter: Map<string, Float32Array>;
}

/** One loss and its gradients with respect to every trainable variable, through `forward`. */
async function step(built: BuiltModel, forward: (x: tf.Tensor4D) => tf.Tensor): Promise<Step> {
  const x = tf.tidy(() => tf.mul(tf.randomUniform([6, 12, 12, 3], 0, 1, 'float32', 5), 255) as tf.Tensor4D);
  const y = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 4, 5], 'int32'), 10);
  const vars = built.logits.trainableWeights.map((w) => w.read() as tf.Variable);
  const before = tf.memory().numTensors;
  const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, forward(x)) as tf.Scalar, vars);
  const out: Step = {
    loss: value.dataSync()[0] as number,
    grads: vars.map((v) => (grads[v.name] as tf.Tensor).dataSync().slice() as Float32Array),
    weightsAfter: await readWeights(built),
  };
  tf.dispose([value, ...Object.values(grads)]);
  expect(tf.memory().numTensors, 'tensors left behind').toBe(before);
  tf.dispose([x, y]);
  return out;
}

beforeAll(async () => {
  expect((await initNodeBackend('wasm')).backend).toBe('wasm');
});

describe('trainingLogits', () => {
  it.each(['cpu', 'wasm'])('gives the layers model\'s training loss, gradients and moving statistics on %s', async (backend) => {
    await tf.setBackend(backend);
    const weights = inheritWeights(planInheritance(null, dna), null, createRng('graph'));
    const viaLayers = buildModel(dna);
    const viaPlan = buildModel(dna);
    writeWeights(viaLayers, weights);
    writeWeights(viaPlan, weights);
    const a = await step(viaLayers, (x) => viaLayers.logits.apply(x, { training: true }) as tf.Tensor);
    const b = await step(viaPlan, (x) => trainingLogits(viaPlan, x));
    expect(b.loss).toBeCloseTo(a.loss, 5);
    expect(b.grads.length).toBe(a.grads.length);
    a.grads.forEach((g, i) => expect(relErr(g, b.grads[i] as Float32Array), `gradient ${i}`).toBeLessThan(1e-4));
    let moved = 0;
    for (const [key, values] of a.weightsAfter) {
      expect(relErr(values, b.weightsAfter.get(key) as Float32Array), key).toBeLessThan(1e-5);
      if (key.endsWith('moving_mean') && relErr(weights.get(key) as Float32Array, values) > 1e-3) moved++;
    }
    // The moving statistics did move (so the comparison above means something).
    expect(moved).toBeGreaterThan(0);
    disposeModel(viaLayers);
    disposeModel(viaPlan);
    await tf.setBackend('wasm');
  });

  it('skips the gradient towards the images and the fixed adapters\' filter gradients', async () => {
    const built = buildModel(dna);
    const x = tf.zeros([2, 12, 12, 3]) as tf.Tensor4D;
    const vars = built.logits.trainableWeights.map((w) => w.read() as tf.Variable);
    const count = async (forward: () => tf.Tensor) => {
      const profile = await tf.profile(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(forward()) as tf.Scalar, vars);
        tf.dispose([value, ...Object.values(grads)]);
      });
      const calls = (name: string) => profile.kernels.filter((k) => k.name === name).length;
      return { input: calls('Conv2DBackpropInput'), filter: calls('Conv2DBackpropFilter') };
    };
    const layers = await count(() => built.logits.apply(x, { training: true }) as tf.Tensor);
    const plan = await count(() => trainingLogits(built, x));
    // Four DNA convs (e2 on the images, e4, e6, e8) and three adapters (adapt_e9 on the images,
    // adapt_e10, adapt_e11). The layers model computes both gradients of every conv on the path from
    // a variable (all but adapt_e9); the plan only the filter gradients of the four DNA convs and the
    // input gradients of the five convs whose input depends on a variable.
    expect(layers).toEqual({ input: 6, filter: 6 });
    expect(plan).toEqual({ input: 5, filter: 4 });
    x.dispose();
    disposeModel(built);
  });
});

describe('inferenceLogits', () => {
  // The small net above, and one whose 32->32 conv runs as Winograd on wasm.
  const wide = convChain([8, 8, 3], 10, [{ channels: 32 }, { channels: 32 }, { channels: 24, stride: 2 }], [[0, 2]]);
  for (const [name, net] of [['small', dna], ['wide', wide]] as const) {
    it.each(['cpu', 'wasm'])(`gives the layers model's inference logits (${name} net) on %s`, async (backend) => {
      await tf.setBackend(backend);
      const weights = inheritWeights(planInheritance(null, net), null, createRng('inference'));
      // Batch-norm statistics and scales far from their initial 0/1, so that each one matters.
      let seed = 1;
      for (const [key, w] of weights) {
        if (!/gamma|beta|moving_mean|moving_variance/.test(key)) continue;
        const v = values(w.length, seed++);
        weights.set(key, key.includes('moving_variance') ? v.map((a) => 0.5 + a * a) : v);
      }
      const built = buildModel(net);
      writeWeights(built, weights);
      const x = tf.tidy(() => tf.mul(tf.randomUniform([5, ...net.inputShape] as [number, number, number, number], 0, 1, 'float32', 7), 255) as tf.Tensor4D);
      const before = tf.memory().numTensors;
      const winograd = winogradSwitch.used;
      let viaPlan: tf.Tensor | undefined;
      const profile = await tf.profile(() => {
        viaPlan = inferenceLogits(built, x);
      });
      if (viaPlan === undefined) throw new Error('no logits');
      expect(tf.memory().numTensors - before, 'tensors left behind').toBe(1);
      expect(winogradSwitch.used - winograd).toBe(backend === 'wasm' && name === 'wide' ? 1 : 0);
      // Batch norm is folded into the conv of every vertex whose one input is a conv (the wide net's
      // Winograd conv among them); the vertices that sum inputs keep a separate batch norm.
      const single = built.plan.vertices.filter((v) => v.bn !== null && v.inputs.length === 1 && v.inputs[0]?.conv !== null).length;
      const calls = (kernel: string) => profile.kernels.filter((k) => k.name === kernel).length;
      expect(single).toBeGreaterThan(0);
      expect(calls('FusedConv2D')).toBe(single);
      expect(calls('FusedConv2D') + calls('Conv2D')).toBe(built.plan.vertices.flatMap((v) => v.inputs).filter((e) => e.conv !== null).length);
      const viaLayers = built.logits.apply(x, { training: false }) as tf.Tensor;
      expect(relErr(viaLayers.dataSync(), viaPlan.dataSync())).toBeLessThan(1e-5);
      tf.dispose([x, viaPlan, viaLayers]);
      disposeModel(built);
      await tf.setBackend('wasm');
    });
  }
});
