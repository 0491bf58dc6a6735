/**
 * The paper's optimizer step for one variable: SGD with momentum and
 * (on kernels) weight decay, as tf.js ops compute it:
 *
 *   g' = g + w*wd,  v' = v*momentum + g',  w' = w - v'*lr.
 *
 * Backends with the `PetriSgdMomentum` kernel (wasm: one SIMD pass,
 * wasm-kernels.ts) do it in one kernel with the same float32 rounding;
 * elsewhere it is the five or six tf ops it always was.
 */
import * as tf from '@tensorflow/tfjs';

/** Inputs w, v, g (one shape, float32); attrs lr, momentum, weightDecay; outputs [w', v']. */
export const SGD_KERNEL = 'PetriSgdMomentum';

/** Updates `variable` and its `velocity` in place from the gradient `grad`. Call inside a tidy. */
export function sgdMomentumStep(
  variable: tf.Variable, velocity: tf.Variable, grad: tf.Tensor, lr: number, momentum: number, weightDecay: number,
): void {
  if (tf.getKernel(SGD_KERNEL, tf.getBackend()) !== undefined && variable.dtype === 'float32' && grad.dtype === 'float32') {
    const [w, v] = tf.engine().runKernel(
      SGD_KERNEL, { w: variable, v: velocity, g: grad } as unknown as tf.NamedTensorMap, { lr, momentum, weightDecay },
    ) as [tf.Tensor, tf.Tensor];
    velocity.assign(v);
    variable.assign(w);
    return;
  }
  const g = weightDecay > 0 ? tf.add(grad, tf.mul(variable, weightDecay)) : grad;
  velocity.assign(tf.add(tf.mul(velocity, momentum), g));
  variable.assign(tf.sub(variable, tf.mul(velocity, lr)));
}
