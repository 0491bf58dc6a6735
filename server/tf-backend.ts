/**
 * tf.js backend selection for Node processes (server-side training,
 * benchmarks, tests): the WASM backend with Petri's training kernels, or the
 * pure-JS CPU backend when WASM cannot start.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import v8 from 'node:v8';
import * as tf from '@tensorflow/tfjs';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { relaxedSimdSwitch, relaxedSimdValidates } from '../shared/model/simd-kernels.ts';
import { startSimdThreads } from '../shared/model/simd-threads.ts';
import { registerWasmTrainingKernels } from '../shared/model/wasm-kernels.ts';
import { spawnNodePoolWorker } from './simd-pool-node.ts';

/** The backend that is active after {@link initNodeBackend}. */
export interface NodeBackendInfo {
  backend: string;
  /** Why the preferred backend is not the active one. */
  reason?: string;
  /** wasm on tf.js's threaded build only: XNNPACK's thread count. */
  threads?: number;
  /** wasm only: why the threaded build was asked for but the single-threaded one runs. */
  threadsFallback?: string;
  /**
   * wasm on the threaded build only: why Petri's own SIMD kernels
   * (shared/model/simd-threads.ts) stay on one thread while XNNPACK has `threads`.
   */
  simdThreadsFallback?: string;
}

/** What the threaded start does; tests put a failing one here. */
export type ThreadedStart = (threads: number, distDir: string) => Promise<{ ok: boolean; threads: number }>;

export interface NodeBackendOptions {
  /**
   * XNNPACK threads for wasm (default {@link nodeWasmThreads}: PETRI_WASM_THREADS, else 1).
   * Only the first wasm start of a process uses it.
   */
  threads?: number;
  /** Replaces server/wasm-node-threads.ts's start (tests). */
  startThreaded?: ThreadedStart;
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
 * Whether Petri's SIMD kernels may use WebAssembly relaxed SIMD in this
 * Node process: yes unless PETRI_RELAXED_SIMD is 0. Their GEMMs then
 * multiply-add with f32x4.relaxed_madd (fused where the CPU has FMA), as in
 * Chromium. Node 22 has relaxed SIMD on; Node 20 keeps it behind
 * --experimental-wasm-relaxed-simd, which {@link initNodeBackend} turns on
 * before anything compiles Petri's module (V8's flags are process-wide, so
 * the pool's worker threads get it too).
 */
export function nodeRelaxedSimd(env: NodeJS.ProcessEnv = process.env): boolean {
  const raw = env.PETRI_RELAXED_SIMD;
  if (raw === undefined || raw.trim() === '' || raw === '1') return true;
  if (raw === '0') return false;
  throw new Error(`PETRI_RELAXED_SIMD must be 0 (off) or 1 (on, the default), not "${raw}"`);
}

function allowRelaxedSimd(): void {
  relaxedSimdSwitch.allowed = nodeRelaxedSimd();
  // Only where it is not on already (Node 22 ships it; the flag may not exist there).
  if (relaxedSimdSwitch.allowed && !relaxedSimdValidates()) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
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

interface WasmStart {
  failure: string | null;
  threads?: number;
  threadsFallback?: string;
  simdThreadsFallback?: string;
}

let wasmInit: Promise<WasmStart> | null = null;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Resolves with failure null once the wasm backend is usable, else with the
 * reason why not. With threads above 1 it tries tf.js's threaded build
 * first; if that is refused, fails or times out, it starts the
 * single-threaded build and says why in threadsFallback.
 */
function initWasm(options: NodeBackendOptions): Promise<WasmStart> {
  wasmInit ??= (async (): Promise<WasmStart> => {
    let threadsFallback: string | undefined;
    try {
      const threads = options.threads ?? nodeWasmThreads();
      allowRelaxedSimd();
      setWasmPaths(wasmDir());
      registerWasmTrainingKernels();
      if (threads > 1) {
        try {
          const start: ThreadedStart = options.startThreaded ?? (await import('./wasm-node-threads.ts')).startThreadedWasmInNode;
          const started = await start(threads, wasmDir());
          if (started.ok) {
            const simd = await startSimdThreads(started.threads, spawnNodePoolWorker);
            return simd.reason === undefined
              ? { failure: null, threads: started.threads }
              : { failure: null, threads: started.threads, simdThreadsFallback: simd.reason };
          }
          threadsFallback = 'tf.setBackend("wasm") on the threaded build returned false';
        } catch (err) {
          threadsFallback = message(err);
        }
        // The single-threaded SIMD build, as tf.js itself picks in Node.
        tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
        setThreadsCount(1);
      }
      const ok = await tf.setBackend('wasm');
      const failure = ok ? null : 'tf.setBackend("wasm") returned false';
      return threadsFallback === undefined ? { failure } : { failure, threadsFallback };
    } catch (err) {
      const failure = `wasm backend failed: ${message(err)}`;
      return threadsFallback === undefined ? { failure } : { failure, threadsFallback };
    }
  })();
  return wasmInit;
}

/**
 * Makes `preferred` (default 'wasm') the active tf.js backend. WASM gets the
 * binaries from node_modules/@tensorflow/tfjs-backend-wasm/dist and the
 * training kernels from shared/model/wasm-kernels.ts (and, with
 * options.threads or PETRI_WASM_THREADS above 1, the threaded build, else
 * the single-threaded one with the reason in threadsFallback); if wasm
 * cannot start at all, falls back to 'cpu' and says why. Idempotent:
 * repeated calls only switch the active backend (the first call's thread
 * count stays).
 */
export async function initNodeBackend(preferred: 'wasm' | 'cpu' = 'wasm', options: NodeBackendOptions = {}): Promise<NodeBackendInfo> {
  if (preferred === 'wasm') {
    const { failure, threads, threadsFallback, simdThreadsFallback } = await initWasm(options);
    if (failure === null) {
      if (tf.getBackend() !== 'wasm') await tf.setBackend('wasm');
      return {
        backend: 'wasm',
        ...(threads !== undefined ? { threads } : {}),
        ...(threadsFallback !== undefined ? { threadsFallback } : {}),
        ...(simdThreadsFallback !== undefined ? { simdThreadsFallback } : {}),
      };
    }
    await tf.setBackend('cpu');
    return { backend: tf.getBackend(), reason: failure };
  }
  if (tf.getBackend() !== 'cpu') await tf.setBackend('cpu');
  return { backend: tf.getBackend() };
}
