/**
 * The operator's controls and the idle-only worker, with real processes:
 * `petri experiment ...` and `petri export ...` against a running server,
 * and `petri worker --when-idle` pausing under an artificial load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, startPetri, startServer, until, type RunningProcess } from './support/processes.ts';
import { serveStatic } from './support/static-server.ts';
import { othersBusyShare, sampleCpu, type CpuSample } from '../server/worker/idle.ts';

const dir = mkdtempSync(join(tmpdir(), 'petri-operator-'));
const running: RunningProcess[] = [];
let server: RunningProcess & { url: string };
let token: string;

async function petri(...args: string[]): Promise<{ code: number | string; out: string }> {
  const p = startPetri(args);
  running.push(p);
  const code = await p.exited;
  return { code, out: p.output() };
}

beforeAll(async () => {
  server = await startServer(join(dir, 'data'), ['--preset', 'quick', '--population', '3', '--steps', '30', '--max-children', '8']);
  running.push(server);
  token = readFileSync(join(dir, 'data', 'admin-token'), 'utf8').trim();
});

afterAll(async () => {
  for (const p of running) p.kill('SIGKILL');
  await Promise.all(running.map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
});

describe('petri experiment', () => {
  it('refuses admin actions without the token and with a wrong one', async () => {
    const [exp] = await getJson<{ id: string }[]>(`${server.url}/api/experiments`);
    const none = await petri('experiment', 'pause', exp?.id as string, '--server', server.url, '--data-dir', join(dir, 'nowhere'));
    expect(none.code).toBe(1);
    expect(none.out).toMatch(/needs the admin token/);
    const wrong = await petri('experiment', 'pause', exp?.id as string, '--server', server.url, '--token', 'f'.repeat(64));
    expect(wrong.code).toBe(1);
    expect(wrong.out).toMatch(/HTTP 403: wrong admin token/);
    expect((await getJson<{ status: string }>(`${server.url}/api/experiments/${exp?.id}`)).status).toBe('running');
  });

  it('creates, lists, pauses, resumes, boosts and stops an experiment', async () => {
    const created = await petri('experiment', 'create', '--server', server.url, '--token', token, '--preset', 'quick', '--population', '2', '--name', 'second run', '--json');
    expect(created.code).toBe(0);
    const id = (JSON.parse(created.out.slice(created.out.indexOf('{'))) as { id: string }).id;
    const list = await petri('experiment', 'list', '--server', server.url);
    expect(list.out).toContain(id);
    expect(list.out).toContain('second run');
    const status = async () => (await getJson<{ status: string; boostRemaining: number }>(`${server.url}/api/experiments/${id}`));
    expect((await petri('experiment', 'pause', id, '--server', server.url, '--token', token)).code).toBe(0);
    expect((await status()).status).toBe('paused');
    expect((await petri('experiment', 'resume', id, '--server', server.url, '--token', token)).code).toBe(0);
    expect((await status()).status).toBe('running');
    expect((await petri('experiment', 'remedy', id, 'boost', '--server', server.url, '--token', token)).code).toBe(0);
    expect((await status()).boostRemaining).toBeGreaterThan(0);
    expect((await petri('experiment', 'stop', id, '--server', server.url, '--token', token)).code).toBe(0);
    expect((await status()).status).toBe('stopped');
    const again = await petri('experiment', 'resume', id, '--server', server.url, '--token', token);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/stopped; it cannot be set running/);
  });
});

describe('petri export and petri worker --when-idle', () => {
  let load: ChildProcess[] = [];
  afterAll(() => {
    for (const p of load) p.kill('SIGKILL');
  });

  it('pauses under an artificial load and resumes after it; then the best model exports as a plain tf.js model', async () => {
    const [exp] = await getJson<{ id: string }[]>(`${server.url}/api/experiments`);
    // The threshold sits above whatever else this machine is doing now, and below two busy cores.
    const before = sampleCpu();
    await new Promise((r) => setTimeout(r, 2000));
    const background = othersBusyShare(before as CpuSample, sampleCpu() as CpuSample);
    const threshold = Math.min(0.9, background + 0.3).toFixed(2);
    const worker = startPetri(['worker', '--server', server.url, '--when-idle', '--experiment', exp?.id as string, '--cache-dir', join(dir, 'cache')], { PETRI_IDLE_THRESHOLD: threshold });
    running.push(worker);
    await worker.waitFor(/accepted: fitness/, 120_000);
    // One worker process: tf.js's threaded wasm build, on every core (at most 4), with no fall-back.
    expect(worker.output()).toMatch(new RegExp(`worker started on tf\\.js wasm, ${Math.min(4, cpus().length)} threads? \\(`));
    expect(worker.output()).not.toMatch(/single-threaded build instead/);
    // Someone starts working: two processes keep both cores busy.
    load = [0, 1].map(() => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
    await worker.waitFor(/pausing: someone else is using this machine/, 30_000);
    const pausedAt = worker.output().length;
    for (const p of load) p.kill('SIGKILL');
    load = [];
    await worker.waitFor(/resuming: the machine is idle again/, 60_000);
    expect(worker.output().slice(pausedAt)).toMatch(/resuming/);
    const done = await until(async () => {
      const e = await getJson<{ status: string }>(`${server.url}/api/experiments/${exp?.id}`);
      return e.status === 'finished' ? e : null;
    }, 'the experiment finishes', 180_000, 500);
    expect(done.status).toBe('finished');
    worker.kill('SIGTERM');
    expect(await worker.exited).toBe(0);

    const out = join(dir, 'export');
    const exported = await petri('export', exp?.id as string, '--out', out, '--server', server.url);
    expect(exported.code).toBe(0);
    expect(existsSync(join(out, 'model.json'))).toBe(true);
    // Plain tf.loadLayersModel over HTTP, as any tf.js app would load it.
    const site = await serveStatic(out);
    const model = await tf.loadLayersModel(`${site.url}model.json`);
    await site.close();
    const y = model.predict(tf.zeros([2, 32, 32, 3])) as tf.Tensor;
    expect(y.shape).toEqual([2, 10]);
    const sums = (await y.sum(1).data()) as Float32Array;
    for (const s of sums) expect(s).toBeCloseTo(1, 4);

    const ensemble = await petri('export', exp?.id as string, '--out', join(dir, 'ensemble'), '--ensemble', '3', '--server', server.url);
    expect(ensemble.code).toBe(0);
    const manifest = JSON.parse(readFileSync(join(dir, 'ensemble', 'ensemble.json'), 'utf8')) as { members: { path: string }[]; vote: string };
    expect(manifest.vote).toBe('majority');
    expect(manifest.members).toHaveLength(3);
    for (const m of manifest.members) expect(existsSync(join(dir, 'ensemble', m.path))).toBe(true);
  });
});
