/**
 * Builds a tf.js model from a DNA with standard tf.js layers only, so that a
 * saved model loads with plain `tf.loadLayersModel` in any tf.js app.
 *
 * Layers are named after the DNA element that owns them: conv `<edgeId>`,
 * batch norm `bn_<vertexId>`, skip adapter `adapt_<edgeId>` and the
 * classifier `classifier`. The model takes raw pixel values in [0, 255]
 * (a Rescaling layer maps them to [-1, 1]) and outputs class probabilities.
 */
import * as tf from '@tensorflow/tfjs';
import { backboneOrder, skipAdapter, vertexShapes, type Dna, type Edge } from '../evolution/dna.ts';

/** Batch-norm momentum for the moving statistics. Children train for short runs, so it is lower than Keras' 0.99. */
export const BN_MOMENTUM = 0.9;
export const BN_EPSILON = 1e-3;

/** One input of a vertex: another vertex's value, through a conv layer (a DNA conv edge or a fixed skip adapter) or as is. */
export interface PlanInput {
  readonly from: string;
  /** The conv layer (its kernel is `weights[0]`), or null for an identity edge. */
  readonly conv: tf.layers.Layer | null;
  readonly stride: number;
}

/** One vertex: the sum of its inputs, then batch norm and ReLU when `bn` is set. */
export interface PlanVertex {
  readonly id: string;
  readonly inputs: readonly PlanInput[];
  /** The BatchNormalization layer (weights gamma, beta, moving mean, moving variance), or null. */
  readonly bn: tf.layers.Layer | null;
}

/**
 * The same graph as the layers model, vertex by vertex in backbone order,
 * holding the same layers (and so the same variables). The training step
 * runs it with plain ops (train-graph.ts), the layers model is what is
 * exported and evaluated.
 */
export interface ModelPlan {
  readonly input: string;
  readonly rescale: { readonly scale: number; readonly offset: number };
  readonly vertices: readonly PlanVertex[];
  readonly output: string;
  /** Dense layer: weights kernel, bias. */
  readonly classifier: tf.layers.Layer;
}

export interface BuiltModel {
  readonly dna: Dna;
  /** Inputs -> softmax probabilities: the model that is exported. */
  readonly model: tf.LayersModel;
  /** Inputs -> logits, sharing every layer with `model`: the one that is trained. */
  readonly logits: tf.LayersModel;
  readonly plan: ModelPlan;
}

