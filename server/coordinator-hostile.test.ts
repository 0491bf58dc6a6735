/**
 * The coordinator against cheating workers, deterministically: an in-memory
 * store, a hand-moved clock, server randomness the test steers, and a
 * verifier whose accuracy is the classifier bias's first value (so a test
 * knows what the server will find) and which rejects a negative one as bad
 * weights (finite, so only an evaluation can tell).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { flopsReport } from '../shared/evolution/flops.ts';
import { parseDna } from '../shared/evolution/validate.ts';
import { decodeWeights, encodeWeights } from '../shared/model/weights-codec.ts';
import type { WeightMap } from '../shared/model/weights.ts';
import { PROTOCOL_VERSION, type Lease, type ResultMessage, type ServerMessage } from '../shared/protocol.ts';
import { Coordinator } from './coordinator.ts';
import { resolveConfig } from './experiments/config.ts';
import { MemoryStore } from './store/memory-store.ts';
import { BadWeightsError, type Verifier } from './verifier.ts';
import { WeightsFiles } from './weights-files.ts';

let dir: string;
let now: number;
let sent: { workerId: string; message: ServerMessage }[];
let counter: number;
/** What the coordinator draws to decide whether to verify a child: 0 verifies, 'ffffffff' skips (with verifyFraction < 1). */
let draw: string;
/** Draws to use first, in order. */
let draws: string[];
let evaluations: number;
/** Evaluations wait for this (so results can pile up in the queue). */
let gate: Promise<void>;

const verifier: Verifier = {
  async evaluate({ dna, weightsPath }) {
    await gate;
    evaluations++;
    let weights: WeightMap;
    try {
      weights = decodeWeights(parseDna(dna), new Uint8Array(await readFile(weightsPath)));
    } catch (err) {
      throw new BadWeightsError(String(err));
    }
    const bias = weights.get('classifier/bias')?.[0] ?? 0;
    if (bias < 0) throw new BadWeightsError('the model does not evaluate');
    return { accuracy: Math.min(1, bias), probeAccuracy: Math.min(1, bias) };
  },
  async close() {},
};

function setup(overrides: Record<string, unknown> = {}) {
  const store = new MemoryStore();
  const coordinator = new Coordinator({
    store,
    weights: new WeightsFiles(join(dir, 'weights')),
    verifier,
    dataset: async (name) => ({ name, shape: [8, 8, 3], numClasses: 10, manifestUrl: `/data/${name}/manifest.json`, version: 'v1', validationCount: 100 }),
    clock: () => now,
    randomHex: (n) => (n === 4 ? (draws.shift() ?? draw) : (counter++).toString(16).padStart(n * 2, '0')),
    send: (workerId, message) => sent.push({ workerId, message }),
    leaseTtlMs: 10_000,
    heartbeatMs: 2_000,
  });
  return { store, coordinator, config: resolveConfig({ preset: 'quick', populationSize: 8, maxChildren: 0, ...overrides }) };
}

function hello(coordinator: Coordinator, workerId: string, address: string, nickname?: string) {
  return coordinator.hello(workerId, { type: 'hello', protocol: PROTOCOL_VERSION, backend: 'wasm', adapter: 'test', speed: 1, client: 'node', ...(nickname ? { nickname } : {}) }, address);
}

function lease(message: ServerMessage): Lease {
  if (message.type !== 'lease') throw new Error(`expected a lease, got ${JSON.stringify(message)}`);
  return message.lease;
}

/** Weights whose server accuracy is `bias` (or bad weights when it is negative or not finite). */
function weightsFor(l: Lease, bias: number): Uint8Array {
  const dna = parseDna(l.dna);
  const map: WeightMap = new Map();
  for (const t of l.plan.tensors) map.set(t.key, new Float32Array(t.shape.reduce((a, b) => a * b, 1)).fill(0.01));
  (map.get('classifier/bias') as Float32Array)[0] = 0;
  const bytes = encodeWeights(dna, map);
  // Written after encoding so NaN and Infinity go in as they are.
  const keys = l.plan.tensors.map((t) => t.key);
  const offset = 16 + 4 * l.plan.tensors.slice(0, keys.indexOf('classifier/bias')).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  new DataView(bytes.buffer).setFloat32(offset, bias, true);
  return bytes;
}

