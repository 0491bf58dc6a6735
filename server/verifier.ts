/**
 * The server's judgement of a child: its accuracy on a private split
 * (validation for fitness, test for the final report), computed from the
 * uploaded weights. The real implementation runs tf.js (wasm) in a worker
 * thread (verify-pool.ts) so that verification never stalls the sockets.
 */
import type { Dna } from '../shared/evolution/dna.ts';

export interface Evaluation {
  readonly accuracy: number;
  /** Predicted class per image, when asked for (ensembles). */
  readonly predictions?: Int32Array;
  /** Accuracy on the probe set (shared/protocol.ts PROBE_IMAGES), when asked for. */
  readonly probeAccuracy?: number;
}

export interface Verifier {
  /**
   * Accuracy of the weights at `weightsPath` for `dna` on a split of a
   * dataset. Rejects with a WeightsFormatError-like error when the weights do
   * not fit the DNA (wrong size, NaN): the child is refused.
   */
  evaluate(request: {
    dataset: string;
    split: 'validation' | 'test';
    dna: Dna;
    weightsPath: string;
    keepPredictions?: boolean;
    /** Also measure the probe set, to check a worker's claim like for like. */
    probe?: boolean;
  }): Promise<Evaluation>;
  close(): Promise<void>;
}

/** Thrown by a verifier when the weights themselves are bad (not a server fault). */
export class BadWeightsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadWeightsError';
  }
}
