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

let wasmInit: Promise<string | null> | null = null;

/** Resolves to null once the wasm backend is usable, else to the reason why not. */
function initWasm(): Promise<string | null> {
  wasmInit ??= (async () => {
    try {
      setWasmPaths(wasmDir());
      registerWasmTrainingKernels();
      const ok = await tf.setBackend('wasm');
      return ok ? null : 'tf.setBackend("wasm") returned false';
    } catch (err) {
      return `wasm backend failed: ${err instanceof Error ? err.message : String(err)}`;
    }
  })();
  return wasmInit;
}

/**
 * Makes `preferred` (default 'wasm') the active tf.js backend. WASM gets the
 * binaries from node_modules/@tensorflow/tfjs-backend-wasm/dist and the
 * training kernels from shared/model/wasm-kernels.ts; if it cannot start,
 * falls back to 'cpu' and says why. Idempotent: repeated calls only switch
 * the active backend.
 */
export async function initNodeBackend(preferred: 'wasm' | 'cpu' = 'wasm'): Promise<NodeBackendInfo> {
  if (preferred === 'wasm') {
    const failure = await initWasm();
    if (failure === null) {
      if (tf.getBackend() !== 'wasm') await tf.setBackend('wasm');
      return { backend: 'wasm' };
    }
    await tf.setBackend('cpu');
    return { backend: tf.getBackend(), reason: failure };
  }
  if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
  return { backend: tf.getBackend() };
}
