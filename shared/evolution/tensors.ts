/**
 * The tensors a DNA implies, in one canonical order. This list is the
 * contract between the DNA, the tf.js model built from it, the weights
 * binary that travels between workers and the server, and the inheritance
 * plan: a tensor is named by the vertex or edge that owns it, so it keeps
 * its name from parent to child.
 */
import { backboneOrder, vertexShapes, type Dna } from './dna.ts';

/** How a fresh tensor is initialised. */
export type TensorInit = 'he_normal' | 'lecun_normal' | 'zeros' | 'ones';

/** What the axes of a tensor mean, which decides how it is reshaped. */
export type TensorLayout = 'conv_kernel' | 'vector' | 'dense_kernel';

export interface TensorSpec {
  /** `<edgeId>/kernel`, `<vertexId>/gamma|beta|moving_mean|moving_variance`, `classifier/kernel|bias`. */
  readonly key: string;
  readonly shape: readonly number[];
  readonly layout: TensorLayout;
  readonly init: TensorInit;
  /** Fan-in for He / LeCun initialisation. */
  readonly fanIn: number;
  /** Learned by gradient descent (BN moving statistics are not). */
  readonly trainable: boolean;
  /** Subject to weight decay. */
  readonly decay: boolean;
}

/** Every tensor of the model a DNA describes, in canonical order. */
export function tensorSpecs(dna: Dna): TensorSpec[] {
  const shapes = vertexShapes(dna);
  const backboneInto = new Map(dna.edges.filter((e) => e.role === 'backbone').map((e) => [e.to, e]));
  const specs: TensorSpec[] = [];
  for (const vertex of backboneOrder(dna)) {
    const shape = shapes.get(vertex.id);
    if (shape === undefined) throw new Error(`no shape for vertex ${vertex.id}`);
    const e = backboneInto.get(vertex.id);
    if (e !== undefined && e.type === 'conv') {
      const inShape = shapes.get(e.from);
      if (inShape === undefined) throw new Error(`no shape for vertex ${e.from}`);
      const fanIn = e.filterHeight * e.filterWidth * inShape[2];
      specs.push({
        key: `${e.id}/kernel`,
        shape: [e.filterHeight, e.filterWidth, inShape[2], e.channels],
        layout: 'conv_kernel',
        init: 'he_normal',
        fanIn,
        trainable: true,
        decay: true,
      });
    }
    if (vertex.activation === 'bn_relu') {
      const c = shape[2];
      const bn = (name: string, init: TensorInit, trainable: boolean): TensorSpec => ({
        key: `${vertex.id}/${name}`,
        shape: [c],
        layout: 'vector',
        init,
        fanIn: c,
        trainable,
        decay: false,
      });
      specs.push(bn('gamma', 'ones', true), bn('beta', 'zeros', true));
      specs.push(bn('moving_mean', 'zeros', false), bn('moving_variance', 'ones', false));
    }
  }
  const out = shapes.get(dna.output);
  if (out === undefined) throw new Error('no shape for the output vertex');
  specs.push({
    key: 'classifier/kernel',
    shape: [out[2], dna.numClasses],
    layout: 'dense_kernel',
    init: 'lecun_normal',
    fanIn: out[2],
    trainable: true,
    decay: true,
  });
  specs.push({
    key: 'classifier/bias',
    shape: [dna.numClasses],
    layout: 'vector',
    init: 'zeros',
    fanIn: out[2],
    trainable: true,
    decay: false,
  });
  return specs;
}

/** Number of elements of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Trainable parameter count of a DNA's model (BN moving statistics excluded). */
export function parameterCount(dna: Dna): number {
  let n = 0;
  for (const spec of tensorSpecs(dna)) if (spec.trainable) n += sizeOf(spec.shape);
  return n;
}

/** Total float32 elements of every tensor, i.e. the weights binary's length / 4. */
export function weightElementCount(dna: Dna): number {
  let n = 0;
  for (const spec of tensorSpecs(dna)) n += sizeOf(spec.shape);
  return n;
}
