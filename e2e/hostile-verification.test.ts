/**
 * The server's verification under pressure, against a real server: a burst
 * of results is judged off the request path (the sockets and HTTP keep
 * answering while it is queued), and with `verifyFraction` < 1 unverified
 * children are provisional (never best, never exported) until a worker whose
 * results keep failing is quarantined and its provisional children are
 * verified after all. Expected accuracies are computed here, independently.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDna } from '../shared/evolution/validate.ts';
import { tensorSpecs, sizeOf } from '../shared/evolution/tensors.ts';
import { encodeWeights } from '../shared/model/weights-codec.ts';
import type { WeightMap } from '../shared/model/weights.ts';
import { Refusal, type Lease } from '../shared/protocol.ts';
import { startingWeights } from '../shared/worker/run-lease.ts';
import {
  Peer,
  expectedAccuracy,
  helloMessage,
  honestChild,
  http,
  leaseIo,
  resultMessage,
  sha256Hex,
  startTestServer,
  testBackend,
  uploadWeights,
  type TestServer,
} from './support/hostile-kit.ts';

let server: TestServer;
const peers: Peer[] = [];
const from = (n: number): string => `127.0.0.${n}`;

async function connect(n: number): Promise<Peer> {
  const peer = await Peer.connect(server.url, { from: from(n) });
  peers.push(peer);
  return peer;
}

/** Random small weights for a lease's child: every worker's upload differs. */
function randomBytes(lease: Lease): Uint8Array {
  const dna = parseDna(lease.dna);
  const map: WeightMap = new Map();
  for (const spec of tensorSpecs(dna)) map.set(spec.key, Float32Array.from({ length: sizeOf(spec.shape) }, () => (Math.random() - 0.5) * 0.2));
  return encodeWeights(dna, map);
}

async function initialBytes(lease: Lease): Promise<Uint8Array> {
  return encodeWeights(parseDna(lease.dna), await startingWeights(lease, leaseIo(server.url)));
}

beforeAll(async () => {
  server = await startTestServer({ populationSize: 24 });
  await testBackend();
});

afterAll(async () => {
  for (const p of peers) p.close();
  await server?.stop();
});

describe('verification off the request path', () => {
  it('while a burst of results waits for verification, /healthz and a new hello answer at once', async () => {
    const expId = server.experimentId;
    const workers: { peer: Peer; lease: Lease; bytes: Uint8Array }[] = [];
    for (let i = 0; i < 24; i++) {
      const peer = await connect(40 + (i % 4));
      await peer.hello({ experimentId: expId });
      const lease = await peer.lease();
      const bytes = randomBytes(lease);
      expect((await uploadWeights(server.url, lease, bytes, { from: from(40 + (i % 4)) })).status).toBe(200);
      workers.push({ peer, lease, bytes });
    }
    expect(server.coordinator.verificationBacklog).toBe(0);
    // The burst: every result at once (no claims, so every one is verified).
    for (const w of workers) w.peer.send(resultMessage(w.lease, sha256Hex(w.bytes), { claimedAccuracy: undefined }));
    const health = http(server.url, { method: 'GET', path: '/healthz' }).then((out) => ({ out, backlog: server.coordinator.verificationBacklog }));
    const hello = (async () => {
      const peer = await connect(45);
      const welcome = await peer.hello();
      return { welcome, backlog: server.coordinator.verificationBacklog };
    })();
    const [h, w] = await Promise.all([health, hello]);
    expect(h.out).toMatchObject({ status: 200, body: { ok: true } });
    expect(w.welcome.type).toBe('welcome');
    // Both answered before the queue was drained.
    expect(h.backlog).toBeGreaterThan(0);
    expect(w.backlog).toBeGreaterThan(0);

    const verdicts = await Promise.all(workers.map((x) => x.peer.next('verdict', 120_000)));
    expect(server.coordinator.verificationBacklog).toBe(0);
    for (const [i, verdict] of verdicts.entries()) {
      const x = workers[i] as (typeof workers)[number];
      const expected = await expectedAccuracy(server, x.lease.dna, x.bytes);
      expect(verdict).toMatchObject({ outcome: 'accepted', provisional: false, individualId: x.lease.childId, fitness: expected });
      expect(server.store.getIndividual(x.lease.childId)?.fitness).toBe(expected);
    }
  });
});

