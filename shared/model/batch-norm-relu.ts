/**
 * Batch norm in training mode followed by ReLU, as one op with its own
 * gradient: relu(gamma * (x - mean) / sqrt(variance + eps) + beta) with the
 * batch's per-channel mean and (biased) variance, as tf.js layers compute
 * them in training.
 *
 * Left to autodiff, the same thing is tf.moments (Mean, Sub, Square, Mean),
 * FusedBatchNorm and Relu forward, and about fifteen activation-sized
 * elementwise kernels backward (the moments' gradient included). Here the
 * backward pass is the closed form
 *
 *   dx = gamma*r * (dy' - sum(dy')/n - (x - mean) * r^2 * sum(dy' * (x - mean))/n),
 *   dgamma = r * sum(dy' * (x - mean)),  dbeta = sum(dy'),
 *
 * with r = 1/sqrt(variance + eps), dy' = dy where the output is positive
 * and 0 elsewhere, and sums over every axis but the channels. Backends with
 * the two kernels below registered (wasm: wasm-batch-norm-relu.ts) run each
 * direction as one kernel; the others run the same formulas as a few tf ops.
 */
import * as tf from '@tensorflow/tfjs';

/** Forward kernel: inputs x, gamma, beta; attrs epsilon; outputs [y, mean, variance]. */
export const BN_RELU_KERNEL = 'PetriBatchNormRelu';
/** Backward kernel: inputs x, y, dy, gamma, mean, variance; attrs epsilon; outputs [dx, dgamma, dbeta]. */
export const BN_RELU_GRAD_KERNEL = 'PetriBatchNormReluGrad';
/** Inference kernel: inputs x, a, b (per channel); output max(x*a + b, 0). */
export const AFFINE_RELU_KERNEL = 'PetriAffineRelu';

export interface BatchNormReluResult {
  /** The output, on the gradient tape. */
  readonly y: tf.Tensor;
  /** The batch's per-channel mean and biased variance, for the moving statistics. Owned by the caller: dispose them. */
  readonly mean: tf.Tensor1D;
  readonly variance: tf.Tensor1D;
}

function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

function reductionAxes(x: tf.Tensor): number[] {
  return Array.from({ length: x.rank - 1 }, (_, i) => i);
}

function forward(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number): [tf.Tensor, tf.Tensor1D, tf.Tensor1D] {
  if (hasKernel(BN_RELU_KERNEL)) {
    return tf.engine().runKernel(BN_RELU_KERNEL, { x, gamma, beta } as unknown as tf.NamedTensorMap, { epsilon }) as [
      tf.Tensor,
      tf.Tensor1D,
      tf.Tensor1D,
    ];
  }
  const { mean, variance } = tf.moments(x, reductionAxes(x));
  const a = tf.mul(gamma, tf.rsqrt(tf.add(variance, epsilon)));
  const y = tf.relu(tf.add(tf.mul(tf.sub(x, mean), a), beta));
  return [y, mean as tf.Tensor1D, variance as tf.Tensor1D];
}

function backward(dy: tf.Tensor, saved: tf.Tensor[], epsilon: number): tf.Tensor[] {
  const [x, y, gamma, mean, variance] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor1D, tf.Tensor1D];
  if (hasKernel(BN_RELU_GRAD_KERNEL)) {
    return tf.engine().runKernel(BN_RELU_GRAD_KERNEL, { x, y, dy, gamma, mean, variance } as unknown as tf.NamedTensorMap, {
      epsilon,
    }) as tf.Tensor[];
  }
  const axes = reductionAxes(x);
  const n = x.size / (mean.size || 1);
  const dyr = tf.mul(dy, tf.step(y));
  const xm = tf.sub(x, mean);
  const sumDy = tf.sum(dyr, axes);
  const sumDyXm = tf.sum(tf.mul(dyr, xm), axes);
  const r = tf.rsqrt(tf.add(variance, epsilon));
  const centred = tf.sub(dyr, tf.div(sumDy, n));
  const projection = tf.mul(xm, tf.mul(tf.square(r), tf.div(sumDyXm, n)));
  const dx = tf.mul(tf.mul(gamma, r), tf.sub(centred, projection));
  return [dx, tf.mul(sumDyXm, r), sumDy];
}

