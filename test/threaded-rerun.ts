/**
 * For the wasm kernels' tests (shared/model/*.test.ts): a test file runs
 * itself again in a child vitest with PETRI_WASM_THREADS=2, so that every
 * check it makes also holds on tf.js's threaded build with two XNNPACK
 * threads and Petri's SIMD kernels split over the worker pool; and with
 * relaxed SIMD on, so that the GEMMs' fused multiply-add is checked as well
 * as their mul+add.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

/** Set in the rerun: the test file keeps relaxed SIMD on ({@link relaxedSimdOnlyInRerun}). */
export const RELAXED_SIMD_ENV = 'PETRI_TEST_RELAXED_SIMD';

/**
 * Call before initNodeBackend. Node processes run Petri's GEMMs with
 * relaxed SIMD's fused multiply-add (server/tf-backend.ts nodeRelaxedSimd),
 * as Chromium does; a kernel test file runs first without it (mul+add, the
 * path of runtimes without relaxed SIMD) and again, in the rerun, with it.
 * Returns whether it is on.
 */
export function relaxedSimdOnlyInRerun(): boolean {
  const on = process.env[RELAXED_SIMD_ENV] === '1';
  process.env.PETRI_RELAXED_SIMD = on ? '1' : '0';
  return on;
}

/** Runs the test file at `fileUrl` (its import.meta.url) with two threads and expects every test to pass. */
export function expectPassesOnTwoThreads(fileUrl: string): void {
  const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));
  const r = spawnSync(process.execPath, [vitest, 'run', '--project', 'unit', fileURLToPath(fileUrl)], {
    env: { ...process.env, PETRI_WASM_THREADS: '2', [RELAXED_SIMD_ENV]: '1', NO_COLOR: '1', FORCE_COLOR: '0' },
    encoding: 'utf8',
    timeout: 170_000,
    // A child stuck in a synchronous wait never handles SIGTERM.
    killSignal: 'SIGKILL',
  });
  const out = `${r.stdout}${r.stderr}`;
  expect(r.status, out.slice(-3000)).toBe(0);
  expect(out).toMatch(/Tests\s+\d+ passed/);
  expect(out).not.toMatch(/failed/);
}

/** Time for {@link expectPassesOnTwoThreads}: the child's own limit and a margin. */
export const TWO_THREADS_TIMEOUT_MS = 180_000;
