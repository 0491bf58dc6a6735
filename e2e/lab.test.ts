/**
 * A lab run with real processes: `petri serve` and three `petri worker`
 * processes (Node, wasm) on the synthetic dataset. One worker is killed with
 * SIGKILL mid-child, another stopped with SIGTERM: no work is lost, the
 * SIGTERM lease is back in the queue at once, the experiment finishes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getJson, startPetri, startServer, until, type RunningProcess } from './support/processes.ts';

const dir = mkdtempSync(join(tmpdir(), 'petri-lab-'));
const running: RunningProcess[] = [];

afterAll(async () => {
  for (const p of running) p.kill('SIGKILL');
  await Promise.all(running.map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
});

interface ExperimentView {
  id: string;
  status: string;
  counts: { alive: number; childrenTrained: number; leasesInFlight: number; workersOnline: number };
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return Number(line?.split(' ').pop() ?? Number.NaN);
}

describe('a lab-wide experiment with petri worker processes', () => {
  it('survives a SIGKILLed worker and a SIGTERMed one, and finishes with nothing lost', async () => {
    const server = await startServer(join(dir, 'data'), ['--preset', 'quick', '--population', '4', '--steps', '150', '--max-children', '14', '--lease-ttl', '4']);
    running.push(server);
    const [exp] = await getJson<ExperimentView[]>(`${server.url}/api/experiments`);
    expect(exp?.status).toBe('running');
    const cache = join(dir, 'cache');
    // Three processes on what may be a 2-core machine, each on tf.js's single-threaded wasm build: with
    // more XNNPACK threads than free cores, a threaded worker's steps stretch under load and can outlast
    // this test's 4 s lease time-out. The threaded build is exercised by the single-worker tests
    // (operator.test.ts, search-platform.test.ts).
    const workers = ['a', 'b', 'c'].map((name) => startPetri(['worker', '--server', server.url, '--nickname', name, '--cache-dir', cache, '--threads', '1']));
    running.push(...workers);
    const [a, b, c] = workers as [RunningProcess, RunningProcess, RunningProcess];

    // Worker a dies mid-child without a word: its lease must expire and be re-issued.
    await a.waitFor(/step \d+\/150/);
    a.kill('SIGKILL');
    expect(await a.exited).toBe('SIGKILL');

    // Worker b is asked to stop mid-child: it hands its lease back at once and exits 0.
    const releasedBefore = await metric(server.url, 'petri_leases_total{outcome="released"}');
    await b.waitFor(/step \d+\/150/, 120_000);
    expect(b.output()).not.toMatch(/refused \(lease-expired\)/);
    b.kill('SIGTERM');
    expect(await b.exited).toBe(0);
    expect(b.output()).toMatch(/SIGTERM: handing the lease back/);
    // Back in the queue at once, not after the lease's 4 s time-out.
    expect(await metric(server.url, 'petri_leases_total{outcome="released"}')).toBe(releasedBefore + 1);

    // Worker c finishes the experiment alone, including the abandoned children.
    const done = await until(async () => {
      const e = await getJson<ExperimentView>(`${server.url}/api/experiments/${exp?.id}`);
      return e.status === 'finished' ? e : null;
    }, 'the experiment finishes', 240_000, 500);
    expect(done.counts.childrenTrained).toBe(14);
    const individuals = await getJson<{ id: string; trainedBy: { nickname: string; backend: string } }[]>(`${server.url}/api/experiments/${exp?.id}/individuals`);
    expect(individuals).toHaveLength(14);
    expect(new Set(individuals.map((i) => i.id)).size).toBe(14);
    expect(individuals.every((i) => i.trainedBy.backend === 'wasm')).toBe(true);
    expect(individuals.some((i) => i.trainedBy.nickname === 'c')).toBe(true);
    // Only the SIGKILLed worker's lease expired: heartbeats kept every other lease alive.
    expect(await metric(server.url, 'petri_leases_total{outcome="expired"}')).toBe(1);
    expect(c.output()).toMatch(/accepted: fitness/);
    expect(c.output()).toMatch(/worker started on tf\.js wasm, 1 thread \(--threads\)/);
    expect(b.output()).toMatch(/worker started on tf\.js wasm, 1 thread \(--threads\)/);
    c.kill('SIGTERM');
    expect(await c.exited).toBe(0);
  });
});
