/**
 * The browser edge of shared/model/simd-pool.ts: pool workers as classic
 * Web Workers from a blob: URL (the source is built at run time, so there
 * is no file for the bundler to emit). Needs a cross-origin isolated page
 * (a shared WebAssembly.Memory); works from the page and from a worker.
 */
import type { PoolWorkerHandle, SpawnPoolWorker } from '../../shared/model/simd-pool.ts';

/** A {@link SpawnPoolWorker} on Web Workers. */
export const spawnBrowserPoolWorker: SpawnPoolWorker = (source: string): PoolWorkerHandle => {
  const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  const worker = new Worker(url, { name: 'petri-simd-pool' });
  // The URL is needed until the worker has loaded its script: its first message or error says so.
  let blobUrl: string | null = url;
  const release = (): void => {
    if (blobUrl !== null) URL.revokeObjectURL(blobUrl);
    blobUrl = null;
  };
  return {
    postMessage: (message) => worker.postMessage(message),
    onMessage: (listener) => {
      worker.addEventListener('message', (event: MessageEvent<unknown>) => {
        release();
        listener(event.data);
      });
    },
    onError: (listener) => {
      worker.addEventListener('error', (event: ErrorEvent) => {
        release();
        listener(new Error(event.message || 'the worker failed to load'));
      });
      worker.addEventListener('messageerror', () => listener(new Error('a message to the worker could not be read')));
    },
    terminate: () => {
      release();
      worker.terminate();
    },
  };
};
