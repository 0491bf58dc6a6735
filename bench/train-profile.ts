/**
 * Where a training step's time goes, per tf.js kernel, in Node: one warm-up
 * step, then one step under tf.profile, kernels summed by name.
 *
 *   npx tsx bench/train-profile.ts [wasm|cpu] [linear|conv3|conv10-skip2] [batch]
 *
 * Defaults: wasm, conv10-skip2, 50. Pure-JS cpu is slow: use a small batch
 * there (kernel times scale with the batch).
 */
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../server/tf-backend.ts';
import { referenceDnas } from '../shared/evolution/fixtures.ts';
import { buildModel, disposeModel } from '../shared/model/build.ts';
import { trainModel } from '../shared/model/train.ts';
import { randomImageSet } from './lib/train-measure.ts';

const [backendArg = 'wasm', name = 'conv10-skip2', batchArg = '50'] = process.argv.slice(2);
if (backendArg !== 'wasm' && backendArg !== 'cpu') throw new Error(`backend must be wasm or cpu, not ${backendArg}`);
const batch = Number(batchArg);
const info = await initNodeBackend(backendArg);
if (info.backend !== backendArg) throw new Error(`backend is ${info.backend}: ${info.reason ?? ''}`);
const ref = referenceDnas().find((r) => r.name === name);
if (ref === undefined) throw new Error(`no reference DNA ${name}`);

const built = buildModel(ref.dna);
const data = randomImageSet(ref.dna.inputShape, Math.max(200, batch * 4), ref.dna.numClasses, 1);
await trainModel(built, data, { steps: 1, seed: 1, batchSize: batch });
const t0 = performance.now();
const profile = await tf.profile(async () => {
  await trainModel(built, data, { steps: 1, seed: 2, batchSize: batch });
});
const wall = performance.now() - t0;
disposeModel(built);

const byKernel = new Map<string, { ms: number; calls: number }>();
for (const k of profile.kernels) {
  // `<op>__op` records wrap the kernel records of the same call: skip them to avoid counting twice.
  if (k.name.endsWith('__op')) continue;
  const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
  entry.ms += Number(k.kernelTimeMs);
  entry.calls += 1;
  byKernel.set(k.name, entry);
}
const total = [...byKernel.values()].reduce((a, b) => a + b.ms, 0);
process.stdout.write(`${backendArg} ${name}, batch ${batch}: step wall ${wall.toFixed(0)} ms under tf.profile, kernels ${total.toFixed(0)} ms\n`);
for (const [kernel, { ms, calls }] of [...byKernel].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12)) {
  process.stdout.write(`  ${kernel.padEnd(24)} ${String(calls).padStart(4)} calls ${ms.toFixed(1).padStart(9)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}%\n`);
}
