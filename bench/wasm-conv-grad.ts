/**
 * Training throughput of the tf.js WASM backend in Node on the 3-conv
 * reference net, with a per-kernel breakdown of one training step.
 *
 *   npx tsx bench/wasm-conv-grad.ts [--steps 10] [--batch 50] [--strides 1,2,2]
 *                                   [--backend wasm|cpu] [--native all|K1,K2]
 *                                   [--profile-steps 3]
 *
 * Net: 32x32x3 input -> rescaling -> 3 x (conv 3x3 no bias -> batch norm
 * (training mode) -> ReLU) with 32/64/128 channels -> global average pooling
 * -> dense 10; softmax cross-entropy + L2 on the conv kernels; plain SGD,
 * gradients by tf.variableGrads as in Petri's training loop.
 * `--native` puts back tfjs-backend-wasm's own kernels (all, or the named
 * ones) where registerWasmTrainingKernels replaced them, for comparison.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { initNodeBackend } from '../server/tf-backend.ts';
import { WASM_TRAINING_KERNELS } from '../shared/model/wasm-kernels.ts';

interface Options {
  steps: number;
  batch: number;
  strides: number[];
  backend: 'wasm' | 'cpu';
  native: string[];
  profileSteps: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { steps: 10, batch: 50, strides: [1, 2, 2], backend: 'wasm', native: [], profileSteps: 3 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--steps' && v) { opts.steps = Number(v); i++; }
    else if (a === '--batch' && v) { opts.batch = Number(v); i++; }
    else if (a === '--profile-steps' && v) { opts.profileSteps = Math.max(1, Number(v)); i++; }
    else if (a === '--strides' && v) { opts.strides = v.split(',').map(Number); i++; }
    else if (a === '--backend' && (v === 'wasm' || v === 'cpu')) { opts.backend = v; i++; }
    else if (a === '--native' && v) { opts.native = v === 'all' ? [...WASM_TRAINING_KERNELS] : v.split(','); i++; }
    else throw new Error(`unknown argument ${a}`);
  }
  if (opts.strides.length !== 3) throw new Error('--strides needs three numbers');
  return opts;
}

function buildNet(strides: number[]) {
  const rescale = tf.layers.rescaling({ scale: 1 / 127.5, offset: -1 });
  const convs = [32, 64, 128].map((filters, i) => tf.layers.conv2d({
    filters, kernelSize: 3, strides: strides[i], padding: 'same', useBias: false,
  }));
  const bns = convs.map(() => tf.layers.batchNormalization());
  const relus = convs.map(() => tf.layers.reLU());
  const gap = tf.layers.globalAveragePooling2d({});
  const dense = tf.layers.dense({ units: 10 });
  const forward = (x: tf.Tensor4D): tf.Tensor2D => {
    let h = rescale.apply(x) as tf.Tensor;
    for (let i = 0; i < convs.length; i++) {
      h = convs[i]!.apply(h) as tf.Tensor;
      h = bns[i]!.apply(h, { training: true }) as tf.Tensor;
      h = relus[i]!.apply(h) as tf.Tensor;
    }
    return dense.apply(gap.apply(h)) as tf.Tensor2D;
  };
  const kernels = () => convs.map((c) => c.getWeights()[0]!);
  return { forward, kernels };
}

interface KernelRow { kernel: string; ms: number; calls: number; share: number }

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const natives = WASM_TRAINING_KERNELS.map((k) => tf.getKernel(k, 'wasm')).filter((k) => k !== undefined);
  const init = await initNodeBackend(opts.backend);
  const restored: string[] = [];
  for (const config of natives) {
    if (!opts.native.includes(config.kernelName)) continue;
    tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
    restored.push(config.kernelName);
  }
  tf.env().set('CHECK_COMPUTATION_FOR_ERRORS', false);

  const { forward, kernels } = buildNet(opts.strides);
  const optimizer = tf.train.sgd(0.01);
  const x = tf.randomUniform([opts.batch, 32, 32, 3], 0, 255) as tf.Tensor4D;
  const labels = tf.oneHot(tf.randomUniform([opts.batch], 0, 10, 'int32') as tf.Tensor1D, 10);
  forward(x).dispose(); // builds the layers

  const step = (): number => {
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => {
      const logits = forward(x);
      const ce = tf.losses.softmaxCrossEntropy(labels, logits);
      const l2 = tf.addN(kernels().map((w) => tf.sum(tf.square(w))));
      return tf.add(ce, tf.mul(1e-4, l2)) as tf.Scalar;
    }));
    optimizer.applyGradients(grads);
    const loss = value.dataSync()[0] ?? NaN;
    tf.dispose([value, ...Object.values(grads)]);
    return loss;
  };

  for (let i = 0; i < 2; i++) step();
  // Per-step times and medians: the figures must survive a busy machine.
  const tensorsBefore = tf.memory().numTensors;
  const stepMs: number[] = [];
  let loss = NaN;
  for (let i = 0; i < opts.steps; i++) {
    const t0 = performance.now();
    loss = step();
    stepMs.push(performance.now() - t0);
  }
  const leaked = tf.memory().numTensors - tensorsBefore;
  const ms = median(stepMs);

  // Kernel times of a few profiled steps; each kernel's median over them.
  const perStep: Array<Map<string, { ms: number; calls: number }>> = [];
  for (let i = 0; i < opts.profileSteps; i++) {
    const profile = await tf.profile(() => { step(); });
    const byKernel = new Map<string, { ms: number; calls: number }>();
    for (const k of profile.kernels) {
      // Scopes of custom-gradient ops ('fusedConv2d__op') wrap kernels listed too.
      if (k.name.endsWith('__op')) continue;
      const row = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
      row.ms += Number(k.kernelTimeMs);
      row.calls++;
      byKernel.set(k.name, row);
    }
    perStep.push(byKernel);
  }
  const names = new Set(perStep.flatMap((m) => [...m.keys()]));
  const medians = [...names].map((kernel) => ({
    kernel,
    ms: median(perStep.map((m) => m.get(kernel)?.ms ?? 0)),
    calls: perStep[0]?.get(kernel)?.calls ?? 0,
  }));
  const total = medians.reduce((sum, r) => sum + r.ms, 0);
  const rows: KernelRow[] = medians
    .map((r) => ({ kernel: r.kernel, ms: +r.ms.toFixed(2), calls: r.calls, share: +(r.ms / total).toFixed(3) }))
    .sort((a, b) => b.ms - a.ms);

  const result = {
    backend: init.backend,
    fallbackReason: init.reason ?? null,
    nativeKernelsRestored: restored,
    batch: opts.batch,
    strides: opts.strides,
    steps: opts.steps,
    msPerStepMedian: +ms.toFixed(1),
    msPerStepBest: +Math.min(...stepMs).toFixed(1),
    trainImagesPerSecond: +((opts.batch * 1000) / ms).toFixed(1),
    trainImagesPerSecondBest: +((opts.batch * 1000) / Math.min(...stepMs)).toFixed(1),
    lastLoss: +loss.toFixed(4),
    leakedTensorsPerRun: leaked,
    profiledSteps: opts.profileSteps,
    profiledStepKernelMs: +total.toFixed(1),
    kernels: rows,
  };
  console.log(JSON.stringify(result, null, 2));
  console.log(`\n${init.backend}: ${result.trainImagesPerSecond} train img/s median, ${result.trainImagesPerSecondBest} best ` +
    `(${result.msPerStepMedian} ms/step median, batch ${opts.batch}); kernel time per step ${result.profiledStepKernelMs} ms`);
  console.log('kernel'.padEnd(24) + 'ms'.padStart(9) + 'calls'.padStart(7) + 'share'.padStart(8));
  for (const r of rows.slice(0, 15)) {
    console.log(r.kernel.padEnd(24) + r.ms.toFixed(2).padStart(9) + String(r.calls).padStart(7) + `${(r.share * 100).toFixed(1)}%`.padStart(8));
  }
}

await main();
