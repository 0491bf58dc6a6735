/**
 * Hostile clients against a real server (SQLite store, verification thread,
 * socket.io, HTTP): garbage at the edge, attacks on leases and uploads,
 * cheating workers, admin and live routes. After each attack the server is
 * still up, still serves an honest worker to a verified child, and the
 * population is exactly what it was; a cheat that is accepted earns exactly
 * what its weights earn on the validation split, computed here independently.
 *
 * Hostile peers connect from their own loopback addresses (127.0.0.10 and
 * up) so the limits per address they run into never touch the honest
 * worker (127.0.0.1).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flopsReport } from '../shared/evolution/flops.ts';
import { parseDna } from '../shared/evolution/validate.ts';
import { tensorSpecs } from '../shared/evolution/tensors.ts';
import { encodeWeights, weightsByteLength } from '../shared/model/weights-codec.ts';
import { MAX_FRAME_BYTES, Refusal, type Lease } from '../shared/protocol.ts';
import { startingWeights } from '../shared/worker/run-lease.ts';
import { startPetri } from './support/processes.ts';
import {
  Peer,
  expectedAccuracy,
  helloMessage,
  honestChild,
  http,
  leaseIo,
  resultMessage,
  sha256Hex,
  snapshot,
  startTestServer,
  testBackend,
  trainHonestly,
  until,
  uploadWeights,
  type PopulationSnapshot,
  type TestServer,
} from './support/hostile-kit.ts';

let server: TestServer;
let expId: string;
const peers: Peer[] = [];

const from = (n: number): string => `127.0.0.${n}`;

async function connect(n: number, namespace?: string): Promise<Peer> {
  const peer = await Peer.connect(server.url, { from: from(n), ...(namespace ? { namespace } : {}) });
  peers.push(peer);
  return peer;
}

/** A greeted peer holding a lease of the test experiment. */
async function leaseHolder(n: number): Promise<{ peer: Peer; lease: Lease }> {
  const peer = await connect(n);
  await peer.hello({ experimentId: expId });
  return { peer, lease: await peer.lease() };
}

/** The child's starting weights, untrained, as the weights binary. */
async function initialBytes(lease: Lease): Promise<Uint8Array> {
  return encodeWeights(parseDna(lease.dna), await startingWeights(lease, leaseIo(server.url)));
}

/** Gives a lease back (a hostile peer may have been disconnected: its lease is resumed with the token first). */
async function giveBack(lease: Lease, n: number): Promise<void> {
  const peer = await connect(n);
  peer.send(helloMessage({ experimentId: expId, resume: { leaseId: lease.leaseId, token: lease.token } }));
  await peer.next('welcome');
  peer.send({ type: 'release', leaseId: lease.leaseId, reason: 'test over' });
  await until(() => server.coordinator.leasesInFlight(expId).every((l) => l.leaseId !== lease.leaseId), 'the lease to be released', 5_000);
  peer.close();
}

/** The server is up, the population is as it was, and an honest worker still gets a child verified. */
async function expectUnharmed(before: PopulationSnapshot): Promise<void> {
  await server.coordinator.drained();
  expect(snapshot(server, expId)).toEqual(before);
  expect((await http(server.url, { method: 'GET', path: '/healthz' })).status).toBe(200);
  const honest = await honestChild(server);
  expect(honest.verdict).toMatchObject({ outcome: 'accepted', provisional: false, individualId: honest.lease.childId });
  expect(server.store.getIndividual(honest.lease.childId)?.fitness).toBe(honest.verdict.fitness);
}

/** What a child's arrival may change: one more individual and the counters it moves. */
function expectOneMore(before: PopulationSnapshot, childId: string): void {
  const after = snapshot(server, expId);
  const child = after.all.find((i) => i.id === childId);
  expect(child).toBeDefined();
  expect(after.all.filter((i) => i.id !== childId)).toEqual(before.all);
  expect(after.counters.childrenTrained).toBe(before.counters.childrenTrained + 1);
  expect(after.counters.stepCounter).toBe(before.counters.stepCounter);
  const best = before.counters.bestFitness === null ? child?.fitness : Math.max(before.counters.bestFitness, child?.fitness ?? 0);
  expect(after.counters.bestFitness).toBe(best);
}

