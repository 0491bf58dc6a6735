/**
 * Export of an individual as a standard tf.js LayersModel: model.json with a
 * weights manifest pointing at one binary, loadable by plain
 * `tf.loadLayersModel` with no Petri code.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dna } from '../shared/evolution/dna.ts';
import { buildModel, disposeModel } from '../shared/model/build.ts';
import { writeWeights } from '../shared/model/weights.ts';
import { decodeWeights } from '../shared/model/weights-codec.ts';

export interface ExportedModel {
  /** The model.json object; its manifest names `weightsFile`. */
  readonly modelJson: Record<string, unknown>;
  readonly weightData: Uint8Array;
}

/** Builds the tf.js artifacts of a DNA with its Petri weights binary. */
export async function exportModel(dna: Dna, petriWeights: Uint8Array, weightsFile: string): Promise<ExportedModel> {
  const built = buildModel(dna);
  try {
    writeWeights(built, decodeWeights(dna, petriWeights));
    let artifacts: tf.io.ModelArtifacts | undefined;
    await built.model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    if (artifacts === undefined || artifacts.weightData === undefined) throw new Error('tf.js saved no artifacts');
    const data = artifacts.weightData;
    const weightData = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(tf.io.concatenateArrayBuffers(data));
    return {
      modelJson: {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: 'petri',
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [weightsFile], weights: artifacts.weightSpecs }],
      },
      weightData,
    };
  } finally {
    disposeModel(built);
  }
}
