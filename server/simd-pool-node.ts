/**
 * The Node edge of shared/model/simd-pool.ts: pool workers as
 * worker_threads eval workers. Such a worker has no `self`; a short prelude
 * gives the pool's source the Web Worker surface it uses (self.postMessage,
 * self.onmessage) over `parentPort`. The workers are unref'd: they sleep in
 * Atomics.wait between runs and must not keep a finished process alive
 * (the pool's start-up timer holds the process while they start).
 */
import { Worker } from 'node:worker_threads';
import type { PoolWorkerHandle, SpawnPoolWorker } from '../shared/model/simd-pool.ts';

const PRELUDE = `const self = (() => {
  const { parentPort } = require('node:worker_threads');
  return {
    postMessage: (message) => parentPort.postMessage(message),
    set onmessage(listener) { parentPort.on('message', (data) => listener({ data })); },
  };
})();
`;

/** A {@link SpawnPoolWorker} on node:worker_threads. */
export const spawnNodePoolWorker: SpawnPoolWorker = (source: string): PoolWorkerHandle => {
  const worker = new Worker(PRELUDE + source, { eval: true, name: 'petri-simd-pool' });
  worker.unref();
  let terminated = false;
  return {
    postMessage: (message) => worker.postMessage(message),
    onMessage: (listener) => {
      worker.on('message', listener);
      // A 'message' listener refs the worker's port again.
      worker.unref();
    },
    onError: (listener) => {
      worker.on('error', listener);
      worker.on('exit', (code) => {
        if (!terminated) listener(new Error(`the worker exited (code ${code})`));
      });
      worker.unref();
    },
    terminate: () => {
      terminated = true;
      void worker.terminate();
    },
  };
};
