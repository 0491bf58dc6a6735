/**
 * The real Verifier: a worker thread running tf.js, fed one request at a
 * time. Verification is CPU-bound; in a thread it never blocks the sockets.
 */
import { Worker } from 'node:worker_threads';
import type { Dna } from '../shared/evolution/dna.ts';
import { BadWeightsError, type Evaluation, type Verifier } from './verifier.ts';
import type { VerifyReply, VerifyRequest } from './verify-worker.ts';

export class ThreadVerifier implements Verifier {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (e: Evaluation) => void; reject: (err: Error) => void }>();

  constructor(
    private readonly dataDir: string,
    private readonly backend: 'wasm' | 'cpu' = 'wasm',
  ) {}

  private start(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(new URL('./verify-worker-entry.mjs', import.meta.url), {
      workerData: { dataDir: this.dataDir, backend: this.backend },
    });
    worker.on('message', (reply: VerifyReply) => {
      const waiter = this.pending.get(reply.id);
      if (waiter === undefined) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.ok) waiter.resolve({ accuracy: reply.accuracy, predictions: reply.predictions, probeAccuracy: reply.probeAccuracy });
      else waiter.reject(reply.badWeights ? new BadWeightsError(reply.message) : new Error(reply.message));
    });
    const failAll = (err: Error) => {
      for (const waiter of this.pending.values()) waiter.reject(err);
      this.pending.clear();
      this.worker = null;
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => failAll(new Error(`the verification thread exited (code ${code})`)));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  evaluate(request: { dataset: string; split: 'validation' | 'test'; dna: Dna; weightsPath: string; keepPredictions?: boolean; probe?: boolean }): Promise<Evaluation> {
    const worker = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Keep the process alive while a verification is pending, not while the thread idles.
      worker.ref();
      const message: VerifyRequest = { id, dataset: request.dataset, split: request.split, dna: request.dna, weightsPath: request.weightsPath, keepPredictions: request.keepPredictions ?? false, probe: request.probe ?? false };
      worker.postMessage(message);
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (worker !== null) await worker.terminate();
  }
}
