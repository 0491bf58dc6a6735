/**
 * The limits per connection and per address, with small budgets: the real
 * socket layer (socket.ts) and HTTP API (http/api.ts) around a coordinator
 * on an in-memory store, on a free port. Peers connect from their own
 * loopback addresses so each address's budget is its own.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { Server } from 'socket.io';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FRAME_BYTES, Refusal } from '../shared/protocol.ts';
import { Coordinator } from '../server/coordinator.ts';
import { resolveConfig } from '../server/experiments/config.ts';
import { createApiRouter } from '../server/http/api.ts';
import { attachSockets } from '../server/socket.ts';
import { MemoryStore } from '../server/store/memory-store.ts';
import { WeightsFiles } from '../server/weights-files.ts';
import { Peer, helloMessage, http, resultMessage, uploadWeights } from './support/hostile-kit.ts';

let dir: string;
let url: string;
let httpServer: HttpServer;
let io: Server;
let coordinator: Coordinator;
const peers: Peer[] = [];
const from = (n: number): string => `127.0.0.${n}`;

async function connect(n: number): Promise<Peer> {
  const peer = await Peer.connect(url, { from: from(n) });
  peers.push(peer);
  return peer;
}

const fakeLease = (i: number) => ({ leaseId: `L${i.toString(16).padStart(24, '0')}`, steps: 1 });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'petri-hostile-limits-'));
  const store = new MemoryStore();
  const weights = new WeightsFiles(join(dir, 'weights'));
  let send: ConstructorParameters<typeof Coordinator>[0]['send'] = () => {};
  coordinator = new Coordinator({
    store,
    weights,
    verifier: {
      evaluate: async () => ({ accuracy: 0.5, probeAccuracy: 0.5 }),
      close: async () => {},
    },
    dataset: async (name) => ({ name, shape: [8, 8, 3], numClasses: 10, manifestUrl: `/data/${name}/manifest.json`, version: 'v1', validationCount: 100 }),
    clock: Date.now,
    randomHex: (n) => Array.from({ length: n * 2 }, () => Math.floor(Math.random() * 16).toString(16)).join(''),
    send: (id, m) => send(id, m),
  });
  await coordinator.createExperiment(resolveConfig({ preset: 'quick', populationSize: 8 }));
  const app = express();
  app.use(createApiRouter({ store, coordinator, weights, adminToken: 'a'.repeat(64), uploadsPerMinute: 3 }));
  httpServer = createServer(app);
  io = new Server(httpServer, { maxHttpBufferSize: MAX_FRAME_BYTES, serveClient: false });
  send = attachSockets(io, coordinator, { hellosPerMinute: 4, resultsPerMinute: 3, messagesPerSecond: 2 }).sendTo;
  await new Promise<void>((ok) => httpServer.listen(0, '0.0.0.0', () => ok()));
  const address = httpServer.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
});

afterAll(async () => {
  for (const p of peers) p.close();
  await new Promise<void>((ok) => io.close(() => ok()));
  await coordinator.drained();
  rmSync(dir, { recursive: true, force: true });
});

describe('limits per address and per connection', () => {
  it('hellos: the address runs out, across connections; another address does not', async () => {
    const a = await connect(60);
    for (let i = 0; i < 4; i++) await a.hello();
    a.send(helloMessage());
    expect((await a.refused()).code).toBe(Refusal.RateLimited);
    const b = await connect(60);
    b.send(helloMessage());
    expect((await b.refused()).code).toBe(Refusal.RateLimited);
    const c = await connect(61);
    expect((await c.hello()).type).toBe('welcome');
  });

  it('results: the address runs out, across connections; another address does not', async () => {
    const a = await connect(62);
    await a.hello();
    // Results for leases that do not exist: refused one by one (each an offence), until the address's budget is spent.
    for (let i = 0; i < 3; i++) {
      a.send(resultMessage(fakeLease(i + 1), 'a'.repeat(64)));
      expect((await a.refused()).code).toBe(Refusal.UnknownLease);
    }
    const b = await connect(62);
    await b.hello();
    b.send(resultMessage(fakeLease(9), 'a'.repeat(64)));
    expect((await b.refused()).code).toBe(Refusal.RateLimited);
    const c = await connect(63);
    await c.hello();
    c.send(resultMessage(fakeLease(10), 'a'.repeat(64)));
    expect((await c.refused()).code).toBe(Refusal.UnknownLease);
  });

  it('messages per connection: a burst past the budget is refused, then the connection closed', async () => {
    const a = await connect(64);
    await a.hello();
    for (let i = 0; i < 20; i++) a.send({ type: 'ready' });
    expect(await a.disconnected()).toBe('io server disconnect');
    expect(a.received.some((m) => (m as { code?: string }).code === Refusal.RateLimited)).toBe(true);
    // Another connection of the same address has its own budget.
    const b = await connect(64);
    b.send({ type: 'ready' });
    expect((await b.refused()).code).toBe(Refusal.NotHello);
  });

  it('uploads: the address runs out (429 with Retry-After), another address does not', async () => {
    const lease = { uploadUrl: `/api/leases/${fakeLease(1).leaseId}/weights`, token: 'b'.repeat(48) };
    for (let i = 0; i < 3; i++) expect((await uploadWeights(url, lease, new Uint8Array(16), { from: from(65) })).status).toBe(404);
    const limited = await uploadWeights(url, lease, new Uint8Array(16), { from: from(65) });
    expect(limited).toMatchObject({ status: 429, body: { error: 'rate-limited' }, headers: { 'retry-after': expect.any(String) } });
    expect((await uploadWeights(url, lease, new Uint8Array(16), { from: from(66) })).status).toBe(404);
    expect((await http(url, { method: 'GET', path: '/healthz', from: from(65) })).status).toBe(200);
  });
});
