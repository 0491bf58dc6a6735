import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnNodePoolWorker } from '../../server/simd-pool-node.ts';
import { values } from './numeric-checks.ts';
import { simdModuleBytes } from './simd-kernels.ts';
import { createSimdPool, type PoolCall, type PoolWorkerHandle, type SimdPool, type SpawnPoolWorker } from './simd-pool.ts';

const PAGE = 65536;
const moduleBytes = simdModuleBytes(true);

/** A gather of `rows` rows of `runs` runs (5 floats: one vector and one scalar step each) with gaps on the source side. */
const GRID = { rows: 37, runs: 6, runBytes: 20, srcRunBytes: 28, dstRunBytes: 20 };
const SRC_ROW = GRID.runs * GRID.srcRunBytes + 12;
const DST_ROW = GRID.runs * GRID.dstRunBytes;
const SRC = 4096;
const DST = 65536;

function sharedMemory(initial: number, maximum: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial, maximum, shared: true });
}

/** The grid's rows split into `parts` programs (the first ones may be empty where rows are few). */
function splitRows(pool: SimdPool, parts: number, src: number, dst: number, rows = GRID.rows): Int32Array[] {
  const programs: Int32Array[] = [];
  for (let t = 0; t < parts; t++) {
    const r0 = Math.floor((rows * t) / parts);
    const r1 = Math.floor((rows * (t + 1)) / parts);
    programs.push(r1 === r0 ? new Int32Array() : pool.encode([
      ['copyRuns', src + r0 * SRC_ROW, dst + r0 * DST_ROW, r1 - r0, SRC_ROW, DST_ROW, GRID.runs, GRID.runBytes, GRID.srcRunBytes, GRID.dstRunBytes],
    ]));
  }
  return programs;
}

/** The gather in JavaScript. */
function expected(memory: WebAssembly.Memory, src: number, rows = GRID.rows): Float32Array {
  const f = new Float32Array(memory.buffer);
  const out = new Float32Array((rows * DST_ROW) / 4);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < GRID.runs; k++) {
      for (let j = 0; j < GRID.runBytes / 4; j++) {
        out[(r * DST_ROW + k * GRID.dstRunBytes) / 4 + j] = f[(src + r * SRC_ROW + k * GRID.srcRunBytes) / 4 + j] as number;
      }
    }
  }
  return out;
}

function fill(memory: WebAssembly.Memory, at: number, data: Float32Array): void {
  new Float32Array(memory.buffer, at, data.length).set(data);
}

function read(memory: WebAssembly.Memory, at: number, rows = GRID.rows): Float32Array {
  return new Float32Array(memory.buffer, at, (rows * DST_ROW) / 4).slice();
}

