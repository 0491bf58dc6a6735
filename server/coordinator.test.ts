/**
 * The coordinator's rules, deterministically: an in-memory store, a clock the
 * test moves by hand, weights files on a temp dir, and a verifier whose
 * accuracy is a function of the weights bytes (so a test can steer fitness).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDna } from '../shared/evolution/validate.ts';
import { decodeWeights, encodeWeights } from '../shared/model/weights-codec.ts';
import type { WeightMap } from '../shared/model/weights.ts';
import type { Lease, ResultMessage, ServerMessage } from '../shared/protocol.ts';
import { PROTOCOL_VERSION } from '../shared/protocol.ts';
import { Coordinator } from './coordinator.ts';
import { resolveConfig } from './experiments/config.ts';
import { MemoryStore } from './store/memory-store.ts';
import type { ExperimentConfig } from './store/types.ts';
import { BadWeightsError, type Verifier } from './verifier.ts';
import { WeightsFiles } from './weights-files.ts';

/**
 * Accuracy = the classifier bias's first value, clamped to [0, 1]: tests write the fitness they want.
 * A negative bias is a model that does not evaluate.
 */
const biasVerifier: Verifier = {
  async evaluate({ dna, weightsPath }) {
    const weights = decodeWeights(parseDna(dna), new Uint8Array(await readFile(weightsPath)));
    const bias = weights.get('classifier/bias')?.[0] ?? 0;
    if (bias < 0) throw new BadWeightsError('the model does not evaluate');
    return { accuracy: Math.min(1, Math.max(0, bias)), probeAccuracy: Math.min(1, Math.max(0, bias)) };
  },
  async close() {},
};

function weightsFor(lease: Lease, fitness: number): Uint8Array {
  const dna = parseDna(lease.dna);
  const map: WeightMap = new Map();
  for (const t of lease.plan.tensors) map.set(t.key, new Float32Array(t.shape.reduce((a, b) => a * b, 1)).fill(0.01));
  (map.get('classifier/bias') as Float32Array)[0] = fitness;
  return encodeWeights(dna, map);
}

let dir: string;
let now: number;
let sent: { workerId: string; message: ServerMessage }[];
let counter: number;

function setup(overrides: Record<string, unknown> = {}, ttl = 10_000) {
  const store = new MemoryStore();
  const weights = new WeightsFiles(join(dir, 'weights'));
  const coordinator = new Coordinator({
    store,
    weights,
    verifier: biasVerifier,
    dataset: async (name) => ({ name, shape: [8, 8, 3], numClasses: 10, manifestUrl: `/data/${name}/manifest.json`, version: 'v1', validationCount: 100 }),
    clock: () => now,
    randomHex: (n) => (counter++).toString(16).padStart(n * 2, '0'),
    send: (workerId, message) => sent.push({ workerId, message }),
    leaseTtlMs: ttl,
    heartbeatMs: 2_000,
  });
  const config: ExperimentConfig = resolveConfig({ preset: 'quick', populationSize: 4, maxChildren: 0, ...overrides });
  return { store, weights, coordinator, config };
}

function hello(coordinator: Coordinator, workerId: string, nickname = 'ada') {
  return coordinator.hello(workerId, { type: 'hello', protocol: PROTOCOL_VERSION, backend: 'wasm', adapter: 'test', speed: 1, client: 'node', nickname }, '127.0.0.1');
}

function lease(message: ServerMessage): Lease {
  if (message.type !== 'lease') throw new Error(`expected a lease, got ${JSON.stringify(message)}`);
  return message.lease;
}

