/**
 * tf.js's threaded WASM build (XNNPACK on several threads) in Node.
 *
 * tfjs-backend-wasm 4.22 turns threads off in Node (its
 * WASM_HAS_MULTITHREAD_SUPPORT flag answers false there), and its threaded
 * build does not start in Node as shipped:
 *
 * 1. it gives emscripten the pthread worker script as a `blob:` URL and its
 *    main script as a Blob, which Node's worker_threads cannot load;
 * 2. its emscripten glue sets the global `Worker` to worker_threads' Worker
 *    when the module starts, so the worker class cannot simply be swapped;
 * 3. its C++ side caps the thread count at half the logical cores
 *    (`os.cpus().length / 2` in Node): 1 on a 2-core machine.
 *
 * {@link startThreadedWasmInNode} works around all three for one
 * `tf.setBackend('wasm')`: the pthread workers run the package's own worker
 * script from a temp file, their main script (the Blob) is written to a
 * temp file before it is posted, `Worker` reads as that wrapper class, and
 * `os.cpus()` reports twice the wanted thread count while the module starts.
 * The workers never hold the event loop, so they do not keep a finished
 * process alive.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Worker as NodeWorker, type TransferListItem } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount, version_wasm } from '@tensorflow/tfjs-backend-wasm';

interface LoadMessage {
  cmd?: string;
  urlOrBlob?: unknown;
}

function makeWorkerClass(dir: string, distDir: string): typeof NodeWorker {
  const require = createRequire(import.meta.url);
  const { wasmWorkerContents } = require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as {
    wasmWorkerContents: string;
  };
  const workerFile = path.join(dir, 'pthread-worker.cjs');
  // The main script is the factory's source text out of the package's Node bundle, evaluated
  // in the worker's global scope: it names that bundle's module variables, defined here.
  const prelude = [
    `global.require$$0 = require('fs');`,
    `global.require$$1 = require('path');`,
    `global.require$$4 = require('os');`,
    `global.commonjsGlobal = global;`,
    `global.__dirname = ${JSON.stringify(distDir)};`,
    `global.__filename = ${JSON.stringify(path.join(distDir, 'tf-backend-wasm.node.js'))};`,
  ].join('\n');
  // As tf.js does before making its Blob: the text holds "\n" escapes inside string literals.
  writeFileSync(workerFile, `${prelude}\n${wasmWorkerContents.replace(/\n/g, '\\n')}`);
  let mainScript: Promise<string> | undefined;

  return class PthreadWorker extends NodeWorker {
    /** Messages held back until the main script file is written (only while loading). */
    private queue: Promise<void> = Promise.resolve();
    private holding = 0;

    constructor() {
      super(workerFile);
      this.unref();
    }

    /**
     * emscripten refs a worker while its pthread runs, and XNNPACK's pool
     * threads run (waiting for work) as long as the backend lives: a process
     * would never exit by itself. The main thread waits for them
     * synchronously whenever it needs them, so they need no hold on the
     * event loop.
     */
    override ref(): void {
      // Deliberately nothing.
    }

    override postMessage(message: unknown, transferList?: readonly TransferListItem[]): void {
      const m = message as LoadMessage | null;
      if (m !== null && typeof m === 'object' && m.urlOrBlob instanceof Blob) {
        const blob = m.urlOrBlob;
        mainScript ??= blob.text().then((text) => {
          const file = path.join(dir, 'pthread-main.cjs');
          writeFileSync(file, text);
          return file;
        });
        const file = mainScript;
        this.holding++;
        this.queue = this.queue.then(async () => {
          super.postMessage({ ...m, urlOrBlob: await file }, transferList);
          this.holding--;
        });
        return;
      }
      // Synchronous whenever nothing is held: the main thread may block right after (pthread_create, then a wait).
      if (this.holding === 0) super.postMessage(message, transferList);
      else this.queue = this.queue.then(() => super.postMessage(message, transferList));
    }
  } as unknown as typeof NodeWorker;
}

/** What {@link startThreadedWasmInNode} got. */
export interface NodeWasmThreads {
  readonly ok: boolean;
  /** XNNPACK's thread count as the backend reports it. */
  readonly threads: number;
}

/**
 * `tf.setBackend('wasm')` on the threaded SIMD build with `threads` XNNPACK
 * threads (set the wasm paths and register kernels first). Only the first
 * start of the wasm backend in a process can be threaded. Throws if the
 * release is not 4.22 or the start takes longer than `timeoutMs` (a
 * pthread worker that never loads would otherwise leave it waiting
 * forever); the caller can then start the single-threaded build.
 */
export async function startThreadedWasmInNode(threads: number, distDir: string, timeoutMs = 60_000): Promise<NodeWasmThreads> {
  // The workarounds rest on this release's glue (its bundle's variable names, its message flow);
  // on another one a pthread worker could fail to load and setBackend would wait forever.
  if (!version_wasm.startsWith('4.22.')) {
    throw new Error(`the threaded wasm build in Node is only known to work with tfjs-backend-wasm 4.22, not ${version_wasm}`);
  }
  const wanted = Math.max(1, Math.min(8, Math.floor(threads)));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'petri-wasm-threads-'));
  const PthreadWorker = makeWorkerClass(dir, distDir);
  const g = globalThis as { Worker?: unknown };
  // emscripten assigns the global Worker when the module starts: keep ours.
  Object.defineProperty(g, 'Worker', { configurable: true, enumerable: false, get: () => PthreadWorker, set: () => undefined });
  const cpus = os.cpus;
  const mutableOs = os as { cpus: typeof os.cpus };
  mutableOs.cpus = () => {
    const real = cpus();
    return Array.from({ length: 2 * wanted }, (_, i) => real[i % Math.max(1, real.length)] as os.CpuInfo);
  };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(wanted);
  let ok = false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the threaded wasm build did not start within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs);
    });
    ok = await Promise.race([tf.setBackend('wasm'), timedOut]);
  } finally {
    clearTimeout(timer);
    mutableOs.cpus = cpus;
    // Later pthreads (none expected: the build pre-spawns 8) would be made with this class too.
    Object.defineProperty(g, 'Worker', { configurable: true, enumerable: false, writable: true, value: PthreadWorker });
  }
  // The module starts only once its pre-spawned workers have loaded both scripts: they are read.
  if (ok) rmSync(dir, { recursive: true, force: true });
  return { ok, threads: ok ? getThreadsCount() : 0 };
}
