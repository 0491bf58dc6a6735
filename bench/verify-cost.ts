/**
 * What the server's judgement of a child costs next to the child's training.
 *
 * For each reference DNA: the real verification path (ThreadVerifier: a
 * worker thread decoding the uploaded weights and evaluating the validation
 * split with tf.js wasm) timed on a 5,000-image validation split of 32x32x3
 * images, against the time the same child takes to train at the paper
 * preset (25,600 steps of batch 50), extrapolated from timed training steps
 * on the same machine and backend (wasm).
 *
 *   npx tsx bench/verify-cost.ts [--steps 20] [--out bench/out/verify-cost.json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { referenceDnas } from '../shared/evolution/fixtures.ts';
import { planInheritance } from '../shared/evolution/inheritance.ts';
import { createRng } from '../shared/evolution/rng.ts';
import { buildModel, disposeModel } from '../shared/model/build.ts';
import { trainModel } from '../shared/model/train.ts';
import { inheritWeights, writeWeights } from '../shared/model/weights.ts';
import { encodeWeights } from '../shared/model/weights-codec.ts';
import { ensureDataset, loadSplit } from '../server/datasets/index.ts';
import { initNodeBackend } from '../server/tf-backend.ts';
import { ThreadVerifier } from '../server/verify-pool.ts';
import { WeightsFiles } from '../server/weights-files.ts';

const { values } = parseArgs({ options: { steps: { type: 'string', default: '20' }, out: { type: 'string' } } });
const timedSteps = Number(values.steps);
const PAPER_STEPS = 25_600;
const BATCH = 50;

const dir = mkdtempSync(join(tmpdir(), 'petri-verify-cost-'));
const rows: Record<string, unknown>[] = [];
try {
  // 50,000 training images give the paper's 45,000 / 5,000 split in the 32x32x3 CIFAR layout.
  const prepared = await ensureDataset(dir, 'synthetic', { synthetic: { train: 50_000, test: 1_000, seed: 1 } });
  const validationImages = prepared.manifest.splits.validation;
  const train = await loadSplit(dir, 'synthetic', 'train');
  await initNodeBackend('wasm');
  const weights = new WeightsFiles(join(dir, 'weights'));
  const verifier = new ThreadVerifier(dir, 'wasm');
  for (const { name, dna } of referenceDnas()) {
    const built = buildModel(dna);
    const map = inheritWeights(planInheritance(null, dna), null, createRng('bench'));
    writeWeights(built, map);
    await trainModel(built, train, { steps: 3, seed: 'warm' });
    const t0 = performance.now();
    await trainModel(built, train, { steps: timedSteps, seed: 'timed' });
    const stepSeconds = (performance.now() - t0) / 1000 / timedSteps;
    disposeModel(built);

    const sha = await weights.putBytes(encodeWeights(dna, map));
    await verifier.evaluate({ dataset: 'synthetic', split: 'validation', dna, weightsPath: weights.path(sha) }); // warm: loads the split
    const v0 = performance.now();
    await verifier.evaluate({ dataset: 'synthetic', split: 'validation', dna, weightsPath: weights.path(sha) });
    const verifySeconds = (performance.now() - v0) / 1000;
    const paperTrainSeconds = stepSeconds * PAPER_STEPS;
    rows.push({
      dna: name,
      validationImages,
      verifySeconds,
      trainStepSeconds: stepSeconds,
      trainImagesPerSecond: BATCH / stepSeconds,
      paperTrainSeconds,
      verifyShareOfTraining: verifySeconds / paperTrainSeconds,
    });
  }
  await verifier.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const report = { bench: 'verify-cost', date: new Date().toISOString(), backend: 'wasm', paperSteps: PAPER_STEPS, batch: BATCH, timedSteps, rows };
if (values.out) {
  await mkdir(dirname(values.out), { recursive: true });
  await writeFile(values.out, JSON.stringify(report, null, 2));
}
console.log(JSON.stringify(report, null, 2));
console.log('\nDNA            verify (5,000 val)  train step  train at paper preset  verify / train');
for (const r of rows as { dna: string; verifySeconds: number; trainStepSeconds: number; paperTrainSeconds: number; verifyShareOfTraining: number }[]) {
  console.log(
    `${r.dna.padEnd(14)} ${`${r.verifySeconds.toFixed(2)} s`.padStart(18)}  ${`${(r.trainStepSeconds * 1000).toFixed(0)} ms`.padStart(10)}  ${`${(r.paperTrainSeconds / 3600).toFixed(2)} h`.padStart(21)}  ${`${(r.verifyShareOfTraining * 100).toFixed(3)} %`.padStart(14)}`,
  );
}
