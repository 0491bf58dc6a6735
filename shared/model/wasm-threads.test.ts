import { describe, expect, it } from 'vitest';
import { defaultWasmThreads, MAX_WASM_THREADS } from './wasm-threads.ts';

describe('defaultWasmThreads', () => {
  it('uses every core of a 1-2 core machine, half of a larger one, at most 4', () => {
    expect([undefined, 0, Number.NaN, 1, 2, 3, 4, 6, 8, 12, 16, 64].map((c) => defaultWasmThreads(c))).toEqual([1, 1, 1, 1, 2, 2, 2, 3, 4, 4, 4, 4]);
  });

  it('never asks for more than the threaded build can give', () => {
    for (let c = 1; c <= 256; c++) expect(defaultWasmThreads(c)).toBeLessThanOrEqual(Math.min(c, MAX_WASM_THREADS));
  });
});
