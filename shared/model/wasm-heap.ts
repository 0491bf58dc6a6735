/**
 * Helpers for kernels that work on tfjs-backend-wasm's heap directly: the
 * backend's outputs as typed-array views, other wasm kernels called on raw
 * TensorInfos (no engine tensors), and freeing what they made.
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { simdKernelsFor, webAssembly, type SimdKernels, type WasmMemoryLike } from './simd-kernels.ts';

export const BACKEND = 'wasm';

/** The part of tfjs-backend-wasm's BackendWasm these kernels use. */
export interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32' | 'int32' | 'bool'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: TensorInfo['dataId'], force?: boolean): boolean;
}

export function asWasmBackend(backend: unknown): WasmBackendLike {
  const b = backend as Partial<WasmBackendLike> | null;
  if (b == null || typeof b.makeOutput !== 'function' || typeof b.typedArrayFromHeap !== 'function') {
    throw new Error('wasm training kernels: called with a backend that is not tfjs-backend-wasm');
  }
  return b as WasmBackendLike;
}

/**
 * A float32 view of a tensor on the heap. Take views only after the last
 * allocation: a heap growth detaches the views made before it.
 */
export function f32(backend: WasmBackendLike, t: TensorInfo): Float32Array {
  const a = backend.typedArrayFromHeap(t);
  if (!(a instanceof Float32Array)) throw new Error('wasm training kernels: expected a float32 tensor');
  return a;
}

/** Runs another wasm kernel on raw TensorInfos; the caller owns the result. */
export function run(backend: WasmBackendLike, name: string, inputs: NamedTensorInfoMap, attrs: NamedAttrMap = {}): TensorInfo {
  const out = tf.getKernel(name, BACKEND).kernelFunc({ inputs, backend, attrs });
  if (Array.isArray(out)) throw new Error(`wasm training kernels: ${name} returned several outputs`);
  return out;
}

export function free(backend: WasmBackendLike, ...ts: TensorInfo[]): void {
  for (const t of ts) backend.disposeData(t.dataId);
}

export function size(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

/** Tests turn Petri's SIMD passes off to check the paths without them, and count the kernel calls that used them. */
export const simdSwitch = { enabled: true, used: 0 };

/** Petri's SIMD kernels (simd-kernels.ts) over the backend's own memory, if it can be found and they link. */
export function simdFor(backend: WasmBackendLike, view: Float32Array): SimdKernels | null {
  if (!simdSwitch.enabled) return null;
  const kernels = linkedSimd(backend, view);
  if (kernels !== null) simdSwitch.used++;
  return kernels;
}

/** The backend's heap (a WebAssembly.Memory), where tf.js 4.22's module exposes it. */
export function wasmHeapMemory(backend: WasmBackendLike): WasmMemoryLike | null {
  const module = (backend as { wasm?: { wasmMemory?: unknown; asm?: { memory?: unknown } } }).wasm;
  const memory = module?.wasmMemory ?? module?.asm?.memory;
  return webAssembly !== undefined && memory instanceof webAssembly.Memory ? memory : null;
}

function linkedSimd(backend: WasmBackendLike, view: Float32Array): SimdKernels | null {
  const memory = wasmHeapMemory(backend);
  if (memory === null || memory.buffer !== view.buffer) return null;
  return simdKernelsFor(memory);
}

/** Whether Petri's SIMD kernels run on the current tf.js backend (false on any backend but wasm). */
export function petriSimdActive(): boolean {
  if (tf.getBackend() !== BACKEND || !simdSwitch.enabled) return false;
  const backend = asWasmBackend(tf.backend());
  const probe = backend.makeOutput([4], 'float32');
  try {
    return linkedSimd(backend, f32(backend, probe)) !== null;
  } finally {
    free(backend, probe);
  }
}
