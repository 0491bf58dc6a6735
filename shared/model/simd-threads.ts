/**
 * Puts Petri's SIMD kernels on as many threads as XNNPACK has: a pool of
 * workers (simd-pool.ts) on the wasm backend's shared heap, installed as
 * the runner of simd-calls.ts, so kernels that split their work into
 * programs (winograd.ts) run them side by side.
 */
import * as tf from '@tensorflow/tfjs';
import { runProgram, setSimdProgramRunner, simdThreads, type SimdCall } from './simd-calls.ts';
import { relaxedSimd, simdKernelsFor, simdModuleBytes } from './simd-kernels.ts';
import { createSimdPool, type SimdPool, type SpawnPoolWorker } from './simd-pool.ts';
import { asWasmBackend, BACKEND, wasmHeapMemory } from './wasm-heap.ts';

/** What {@link startSimdThreads} did. */
export interface SimdThreadsInfo {
  /** Threads Petri's kernels run on (1: the calling thread only). */
  readonly threads: number;
  /** Why not more, where `threads` is 1 and more were asked for. */
  readonly reason?: string;
}

let pool: SimdPool | null = null;

/**
 * Starts the pool for the active wasm backend with `threads` threads (the
 * caller's included). Only the threaded build's heap is shared; on any
 * other it stays at one thread and says why. Idempotent for one heap.
 */
export async function startSimdThreads(threads: number, spawn: SpawnPoolWorker): Promise<SimdThreadsInfo> {
  if (threads <= 1) return { threads: 1 };
  if (tf.getBackend() !== BACKEND) return { threads: 1, reason: 'the active backend is not wasm' };
  const memory = wasmHeapMemory(asWasmBackend(tf.backend()));
  if (memory === null) return { threads: 1, reason: 'the wasm heap was not found' };
  if (typeof SharedArrayBuffer === 'undefined' || !(memory.buffer instanceof SharedArrayBuffer)) {
    return { threads: 1, reason: 'the wasm heap is not shared (single-threaded build)' };
  }
  const simd = simdKernelsFor(memory);
  if (simd === null) return { threads: 1, reason: 'Petri\'s SIMD module does not link here' };
  if (simdThreads(simd) > 1) return { threads: simdThreads(simd) };
  try {
    const started = await createSimdPool({ memory, moduleBytes: simdModuleBytes(true, relaxedSimd()), threads, spawn });
    pool = started;
    setSimdProgramRunner(simd, {
      threads: started.threads,
      run: (programs: readonly (readonly SimdCall[])[]) => {
        if (started.broken !== null) {
          // A dead pool must not stop training: the programs are independent, run them here.
          for (const program of programs) runProgram(simd, program);
          return;
        }
        started.run(programs.map((p) => started.encode(p)));
      },
    });
    return { threads: started.threads };
  } catch (err) {
    return { threads: 1, reason: `the SIMD worker pool did not start: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** Stops the pool (tests); kernels go back to one thread. */
export function stopSimdThreads(): void {
  if (pool === null) return;
  const memory = tf.getBackend() === BACKEND ? wasmHeapMemory(asWasmBackend(tf.backend())) : null;
  const simd = memory === null ? null : simdKernelsFor(memory);
  if (simd !== null) setSimdProgramRunner(simd, null);
  pool.dispose();
  pool = null;
}

/** Threads Petri's SIMD kernels run on for the active backend's heap (1 off wasm or without a pool). */
export function petriSimdThreads(): number {
  if (tf.getBackend() !== BACKEND) return 1;
  const memory = wasmHeapMemory(asWasmBackend(tf.backend()));
  const simd = memory === null ? null : simdKernelsFor(memory);
  return simd === null ? 1 : simdThreads(simd);
}