beforeAll(async () => {
  server = await startTestServer();
  expId = server.experimentId;
  await testBackend();
  // A first honest child: warms the verification thread and gives the cheats below a donor.
  const first = await honestChild(server);
  expect(first.verdict.outcome).toBe('accepted');
});

afterAll(async () => {
  for (const p of peers) p.close();
  await server?.stop();
});

describe('cheating workers earn exactly what their weights earn', () => {
  it('weights copied from another, better individual get that individual\'s validation accuracy, not the claim', async () => {
    const { peer, lease } = await leaseHolder(10);
    const specs = JSON.stringify(tensorSpecs(parseDna(lease.dna)).map((t) => [t.key, t.shape]));
    // The best verified individual whose tensors fit this child's, fetched as any worker fetches a parent's weights.
    const donor = server.store
      .leaderboard(expId, 100)
      .find((i) => !i.provisional && !i.failed && i.weightsSha256 !== null && JSON.stringify(tensorSpecs(i.dna).map((t) => [t.key, t.shape])) === specs);
    expect(donor).toBeDefined();
    const got = await fetch(new URL(`/api/weights/${donor?.weightsSha256}`, server.url));
    expect(got.status).toBe(200);
    const bytes = new Uint8Array(await got.arrayBuffer());
    const expected = await expectedAccuracy(server, lease.dna, bytes);
    expect(expected).toBe(donor?.fitness);

    const before = snapshot(server, expId);
    const up = await uploadWeights(server.url, lease, bytes, { from: from(10) });
    expect(up.status).toBe(200);
    peer.send(resultMessage(lease, sha256Hex(bytes), { claimedAccuracy: 0.99 }));
    const verdict = await peer.next('verdict', 60_000);
    expect(verdict).toMatchObject({ outcome: 'accepted', provisional: false, fitness: expected });
    expect(server.store.getIndividual(lease.childId)).toMatchObject({ fitness: expected, provisional: false, claimedAccuracy: 0.99 });
    expectOneMore(before, lease.childId);
    // The claim disagreed with the server's probe accuracy of the same weights: recorded against the worker.
    expect(server.store.events(expId, 0, 10_000).some((e) => e.kind === 'claim-mismatch' && e.data.childId === lease.childId)).toBe(true);
  });

  it('untrained weights (the child\'s initial weights) get exactly their own accuracy', async () => {
    const { peer, lease } = await leaseHolder(11);
    const bytes = await initialBytes(lease);
    const expected = await expectedAccuracy(server, lease.dna, bytes);
    const before = snapshot(server, expId);
    expect((await uploadWeights(server.url, lease, bytes, { from: from(11) })).status).toBe(200);
    peer.send(resultMessage(lease, sha256Hex(bytes), { claimedAccuracy: 0.9 }));
    const verdict = await peer.next('verdict', 60_000);
    expect(verdict).toMatchObject({ outcome: 'accepted', fitness: expected, provisional: false });
    expect(server.store.getIndividual(lease.childId)?.fitness).toBe(expected);
    expectOneMore(before, lease.childId);
  });

  it('a forged claim and forged step count change neither the fitness nor the credit', async () => {
    const { peer, lease } = await leaseHolder(12);
    const trained = await trainHonestly(server, lease, from(12));
    const expected = await expectedAccuracy(server, lease.dna, trained.bytes);
    const mismatches = server.coordinator.metrics.claimMismatches;
    const before = snapshot(server, expId);
    const forged = Math.abs(trained.probeAccuracy - 0.99) > 0.05 ? 0.99 : 0.01;
    peer.send(resultMessage(lease, trained.sha256, { claimedAccuracy: forged, stepsDone: 999_999_999 }));
    const verdict = await peer.next('verdict', 60_000);
    const report = flopsReport(parseDna(lease.dna), lease.batchSize, 200);
    expect(verdict).toMatchObject({ outcome: 'accepted', fitness: expected, creditFlops: report.trainingPerStep * lease.steps });
    expect(server.store.getIndividual(lease.childId)).toMatchObject({ fitness: expected, claimedAccuracy: forged });
    expect(server.coordinator.metrics.claimMismatches).toBe(mismatches + 1);
    expectOneMore(before, lease.childId);
    const after = snapshot(server, expId);
    expect(after.counters.totalFlops - before.counters.totalFlops).toBe(server.store.getIndividual(lease.childId)?.costFlops);
  });
});

