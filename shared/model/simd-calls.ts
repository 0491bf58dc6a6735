/**
 * Runs lists of calls to Petri's SIMD kernels ("programs"), one per thread.
 * Program 0 runs on the calling thread; the others run on a pool of workers
 * sharing the wasm heap (simd-pool.ts) where one has been installed, and
 * one after another on the calling thread where not. A kernel splits its
 * work into independent programs and does not care which happens.
 */
import type { SimdKernels } from './simd-kernels.ts';

/** A call: the kernel's name, then its i32 arguments. */
export type SimdCall = readonly [keyof SimdKernels, ...number[]];

/** What runs several programs at once (a worker pool). */
export interface SimdProgramRunner {
  readonly threads: number;
  run(programs: readonly (readonly SimdCall[])[]): void;
}

/** Runners by the kernels' instance, which is one per memory (simdKernelsFor). */
const runners = new WeakMap<SimdKernels, SimdProgramRunner>();

/**
 * Installs (or with null removes) the runner that spreads programs over
 * threads for the kernels bound to one memory; its workers must share that memory.
 */
export function setSimdProgramRunner(simd: SimdKernels, r: SimdProgramRunner | null): void {
  if (r === null) runners.delete(simd);
  else runners.set(simd, r);
}

/** How many programs run at once on these kernels' memory: the pool's threads, or 1. */
export function simdThreads(simd: SimdKernels): number {
  return runners.get(simd)?.threads ?? 1;
}

/** Runs every program; returns when all are done. */
export function runSimdPrograms(simd: SimdKernels, programs: readonly (readonly SimdCall[])[]): void {
  const runner = runners.get(simd);
  if (runner !== undefined && programs.length > 1) {
    runner.run(programs);
    return;
  }
  for (const program of programs) runProgram(simd, program);
}

/** Runs one program on this thread. */
export function runProgram(simd: SimdKernels, program: readonly SimdCall[]): void {
  const table = simd as unknown as Record<string, (...args: number[]) => void>;
  for (const [name, ...args] of program) {
    const fn = table[name];
    if (fn === undefined) throw new Error(`simd kernels: no function ${name}`);
    fn(...args);
  }
}

/**
 * A call that copies `pixels` rows of `from` channels into rows of `to`
 * channels (the first min(from, to) of each): NHWC tensors to and from
 * copies with channel counts padded for the SIMD loops.
 */
export function channelCopy(src: number, dst: number, pixels: number, from: number, to: number): SimdCall {
  return ['copyRuns', src, dst, 1, 0, 0, pixels, Math.min(from, to) * 4, from * 4, to * 4];
}

/** Adds the per-thread partial sums at `at` (`threads` blocks of `floats` floats, a multiple of 4) into the first. */
export function addPartials(simd: SimdKernels, at: number, threads: number, floats: number): void {
  for (let t = 1; t < threads; t++) simd.addInto(at, at + t * floats * 4, floats / 4);
}

/** Images [i0, i1) of thread t when n images are split between `threads` programs. */
export function imagesOfThread(n: number, threads: number, t: number): [number, number] {
  return [Math.floor((n * t) / threads), Math.floor((n * (t + 1)) / threads)];
}
