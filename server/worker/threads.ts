/**
 * How many XNNPACK threads a `petri worker` process in Node asks the wasm
 * backend for: its share of the machine's logical cores, so that
 * `--workers N` processes together use each core about once.
 */

/** The most threads a worker process asks for by default (XNNPACK gains little beyond). */
export const MAX_DEFAULT_WORKER_THREADS = 4;
/** The most threads --threads or PETRI_WASM_THREADS may ask for (the threaded build pre-spawns 8). */
export const MAX_WORKER_THREADS = 8;

export interface WorkerThreadsChoice {
  readonly threads: number;
  /** Where the count came from, for the start-up line. */
  readonly source: '--threads' | 'PETRI_WASM_THREADS' | 'cores';
}

/** Parses a thread count from --threads or PETRI_WASM_THREADS: an integer from 1 to 8, else an error naming `what`. */
export function parseThreads(raw: string, what: string): number {
  const n = Number(raw.trim());
  if (raw.trim() === '' || !Number.isInteger(n) || n < 1 || n > MAX_WORKER_THREADS) {
    throw new Error(`${what} must be a whole number from 1 to ${MAX_WORKER_THREADS}, not "${raw}"`);
  }
  return n;
}

/**
 * The thread count for one worker process: --threads if given, else
 * PETRI_WASM_THREADS if set, else `max(1, floor(cores / workers))` capped at
 * {@link MAX_DEFAULT_WORKER_THREADS}, where `workers` is the number of
 * worker processes started together (`--workers N`) and `cores` the logical
 * cores (os.availableParallelism()). Throws on a malformed flag or variable.
 */
export function chooseWorkerThreads(options: { cores: number; workers: number; flag?: string; env?: NodeJS.ProcessEnv }): WorkerThreadsChoice {
  if (options.flag !== undefined) return { threads: parseThreads(options.flag, '--threads'), source: '--threads' };
  const raw = options.env?.PETRI_WASM_THREADS;
  if (raw !== undefined && raw.trim() !== '') return { threads: parseThreads(raw, 'PETRI_WASM_THREADS'), source: 'PETRI_WASM_THREADS' };
  const cores = Number.isFinite(options.cores) && options.cores >= 1 ? Math.floor(options.cores) : 1;
  const workers = Number.isFinite(options.workers) && options.workers >= 1 ? Math.floor(options.workers) : 1;
  return { threads: Math.min(MAX_DEFAULT_WORKER_THREADS, Math.max(1, Math.floor(cores / workers))), source: 'cores' };
}