describe('every socket message is parsed before anything else sees it', () => {
  const bad: [string, unknown][] = [
    ['null', null],
    ['a string', 'hello'],
    ['a number', 42],
    ['an array', [{ type: 'hello' }]],
    ['no type', {}],
    ['an unknown type', { type: 'become-admin' }],
    ['a hello missing fields', { type: 'hello', protocol: 1 }],
    ['a hello with a wrong type', helloMessage({ protocol: '1' })],
    ['a hello with a negative speed', helloMessage({ speed: -1 })],
    ['NaN (it travels as null)', helloMessage({ speed: NaN })],
    ['an unknown field', helloMessage({ admin: true })],
    ['a nickname with markup', helloMessage({ nickname: '<img src=x onerror=alert(1)>' })],
    ['a long adapter string', helloMessage({ adapter: 'x'.repeat(100_000) })],
    ['a forged fitness field', { ...resultMessage({ leaseId: `L${'0'.repeat(24)}`, steps: 1 }, 'a'.repeat(64)), fitness: 0.99 }],
    ['a substituted DNA', { ...resultMessage({ leaseId: `L${'0'.repeat(24)}`, steps: 1 }, 'a'.repeat(64)), dna: { format: 'petri-dna/1' } }],
    ['a claim above 1', resultMessage({ leaseId: `L${'0'.repeat(24)}`, steps: 1 }, 'a'.repeat(64), { claimedAccuracy: 1.5 })],
    ['a path in a lease id', { type: 'progress', leaseId: 'L../../admin', step: 1 }],
    ['a fractional step', { type: 'progress', leaseId: `L${'0'.repeat(24)}`, step: 1.5 }],
    ['a "constructor" key', { type: 'ready', constructor: { prototype: { admin: true } } }],
    ['type "__proto__"', { type: '__proto__' }],
    ['type "constructor"', { type: 'constructor' }],
    ['a "__proto__" key in resume', helloMessage({ resume: JSON.parse('{"__proto__":{"leaseId":"x"}}') as unknown })],
  ];

  it.each(bad)('refuses %s with a typed error and changes nothing', async (_what, payload) => {
    const before = snapshot(server, expId);
    const peer = await connect(20);
    peer.send(payload);
    const refused = await peer.refused();
    expect(refused.code).toBe(Refusal.BadMessage);
    expect(refused.message.length).toBeGreaterThan(0);
    expect(peer.connected).toBe(true);
    peer.close();
    await server.coordinator.drained();
    expect(snapshot(server, expId)).toEqual(before);
  });

  it('refuses prototype keys, Infinity and huge numbers written as raw JSON', async () => {
    const before = snapshot(server, expId);
    const peer = await connect(21);
    const raw = [
      '2["petri",{"type":"hello","protocol":1,"backend":"cpu","adapter":"x","speed":0,"client":"node","__proto__":{"admin":true}}]',
      '2["petri",{"type":"ready","__proto__":null}]',
      `2["petri",{"type":"progress","leaseId":"L${'0'.repeat(24)}","step":1e999}]`,
      '2["petri",{"type":"hello","protocol":1,"backend":"cpu","adapter":"x","speed":-1e999,"client":"node"}]',
    ];
    for (const packet of raw) {
      peer.sendPacket(packet);
      expect((await peer.refused()).code).toBe(Refusal.BadMessage);
    }
    expect(peer.connected).toBe(true);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    peer.close();
    expect(snapshot(server, expId)).toEqual(before);
    await expectUnharmed(before);
  });

  it('refuses unknown events and messages before hello; disconnects a repeat offender', async () => {
    const before = snapshot(server, expId);
    const peer = await connect(22);
    peer.socket.emit('admin', { pause: expId });
    expect((await peer.refused()).code).toBe(Refusal.BadMessage);
    peer.socket.emit('__proto__', { type: 'ready' });
    expect((await peer.refused()).code).toBe(Refusal.BadMessage);
    peer.send({ type: 'ready' });
    expect((await peer.refused()).code).toBe(Refusal.NotHello);
    peer.send({ type: 'result', leaseId: `L${'0'.repeat(24)}`, status: 'diverged', stepsDone: 1, trainSeconds: 1, backend: 'cpu' });
    expect((await peer.refused()).code).toBe(Refusal.NotHello);
    expect(peer.connected).toBe(true);
    peer.socket.emit('petri', Buffer.from('binary'));
    expect((await peer.refused()).code).toBe(Refusal.BadMessage);
    // The fifth offence: the server closes the connection.
    expect(await peer.disconnected()).toBe('io server disconnect');
    await expectUnharmed(before);
  });

  it('closes the connection on a malformed frame and on a frame over the size cap', async () => {
    const before = snapshot(server, expId);
    const broken = await connect(23);
    broken.sendPacket('2["petri",{"type":"hello",');
    expect(await broken.disconnected()).toMatch(/transport close|io server disconnect/);
    const huge = await connect(23);
    huge.send(helloMessage({ adapter: 'x'.repeat(MAX_FRAME_BYTES + 1) }));
    expect(await huge.disconnected()).toMatch(/transport close|transport error/);
    await expectUnharmed(before);
  });
});

