/**
 * Multi-threaded tf.js WASM backend (XNNPACK on several threads).
 *
 * Where the page is cross-origin isolated (SharedArrayBuffer usable),
 * tfjs-backend-wasm 4.22 loads its threaded SIMD build, but its C++ side
 * caps the thread pool at *half* the logical core count it reads at module
 * start-up (emscripten_num_logical_cores, i.e. navigator.hardwareConcurrency
 * in a browser): `threads = min(max(requested or cores/2, 1), 8, cores/2)`
 * (read from the disassembly of init_with_threads_count in
 * tfjs-backend-wasm-threaded-simd.wasm). On a machine with 2 logical cores
 * that is always 1, whatever `setThreadsCount` asks; on 4 it is at most 2.
 *
 * {@link startWasmBackend} asks for `threads` and, only while the wasm
 * module starts, shows it a hardwareConcurrency of 2 x threads, so the cap
 * becomes the requested count; the real value is restored right after.
 * Nothing else reads the shadowed value in that window except tf.js.
 */
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

/** The most threads worth asking for: the wasm build pre-spawns 8 workers, and the cap above is 8. */
export const MAX_WASM_THREADS = 8;

/**
 * Threads for a training worker with `logicalCores` logical cores: all of
 * them on 1-2 cores (a 2-core machine's second core doubles conv speed), half
 * of them above that (hyper-threads add little to SIMD arithmetic and the
 * volunteer keeps a responsive machine), at most 4.
 */
export function defaultWasmThreads(logicalCores: number | undefined): number {
  const cores = Number.isFinite(logicalCores) && (logicalCores ?? 0) >= 1 ? Math.floor(logicalCores as number) : 1;
  if (cores <= 2) return cores;
  return Math.min(4, Math.max(2, Math.floor(cores / 2)));
}

/** What the wasm backend runs on after {@link startWasmBackend}. */
export interface WasmThreadsInfo {
  /** Whether setBackend('wasm') succeeded. */
  readonly ok: boolean;
  /** XNNPACK's thread count as the backend reports it (1 on the non-threaded builds). */
  readonly threads: number;
  /** Whether the threaded build could be used here (cross-origin isolated, SharedArrayBuffer). */
  readonly threadedBuild: boolean;
}

interface NavigatorLike {
  hardwareConcurrency?: number;
}

/**
 * Calls `tf.setBackend('wasm')` with XNNPACK asked to use `threads` threads
 * (set the wasm paths and register kernels before). The count takes effect
 * only the first time the wasm backend starts in this realm; a later call
 * switches to it and reports the count it started with.
 */
export async function startWasmBackend(threads: number): Promise<WasmThreadsInfo> {
  const wanted = Math.max(1, Math.min(MAX_WASM_THREADS, Math.floor(threads)));
  const threadedBuild = (await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) === true;
  setThreadsCount(wanted);
  const nav = (globalThis as { navigator?: NavigatorLike }).navigator;
  let shadowed = false;
  if (threadedBuild && nav !== undefined && wanted > 1) {
    try {
      // An own property on the navigator object hides the prototype's getter.
      Object.defineProperty(nav, 'hardwareConcurrency', { value: 2 * wanted, configurable: true, enumerable: true });
      shadowed = true;
    } catch {
      // Not configurable here: XNNPACK keeps its own cap.
    }
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend('wasm');
  } finally {
    if (shadowed && nav !== undefined) delete nav.hardwareConcurrency;
  }
  let reported = 1;
  if (ok) {
    try {
      reported = getThreadsCount();
    } catch {
      reported = 1;
    }
  }
  return { ok, threads: reported, threadedBuild };
}