async function* body(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** Uploads and reports (without waiting for the verdict). */
async function submit(coordinator: Coordinator, workerId: string, l: Lease, bias: number, extra: Partial<ResultMessage> = {}) {
  const up = await coordinator.acceptUpload(l.leaseId, l.token, body(weightsFor(l, bias)));
  if (!up.ok) throw new Error(up.message);
  return coordinator.submitResult(workerId, { type: 'result', leaseId: l.leaseId, status: 'ok', weightsSha256: up.sha256, stepsDone: l.steps, trainSeconds: 1, backend: 'wasm', ...extra });
}

const verdictOf = (leaseId: string) => sent.find((s) => s.message.type === 'verdict' && s.message.leaseId === leaseId)?.message;
const refusalOf = (leaseId: string) => sent.find((s) => s.message.type === 'refused' && s.message.leaseId === leaseId)?.message;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'petri-hostile-coord-'));
  now = 1_000_000;
  sent = [];
  counter = 1;
  draw = '00000000';
  draws = [];
  evaluations = 0;
  gate = Promise.resolve();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('coordinator against cheating workers', () => {
  it('with verifyFraction < 1 an unverified child is provisional, never best; its weights must still be finite', async () => {
    const { coordinator, store, config } = setup({ verifyFraction: 0.5 });
    const exp = await coordinator.createExperiment(config);
    hello(coordinator, 'honest', '10.0.0.1');
    const a = lease(coordinator.requestWork('honest'));
    await submit(coordinator, 'honest', a, 0.3, { claimedAccuracy: 0.3 });
    await coordinator.drained();
    expect(verdictOf(a.leaseId)).toMatchObject({ provisional: false, fitness: expect.closeTo(0.3, 6) });

    draw = 'ffffffff';
    const b = lease(coordinator.requestWork('honest'));
    await submit(coordinator, 'honest', b, 0.1, { claimedAccuracy: 0.9 });
    await coordinator.drained();
    expect(verdictOf(b.leaseId)).toMatchObject({ provisional: true, fitness: 0.9, creditFlops: 0 });
    expect(store.getIndividual(b.childId)).toMatchObject({ provisional: true, fitness: 0.9 });
    expect(store.getExperiment(exp.id)?.bestFitness).toBeCloseTo(0.3, 6);

    // Not evaluated, but NaN or Infinity are refused all the same: such a child could become a parent.
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const c = lease(coordinator.requestWork('honest'));
      const evaluated = evaluations;
      await submit(coordinator, 'honest', c, bad, { claimedAccuracy: 0.8 });
      await coordinator.drained();
      expect(evaluations).toBe(evaluated);
      expect(refusalOf(c.leaseId)).toMatchObject({ code: 'bad-weights' });
      expect(store.getIndividual(c.childId)).toBeNull();
      expect(store.getTask(c.childId)?.status).toBe('queued');
    }
  });

  it('quarantine re-verifies the worker\'s provisional children (from any connection of its address), dropping those that do not evaluate', async () => {
    const { coordinator, store, config } = setup({ verifyFraction: 0.5 });
    const exp = await coordinator.createExperiment(config);
    draw = 'ffffffff'; // nothing is spot-checked unless it must be
    hello(coordinator, 'honest', '10.0.0.1', 'ada');
    hello(coordinator, 'liar-1', '10.0.0.66');
    hello(coordinator, 'liar-2', '10.0.0.66');
    const honestLease = lease(coordinator.requestWork('honest'));
    await submit(coordinator, 'honest', honestLease, 0.4, { claimedAccuracy: 0.4 });
    const earlier = lease(coordinator.requestWork('liar-1'));
    await submit(coordinator, 'liar-1', earlier, 0.2, { claimedAccuracy: 0.95 });
    const broken = lease(coordinator.requestWork('liar-2'));
    await submit(coordinator, 'liar-2', broken, -1, { claimedAccuracy: 0.99 });
    await coordinator.drained();
    for (const l of [honestLease, earlier, broken]) expect(store.getIndividual(l.childId)?.provisional).toBe(true);
    expect(store.getExperiment(exp.id)?.bestFitness).toBeNull();

    // Three results with weights that are not finite: quarantined.
    for (let i = 0; i < 3; i++) {
      const l = lease(coordinator.requestWork('liar-2'));
      await submit(coordinator, 'liar-2', l, Number.NaN, { claimedAccuracy: 0.5 });
      await coordinator.drained();
    }
    expect(coordinator.worker('liar-2')?.quarantined).toBe(true);
    expect(coordinator.requestWork('liar-2')).toMatchObject({ type: 'refused', code: 'quarantined' });

    expect(store.getIndividual(earlier.childId)).toMatchObject({ provisional: false });
    expect(store.getIndividual(earlier.childId)?.fitness).toBeCloseTo(0.2, 6);
    expect(store.getIndividual(broken.childId)).toMatchObject({ provisional: false, fitness: 0 });
    // Another address's provisional child is not touched.
    expect(store.getIndividual(honestLease.childId)).toMatchObject({ provisional: true, fitness: expect.closeTo(0.4, 6) });
    expect(store.getExperiment(exp.id)?.bestFitness).toBeCloseTo(0.2, 6);
    const events = store.events(exp.id, 0, 1000).filter((e) => e.kind === 'reverified');
    expect(events.map((e) => [e.data.id, e.data.dropped])).toEqual(
      expect.arrayContaining([
        [earlier.childId, false],
        [broken.childId, true],
      ]),
    );
    expect(events).toHaveLength(2);
  });

  it('results of a worker quarantined while they waited are verified, whatever the draw', async () => {
    const { coordinator, store, config } = setup({ verifyFraction: 0.5 });
    await coordinator.createExperiment(config);
    // Three bad results (verified: the draw says so) and one more queued behind them that the draw would skip.
    draws = ['00000000', '00000000', '00000000', 'ffffffff'];
    let open = () => {};
    gate = new Promise((resolve) => (open = resolve));
    hello(coordinator, 'liar', '10.0.0.66');
    const queued: Lease[] = [];
    for (let i = 0; i < 4; i++) {
      const l = lease(coordinator.requestWork('liar'));
      expect(await submit(coordinator, 'liar', l, i < 3 ? Number.NaN : 0.15, { claimedAccuracy: 0.9 })).toBeNull();
      queued.push(l);
    }
    expect(coordinator.verificationBacklog).toBe(4);
    open();
    await coordinator.drained();
    expect(coordinator.worker('liar')?.quarantined).toBe(true);
    const last = queued[3] as Lease;
    expect(verdictOf(last.leaseId)).toMatchObject({ provisional: false, fitness: expect.closeTo(0.15, 6) });
    expect(store.getIndividual(last.childId)?.provisional).toBe(false);
  });

  it('credits and costs no more steps than the lease asked for', async () => {
    const { coordinator, store, config } = setup();
    const exp = await coordinator.createExperiment(config);
    hello(coordinator, 'w', '10.0.0.1', 'ada');
    const l = lease(coordinator.requestWork('w'));
    await submit(coordinator, 'w', l, 0.5, { stepsDone: 999_999_999, claimedAccuracy: 0.5 });
    await coordinator.drained();
    const report = flopsReport(parseDna(l.dna), config.batchSize, 100);
    expect(verdictOf(l.leaseId)).toMatchObject({ creditFlops: report.trainingPerStep * config.stepsPerChild });
    expect(store.volunteers(10)[0]?.flopsDonated).toBe(report.trainingPerStep * config.stepsPerChild);
    expect(store.getExperiment(exp.id)?.totalFlops).toBe(store.getIndividual(l.childId)?.costFlops);
  });
});