describe('rate limits', () => {
  it('a flood of messages on one connection is refused, then disconnected', async () => {
    const { peer, lease } = await leaseHolder(30);
    const before = snapshot(server, expId);
    for (let i = 0; i < 80; i++) peer.send({ type: 'progress', leaseId: lease.leaseId, step: i });
    const refused = await peer.refused();
    expect(refused.code).toBe(Refusal.RateLimited);
    expect(await peer.disconnected()).toBe('io server disconnect');
    await giveBack(lease, 30);
    await expectUnharmed(before);
  });

  it('a flood of hellos from one address is refused there, while other addresses are served', async () => {
    const before = snapshot(server, expId);
    const flood = await connect(31);
    for (let i = 0; i < 40; i++) flood.send(helloMessage());
    expect(await flood.disconnected()).toBe('io server disconnect');
    const welcomes = flood.received.filter((m) => (m as { type?: string }).type === 'welcome').length;
    const limited = flood.received.filter((m) => (m as { code?: string }).code === Refusal.RateLimited).length;
    expect(welcomes).toBeGreaterThanOrEqual(30);
    expect(welcomes).toBeLessThan(40);
    expect(limited).toBe(5);
    // The same address, a new connection: still refused.
    const again = await connect(31);
    again.send(helloMessage());
    expect((await again.refused()).code).toBe(Refusal.RateLimited);
    // Another address is not.
    const other = await connect(32);
    await other.hello();
    await expectUnharmed(before);
  });
});