/**
 * Batch norm (training mode, statistics over every axis but the last) and
 * ReLU. Gradients flow to x, gamma and beta.
 */
export function batchNormRelu(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, epsilon: number): BatchNormReluResult {
  let stats: [tf.Tensor1D, tf.Tensor1D] | undefined;
  const op = tf.customGrad((...args: unknown[]) => {
    const [xIn, gammaIn, betaIn, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const [y, mean, variance] = forward(xIn, gammaIn, betaIn, epsilon);
    save([xIn, y, gammaIn, mean, variance]);
    // The forward function runs in a tidy of the engine's: keep the statistics for the caller.
    stats = [tf.keep(mean), tf.keep(variance)];
    return { value: y, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => backward(dy, saved, epsilon) };
  });
  const y = op(x, gamma, beta);
  if (stats === undefined) throw new Error('batchNormRelu: the forward pass did not run');
  return { y, mean: stats[0], variance: stats[1] };
}

/**
 * Batch norm in inference mode (the moving statistics) followed by ReLU:
 * relu(x*a + b) with a = gamma / sqrt(movingVariance + eps) and
 * b = beta - movingMean*a, one pass over x where the backend has the kernel
 * (wasm), else three tf ops. No gradient: for evaluation only.
 */
export function batchNormReluInference(
  x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, movingMean: tf.Tensor, movingVariance: tf.Tensor, epsilon: number,
): tf.Tensor {
  return tf.tidy(() => {
    const { a, b } = inferenceAffine(gamma, beta, movingMean, movingVariance, epsilon);
    if (hasKernel(AFFINE_RELU_KERNEL)) {
      return tf.engine().runKernel(AFFINE_RELU_KERNEL, { x, a, b } as unknown as tf.NamedTensorMap, {}) as tf.Tensor;
    }
    return tf.relu(tf.add(tf.mul(x, a), b));
  });
}

/** Batch norm in inference mode as y = x*a + b per channel. */
function inferenceAffine(
  gamma: tf.Tensor, beta: tf.Tensor, movingMean: tf.Tensor, movingVariance: tf.Tensor, epsilon: number,
): { a: tf.Tensor; b: tf.Tensor } {
  const a = tf.mul(gamma, tf.rsqrt(tf.add(movingVariance, epsilon)));
  return { a, b: tf.sub(beta, tf.mul(movingMean, a)) };
}

/**
 * A 'same' conv, then batch norm in inference mode, then ReLU, as one fused
 * conv: relu(conv(x, W*a) + b), the per-channel a and b of
 * {@link batchNormReluInference} folded into the filter and a bias. Every
 * backend has fused conv with bias and ReLU (on wasm, XNNPACK and the
 * im2col GEMM conv apply them as they write the output, the Winograd conv
 * in one pass after it), so no separate pass is left for the batch norm. Rounds a little
 * differently from the unfolded ops (the filter is scaled before the sum).
 * No gradient: for evaluation only.
 */
export function convBatchNormReluInference(
  x: tf.Tensor4D, filter: tf.Tensor4D, stride: number,
  gamma: tf.Tensor, beta: tf.Tensor, movingMean: tf.Tensor, movingVariance: tf.Tensor, epsilon: number,
): tf.Tensor4D {
  return tf.tidy(() => {
    const { a, b } = inferenceAffine(gamma, beta, movingMean, movingVariance, epsilon);
    return tf.fused.conv2d({
      x, filter: tf.mul(filter, a) as tf.Tensor4D, strides: stride, pad: 'same', bias: b, activation: 'relu',
    });
  });
}
