/**
 * A small synchronous thread pool for the functions of one wasm module
 * (simd-kernels.ts's) that work in place on a shared WebAssembly.Memory.
 *
 * Each thread runs a "program": calls to the module's exported functions,
 * encoded as i32s, `[functionIndex, argc, arg0 .. arg(argc-1)]` repeated
 * (see {@link SimdPool.encode} and {@link SimdPool.fn}). programs[0] runs on
 * the calling thread, programs[i] on worker i, and {@link SimdPool.run}
 * returns once all are done: the caller blocks, so a kernel split over
 * threads is called like a plain function from tf.js's synchronous kernels.
 *
 * Each worker has one SharedArrayBuffer (its "control"): a sequence number
 * the caller bumps to start a program, the sequence of the last finished
 * one, an error record, then the program. Workers sleep in Atomics.wait;
 * the caller sleeps in Atomics.wait where it may (Node, Web Workers) and
 * polls with Atomics.load where it may not (a page's main thread). Both
 * poll briefly before sleeping, since a futex wake costs tens of
 * microseconds. Nothing here holds a view of the wasm memory, so memory
 * growth needs no care: the wasm code of every thread sees the new size.
 *
 * Pure: no Node or DOM API. The edges give {@link SpawnPoolWorker}
 * (server/simd-pool-node.ts, client/train/simd-pool-browser.ts).
 */
import type { WasmMemoryLike } from './simd-kernels.ts';

/** A started worker thread, as the pool needs it. */
export interface PoolWorkerHandle {
  postMessage(message: unknown): void;
  /** Messages the worker posts (their data). */
  onMessage(listener: (message: unknown) => void): void;
  /** Uncaught errors and unexpected exits of the worker. */
  onError(listener: (error: unknown) => void): void;
  terminate(): void;
}

/**
 * Starts a worker running `source`: classic-script JavaScript that talks
 * through `self.postMessage` and `self.onmessage = (event) => ...` (read
 * `event.data`), as in a browser's Web Worker. Where there is no `self`
 * (Node's worker_threads) the spawner defines one before the source.
 */
export type SpawnPoolWorker = (source: string) => PoolWorkerHandle;

export interface SimdPoolOptions {
  /** A shared WebAssembly.Memory, the one the module imports as env.memory. */
  memory: WasmMemoryLike;
  /** The module: imports env.memory only, exports functions of i32 parameters. */
  moduleBytes: Uint8Array;
  /** Threads including the calling one (1: no workers). */
  threads: number;
  spawn: SpawnPoolWorker;
  /** How long run waits for a worker before it throws and marks the pool broken. Default 60 s. */
  timeoutMs?: number;
  /** How long createSimdPool waits for the workers to start. Default 30 s. */
  startTimeoutMs?: number;
  /** Atomics.load polls before a thread sleeps in Atomics.wait. Default {@link DEFAULT_SPIN}. */
  spin?: number;
}

/** One call of a program, by export name. */
export type PoolCall = readonly [name: string, ...args: number[]];

export interface SimdPool {
  /** Threads including the calling one. */
  readonly threads: number;
  /** Why the pool can no longer run (a worker timed out or died), or null. */
  readonly broken: string | null;
  /** The index of an exported function, for programs written by hand; throws on an unknown name. */
  fn(name: string): number;
  /** A program of `calls`, checked against the exports and their arity. */
  encode(calls: readonly PoolCall[]): Int32Array;
  /**
   * Runs programs[0] here and programs[i] on worker i, and returns when all
   * are done. An empty program costs nothing (its worker is not woken).
   * A call that traps ends its own program only; the others run to their
   * end, then run throws an Error that names the thread, the function and
   * the trap, and the pool stays usable. A worker that does not finish in
   * time breaks the pool: run throws then and from then on.
   */
  run(programs: readonly Int32Array[]): void;
  /** Ends the workers; run throws afterwards. */
  dispose(): void;
}

/** Polls before sleeping: about 10-50 µs on current machines. */
export const DEFAULT_SPIN = 2000;

// The control buffer, in i32s.
const SEQ = 0; // bumped by the caller to start a program
const DONE = 1; // the sequence of the last program the worker finished
const OP = 2; // what the new sequence asks for
const LEN = 3; // the program's length
const ERR = 4; // 1 where a call trapped
const ERR_AT = 5; // the trapping call's offset in the program
const ERR_LEN = 6; // the message's length, then its UTF-16 code units
const ERR_TEXT = 7;
const MAX_TEXT = 240;
const HEADER = 256; // the program starts here
const INITIAL_CAPACITY = 4096 - HEADER;