describe('leases and uploads', () => {
  it('a stolen lease id: another connection can neither upload to it, heartbeat it, release it, resume it nor complete it', async () => {
    let before: PopulationSnapshot | null = null;
    let attacked = false;
    const honest = await honestChild(server, {
      onLease: async (victim) => {
        const { peer: thief, lease: own } = await leaseHolder(40);
        before = snapshot(server, expId);
        for (const message of [
          { type: 'progress', leaseId: victim.leaseId, step: 1 },
          { type: 'release', leaseId: victim.leaseId, reason: 'mine now' },
          resultMessage(victim, 'a'.repeat(64)),
          { type: 'result', leaseId: victim.leaseId, status: 'diverged', stepsDone: 1, trainSeconds: 1, backend: 'cpu' },
        ]) {
          thief.send(message);
          expect(await thief.refused()).toMatchObject({ code: Refusal.NotYourLease, leaseId: victim.leaseId });
        }
        const bytes = await initialBytes(victim);
        for (const token of [own.token, 'f'.repeat(48), victim.token.replace(/.$/, (c) => (c === '0' ? '1' : '0'))]) {
          const up = await uploadWeights(server.url, { uploadUrl: victim.uploadUrl, token }, bytes, { from: from(40) });
          expect(up).toMatchObject({ status: 403, body: { error: Refusal.NotYourLease } });
        }
        // Resuming someone else's lease needs its token.
        const resumer = await connect(41);
        resumer.send(helloMessage({ experimentId: expId, resume: { leaseId: victim.leaseId, token: own.token } }));
        await resumer.next('welcome');
        expect((await resumer.refused()).code).toBe(Refusal.UnknownLease);
        expect(server.coordinator.leasesInFlight(expId).find((l) => l.leaseId === victim.leaseId)?.workerId).not.toBe(undefined);
        thief.send({ type: 'release', leaseId: own.leaseId, reason: 'done' });
        await until(() => server.coordinator.leasesInFlight(expId).every((l) => l.leaseId !== own.leaseId), 'the thief\'s own lease to go back', 5_000);
        await server.coordinator.drained();
        expect(snapshot(server, expId)).toEqual(before);
        attacked = true;
      },
    });
    expect(attacked).toBe(true);
    // The holder completed its lease as if nothing happened.
    expect(honest.verdict).toMatchObject({ outcome: 'accepted', individualId: honest.lease.childId });
    expectOneMore(before as unknown as PopulationSnapshot, honest.lease.childId);
  });

  it('a replayed result, from the holder or anyone else, is refused and changes nothing', async () => {
    const honest = await honestChild(server, { keepOpen: true });
    peers.push(honest.peer);
    await server.coordinator.drained();
    const before = snapshot(server, expId);
    honest.peer.send(honest.result);
    expect(await honest.peer.refused()).toMatchObject({ code: Refusal.UnknownLease, leaseId: honest.lease.leaseId });
    const other = await connect(42);
    await other.hello({ experimentId: expId });
    other.send(honest.result);
    expect(await other.refused()).toMatchObject({ code: Refusal.UnknownLease });
    const reupload = await uploadWeights(server.url, honest.lease, honest.trained.bytes, { from: from(42) });
    expect(reupload.status).toBe(404);
    await expectUnharmed(before);
  });

  it('a result needs the upload first, and the hash of that upload', async () => {
    const { peer, lease } = await leaseHolder(43);
    const before = snapshot(server, expId);
    const bytes = await initialBytes(lease);
    peer.send(resultMessage(lease, sha256Hex(bytes)));
    expect((await peer.refused()).code).toBe(Refusal.NoUpload);
    const up = await uploadWeights(server.url, lease, bytes, { from: from(43) });
    expect(up).toMatchObject({ status: 200, body: { sha256: sha256Hex(bytes) } });
    const other = new Uint8Array(bytes);
    other[20] = (other[20] as number) ^ 1;
    peer.send(resultMessage(lease, sha256Hex(other)));
    expect((await peer.refused()).code).toBe(Refusal.BadWeights);
    await server.coordinator.drained();
    expect(snapshot(server, expId)).toEqual(before);
    peer.send({ type: 'release', leaseId: lease.leaseId, reason: 'test over' });
    await expectUnharmed(before);
  });

  it('weights of the wrong size are refused at the door with a clear status, even mid-stream', async () => {
    const { peer, lease } = await leaseHolder(44);
    const before = snapshot(server, expId);
    const bytes = await initialBytes(lease);
    expect(bytes.byteLength).toBe(lease.maxUploadBytes);
    expect(bytes.byteLength).toBe(weightsByteLength(parseDna(lease.dna)));
    const short = await uploadWeights(server.url, lease, bytes.subarray(0, bytes.byteLength - 4), { from: from(44) });
    expect(short).toMatchObject({ status: 400, body: { error: Refusal.BadWeights } });
    const long = new Uint8Array(bytes.byteLength + 4);
    long.set(bytes);
    expect(await uploadWeights(server.url, lease, long, { from: from(44) })).toMatchObject({ status: 413, body: { error: Refusal.BadWeights } });
    // 16 MiB, declared and chunked: the server stops reading at the cap, answers 413 and closes. A
    // client still writing may see that close (EPIPE/ECONNRESET) before the answer: that race is
    // HTTP's; what matters is that nothing past the cap is read or kept.
    const chunks = Array.from({ length: 256 }, () => new Uint8Array(64 * 1024));
    for (const chunked of [false, true]) {
      const answer = await uploadWeights(server.url, lease, chunks, { from: from(44), chunked });
      if (answer.error === null) expect(answer).toMatchObject({ status: 413, body: { error: Refusal.BadWeights } });
      else expect(answer.error).toMatch(/EPIPE|ECONNRESET|socket hang up/);
    }
    // Nothing was kept for this lease.
    peer.send(resultMessage(lease, sha256Hex(bytes)));
    expect((await peer.refused()).code).toBe(Refusal.NoUpload);
    // Malformed upload requests.
    expect(await uploadWeights(server.url, { uploadUrl: lease.uploadUrl, token: 'not-hex' }, bytes, { from: from(44) })).toMatchObject({ status: 400 });
    expect(await uploadWeights(server.url, { uploadUrl: '/api/leases/L..%2F..%2Fpetri.db/weights', token: lease.token }, bytes, { from: from(44) })).toMatchObject({ status: 400 });
    peer.send({ type: 'release', leaseId: lease.leaseId, reason: 'test over' });
    await expectUnharmed(before);
  });

  it('NaN, Infinity or a bad header in weights of the right length are refused and the task goes back; a second worker\'s unevaluable weights fail the child', async () => {
    const pairs: [string, (view: DataView) => void][][] = [
      [
        ['NaN', (view) => view.setFloat32(16, Number.NaN, true)],
        ['Infinity', (view) => view.setFloat32(view.byteLength - 4, Number.POSITIVE_INFINITY, true)],
      ],
      [
        ['bad magic', (view) => view.setUint32(0, 0xdeadbeef, true)],
        ['wrong tensor count', (view) => view.setUint32(8, 99, true)],
      ],
    ];
    // A fresh connection (and address) for each upload: bad weights count against a worker, three quarantine it.
    let n = 46;
    for (const pair of pairs) {
      // Taken once the pair's child is leased (a lease may issue a step, which removes its loser).
      let before = snapshot(server, expId);
      let childId = '';
      for (const [k, [what, damage]] of pair.entries()) {
        const { peer, lease } = await leaseHolder(n);
        if (k === 0) before = snapshot(server, expId);
        const bytes = await initialBytes(lease);
        damage(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
        expect((await uploadWeights(server.url, lease, bytes, { from: from(n) })).status, what).toBe(200);
        n++;
        peer.send(resultMessage(lease, sha256Hex(bytes)));
        if (k === 0) {
          childId = lease.childId;
          expect(await peer.refused(60_000), what).toMatchObject({ code: Refusal.BadWeights, leaseId: lease.leaseId });
          expect(server.store.getTask(childId)?.status, what).toBe('queued');
          expect(server.store.getIndividual(childId), what).toBeNull();
        } else {
          // The same child from a second worker, and again its weights do not evaluate: the child fails (fitness 0,
          // no weights kept), as a diverged one does, instead of going round the queue for ever.
          expect(lease.childId, what).toBe(childId);
          expect(await peer.next('verdict', 60_000), what).toMatchObject({ outcome: 'failed', fitness: 0, individualId: childId });
          expect(server.store.getIndividual(childId), what).toMatchObject({ failed: true, fitness: 0, weightsSha256: null });
          expectOneMore(before, childId);
        }
      }
    }
    const honest = await honestChild(server);
    expect(honest.verdict).toMatchObject({ outcome: 'accepted', provisional: false, individualId: honest.lease.childId });
  });
});

describe('HTTP', () => {
  const adminRoutes = (id: string): [string, string, unknown][] => [
    ['POST', '/api/experiments', { config: { preset: 'quick' } }],
    ['POST', `/api/experiments/${id}/pause`, undefined],
    ['POST', `/api/experiments/${id}/resume`, undefined],
    ['POST', `/api/experiments/${id}/stop`, undefined],
    ['POST', `/api/experiments/${id}/remedy`, { remedy: 'reset' }],
    ['POST', `/api/experiments/${id}/final`, { k: 5 }],
  ];

  it('admin routes refuse without the token, or with a wrong one, and change nothing', async () => {
    const before = snapshot(server, expId);
    const experiments = server.store.listExperiments();
    const token = server.adminToken;
    const wrong = token.replace(/.$/, (c) => (c === '0' ? '1' : '0'));
    const headers: [Record<string, string>, number][] = [
      [{}, 401],
      [{ authorization: 'Bearer' }, 401],
      [{ authorization: `Basic ${Buffer.from(`admin:${token}`).toString('base64')}` }, 401],
      [{ authorization: `Bearer ${wrong}` }, 403],
      [{ authorization: `Bearer ${token.slice(0, 10)}` }, 403],
      [{ authorization: `Bearer ${token}0` }, 403],
      [{ 'x-admin-token': token }, 401],
    ];
    for (const [method, path, body] of adminRoutes(expId)) {
      for (const [h, status] of headers) {
        const out = await http(server.url, { method, path, headers: { 'content-type': 'application/json', ...h }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
        expect(out.status, `${method} ${path} ${JSON.stringify(h)}`).toBe(status);
      }
      const query = await http(server.url, { method, path: `${path}?token=${token}`, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) });
      expect(query.status).toBe(401);
    }
    expect(server.store.listExperiments()).toEqual(experiments);
    await expectUnharmed(before);
  });

  it('admin bodies are parsed by schemas: unknown fields, wrong types, prototype keys, NaN, Infinity, oversized and malformed JSON', async () => {
    const before = snapshot(server, expId);
    const experiments = server.store.listExperiments();
    const auth = { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' };
    const cases: [string, string, number][] = [
      ['/api/experiments', '{"name": 5}', 400],
      ['/api/experiments', '{"nme": "x"}', 400],
      ['/api/experiments', '{"__proto__": {"name": "x"}}', 400],
      ['/api/experiments', '{"constructor": {"prototype": {"admin": true}}}', 400],
      ['/api/experiments', '{"config": {"__proto__": {"populationSize": 3}}}', 400],
      ['/api/experiments', '{"config": {"preset": "constructor"}}', 400],
      ['/api/experiments', '{"config": {"plateau": {"constructor": 1}}}', 400],
      ['/api/experiments', '{"config": {"populationSize": 1e999}}', 400],
      ['/api/experiments', '{"config": {"verifyFraction": NaN}}', 400],
      ['/api/experiments', '{"config": {"populationSize": "6"}}', 400],
      ['/api/experiments', '{"config": {"dataset": "../../etc"}}', 400],
      ['/api/experiments', '{"name": "x",', 400],
      ['/api/experiments', '"just a string"', 400],
      ['/api/experiments', JSON.stringify({ name: 'x', config: { seed: 'y'.repeat(70_000) } }), 413],
      [`/api/experiments/${expId}/remedy`, '{"remedy": "explode"}', 400],
      [`/api/experiments/${expId}/remedy`, '{"remedy": "boost", "also": 1}', 400],
      [`/api/experiments/${expId}/remedy`, '{"__proto__": {"remedy": "reset"}}', 400],
      [`/api/experiments/${expId}/final`, '{"k": "5"}', 400],
      [`/api/experiments/${expId}/final`, '{"k": 1e999}', 400],
      [`/api/experiments/${expId}/final`, '{"k": 5, "constructor": 1}', 400],
    ];
    for (const [path, body, status] of cases) {
      const out = await http(server.url, { method: 'POST', path, headers: auth, body });
      expect(out.status, `${path} ${body.slice(0, 80)}`).toBe(status);
      expect(out.body, `${path} ${body.slice(0, 80)}`).toMatchObject({ error: expect.any(String) });
    }
    // A body that is not JSON is not taken for an empty one (which would create a default experiment).
    const text = await http(server.url, { method: 'POST', path: '/api/experiments', headers: { authorization: auth.authorization, 'content-type': 'text/plain' }, body: 'name=x' });
    expect(text.status).toBe(415);
    expect(server.store.listExperiments()).toEqual(experiments);
    await expectUnharmed(before);
  });

  it('public routes take no hostile ids or paths', async () => {
    const before = snapshot(server, expId);
    for (const path of ['/api/experiments/__proto__', '/api/experiments/constructor/leaderboard', '/api/individuals/__proto__/model.json', '/api/weights/..%2F..%2Fpetri.db', '/api/weights/__proto__', '/data/..%2F..%2Fpetri.db', '/api/admin-token']) {
      const out = await http(server.url, { method: 'GET', path });
      expect(out.status, path).toBeGreaterThanOrEqual(400);
      expect(out.status, path).toBeLessThan(500);
    }
    const limit = await http(server.url, { method: 'GET', path: `/api/experiments/${expId}/leaderboard?limit=1e999&limit=__proto__` });
    expect(limit.status).toBe(200);
    await expectUnharmed(before);
  });
});

describe('live pages', () => {
  it('the /live namespace only accepts "watch": worker messages and other events do nothing', async () => {
    const before = snapshot(server, expId);
    const live = await connect(50, '/live');
    live.send(helloMessage());
    live.send({ type: 'ready' });
    for (const event of ['pause', 'stop', 'remedy', 'admin', '__proto__']) live.socket.emit(event, { experimentId: expId, remedy: 'reset' });
    live.socket.emit('watch', '__proto__');
    live.socket.emit('watch', { toString: 'x' });
    await new Promise((r) => setTimeout(r, 500));
    expect(live.received).toEqual([]);
    expect(live.events).toEqual([]);
    expect(live.connected).toBe(true);
    expect(server.store.getExperiment(expId)?.status).toBe('running');
    expect(server.coordinator.onlineWorkers().some((w) => w.address === from(50))).toBe(false);
    // Watching works: an honest child shows up on the page.
    live.socket.emit('watch', expId);
    await new Promise((r) => setTimeout(r, 100));
    await expectUnharmed(before);
    await until(() => live.events.some((e) => e.event === 'individual'), 'the live page to hear of the new child', 5_000);
  });
});

describe('after all this', () => {
  it('an honest `petri worker` process trains a child that joins with the fitness its weights earn', async () => {
    await server.coordinator.drained();
    const before = snapshot(server, expId);
    const cache = mkdtempSync(join(tmpdir(), 'petri-hostile-worker-'));
    const worker = startPetri(['worker', '--server', server.url, '--experiment', expId, '--nickname', 'honest-process', '--cache-dir', cache]);
    try {
      const child = await until(() => server.store.allIndividuals(expId).find((i) => i.trainedBy.nickname === 'honest-process'), 'a child from the petri worker process', 120_000);
      expect(child).toMatchObject({ provisional: false, failed: false });
      const bytes = new Uint8Array(await (await fetch(new URL(`/api/weights/${child.weightsSha256}`, server.url))).arrayBuffer());
      expect(child.fitness).toBe(await expectedAccuracy(server, child.dna, bytes));
      expect(snapshot(server, expId).counters.childrenTrained).toBeGreaterThan(before.counters.childrenTrained);
    } finally {
      worker.kill('SIGTERM');
      await worker.exited;
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
