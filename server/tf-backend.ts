/**
 * tf.js backend selection for Node processes (server-side training,
 * benchmarks, tests): the WASM backend with Petri's training kernels, or the
 * pure-JS CPU backend when WASM cannot start.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerWasmTrainingKernels } from '../shared/model/wasm-kernels.ts';

/** The backend that is active after {@link initNodeBackend}. */
export interface NodeBackendInfo {
  backend: string;
  /** Why the preferred backend is not the active one. */
  reason?: string;
  /** wasm on tf.js's threaded build only: XNNPACK's thread count. */
  threads?: number;
}

/**
 * XNNPACK threads for the wasm backend in Node, from PETRI_WASM_THREADS
 * (default 1: tf.js's single-threaded SIMD build, as tf.js itself does in
 * Node). Above 1, server/wasm-node-threads.ts starts the threaded build.
 */
export function nodeWasmThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.PETRI_WASM_THREADS;
  if (raw === undefined || raw.trim() === '') return 1;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 8) throw new Error(`PETRI_WASM_THREADS must be an integer from 1 to 8, not "${raw}"`);
  return n;
}

/**
 * The wasm backend's emscripten loader reads its .wasm binaries with fs in
 * Node and accepts a plain directory path (with a trailing separator) or a
 * file:// URL as the prefix (both checked on Node 20); no fetch is involved.
 */
function wasmDir(): string {
  const require = createRequire(import.meta.url);
  // The package's "main" is dist/tf-backend-wasm.node.js, next to the binaries.
  return path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep;
}

let wasmInit: Promise<{ failure: string | null; threads?: number }> | null = null;

/** Resolves with failure null once the wasm backend is usable, else with the reason why not. */
function initWasm(): Promise<{ failure: string | null; threads?: number }> {
  wasmInit ??= (async () => {
    try {
      const threads = nodeWasmThreads();
      setWasmPaths(wasmDir());
      registerWasmTrainingKernels();
      if (threads > 1) {
        const { startThreadedWasmInNode } = await import('./wasm-node-threads.ts');
        const started = await startThreadedWasmInNode(threads, wasmDir());
        return started.ok ? { failure: null, threads: started.threads } : { failure: 'tf.setBackend("wasm") (threaded build) returned false' };
      }
      const ok = await tf.setBackend('wasm');
      return { failure: ok ? null : 'tf.setBackend("wasm") returned false' };
    } catch (err) {
      return { failure: `wasm backend failed: ${err instanceof Error ? err.message : String(err)}` };
    }
  })();
  return wasmInit;
}

/**
 * Makes `preferred` (default 'wasm') the active tf.js backend. WASM gets the
 * binaries from node_modules/@tensorflow/tfjs-backend-wasm/dist and the
 * training kernels from shared/model/wasm-kernels.ts (and, with
 * PETRI_WASM_THREADS above 1, the threaded build); if it cannot start,
 * falls back to 'cpu' and says why. Idempotent: repeated calls only switch
 * the active backend.
 */
export async function initNodeBackend(preferred: 'wasm' | 'cpu' = 'wasm'): Promise<NodeBackendInfo> {
  if (preferred === 'wasm') {
    const { failure, threads } = await initWasm();
    if (failure === null) {
      if (tf.getBackend() !== 'wasm') await tf.setBackend('wasm');
      return threads !== undefined ? { backend: 'wasm', threads } : { backend: 'wasm' };
    }
    await tf.setBackend('cpu');
    return { backend: tf.getBackend(), reason: failure };
  }
  if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
  return { backend: tf.getBackend() };
}