describe('verifyFraction < 1', () => {
  it('unverified children are provisional, never best nor exported; quarantine re-verifies the cheater\'s', async () => {
    const created = await http(server.url, {
      method: 'POST',
      path: '/api/experiments',
      headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'spot checks', config: { preset: 'quick', populationSize: 6, maxChildren: 0, verifyFraction: 0.01 } }),
    });
    expect(created.status).toBe(201);
    const expId = (created.body as { id: string }).id;
    const api = async (path: string) => (await http(server.url, { method: 'GET', path })).body as never;

    // An honest volunteer's child: almost surely not verified (1 in 100 is).
    const honest = await honestChild(server, { experimentId: expId });
    expect(honest.verdict.outcome).toBe('accepted');

    // The cheater claims 0.97 for untrained weights.
    const cheater = await connect(50);
    await cheater.hello({ experimentId: expId, nickname: 'mallory' });
    const cheats: { lease: Lease; bytes: Uint8Array; provisional: boolean }[] = [];
    for (let i = 0; i < 3; i++) {
      const lease = await cheater.lease();
      const bytes = await initialBytes(lease);
      expect((await uploadWeights(server.url, lease, bytes, { from: from(50) })).status).toBe(200);
      cheater.send(resultMessage(lease, sha256Hex(bytes), { claimedAccuracy: 0.97 }));
      const verdict = await cheater.next('verdict', 60_000);
      expect(verdict.outcome).toBe('accepted');
      cheats.push({ lease, bytes, provisional: verdict.provisional });
      if (verdict.provisional) expect(verdict).toMatchObject({ fitness: 0.97, creditFlops: 0 });
      else expect(verdict.fitness).toBe(await expectedAccuracy(server, lease.dna, bytes));
    }
    const provisional = cheats.filter((c) => c.provisional);
    expect(provisional.length).toBeGreaterThan(0);

    // Shown as provisional; never the best; not on the leaderboard; not exported.
    const individuals = (await api(`/api/experiments/${expId}/individuals`)) as { id: string; provisional: boolean; fitness: number }[];
    for (const c of provisional) expect(individuals.find((i) => i.id === c.lease.childId)).toMatchObject({ provisional: true, fitness: 0.97 });
    const board = (await api(`/api/experiments/${expId}/leaderboard`)) as { id: string; provisional: boolean }[];
    expect(board.every((i) => !i.provisional)).toBe(true);
    const exp = (await api(`/api/experiments/${expId}`)) as { bestFitness: number | null; bestId: string | null };
    const verified = server.store.allIndividuals(expId).filter((i) => !i.provisional && !i.failed);
    expect(exp.bestFitness).toBe(verified.length === 0 ? null : Math.max(...verified.map((i) => i.fitness)));
    expect(provisional.map((c) => c.lease.childId)).not.toContain(exp.bestId);
    for (const c of provisional) {
      for (const file of ['model.json', 'weights.bin']) {
        expect((await http(server.url, { method: 'GET', path: `/api/individuals/${c.lease.childId}/${file}` })).status).toBe(409);
      }
    }

    // Weights that are not finite are refused even when they would not be evaluated; three such results quarantine the cheater.
    let refusals = 0;
    for (;;) {
      cheater.send({ type: 'ready' });
      const answer = await cheater.nextMessage((m) => m.type === 'lease' || m.type === 'refused' || m.type === 'idle');
      if (answer.type === 'refused' && answer.code === Refusal.Quarantined) break;
      if (answer.type !== 'lease') throw new Error(`unexpected ${JSON.stringify(answer)}`);
      const bytes = await initialBytes(answer.lease);
      new DataView(bytes.buffer, bytes.byteOffset).setFloat32(20, Number.NaN, true);
      expect((await uploadWeights(server.url, answer.lease, bytes, { from: from(50) })).status).toBe(200);
      cheater.send(resultMessage(answer.lease, sha256Hex(bytes), { claimedAccuracy: 0.5 }));
      expect(await cheater.refused(60_000)).toMatchObject({ code: Refusal.BadWeights, leaseId: answer.lease.leaseId });
      expect(server.store.getIndividual(answer.lease.childId)).toBeNull();
      refusals++;
      expect(refusals).toBeLessThanOrEqual(3);
    }

    // Quarantine: the cheater's provisional children are verified now and get what their weights earn.
    await server.coordinator.drained();
    for (const c of provisional) {
      const expected = await expectedAccuracy(server, c.lease.dna, c.bytes);
      expect(server.store.getIndividual(c.lease.childId)).toMatchObject({ provisional: false, fitness: expected, claimedAccuracy: 0.97 });
      expect(server.store.events(expId, 0, 10_000).some((e) => e.kind === 'reverified' && e.data.id === c.lease.childId)).toBe(true);
      expect((await http(server.url, { method: 'GET', path: `/api/individuals/${c.lease.childId}/model.json` })).status).toBe(200);
    }
    const after = server.store.allIndividuals(expId).filter((i) => !i.provisional && !i.failed);
    expect(server.store.getExperiment(expId)?.bestFitness).toBe(Math.max(...after.map((i) => i.fitness)));
    // The honest volunteer's child is not touched.
    expect(server.store.getIndividual(honest.lease.childId)?.provisional).toBe(honest.verdict.provisional);

    // No more work for the cheater's address; others are served.
    const again = await connect(50);
    again.send(helloMessage({ experimentId: expId }));
    await again.next('welcome');
    again.send({ type: 'ready' });
    expect((await again.refused()).code).toBe(Refusal.Quarantined);
    const next = await honestChild(server, { experimentId: expId });
    expect(next.verdict.outcome).toBe('accepted');
  });
});
