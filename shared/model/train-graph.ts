/**
 * The forward passes of a built model, run with plain tf.js ops over its
 * plan (build.ts) instead of through the layers model. Same layers, same
 * variables, same result.
 *
 * Evaluation ({@link inferenceLogits}) folds batch norm with the moving
 * statistics into the conv before it, where a vertex has a single conv
 * input: one fused conv with bias and ReLU (convBatchNormReluInference).
 * Elsewhere batch norm and ReLU are one per-channel pass
 * (batchNormReluInference). The layers model runs Conv2D, FusedBatchNorm
 * and Relu.
 *
 * Two things make training ({@link trainingLogits}) cheaper to
 * differentiate:
 *
 * - convolutions are plain `conv2d`, whose gradient computes only what is
 *   asked for. tf.js layers run `fused.conv2d` even in training, and its
 *   gradient always computes both the input and the filter gradient: the
 *   first conv's input gradient (towards the images) and the fixed skip
 *   adapters' filter gradients were computed for nothing;
 * - batch norm and ReLU are one op with a closed-form gradient
 *   (batch-norm-relu.ts) instead of autodiff through tf.moments.
 *
 * Batch-norm moving statistics are updated as tf.js layers update them.
 */
import * as tf from '@tensorflow/tfjs';
import { batchNormRelu, batchNormReluInference, convBatchNormReluInference } from './batch-norm-relu.ts';
import { BN_EPSILON, BN_MOMENTUM, type BuiltModel } from './build.ts';

/** A layer's weight variable (LayerVariable: read() is the tf.Variable, write() assigns). */
interface LayerWeight {
  read(): tf.Variable;
  write(value: tf.Tensor): unknown;
}

function weight(layer: tf.layers.Layer, index: number): LayerWeight {
  const w = layer.weights[index] as unknown as LayerWeight | undefined;
  if (w === undefined) throw new Error(`layer ${layer.name} has no weight ${index}`);
  return w;
}

/** new = old - (old - batch) * (1 - momentum), as tf.js layers' BatchNormalization does. */
function movingAverage(w: LayerWeight, batch: tf.Tensor, momentum: number): void {
  tf.tidy(() => {
    const old = w.read();
    w.write(tf.sub(old, tf.mul(tf.sub(old, batch), 1 - momentum)));
  });
}

/**
 * Logits of a batch of raw pixels ([n, h, w, c] in [0, 255]) over the plan:
 * each vertex sums its inputs (convolved where its edge is a conv), then
 * `bnRelu` applies the vertex's batch norm and ReLU, where it has them.
 */
function logitsOverPlan(
  built: BuiltModel,
  x: tf.Tensor4D,
  bnRelu: (value: tf.Tensor, bn: tf.layers.Layer) => tf.Tensor,
  convBnRelu?: (source: tf.Tensor4D, filter: tf.Tensor4D, stride: number, bn: tf.layers.Layer) => tf.Tensor,
): tf.Tensor2D {
  const { plan } = built;
  const values = new Map<string, tf.Tensor>([[plan.input, tf.add(tf.mul(x, plan.rescale.scale), plan.rescale.offset)]]);
  const valueOf = (id: string): tf.Tensor => {
    const v = values.get(id);
    if (v === undefined) throw new Error(`vertex ${id} is not computed yet`);
    return v;
  };
  for (const vertex of plan.vertices) {
    const only = vertex.inputs.length === 1 ? vertex.inputs[0] : undefined;
    if (convBnRelu !== undefined && vertex.bn !== null && only !== undefined && only.conv !== null) {
      values.set(vertex.id, convBnRelu(valueOf(only.from) as tf.Tensor4D, weight(only.conv, 0).read() as tf.Tensor4D, only.stride, vertex.bn));
      continue;
    }
    const inputs = vertex.inputs.map(({ from, conv, stride }) => {
      const source = valueOf(from);
      if (conv === null) return source;
      return tf.conv2d(source as tf.Tensor4D, weight(conv, 0).read() as tf.Tensor4D, stride, 'same');
    });
    const value = inputs.length === 1 ? (inputs[0] as tf.Tensor) : tf.addN(inputs);
    values.set(vertex.id, vertex.bn === null ? value : bnRelu(value, vertex.bn));
  }
  const pooled = tf.mean(valueOf(plan.output), [1, 2]);
  const kernel = weight(plan.classifier, 0).read();
  const bias = weight(plan.classifier, 1).read();
  return tf.add(tf.matMul(pooled as tf.Tensor2D, kernel as tf.Tensor2D), bias) as tf.Tensor2D;
}

/**
 * Logits of a batch of raw pixels ([n, h, w, c] in [0, 255]) in training
 * mode; updates the batch-norm moving statistics. Call it inside the
 * gradient function of a training step.
 */
export function trainingLogits(built: BuiltModel, x: tf.Tensor4D): tf.Tensor2D {
  return logitsOverPlan(built, x, (value, bn) => {
    const { y, mean, variance } = batchNormRelu(value, weight(bn, 0).read(), weight(bn, 1).read(), BN_EPSILON);
    try {
      movingAverage(weight(bn, 2), mean, BN_MOMENTUM);
      movingAverage(weight(bn, 3), variance, BN_MOMENTUM);
    } finally {
      mean.dispose();
      variance.dispose();
    }
    return y;
  });
}

/**
 * Logits of a batch of raw pixels ([n, h, w, c] in [0, 255]) in inference
 * mode (batch norm with the moving statistics): what the layers model
 * gives with training false.
 */
export function inferenceLogits(built: BuiltModel, x: tf.Tensor4D): tf.Tensor2D {
  // gamma, beta, moving mean, moving variance.
  const bnWeights = (bn: tf.layers.Layer): [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor] =>
    [weight(bn, 0).read(), weight(bn, 1).read(), weight(bn, 2).read(), weight(bn, 3).read()];
  return tf.tidy(() =>
    logitsOverPlan(
      built,
      x,
      (value, bn) => batchNormReluInference(value, ...bnWeights(bn), BN_EPSILON),
      (source, filter, stride, bn) => convBatchNormReluInference(source, filter, stride, ...bnWeights(bn), BN_EPSILON),
    ),
  );
}
