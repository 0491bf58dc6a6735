/**
 * Benchmark page: selects one tf.js backend and runs training/evaluation
 * throughput cells on it with the same code as in Node
 * (bench/lib/train-measure.ts). bench/train.ts drives it with playwright.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { parseDna } from '../../shared/evolution/validate.ts';
import { registerWasmTrainingKernels } from '../../shared/model/wasm-kernels.ts';
import { petriSimdActive } from '../../shared/model/wasm-heap.ts';
import { configureWebGpuSubmission } from '../../shared/model/webgpu-submit.ts';
import { startWasmBackend } from '../../shared/model/wasm-threads.ts';
import { petriSimdThreads, startSimdThreads } from '../../shared/model/simd-threads.ts';
import { relaxedSimd } from '../../shared/model/simd-kernels.ts';
import { spawnBrowserPoolWorker } from '../../client/train/simd-pool-browser.ts';
import { measureCellChecked, type CellResult, type MeasurePlan } from '../lib/train-measure.ts';

export interface PageBackendInfo {
  readonly backend: string;
  /** What runs the backend: the GPU adapter or GL renderer, or the wasm build and threads. */
  readonly detail: string;
}

declare global {
  interface Window {
    /** `threads`: the wasm backend's XNNPACK thread count (default: tf.js's own choice, half the logical cores). */
    petriBenchInit: (backend: string, threads?: number) => Promise<PageBackendInfo>;
    petriBenchCell: (dna: unknown, plan: MeasurePlan) => Promise<CellResult>;
  }
}

async function describe(backend: string): Promise<string> {
  if (backend === 'wasm') {
    const binary = performance
      .getEntriesByType('resource')
      .map((e) => e.name.split('/').pop() ?? '')
      .filter((n) => n.endsWith('.wasm'));
    return `${binary.join(', ')}; crossOriginIsolated=${String(self.crossOriginIsolated)}, XNNPACK threads=${getThreadsCount()}, Petri SIMD kernels=${petriSimdActive() ? 'on' : 'off'}, Petri SIMD threads=${petriSimdThreads()}, relaxed SIMD (FMA)=${relaxedSimd() ? 'on' : 'off'}`;
  }
  if (backend === 'webgl') {
    const gl = document.createElement('canvas').getContext('webgl2');
    if (gl === null) return 'no webgl2 context';
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    return String(gl.getParameter(ext === null ? gl.RENDERER : ext.UNMASKED_RENDERER_WEBGL));
  }
  if (backend === 'webgpu') {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: Record<string, string> } | null> } }).gpu;
    const adapter = await gpu?.requestAdapter();
    const info = adapter?.info;
    if (info === undefined) return 'adapter info unavailable';
    return [info.vendor, info.architecture, info.device, info.description].filter((x) => x).join(' / ');
  }
  return 'pure JavaScript';
}

window.petriBenchInit = async (backend, threads) => {
  if (backend === 'wasm') {
    setWasmPaths(new URL('./', location.href).href);
    registerWasmTrainingKernels();
  }
  // One queue submission per training step, as volunteer tabs do (shared/model/webgpu-submit.ts).
  if (backend === 'webgpu') configureWebGpuSubmission();
  // tf.js alone caps XNNPACK at half the logical cores (1 thread here); startWasmBackend lifts the cap.
  const ok = backend === 'wasm' && threads !== undefined ? (await startWasmBackend(threads)).ok : await tf.setBackend(backend);
  if (!ok) throw new Error(`tf.setBackend('${backend}') returned false`);
  await tf.ready();
  // Petri's own SIMD kernels (Winograd convs) on as many threads as XNNPACK, as volunteer tabs do.
  if (backend === 'wasm' && threads !== undefined && threads > 1) await startSimdThreads(threads, spawnBrowserPoolWorker);
  return { backend: tf.getBackend(), detail: await describe(backend) };
};

window.petriBenchCell = (dna, plan) => measureCellChecked(parseDna(dna), plan);

document.title = 'ready';
