/**
 * FLOPs of a DNA's model, counted as the paper does: a multiply-add is two
 * FLOPs; a training step costs about three forward passes (forward, and the
 * backward pass for activations and for weights).
 */
import { skipAdapter, vertexShapes, type Dna } from './dna.ts';
import { parameterCount } from './tensors.ts';

export interface FlopsReport {
  /** Forward FLOPs for one image. */
  readonly forwardPerImage: number;
  /** Training FLOPs for one step of `batchSize` images (forward + backward). */
  readonly trainingPerStep: number;
  /** FLOPs of one evaluation over `validationImages` images. */
  readonly validation: number;
  /** Trainable parameters. */
  readonly params: number;
}

/** Forward FLOPs of one image through the model of a DNA. */
export function forwardFlopsPerImage(dna: Dna): number {
  const shapes = vertexShapes(dna);
  const [h0, w0, c0] = dna.inputShape;
  let flops = 2 * h0 * w0 * c0; // input rescaling
  const inputsInto = new Map<string, number>();
  for (const e of dna.edges) {
    const from = shapes.get(e.from);
    const to = shapes.get(e.to);
    if (from === undefined || to === undefined) throw new Error(`edge ${e.id} has no shapes`);
    inputsInto.set(e.to, (inputsInto.get(e.to) ?? 0) + 1);
    if (e.type === 'conv') {
      flops += 2 * e.filterHeight * e.filterWidth * from[2] * e.channels * to[0] * to[1];
    } else if (e.role === 'skip') {
      const adapter = skipAdapter(from, to);
      if (adapter !== null) flops += 2 * adapter.inChannels * adapter.outChannels * to[0] * to[1];
    }
  }
  for (const vertex of dna.vertices) {
    const s = shapes.get(vertex.id);
    if (s === undefined) continue;
    const size = s[0] * s[1] * s[2];
    flops += Math.max(0, (inputsInto.get(vertex.id) ?? 0) - 1) * size; // sums
    if (vertex.activation === 'bn_relu') flops += 3 * size; // scale, shift, max
  }
  const out = shapes.get(dna.output);
  if (out === undefined) throw new Error('no output shape');
  flops += out[0] * out[1] * out[2]; // global average pooling
  flops += 2 * out[2] * dna.numClasses + dna.numClasses; // classifier
  return flops;
}

/** The FLOPs report of a DNA for a batch size and a validation split size. */
export function flopsReport(dna: Dna, batchSize: number, validationImages: number): FlopsReport {
  const forwardPerImage = forwardFlopsPerImage(dna);
  return {
    forwardPerImage,
    trainingPerStep: 3 * forwardPerImage * batchSize,
    validation: forwardPerImage * validationImages,
    params: parameterCount(dna),
  };
}

/**
 * The compute an individual costs in the paper's accounting: training FLOPs
 * per step times steps, plus its validation FLOPs.
 */
export function individualCost(dna: Dna, steps: number, batchSize: number, validationImages: number): number {
  const r = flopsReport(dna, batchSize, validationImages);
  return r.trainingPerStep * steps + r.validation;
}
