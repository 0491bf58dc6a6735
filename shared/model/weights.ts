/**
 * A model's weights as plain arrays keyed by tensor name (see
 * evolution/tensors.ts), moving between tf.js layers, the inheritance plan,
 * and the weights binary.
 */
import * as tf from '@tensorflow/tfjs';
import { tensorSpecs, sizeOf, type TensorSpec } from '../evolution/tensors.ts';
import type { InheritancePlan } from '../evolution/inheritance.ts';
import type { Rng } from '../evolution/rng.ts';
import type { BuiltModel } from './build.ts';

/** Tensor name -> values (row-major, in the tensor's shape). */
export type WeightMap = Map<string, Float32Array>;

/** The layer and weight index that hold a tensor of the given key. */
function locate(key: string): { layer: string; index: number } {
  const [owner, name] = key.split('/') as [string, string];
  if (owner === 'classifier') return { layer: 'classifier', index: name === 'kernel' ? 0 : 1 };
  if (owner.startsWith('e')) return { layer: owner, index: 0 };
  const bn = ['gamma', 'beta', 'moving_mean', 'moving_variance'].indexOf(name);
  if (bn < 0) throw new Error(`unknown tensor ${key}`);
  return { layer: `bn_${owner}`, index: bn };
}

/** Reads every tensor of a built model into a weight map. */
export async function readWeights(built: BuiltModel): Promise<WeightMap> {
  const map: WeightMap = new Map();
  for (const spec of tensorSpecs(built.dna)) {
    const { layer, index } = locate(spec.key);
    const weight = built.model.getLayer(layer).getWeights()[index];
    if (weight === undefined) throw new Error(`layer ${layer} has no weight ${index}`);
    map.set(spec.key, (await weight.data()) as Float32Array);
  }
  return map;
}

/** Writes a complete weight map into a built model; shapes must match the DNA. */
export function writeWeights(built: BuiltModel, weights: WeightMap): void {
  const byLayer = new Map<string, tf.Tensor[]>();
  const specs = tensorSpecs(built.dna);
  for (const spec of specs) {
    const values = weights.get(spec.key);
    if (values === undefined) throw new Error(`missing tensor ${spec.key}`);
    if (values.length !== sizeOf(spec.shape)) {
      throw new Error(`tensor ${spec.key} has ${values.length} values, expected ${sizeOf(spec.shape)} for shape [${spec.shape.join(', ')}]`);
    }
    const { layer, index } = locate(spec.key);
    const list = byLayer.get(layer) ?? [];
    list[index] = tf.tensor(values, [...spec.shape]);
    byLayer.set(layer, list);
  }
  for (const [layer, tensors] of byLayer) {
    built.model.getLayer(layer).setWeights(tensors);
    for (const t of tensors) t.dispose();
  }
}

/** A standard normal draw from the seeded generator (Box-Muller). */
function gaussian(rng: Rng): number {
  const u = 1 - rng.next();
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Fresh values for a tensor: He (or LeCun) normal for kernels, ones or zeros for BN and biases. */
export function initialValues(spec: Pick<TensorSpec, 'shape' | 'init' | 'fanIn'>, rng: Rng): Float32Array {
  const out = new Float32Array(sizeOf(spec.shape));
  switch (spec.init) {
    case 'zeros':
      return out;
    case 'ones':
      return out.fill(1);
    case 'he_normal':
    case 'lecun_normal': {
      const std = Math.sqrt((spec.init === 'he_normal' ? 2 : 1) / Math.max(1, spec.fanIn));
      for (let i = 0; i < out.length; i++) out[i] = std * gaussian(rng);
      return out;
    }
  }
}

/**
 * Reshapes a parent's tensor to the child's shape. Channel axes are
 * truncated or extended; spatial filter axes are cropped or padded around
 * their centre. New input channels and filter taps are zero (the tensor's
 * old function is kept); new output channels and vector entries take fresh
 * values, so a widened layer learns new features.
 */
export function reshapeValues(
  spec: Pick<TensorSpec, 'shape' | 'init' | 'fanIn' | 'layout'>,
  fromShape: readonly number[],
  from: Float32Array,
  rng: Rng,
): Float32Array {
  const to = spec.shape;
  if (to.length !== fromShape.length) throw new Error(`cannot reshape rank ${fromShape.length} to rank ${to.length}`);
  const out = initialValues(spec, rng);
  if (spec.layout === 'conv_kernel') {
    const [fh, fw, ci, co] = to as [number, number, number, number];
    const [ph, pw, pci, pco] = fromShape as [number, number, number, number];
    const dh = (fh - ph) / 2;
    const dw = (fw - pw) / 2;
    for (let y = 0; y < fh; y++) {
      for (let x = 0; x < fw; x++) {
        for (let i = 0; i < ci; i++) {
          const sy = y - dh;
          const sx = x - dw;
          const inside = sy >= 0 && sy < ph && sx >= 0 && sx < pw && i < pci;
          for (let o = 0; o < co; o++) {
            const dst = ((y * fw + x) * ci + i) * co + o;
            if (inside && o < pco) out[dst] = from[((sy * pw + sx) * pci + i) * pco + o] as number;
            else if (o < pco) out[dst] = 0; // a new input channel or filter tap of an old output
          }
        }
      }
    }
    return out;
  }
  if (spec.layout === 'dense_kernel') {
    const [ci, co] = to as [number, number];
    const [pci, pco] = fromShape as [number, number];
    for (let i = 0; i < ci; i++) {
      for (let o = 0; o < co; o++) {
        if (i < pci && o < pco) out[i * co + o] = from[i * pco + o] as number;
        else if (o < pco) out[i * co + o] = 0;
      }
    }
    return out;
  }
  const n = Math.min(out.length, from.length);
  out.set(from.subarray(0, n));
  return out;
}

/**
 * The child's weights from an inheritance plan and the parent's weights
 * (null for a fresh model). Deterministic for a given rng.
 */
export function inheritWeights(plan: InheritancePlan, parent: WeightMap | null, rng: Rng): WeightMap {
  const child: WeightMap = new Map();
  for (const t of plan.tensors) {
    const source = t.source;
    if (source.kind === 'init') {
      child.set(t.key, initialValues(t, rng));
      continue;
    }
    const old = parent?.get(t.key);
    if (old === undefined) throw new Error(`the plan inherits ${t.key}, but the parent's weights lack it`);
    if (source.kind === 'copy') {
      if (old.length !== sizeOf(t.shape)) throw new Error(`parent tensor ${t.key} has the wrong size`);
      child.set(t.key, old.slice());
    } else {
      if (old.length !== sizeOf(source.fromShape)) throw new Error(`parent tensor ${t.key} has the wrong size`);
      child.set(t.key, reshapeValues(t, source.fromShape, old, rng));
    }
  }
  return child;
}

/** The key of the first tensor holding a NaN or an infinity, or null when every value is finite. */
export function firstNonFinite(weights: WeightMap): string | null {
  for (const [key, values] of weights) {
    for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i] as number)) return key;
  }
  return null;
}