/** Builds the model of a DNA. Weights start as tf.js initialises them; see weights.ts to set them. */
export function buildModel(dna: Dna): BuiltModel {
  const shapes = vertexShapes(dna);
  const shapeOf = (id: string): [number, number, number] => {
    const s = shapes.get(id);
    if (s === undefined) throw new Error(`vertex ${id} has no shape`);
    return s;
  };
  const input = tf.input({ shape: [...dna.inputShape], name: 'image' });
  const rescale = { scale: 1 / 127.5, offset: -1 };
  const rescaled = tf.layers.rescaling({ ...rescale, name: 'rescale' }).apply(input) as tf.SymbolicTensor;
  const values = new Map<string, tf.SymbolicTensor>([[dna.input, rescaled]]);
  const into = new Map<string, Edge[]>();
  for (const e of dna.edges) into.set(e.to, [...(into.get(e.to) ?? []), e]);
  const adapters: { layer: tf.layers.Layer; inChannels: number; outChannels: number }[] = [];
  const plan: PlanVertex[] = [];

  for (const vertex of backboneOrder(dna).slice(1)) {
    const edges = into.get(vertex.id) ?? [];
    const backbone = edges.find((e) => e.role === 'backbone');
    if (backbone === undefined) throw new Error(`vertex ${vertex.id} has no backbone edge`);
    const inputs: tf.SymbolicTensor[] = [];
    const planInputs: PlanInput[] = [];
    for (const e of [backbone, ...edges.filter((x) => x.role === 'skip')]) {
      const source = values.get(e.from);
      if (source === undefined) throw new Error(`edge ${e.id} starts at ${e.from}, which is not built yet`);
      if (e.type === 'conv') {
        const conv = tf.layers.conv2d({
          name: e.id,
          filters: e.channels,
          kernelSize: [e.filterHeight, e.filterWidth],
          strides: e.stride,
          padding: 'same',
          useBias: false,
        });
        inputs.push(conv.apply(source) as tf.SymbolicTensor);
        planInputs.push({ from: e.from, conv, stride: e.stride });
        continue;
      }
      const adapter = e.role === 'skip' ? skipAdapter(shapeOf(e.from), shapeOf(vertex.id)) : null;
      if (adapter === null) {
        inputs.push(source);
        planInputs.push({ from: e.from, conv: null, stride: 1 });
        continue;
      }
      // A fixed 1x1 convolution both strides (nearest subsampling) and
      // truncates or zero-pads channels, with a standard layer.
      const layer = tf.layers.conv2d({
        name: `adapt_${e.id}`,
        filters: adapter.outChannels,
        kernelSize: 1,
        strides: adapter.stride,
        padding: 'same',
        useBias: false,
        trainable: false,
      });
      adapters.push({ layer, inChannels: adapter.inChannels, outChannels: adapter.outChannels });
      inputs.push(layer.apply(source) as tf.SymbolicTensor);
      planInputs.push({ from: e.from, conv: layer, stride: adapter.stride });
    }
    // Identity edges can bring one tensor into a sum twice (through a chain of single-input linear
    // vertices); tf.js layers then free it too early in inference. A linear activation makes a distinct copy.
    const distinct = inputs.map((t, i) => (inputs.indexOf(t) === i ? t : (tf.layers.activation({ name: `dup_${vertex.id}_${i}`, activation: 'linear' }).apply(t) as tf.SymbolicTensor)));
    let value = distinct.length === 1 ? (distinct[0] as tf.SymbolicTensor) : (tf.layers.add({ name: `sum_${vertex.id}` }).apply(distinct) as tf.SymbolicTensor);
    let bn: tf.layers.Layer | null = null;
    if (vertex.activation === 'bn_relu') {
      bn = tf.layers.batchNormalization({ name: `bn_${vertex.id}`, momentum: BN_MOMENTUM, epsilon: BN_EPSILON });
      value = bn.apply(value) as tf.SymbolicTensor;
      value = tf.layers.reLU({ name: `relu_${vertex.id}` }).apply(value) as tf.SymbolicTensor;
    }
    values.set(vertex.id, value);
    plan.push({ id: vertex.id, inputs: planInputs, bn });
  }

  const last = values.get(dna.output);
  if (last === undefined) throw new Error('the output vertex was not built');
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(last) as tf.SymbolicTensor;
  const classifier = tf.layers.dense({ name: 'classifier', units: dna.numClasses });
  const logits = classifier.apply(pooled) as tf.SymbolicTensor;
  const probs = tf.layers.activation({ name: 'softmax', activation: 'softmax' }).apply(logits) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: probs, name: 'petri' });
  const logitsModel = tf.model({ inputs: input, outputs: logits, name: 'petri_logits' });

  for (const { layer, inChannels, outChannels } of adapters) {
    const kernel = new Float32Array(inChannels * outChannels);
    for (let c = 0; c < Math.min(inChannels, outChannels); c++) kernel[c * outChannels + c] = 1;
    const t = tf.tensor4d(kernel, [1, 1, inChannels, outChannels]);
    layer.setWeights([t]);
    t.dispose();
  }
  return { dna, model, logits: logitsModel, plan: { input: dna.input, rescale, vertices: plan, output: dna.output, classifier } };
}

/** Frees every tensor a built model holds. */
export function disposeModel(built: BuiltModel): void {
  built.model.dispose();
}