describe('createSimdPool', () => {
  const memory = sharedMemory(16, 64);
  let pool: SimdPool;

  beforeAll(async () => {
    pool = await createSimdPool({ memory, moduleBytes, threads: 3, spawn: spawnNodePoolWorker });
  });
  afterAll(() => pool.dispose());

  it('names the module\'s functions and checks calls against their arity', () => {
    expect(pool.threads).toBe(3);
    expect(pool.fn('copyRuns')).toBeGreaterThanOrEqual(0);
    expect(() => pool.fn('nope')).toThrow(/no function "nope"/);
    expect(() => pool.encode([['copyRuns', 1, 2]])).toThrow(/copyRuns takes 9 arguments, got 2/);
    const call = pool.encode([['copyRuns', 0, 0, 0, 0, 0, 0, 0, 0, 0]]);
    expect(Array.from(call)).toEqual([pool.fn('copyRuns'), 9, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(() => pool.run([new Int32Array(), new Int32Array([pool.fn('copyRuns'), 3, 0, 0, 0])])).toThrow(/program 1 at 0: copyRuns takes 9/);
    expect(() => pool.run([new Int32Array([999, 0])])).toThrow(/no function 999/);
    expect(() => pool.run([call, call, call, call])).toThrow(/4 programs for 3 threads/);
  });

  it('splits work over 1, 2 and 3 threads with exactly the result of one thread', () => {
    fill(memory, SRC, values((GRID.rows * SRC_ROW) / 4, 7));
    const results = [1, 2, 3].map((parts) => {
      new Uint8Array(memory.buffer, DST, GRID.rows * DST_ROW).fill(0xff);
      pool.run(splitRows(pool, parts, SRC, DST));
      return read(memory, DST);
    });
    expect(results[0]).toEqual(expected(memory, SRC));
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  });

  it('runs 200 programs in a row on fresh data, every one complete (no lost wake-up)', () => {
    const n = (GRID.rows * SRC_ROW) / 4;
    const programs = splitRows(pool, 3, SRC, DST);
    for (let k = 0; k < 200; k++) {
      fill(memory, SRC, values(n, 1000 + k));
      // Some runs leave a worker idle, so its next program follows a gap in its sequence.
      if (k % 7 === 3) {
        const short = splitRows(pool, 2, SRC, DST);
        pool.run([short[0] as Int32Array, new Int32Array(), short[1] as Int32Array]);
      } else {
        pool.run(programs);
      }
      const got = read(memory, DST);
      const want = expected(memory, SRC);
      if (!got.every((v, i) => v === want[i])) expect.fail(`run ${k} gave a wrong result`);
    }
  });

  it('throws, naming the thread and the function, when a call traps in a worker; the other threads finish and the pool stays usable', () => {
    fill(memory, SRC, values((GRID.rows * SRC_ROW) / 4, 3));
    new Uint8Array(memory.buffer, DST, GRID.rows * DST_ROW).fill(0);
    const programs = splitRows(pool, 3, SRC, DST);
    const pastEnd = memory.buffer.byteLength + 1024;
    const bad = pool.encode([['copyRuns', pastEnd, DST, 1, 0, 0, 1, 16, 0, 0]]);
    expect(() => pool.run([programs[0] as Int32Array, bad, programs[2] as Int32Array])).toThrow(/copyRuns failed on thread 1: .*out of bounds/);
    // Threads 0 and 2 did their rows.
    const want = expected(memory, SRC);
    const got = read(memory, DST);
    const rows1 = Math.floor(GRID.rows / 3);
    const rows2 = Math.floor((2 * GRID.rows) / 3);
    expect(got.subarray(0, (rows1 * DST_ROW) / 4)).toEqual(want.subarray(0, (rows1 * DST_ROW) / 4));
    expect(got.subarray((rows2 * DST_ROW) / 4)).toEqual(want.subarray((rows2 * DST_ROW) / 4));
    expect(pool.broken).toBeNull();
    pool.run(programs);
    expect(read(memory, DST)).toEqual(want);
  });

  it('ends a worker\'s program at the trapping call and reports every failing thread, the caller\'s too', () => {
    const pastEnd = memory.buffer.byteLength;
    const copy = ['copyRuns', SRC, DST, 1, 0, 0, 1, 16, 0, 0] as const;
    const trap = ['copyRuns', pastEnd, DST, 1, 0, 0, 1, 16, 0, 0] as const;
    fill(memory, SRC, new Float32Array([1, 2, 3, 4]));
    fill(memory, DST, new Float32Array(8));
    // The worker's third call would copy to DST + 16; it never runs.
    const worker = pool.encode([copy, trap, ['copyRuns', SRC, DST + 16, 1, 0, 0, 1, 16, 0, 0]]);
    expect(() => pool.run([pool.encode([trap]), worker])).toThrow(/copyRuns failed on thread 0: .*out of bounds.*; copyRuns failed on thread 1: .*out of bounds/);
    expect(Array.from(new Float32Array(memory.buffer, DST, 8))).toEqual([1, 2, 3, 4, 0, 0, 0, 0]);
  });

  it('sees memory growth: after memory.grow, workers work at the new high addresses', () => {
    const oldEnd = memory.buffer.byteLength;
    memory.grow(2);
    const src = oldEnd + 256;
    const dst = oldEnd + PAGE;
    fill(memory, src, values((GRID.rows * SRC_ROW) / 4, 11));
    pool.run(splitRows(pool, 3, src, dst));
    expect(read(memory, dst)).toEqual(expected(memory, src));
  });

  it('takes programs larger than the control buffer (it is replaced) and keeps running after that', () => {
    // One call per row and run, each twice: 2 * 37 * 6 calls of 11 i32s, more than the 3840 a buffer starts with.
    fill(memory, SRC, values((GRID.rows * SRC_ROW) / 4, 5));
    const calls = (r0: number, r1: number): Int32Array => {
      const list: PoolCall[] = [];
      for (let r = r0; r < r1; r++) {
        for (let k = 0; k < GRID.runs; k++) {
          const call = ['copyRuns', SRC + r * SRC_ROW + k * GRID.srcRunBytes, DST + r * DST_ROW + k * GRID.dstRunBytes, 1, 0, 0, 1, GRID.runBytes, 0, 0] as const;
          list.push(call, call);
        }
      }
      return pool.encode(list);
    };
    const big = calls(0, GRID.rows);
    expect(big.length).toBeGreaterThan(4096 - 256);
    for (const layout of [[new Int32Array(), big], [new Int32Array(), new Int32Array(), big], [calls(0, 5), calls(5, 20), calls(20, GRID.rows)]]) {
      new Uint8Array(memory.buffer, DST, GRID.rows * DST_ROW).fill(0);
      pool.run(layout);
      expect(read(memory, DST)).toEqual(expected(memory, SRC));
    }
  });
});

describe('createSimdPool start-up and failures', () => {
  it('runs everything on the calling thread with threads: 1', async () => {
    const memory = sharedMemory(4, 4);
    const pool = await createSimdPool({ memory, moduleBytes, threads: 1, spawn: () => expect.fail('no worker wanted') });
    fill(memory, SRC, values((GRID.rows * SRC_ROW) / 4, 2));
    pool.run(splitRows(pool, 1, SRC, DST));
    expect(read(memory, DST)).toEqual(expected(memory, SRC));
    pool.dispose();
    expect(() => pool.run([])).toThrow(/after dispose/);
  });

  it('refuses an unshared memory', async () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    await expect(createSimdPool({ memory, moduleBytes, threads: 2, spawn: spawnNodePoolWorker })).rejects.toThrow(/shared WebAssembly.Memory/);
  });

  it('rejects, and ends the workers it started, when a worker\'s script fails', async () => {
    const ended: number[] = [];
    let n = 0;
    const spawn: SpawnPoolWorker = (source) => {
      const i = n++;
      const handle = spawnNodePoolWorker(i === 1 ? `throw new Error('boom');\n${source}` : source);
      return { ...handle, terminate: () => { ended.push(i); handle.terminate(); } };
    };
    await expect(createSimdPool({ memory: sharedMemory(1, 1), moduleBytes, threads: 3, spawn })).rejects.toThrow(/worker 2 failed: boom/);
    expect(ended.sort()).toEqual([0, 1]);
  });

  it('rejects, and ends the workers it started, when spawning throws', async () => {
    const ended: number[] = [];
    let n = 0;
    const spawn: SpawnPoolWorker = (source) => {
      const i = n++;
      if (i === 1) throw new Error('no workers here');
      const handle = spawnNodePoolWorker(source);
      return { ...handle, terminate: () => { ended.push(i); handle.terminate(); } };
    };
    await expect(createSimdPool({ memory: sharedMemory(1, 1), moduleBytes, threads: 3, spawn })).rejects.toThrow(/worker 2 could not be started: no workers here/);
    expect(ended).toEqual([0]);
  });

  it('rejects when a worker reports that it could not start', async () => {
    const spawn: SpawnPoolWorker = (): PoolWorkerHandle => {
      let listener: (m: unknown) => void = () => {};
      return {
        postMessage: () => listener({ type: 'failed', message: 'no WebAssembly here' }),
        onMessage: (l) => { listener = l; },
        onError: () => {},
        terminate: () => {},
      };
    };
    await expect(createSimdPool({ memory: sharedMemory(1, 1), moduleBytes, threads: 2, spawn })).rejects.toThrow(/worker 1 failed to start: no WebAssembly here/);
  });

  it('rejects when the workers do not start in time', async () => {
    const spawn: SpawnPoolWorker = () => ({ postMessage: () => {}, onMessage: () => {}, onError: () => {}, terminate: () => {} });
    await expect(createSimdPool({ memory: sharedMemory(1, 1), moduleBytes, threads: 2, spawn, startTimeoutMs: 10 })).rejects.toThrow(/did not start within 10 ms/);
  });

  it('throws instead of hanging when a worker does not finish in time, and is broken from then on', async () => {
    const memory = sharedMemory(1, 1);
    const pool = await createSimdPool({ memory, moduleBytes, threads: 2, spawn: spawnNodePoolWorker, timeoutMs: 100 });
    // 2^31 rows of 2^31 runs of 4 bytes, all in place: billions of years.
    const endless = pool.encode([['copyRuns', 0, 0, 0x7fffffff, 0, 0, 0x7fffffff, 4, 0, 0]]);
    expect(() => pool.run([new Int32Array(), endless])).toThrow(/worker 1 did not finish within 100 ms/);
    expect(pool.broken).toMatch(/did not finish/);
    expect(() => pool.run([])).toThrow(/broken/);
    pool.dispose();
  });

  it('lets the process exit, with or without dispose', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'petri-simd-pool-'));
    try {
      const url = (p: string) => JSON.stringify(new URL(p, import.meta.url).href);
      for (const dispose of [true, false]) {
        const script = path.join(dir, `exit-${dispose}.mts`);
        writeFileSync(script, [
          `import { createSimdPool } from ${url('./simd-pool.ts')};`,
          `import { simdModuleBytes } from ${url('./simd-kernels.ts')};`,
          `import { spawnNodePoolWorker } from ${url('../../server/simd-pool-node.ts')};`,
          `const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });`,
          `const pool = await createSimdPool({ memory, moduleBytes: simdModuleBytes(true), threads: 3, spawn: spawnNodePoolWorker });`,
          `const p = pool.encode([['copyRuns', 0, 64, 1, 0, 0, 1, 16, 0, 0]]);`,
          `pool.run([p, p, p]);`,
          dispose ? `pool.dispose();` : '',
          `console.log('finished');`,
        ].join('\n'));
        const child = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: new URL('../..', import.meta.url), encoding: 'utf8', timeout: 60_000 });
        expect({ dispose, signal: child.signal, status: child.status, stdout: child.stdout.trim(), stderr: child.stderr }).toEqual({ dispose, signal: null, status: 0, stdout: 'finished', stderr: '' });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