const OP_RUN = 1;
const OP_SWAP = 2; // a new control buffer follows as a message
const OP_EXIT = 3;

/**
 * The worker's source. Plain JavaScript (not a compiled function's text,
 * which a bundler may decorate with helpers that do not exist in the
 * worker); it needs only `self`, Atomics and WebAssembly.
 */
const WORKER_SOURCE = `(() => {
'use strict';
const SEQ = ${SEQ}, DONE = ${DONE}, OP = ${OP}, LEN = ${LEN}, ERR = ${ERR}, ERR_AT = ${ERR_AT}, ERR_LEN = ${ERR_LEN}, ERR_TEXT = ${ERR_TEXT};
const MAX_TEXT = ${MAX_TEXT}, HEADER = ${HEADER}, OP_RUN = ${OP_RUN}, OP_SWAP = ${OP_SWAP};
let ctl = null;
let fns = null;
let seen = 0;
let spin = 0;

function fail(at, error) {
  let text = '';
  try { text = String(error && error.message !== undefined ? error.message : error); } catch (_) { text = 'unprintable error'; }
  const n = Math.min(text.length, MAX_TEXT);
  for (let i = 0; i < n; i++) ctl[ERR_TEXT + i] = text.charCodeAt(i);
  ctl[ERR_LEN] = n;
  ctl[ERR_AT] = at;
  ctl[ERR] = 1;
}

function execute() {
  const end = HEADER + ctl[LEN];
  let pc = HEADER;
  try {
    while (pc < end) {
      const f = fns[ctl[pc]];
      const argc = ctl[pc + 1];
      const args = new Array(argc);
      for (let i = 0; i < argc; i++) args[i] = ctl[pc + 2 + i];
      f.apply(undefined, args);
      pc += 2 + argc;
    }
  } catch (error) {
    fail(pc, error);
  }
}

// Runs programs until the caller swaps the buffer or ends the pool; only
// then does this thread return to its event loop.
function loop() {
  for (;;) {
    let seq = Atomics.load(ctl, SEQ);
    for (let i = 0; seq === seen && i < spin; i++) seq = Atomics.load(ctl, SEQ);
    while (seq === seen) {
      Atomics.wait(ctl, SEQ, seen);
      seq = Atomics.load(ctl, SEQ);
    }
    seen = seq;
    const op = ctl[OP];
    if (op === OP_SWAP) return;
    if (op !== OP_RUN) return;
    ctl[ERR] = 0;
    execute();
    Atomics.store(ctl, DONE, seq);
    Atomics.notify(ctl, DONE);
  }
}

self.onmessage = (event) => {
  const m = event.data;
  if (m.type === 'start') {
    spin = m.spin;
    WebAssembly.instantiate(m.module, { env: { memory: m.memory } }).then((instance) => {
      fns = m.names.map((name) => instance.exports[name]);
      ctl = new Int32Array(m.control);
      seen = 0;
      self.postMessage({ type: 'ready' });
      loop();
    }).catch((error) => {
      self.postMessage({ type: 'failed', message: String(error && error.message !== undefined ? error.message : error) });
    });
  } else if (m.type === 'control') {
    ctl = new Int32Array(m.control);
    seen = 0;
    loop();
  }
};
})();
`;

interface WebAssemblyApi {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: object): Promise<{ readonly exports: Record<string, unknown> }>;
  Module: { exports(module: object): { name: string; kind: string }[] };
}
const webAssembly = (globalThis as { WebAssembly?: WebAssemblyApi }).WebAssembly;

type WasmFunction = (...args: number[]) => void;

interface PoolWorker {
  readonly handle: PoolWorkerHandle;
  control: Int32Array;
  /** The last sequence number given in `control` (a new buffer starts at 0). */
  seq: number;
}

/** Whether this thread may block in Atomics.wait (not on a browser page's main thread). */
function canBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

function newControl(programLength: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer((HEADER + programLength) * 4));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Starts `threads - 1` workers, each with its own instance of the module on
 * `memory`, and one instance here; resolves when every worker is ready,
 * rejects (and ends the workers) if one fails to start.
 */