/** Uploads weights with the given fitness and reports the result; waits for the verdict. */
async function finish(coordinator: Coordinator, workerId: string, l: Lease, fitness: number, extra: Partial<ResultMessage> = {}) {
  const bytes = weightsFor(l, fitness);
  const up = await coordinator.acceptUpload(l.leaseId, l.token, [bytes]);
  if (!up.ok) throw new Error(up.message);
  const reply = coordinator.submitResult(workerId, { type: 'result', leaseId: l.leaseId, status: 'ok', weightsSha256: up.sha256, stepsDone: l.steps, trainSeconds: 1, backend: 'wasm', ...extra });
  await coordinator.drained();
  return reply;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'petri-coord-'));
  now = 1_000_000;
  sent = [];
  counter = 1;
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('coordinator', () => {
  it('trains the initial population of linear models first, then runs the paper\'s tournament', async () => {
    const { coordinator, store, config } = setup();
    const exp = await coordinator.createExperiment(config);
    expect(hello(coordinator, 'w1')[0]?.type).toBe('welcome');
    for (const w of ['w2', 'w3', 'w4']) hello(coordinator, w);
    const initial: Lease[] = [];
    for (const w of ['w1', 'w2', 'w3', 'w4']) initial.push(lease(coordinator.requestWork(w)));
    // One lease per worker at a time: asking again returns the lease in hand.
    expect(lease(coordinator.requestWork('w1')).leaseId).toBe(initial[0]?.leaseId);
    hello(coordinator, 'w5');
    expect(initial.every((l) => l.parentId === null && l.dna.edges.length === 1 && l.plan.tensors.every((t) => t.source.kind === 'init'))).toBe(true);
    // Nothing else to do until the initial population is trained.
    expect(coordinator.requestWork('w5')).toMatchObject({ type: 'idle', reason: expect.stringMatching(/initial population/) });
    for (const [i, l] of initial.entries()) await finish(coordinator, `w${i + 1}`, l, 0.1 + i * 0.1);
    expect(store.aliveIndividuals(exp.id)).toHaveLength(4);

    const child = lease(coordinator.requestWork('w1'));
    expect(child.parentId).not.toBeNull();
    expect(child.mutations).toHaveLength(1);
    // One individual was removed: the worse of the pair, never the parent.
    const alive = store.aliveIndividuals(exp.id);
    expect(alive).toHaveLength(3);
    const removed = store.allIndividuals(exp.id).find((i) => i.status === 'removed');
    const parent = store.getIndividual(child.parentId as string);
    expect(removed?.fitness).toBeLessThan(parent?.fitness as number);
    if (child.mutations[0]?.name === 'RESET-WEIGHTS') expect(child.parentWeights).toBeNull();
    else expect(child.parentWeights?.sha256).toBe(parent?.weightsSha256);
    await finish(coordinator, 'w1', child, 0.9);
    expect(store.aliveIndividuals(exp.id)).toHaveLength(4);
    expect(store.getExperiment(exp.id)?.bestFitness).toBeCloseTo(0.9, 6);
    expect(sent.filter((s) => s.message.type === 'verdict')).toHaveLength(5);
  });

  it('expires a lease without heartbeats, re-issues its work, and refuses the late result with a clear reason', async () => {
    const { coordinator, store, config } = setup({}, 10_000);
    const exp = await coordinator.createExperiment(config);
    hello(coordinator, 'w1');
    hello(coordinator, 'w2');
    const first = lease(coordinator.requestWork('w1'));
    now += 5_000;
    expect(coordinator.progress('w1', first.leaseId, 10)).toBeNull(); // heartbeat extends
    now += 9_000;
    expect(coordinator.tick()).toBe(0);
    now += 2_000;
    expect(coordinator.tick()).toBe(1);
    expect(store.getTask(first.childId)?.status).toBe('queued');
    // Another worker gets the same child.
    const leases = [lease(coordinator.requestWork('w2'))];
    expect(leases[0]?.childId).toBe(first.childId);
    const late = coordinator.submitResult('w1', { type: 'result', leaseId: first.leaseId, status: 'diverged', stepsDone: 1, trainSeconds: 1, backend: 'wasm' });
    expect(late).toMatchObject({ type: 'refused', code: 'lease-expired' });
    expect(store.allIndividuals(exp.id)).toHaveLength(0);
    const up = await coordinator.acceptUpload(first.leaseId, first.token, [new Uint8Array(4)]);
    expect(up).toMatchObject({ ok: false, status: 410 });
  });

  it('takes a released lease back at once and lets only its holder complete it, once', async () => {
    const { coordinator, store, config } = setup();
    const exp = await coordinator.createExperiment(config);
    hello(coordinator, 'w1');
    hello(coordinator, 'thief');
    const l = lease(coordinator.requestWork('w1'));
    expect(coordinator.submitResult('thief', { type: 'result', leaseId: l.leaseId, status: 'diverged', stepsDone: 1, trainSeconds: 1, backend: 'wasm' })).toMatchObject({ code: 'not-your-lease' });
    expect(await coordinator.acceptUpload(l.leaseId, 'f'.repeat(48), [weightsFor(l, 0.5)])).toMatchObject({ ok: false, status: 403 });
    await finish(coordinator, 'w1', l, 0.5);
    // A replay of the same result is refused and inserts nothing.
    const replay = coordinator.submitResult('w1', { type: 'result', leaseId: l.leaseId, status: 'ok', weightsSha256: 'a'.repeat(64), stepsDone: 1, trainSeconds: 1, backend: 'wasm' });
    expect(replay).toMatchObject({ type: 'refused' });
    expect(store.allIndividuals(exp.id)).toHaveLength(1);

    const second = lease(coordinator.requestWork('w1'));
    expect(coordinator.release('w1', second.leaseId)).toBeNull();
    expect(store.getTask(second.childId)?.status).toBe('queued');
    expect(lease(coordinator.requestWork('w1')).childId).toBe(second.childId);
  });

  it('refuses a result without an upload, or with another hash, and weights of the wrong size', async () => {
    const { coordinator, config } = setup();
    await coordinator.createExperiment(config);
    hello(coordinator, 'w1');
    const l = lease(coordinator.requestWork('w1'));
    expect(coordinator.submitResult('w1', { type: 'result', leaseId: l.leaseId, status: 'ok', weightsSha256: 'b'.repeat(64), stepsDone: 1, trainSeconds: 1, backend: 'wasm' })).toMatchObject({ code: 'weights-not-uploaded' });
    const short = await coordinator.acceptUpload(l.leaseId, l.token, [weightsFor(l, 0.5).subarray(4)]);
    expect(short).toMatchObject({ ok: false, code: 'bad-weights' });
    const long = await coordinator.acceptUpload(l.leaseId, l.token, [weightsFor(l, 0.5), new Uint8Array(8)]);
    expect(long).toMatchObject({ ok: false, code: 'bad-weights' });
    const up = await coordinator.acceptUpload(l.leaseId, l.token, [weightsFor(l, 0.5)]);
    expect(up.ok).toBe(true);
    expect(coordinator.submitResult('w1', { type: 'result', leaseId: l.leaseId, status: 'ok', weightsSha256: 'c'.repeat(64), stepsDone: 1, trainSeconds: 1, backend: 'wasm' })).toMatchObject({ code: 'bad-weights' });
  });

  it('keeps a removed parent\'s weights until its child is trained', async () => {
    const { coordinator, store, config } = setup({ populationSize: 2 });
    const exp = await coordinator.createExperiment(config);
    hello(coordinator, 'w1');
    hello(coordinator, 'w2');
    await finish(coordinator, 'w1', lease(coordinator.requestWork('w1')), 0.3);
    await finish(coordinator, 'w1', lease(coordinator.requestWork('w1')), 0.6);
    const child = lease(coordinator.requestWork('w1')); // removes the 0.3 one; parent is the 0.6 one
    const parentSha = store.getIndividual(child.parentId as string)?.weightsSha256 as string;
    expect(parentSha).toMatch(/^[0-9a-f]{64}$/);
    expect(store.getIndividual(child.parentId as string)?.fitness).toBeCloseTo(0.6, 6);
    // Removed from the population by a later step, the parent's weights stay while its child trains.
    // The only other alive individual... none: population of 2 minus the loser leaves the parent alone.
    expect(coordinator.requestWork('w2')).toMatchObject({ type: 'idle' });
    expect(store.referencedWeights(0).has(parentSha)).toBe(true);
    coordinator.collectGarbage();
    expect(store.getIndividual(child.parentId as string)?.weightsSha256).toBe(parentSha);
    await finish(coordinator, 'w1', child, 0.7);
    expect(store.aliveIndividuals(exp.id)).toHaveLength(2);
  });

  it('ends an experiment after maxChildren and says so', async () => {
    const { coordinator, store, config } = setup({ populationSize: 2, maxChildren: 3 });
    const exp = await coordinator.createExperiment(config);
    hello(coordinator, 'w1');
    for (let i = 0; i < 3; i++) await finish(coordinator, 'w1', lease(coordinator.requestWork('w1')), 0.1 * (i + 1));
    expect(store.getExperiment(exp.id)?.status).toBe('finished');
    expect(coordinator.requestWork('w1')).toMatchObject({ type: 'idle', reason: expect.stringMatching(/finished/) });
  });

  it('keeps at most half the population in flight, so many workers cannot wear it down', async () => {
    const { coordinator, store, config } = setup({ populationSize: 4 });
    const exp = await coordinator.createExperiment(config);
    for (const w of ['w1', 'w2', 'w3', 'w4']) hello(coordinator, w);
    for (let i = 0; i < 4; i++) await finish(coordinator, 'w1', lease(coordinator.requestWork('w1')), 0.1 * (i + 1));
    const first = lease(coordinator.requestWork('w1'));
    lease(coordinator.requestWork('w2'));
    expect(coordinator.requestWork('w3')).toMatchObject({ type: 'idle', reason: expect.stringMatching(/2 children are in flight, the most a population of 4 allows/) });
    expect(coordinator.requestWork('w4')).toMatchObject({ type: 'idle' });
    expect(store.aliveIndividuals(exp.id)).toHaveLength(2);
    await finish(coordinator, 'w1', first, 0.5);
    expect(coordinator.requestWork('w3')).toMatchObject({ type: 'lease' });
  });

  it('a child whose weights two different workers cannot get evaluated fails, instead of going round the queue and quarantining honest workers', async () => {
    const { coordinator, store, config } = setup({ populationSize: 2 });
    await coordinator.createExperiment(config);
    hello(coordinator, 'w1');
    hello(coordinator, 'w2');
    for (const fitness of [0.3, 0.4]) await finish(coordinator, 'w1', lease(coordinator.requestWork('w1')), fitness);
    const child = lease(coordinator.requestWork('w1'));
    sent = [];
    await finish(coordinator, 'w1', child, -1);
    expect(sent.find((m) => m.workerId === 'w1')?.message).toMatchObject({ type: 'refused', code: 'bad-weights' });
    expect(store.getTask(child.childId)?.status).toBe('queued');
    // The same child from another worker: the child fails (fitness 0, no weights kept), the experiment goes on.
    const again = lease(coordinator.requestWork('w2'));
    expect(again.childId).toBe(child.childId);
    sent = [];
    await finish(coordinator, 'w2', again, -1);
    expect(sent.find((m) => m.workerId === 'w2')?.message).toMatchObject({ type: 'verdict', outcome: 'failed', fitness: 0 });
    expect(store.getIndividual(child.childId)).toMatchObject({ failed: true, fitness: 0, weightsSha256: null });
    expect(coordinator.requestWork('w1')).toMatchObject({ type: 'lease' });
  });

  it('random search: each child is the initial DNA plus 1..k mutations, trained from scratch, and the best is never removed', async () => {
    const { coordinator, store, config } = setup({ selection: 'random', mutationsPerChild: 4, populationSize: 3 });
    const exp = await coordinator.createExperiment(config);
    hello(coordinator, 'w1');
    for (const fitness of [0.9, 0.2, 0.3]) await finish(coordinator, 'w1', lease(coordinator.requestWork('w1')), fitness);
    const best = store.allIndividuals(exp.id).sort((a, b) => b.fitness - a.fitness)[0]?.id;
    expect(best).toBeDefined();
    const lengths = new Set<number>();
    for (let i = 0; i < 12; i++) {
      now += 1000;
      const child = lease(coordinator.requestWork('w1'));
      expect(child.parentId).toBeNull();
      expect(child.parentWeights).toBeNull();
      expect(child.plan.tensors.every((t) => t.source.kind === 'init')).toBe(true);
      expect(child.mutations.length).toBeGreaterThanOrEqual(1);
      expect(child.mutations.length).toBeLessThanOrEqual(4);
      lengths.add(child.mutations.length);
      await finish(coordinator, 'w1', child, 0.1 + i * 0.01);
      expect(store.getIndividual(best as string)?.status).toBe('alive');
      expect(store.aliveIndividuals(exp.id)).toHaveLength(3);
    }
    // The chain length is drawn, not fixed.
    expect(lengths.size).toBeGreaterThan(1);
  });

  it('aging removes the oldest; the boost gives k mutations; the reset retrains everyone from fresh weights', async () => {
    const { coordinator, store, config } = setup({ selection: 'aging', sampleSize: 2, plateau: { boostMutations: 5, boostChildren: 2 } });
    const exp = await coordinator.createExperiment(config);
    hello(coordinator, 'w1');
    for (let i = 0; i < 4; i++) {
      now += 1000;
      await finish(coordinator, 'w1', lease(coordinator.requestWork('w1')), 0.5 - i * 0.1);
    }
    const oldest = store.allIndividuals(exp.id).sort((a, b) => a.trainedAt - b.trainedAt)[0];
    now += 1000;
    const child = lease(coordinator.requestWork('w1'));
    expect(store.getIndividual(oldest?.id as string)?.status).toBe('removed');
    await finish(coordinator, 'w1', child, 0.2);

    coordinator.applyRemedy(exp.id, 'boost');
    const boosted = lease(coordinator.requestWork('w1'));
    expect(boosted.mutations).toHaveLength(5);
    await finish(coordinator, 'w1', boosted, 0.2);

    const before = store.aliveIndividuals(exp.id).length;
    coordinator.applyRemedy(exp.id, 'reset');
    expect(store.aliveIndividuals(exp.id)).toHaveLength(0);
    const resets: Lease[] = [];
    for (let i = 0; i < before; i++) resets.push(lease(coordinator.requestWork('w1')));
    expect(resets.every((l) => l.mutations[0]?.name === 'RESET-WEIGHTS' && l.plan.tensors.every((t) => t.source.kind === 'init'))).toBe(true);
    expect(store.events(exp.id, 0, 1000).filter((e) => e.kind === 'remedy')).toHaveLength(2);
  });

  it('records a claim that disagrees with the server, and quarantines a worker after repeated mismatches', async () => {
    const { coordinator, store, config } = setup({ populationSize: 6 });
    const exp = await coordinator.createExperiment(config);
    hello(coordinator, 'liar', 'mallory');
    for (let i = 0; i < 3; i++) {
      const l = lease(coordinator.requestWork('liar'));
      await finish(coordinator, 'liar', l, 0.1, { claimedAccuracy: 0.99 });
      // The population holds the server's number, never the claim.
      expect(store.getIndividual(l.childId)?.fitness).toBeCloseTo(0.1, 6);
    }
    expect(store.events(exp.id, 0, 100).filter((e) => e.kind === 'claim-mismatch')).toHaveLength(3);
    expect(coordinator.requestWork('liar')).toMatchObject({ type: 'refused', code: 'quarantined' });
  });

  it('restarting re-queues the leases that were in flight', async () => {
    const { coordinator, store, config, weights } = setup();
    const exp = await coordinator.createExperiment(config);
    hello(coordinator, 'w1');
    const l = lease(coordinator.requestWork('w1'));
    expect(store.getTask(l.childId)?.status).toBe('leased');
    const restarted = new Coordinator({
      store,
      weights,
      verifier: biasVerifier,
      dataset: async (name) => ({ name, shape: [8, 8, 3], numClasses: 10, manifestUrl: '/m', version: 'v1', validationCount: 100 }),
      clock: () => now,
      randomHex: (n) => (counter++).toString(16).padStart(n * 2, '0'),
      send: () => {},
    });
    expect(await restarted.recover()).toMatchObject({ requeued: 1 });
    expect(store.getTask(l.childId)?.status).toBe('queued');
    expect(store.queuedTasks(exp.id, 10).map((t) => t.id)).toContain(l.childId);
  });
});
