/**
 * Worker thread of the verification pool: evaluates uploaded weights on a
 * private split with tf.js (wasm, else cpu), away from the event loop that
 * serves the sockets. Splits are loaded once and kept.
 */
import { readFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { sliceImageSet, type ImageSet } from '../shared/data/image-set.ts';
import { PROBE_IMAGES } from '../shared/protocol.ts';
import { parseDna } from '../shared/evolution/validate.ts';
import { buildModel, disposeModel } from '../shared/model/build.ts';
import { evaluateModel } from '../shared/model/evaluate.ts';
import { writeWeights } from '../shared/model/weights.ts';
import { WeightsFormatError, decodeWeights } from '../shared/model/weights-codec.ts';
import { loadSplit } from './datasets/index.ts';
import { initNodeBackend } from './tf-backend.ts';

export interface VerifyRequest {
  readonly id: number;
  readonly dataset: string;
  readonly split: 'validation' | 'test';
  readonly dna: unknown;
  readonly weightsPath: string;
  readonly keepPredictions: boolean;
  readonly probe: boolean;
}

export type VerifyReply =
  | { readonly id: number; readonly ok: true; readonly accuracy: number; readonly predictions?: Int32Array; readonly probeAccuracy?: number; readonly backend: string }
  | { readonly id: number; readonly ok: false; readonly badWeights: boolean; readonly message: string };

const { dataDir, backend } = workerData as { dataDir: string; backend: 'wasm' | 'cpu' };
const splits = new Map<string, Promise<ImageSet>>();
const ready = initNodeBackend(backend);

function cachedSplit(dataset: string, split: 'train' | 'validation' | 'test'): Promise<ImageSet> {
  const key = `${dataset}/${split}`;
  let loading = splits.get(key);
  if (loading === undefined) {
    loading = split === 'train'
      ? loadSplit(dataDir, dataset, 'train').then((all) => sliceImageSet(all, 0, Math.min(PROBE_IMAGES, all.count)))
      : loadSplit(dataDir, dataset, split);
    splits.set(key, loading);
    loading.catch(() => splits.delete(key));
  }
  return loading;
}

async function handle(request: VerifyRequest): Promise<VerifyReply> {
  const info = await ready;
  const data = await cachedSplit(request.dataset, request.split);
  let weights;
  let dna;
  try {
    dna = parseDna(request.dna);
    weights = decodeWeights(dna, new Uint8Array(await readFile(request.weightsPath)));
  } catch (err) {
    return { id: request.id, ok: false, badWeights: err instanceof WeightsFormatError || (err instanceof Error && err.name === 'DnaError'), message: String(err instanceof Error ? err.message : err) };
  }
  if (dna.inputShape.join('x') !== data.shape.join('x')) {
    return { id: request.id, ok: false, badWeights: false, message: `the DNA's input ${dna.inputShape.join('x')} does not fit ${request.dataset} (${data.shape.join('x')})` };
  }
  const built = buildModel(dna);
  try {
    writeWeights(built, weights);
    const result = await evaluateModel(built, data, { keepPredictions: request.keepPredictions });
    const probe = request.probe ? (await evaluateModel(built, await cachedSplit(request.dataset, 'train'))).accuracy : undefined;
    return { id: request.id, ok: true, accuracy: result.accuracy, predictions: result.predictions, probeAccuracy: probe, backend: info.backend };
  } finally {
    disposeModel(built);
    tf.disposeVariables();
  }
}

parentPort?.on('message', (request: VerifyRequest) => {
  handle(request).then(
    (reply) => parentPort?.postMessage(reply),
    (err: unknown) => parentPort?.postMessage({ id: request.id, ok: false, badWeights: false, message: String(err instanceof Error ? err.message : err) } satisfies VerifyReply),
  );
});
