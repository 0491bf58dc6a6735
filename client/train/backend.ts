/**
 * Picks the tf.js backend for this tab's training worker: WebGPU first, then
 * WebGL, WASM and the plain JavaScript CPU backend (or only the one the
 * address forces), and says in plain words why each better one was passed
 * over. Runs inside the dedicated Web Worker.
 */
import * as tf from '@tensorflow/tfjs';
import { BACKENDS, type Backend } from '../../shared/protocol.ts';
import { BACKEND_LABELS } from './backend-names.ts';
import type { BackendReport } from './messages.ts';
import wasmUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimdUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedUrl from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';

interface AdapterInfo {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

interface GpuAdapterLike {
  readonly info?: AdapterInfo;
  readonly isFallbackAdapter?: boolean;
  requestAdapterInfo?(): Promise<AdapterInfo>;
}

interface GpuLike {
  requestAdapter(options?: { powerPreference?: string }): Promise<GpuAdapterLike | null>;
}

type Attempt = { ok: true; adapter: string; software: boolean; threads?: number } | { ok: false; reason: string };

function short(text: string, max = 140): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

function errorText(err: unknown): string {
  return short(err instanceof Error ? err.message : String(err));
}

/** Checks the backend really computes (a broken driver can fail only on first use). */
async function smokeTest(): Promise<void> {
  const t = tf.tidy(() => tf.add(tf.tensor1d([1, 2, 3]), 1));
  const values = await t.data();
  t.dispose();
  if (values[2] !== 4) throw new Error('it computed a wrong result in a smoke test');
}

async function tryWebGpu(): Promise<Attempt> {
  const gpu = (globalThis.navigator as unknown as { gpu?: GpuLike } | undefined)?.gpu;
  if (gpu === undefined) {
    const secure = (globalThis as { isSecureContext?: boolean }).isSecureContext !== false;
    return {
      ok: false,
      reason: secure ? 'this browser does not offer WebGPU' : 'WebGPU needs a secure page (https, or localhost); this server is reached over plain http',
    };
  }
  let adapter: GpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    return { ok: false, reason: `WebGPU found no usable GPU (${errorText(err)})` };
  }
  if (adapter === null) return { ok: false, reason: 'WebGPU is there but found no usable GPU adapter (drivers, or GPU access turned off)' };
  const info = adapter.info ?? (await adapter.requestAdapterInfo?.().catch(() => undefined)) ?? {};
  const parts = [info.description, [info.vendor, info.architecture, info.device].filter((x) => x).join(' ')].filter((x): x is string => !!x && x.trim() !== '');
  const name = short(parts[0] ?? 'unnamed GPU adapter', 180);
  const software = adapter.isFallbackAdapter === true || info.isFallbackAdapter === true || /swiftshader|llvmpipe|software|basic render/i.test(parts.join(' '));
  await import('@tensorflow/tfjs-backend-webgpu');
  const { configureWebGpuSubmission } = await import('../../shared/model/webgpu-submit.ts');
  configureWebGpuSubmission();
  if (!(await tf.setBackend('webgpu'))) return { ok: false, reason: 'the WebGPU backend of tf.js could not start on this GPU' };
  await smokeTest();
  return { ok: true, adapter: name, software };
}

async function tryWebGl(): Promise<Attempt> {
  if (!(await tf.setBackend('webgl'))) return { ok: false, reason: 'WebGL is not available here' };
  await smokeTest();
  let renderer = 'WebGL 2';
  try {
    const canvas = new OffscreenCanvas(1, 1);
    const gl = canvas.getContext('webgl2');
    const ext = gl?.getExtension('WEBGL_debug_renderer_info');
    if (gl && ext) renderer = short(String(gl.getParameter(ext.UNMASKED_RENDERER_WEBGL)), 180);
  } catch {
    // The name is only for display.
  }
  return { ok: true, adapter: renderer, software: /swiftshader|llvmpipe|software/i.test(renderer) };
}

async function tryWasm(): Promise<Attempt> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const { registerWasmTrainingKernels } = await import('../../shared/model/wasm-kernels.ts');
  const { defaultWasmThreads, startWasmBackend } = await import('../../shared/model/wasm-threads.ts');
  wasm.setWasmPaths({
    'tfjs-backend-wasm.wasm': wasmUrl,
    'tfjs-backend-wasm-simd.wasm': wasmSimdUrl,
    'tfjs-backend-wasm-threaded-simd.wasm': wasmThreadedUrl,
  });
  // Conv nets need the project's training kernels on wasm (Conv2DBackpropFilter and faster ones).
  registerWasmTrainingKernels();
  // XNNPACK on defaultWasmThreads(cores) threads where the page is cross-origin isolated (the server's
  // headers, server/http/isolation.ts: SharedArrayBuffer, so tf.js's threaded build); one elsewhere.
  const cores = globalThis.navigator?.hardwareConcurrency;
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  const threads = isolated ? defaultWasmThreads(cores) : 1;
  // On one thread, the single-threaded SIMD build: the threaded one would pre-spawn 8 pthread workers for nothing.
  if (threads === 1) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  const started = await startWasmBackend(threads);
  if (!started.ok) return { ok: false, reason: 'WebAssembly could not start' };
  // Petri's own SIMD kernels (Winograd convs) on as many threads as XNNPACK.
  const { startSimdThreads } = await import('../../shared/model/simd-threads.ts');
  const { spawnBrowserPoolWorker } = await import('./simd-pool-browser.ts');
  const simd = await startSimdThreads(started.threads, spawnBrowserPoolWorker);
  await smokeTest();
  const notes = [
    cores ? `${cores} logical cores` : '',
    isolated ? '' : 'the page is not cross-origin isolated',
    simd.reason !== undefined ? `Petri's kernels on one thread: ${simd.reason}` : '',
  ].filter((n) => n !== '');
  return {
    ok: true,
    adapter: `CPU via WebAssembly, ${started.threads === 1 ? 'one thread' : `${started.threads} threads`}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`,
    software: false,
    threads: started.threads,
  };
}

async function tryCpu(): Promise<Attempt> {
  if (!(await tf.setBackend('cpu'))) return { ok: false, reason: 'the JavaScript backend could not start' };
  await smokeTest();
  return { ok: true, adapter: 'CPU via plain JavaScript (slowest)', software: false };
}

const TRIES: Record<Backend, () => Promise<Attempt>> = { webgpu: tryWebGpu, webgl: tryWebGl, wasm: tryWasm, cpu: tryCpu };

/**
 * Makes the best available backend active. With `forced`, only that one
 * is tried. @throws Error naming every failure when none works.
 */
export async function selectBackend(forced: Backend | null): Promise<BackendReport> {
  const order: readonly Backend[] = forced === null ? BACKENDS : [forced];
  const reasons: string[] = [];
  for (const backend of order) {
    let attempt: Attempt;
    try {
      attempt = await TRIES[backend]();
    } catch (err) {
      attempt = { ok: false, reason: `${BACKEND_LABELS[backend]} failed: ${errorText(err)}` };
    }
    if (attempt.ok) {
      const why = forced !== null && forced !== 'webgpu' ? `${BACKEND_LABELS[forced]} was chosen in the address (backend=${forced})` : reasons.join('; ');
      return {
        backend,
        adapter: attempt.adapter,
        software: attempt.software,
        ...(attempt.threads !== undefined ? { threads: attempt.threads } : {}),
        ...(backend !== 'webgpu' && why !== '' ? { fallbackReason: short(why, 300) } : {}),
      };
    }
    reasons.push(attempt.reason);
  }
  throw new Error(reasons.join('; '));
}