export async function createSimdPool(options: SimdPoolOptions): Promise<SimdPool> {
  const { memory, moduleBytes, spawn } = options;
  const threads = Math.floor(options.threads);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const startTimeoutMs = options.startTimeoutMs ?? 30_000;
  const spin = Math.max(0, Math.floor(options.spin ?? DEFAULT_SPIN));
  if (!(threads >= 1)) throw new Error(`simd pool: threads must be at least 1, got ${options.threads}`);
  if (webAssembly === undefined) throw new Error('simd pool: this runtime has no WebAssembly');
  if (typeof SharedArrayBuffer === 'undefined' || !(memory.buffer instanceof SharedArrayBuffer)) {
    throw new Error('simd pool: the memory must be a shared WebAssembly.Memory');
  }
  const module = await webAssembly.compile(moduleBytes);
  const names = webAssembly.Module.exports(module).filter((e) => e.kind === 'function').map((e) => e.name);
  const instance = await webAssembly.instantiate(module, { env: { memory } });
  const fns = names.map((name) => instance.exports[name] as WasmFunction);
  const indexOf = new Map(names.map((name, i) => [name, i]));
  const blocking = canBlock();

  const workers: PoolWorker[] = [];
  let broken: string | null = null;
  let disposed = false;
  const endWorkers = (): void => {
    for (const w of workers) {
      try {
        w.handle.terminate();
      } catch {
        // Already gone.
      }
    }
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let pending = threads - 1;
      let settled = false;
      const timer = pending > 0 ? setTimeout(() => finish(new Error(`simd pool: workers did not start within ${startTimeoutMs} ms`)), startTimeoutMs) : undefined;
      function finish(error?: Error): void {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        if (error === undefined) resolve();
        else reject(error);
      }
      if (pending === 0) finish();
      for (let i = 1; i < threads && !settled; i++) {
        let handle: PoolWorkerHandle;
        try {
          handle = spawn(WORKER_SOURCE);
        } catch (error) {
          finish(new Error(`simd pool: worker ${i} could not be started: ${messageOf(error)}`));
          break;
        }
        const worker: PoolWorker = { handle, control: newControl(INITIAL_CAPACITY), seq: 0 };
        workers.push(worker);
        handle.onMessage((message) => {
          const m = message as { type?: unknown; message?: unknown } | null;
          if (m?.type === 'ready') {
            if (--pending === 0) finish();
          } else if (m?.type === 'failed') {
            finish(new Error(`simd pool: worker ${i} failed to start: ${String(m.message)}`));
          }
        });
        handle.onError((error) => {
          if (disposed) return;
          const why = `worker ${i} failed: ${messageOf(error)}`;
          // After start-up the caller may be blocked in run; it notices by its timeout.
          if (settled) broken ??= why;
          finish(new Error(`simd pool: ${why}`));
        });
        handle.postMessage({ type: 'start', module, memory, names, control: worker.control.buffer, spin });
      }
    });
  } catch (error) {
    disposed = true;
    endWorkers();
    throw error;
  }

  function fn(name: string): number {
    const index = indexOf.get(name);
    if (index === undefined) throw new Error(`simd pool: the module exports no function ${JSON.stringify(name)}`);
    return index;
  }

  function encode(calls: readonly PoolCall[]): Int32Array {
    let length = 0;
    for (const call of calls) length += call.length + 1;
    const out = new Int32Array(length);
    let at = 0;
    for (const [name, ...args] of calls) {
      const index = fn(name);
      const arity = (fns[index] as WasmFunction).length;
      if (args.length !== arity) throw new Error(`simd pool: ${name} takes ${arity} arguments, got ${args.length}`);
      out[at] = index;
      out[at + 1] = args.length;
      out.set(args, at + 2);
      at += 2 + args.length;
    }
    return out;
  }

  /** Throws unless `program` is a well-formed list of calls (so workers never meet a bad one). */
  function check(program: Int32Array, thread: number): void {
    let pc = 0;
    while (pc < program.length) {
      const index = program[pc] as number;
      const f = fns[index];
      if (f === undefined) throw new Error(`simd pool: program ${thread} at ${pc}: no function ${index}`);
      const argc = program[pc + 1];
      if (argc !== f.length || pc + 2 + argc > program.length) {
        throw new Error(`simd pool: program ${thread} at ${pc}: ${names[index]} takes ${f.length} arguments, the program gives ${argc ?? 'none'}`);
      }
      pc += 2 + argc;
    }
  }

  function nameAt(program: Int32Array, at: number): string {
    return names[program[at] as number] ?? `function ${program[at]}`;
  }

  /** Runs `program` on this thread; the error text, or null. */
  function execute(program: Int32Array): string | null {
    let pc = 0;
    try {
      while (pc < program.length) {
        const f = fns[program[pc] as number] as WasmFunction;
        const argc = program[pc + 1] as number;
        f(...program.subarray(pc + 2, pc + 2 + argc));
        pc += 2 + argc;
      }
      return null;
    } catch (error) {
      return `${nameAt(program, pc)} failed on thread 0: ${messageOf(error)}`;
    }
  }

  /** Gives `worker` a control buffer that holds `length` i32s of program. */
  function ensureCapacity(worker: PoolWorker, length: number): void {
    if (HEADER + length <= worker.control.length) return;
    const control = newControl(Math.max(length, 2 * (worker.control.length - HEADER)));
    // The worker leaves its loop on OP_SWAP and takes the message from its event loop.
    worker.handle.postMessage({ type: 'control', control: control.buffer });
    signal(worker, OP_SWAP);
    worker.control = control;
    worker.seq = 0;
  }

  function signal(worker: PoolWorker, op: number): void {
    const c = worker.control;
    c[OP] = op;
    worker.seq = (worker.seq + 1) | 0;
    Atomics.store(c, SEQ, worker.seq);
    Atomics.notify(c, SEQ);
  }

  /** Waits until `worker` has finished its current program; false on timeout. */
  function waitFor(worker: PoolWorker, deadline: number): boolean {
    const c = worker.control;
    const seq = worker.seq;
    let done = Atomics.load(c, DONE);
    for (let i = 0; done !== seq && i < spin; i++) done = Atomics.load(c, DONE);
    while (done !== seq) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      if (blocking) {
        Atomics.wait(c, DONE, done, left);
      } else {
        for (let i = 0; i < 10_000 && Atomics.load(c, DONE) === done; i++);
      }
      done = Atomics.load(c, DONE);
    }
    return true;
  }

  function workerError(worker: PoolWorker, thread: number, program: Int32Array): string | null {
    const c = worker.control;
    if (c[ERR] !== 1) return null;
    const at = c[ERR_AT] as number;
    const n = c[ERR_LEN] as number;
    let text = '';
    for (let i = 0; i < n; i++) text += String.fromCharCode(c[ERR_TEXT + i] as number);
    return `${nameAt(program, at - HEADER)} failed on thread ${thread}: ${text}`;
  }

  function run(programs: readonly Int32Array[]): void {
    if (disposed) throw new Error('simd pool: run after dispose');
    if (broken !== null) throw new Error(`simd pool: broken (${broken})`);
    if (programs.length > threads) throw new Error(`simd pool: ${programs.length} programs for ${threads} threads`);
    programs.forEach(check);
    const started: number[] = [];
    for (let t = 1; t < programs.length; t++) {
      const program = programs[t] as Int32Array;
      if (program.length === 0) continue;
      const worker = workers[t - 1] as PoolWorker;
      ensureCapacity(worker, program.length);
      worker.control.set(program, HEADER);
      worker.control[LEN] = program.length;
      signal(worker, OP_RUN);
      started.push(t);
    }
    const errors: string[] = [];
    const here = programs.length > 0 ? execute(programs[0] as Int32Array) : null;
    if (here !== null) errors.push(here);
    const deadline = Date.now() + timeoutMs;
    for (const t of started) {
      const worker = workers[t - 1] as PoolWorker;
      if (!waitFor(worker, deadline)) {
        broken = `worker ${t} did not finish within ${timeoutMs} ms`;
        throw new Error(`simd pool: ${broken}`);
      }
      const error = workerError(worker, t, programs[t] as Int32Array);
      if (error !== null) errors.push(error);
    }
    if (errors.length > 0) throw new Error(`simd pool: ${errors.join('; ')}`);
  }

  function dispose(): void {
    if (disposed) return;
    disposed = true;
    for (const w of workers) signal(w, OP_EXIT);
    endWorkers();
  }

  return {
    threads,
    get broken() {
      return broken;
    },
    fn,
    encode,
    run,
    dispose,
  };
}
