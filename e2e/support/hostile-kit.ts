/**
 * Tools for the hostile-client suites: a real Petri server in a temporary
 * directory, raw socket.io peers that say whatever a test tells them to
 * (from a chosen loopback address, so per-address limits can be told
 * apart), plain HTTP uploads, population snapshots, an honest in-process
 * worker built on the shared lease trainer, and an independent evaluation
 * of weights on the validation split.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { parseDna } from '../../shared/evolution/validate.ts';
import { buildModel, disposeModel } from '../../shared/model/build.ts';
import { evaluateModel } from '../../shared/model/evaluate.ts';
import { writeWeights } from '../../shared/model/weights.ts';
import { decodeWeights } from '../../shared/model/weights-codec.ts';
import { MESSAGE_EVENT, PROTOCOL_VERSION, parseServerMessage, type Lease, type ServerMessage } from '../../shared/protocol.ts';
import { runLease, type LeaseIo } from '../../shared/worker/run-lease.ts';
import { startPetriServer, type PetriServer } from '../../server/app.ts';
import { loadSplit } from '../../server/datasets/index.ts';
import { resolveConfig } from '../../server/experiments/config.ts';
import { initNodeBackend } from '../../server/tf-backend.ts';
import { loadTrainingData } from '../../server/worker/shard-cache.ts';
import type { ExperimentRecord, IndividualRecord } from '../../server/store/types.ts';

/** A small synthetic dataset: quick to prepare, quick to verify. */
export const SYNTHETIC = { train: 2000, test: 200, seed: 7 } as const;

export interface TestServer extends PetriServer {
  readonly dataDir: string;
  readonly experimentId: string;
  /** Lines the server logged. */
  readonly logs: string[];
  stop(): Promise<void>;
}

/** A real server (SQLite store, verification thread) on a free port with a `quick` experiment on synthetic data. */
export async function startTestServer(overrides: Record<string, unknown> = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'petri-hostile-'));
  const logs: string[] = [];
  const server = await startPetriServer({
    dataDir,
    port: 0,
    host: '0.0.0.0',
    initialExperiment: resolveConfig({ preset: 'quick', maxChildren: 0, ...overrides }),
    leaseTtlMs: 20_000,
    heartbeatMs: 4_000,
    datasetOptions: { synthetic: SYNTHETIC },
    clientDir: join(dataDir, 'no-pages'),
    log: (line) => logs.push(line),
  });
  const experimentId = server.store.listExperiments()[0]?.id;
  if (experimentId === undefined) throw new Error('the server created no experiment');
  return Object.assign(server, {
    dataDir,
    experimentId,
    logs,
    async stop() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

// ---- population snapshots -----------------------------------------------------

export interface PopulationSnapshot {
  readonly all: IndividualRecord[];
  readonly alive: string[];
  readonly counters: Pick<ExperimentRecord, 'status' | 'stepCounter' | 'taskCounter' | 'childrenTrained' | 'totalFlops' | 'bestFitness' | 'lastImprovementAt' | 'boostRemaining'>;
}

/** Everything of an experiment's population a hostile peer must not be able to change. */
export function snapshot(server: PetriServer, experimentId: string): PopulationSnapshot {
  const exp = server.store.getExperiment(experimentId);
  if (exp === null) throw new Error(`no experiment ${experimentId}`);
  const { status, stepCounter, taskCounter, childrenTrained, totalFlops, bestFitness, lastImprovementAt, boostRemaining } = exp;
  return {
    all: server.store.allIndividuals(experimentId),
    alive: server.store.aliveIndividuals(experimentId).map((i) => i.id).sort(),
    counters: { status, stepCounter, taskCounter, childrenTrained, totalFlops, bestFitness, lastImprovementAt, boostRemaining },
  };
}

// ---- raw socket peers ---------------------------------------------------------

export interface PeerOptions {
  /** Loopback address to connect from (127.0.0.0/8), so limits per address can be told apart. */
  readonly from?: string;
  readonly namespace?: string;
}

/** A socket.io client that sends exactly what it is told and records what comes back. */
export class Peer {
  readonly received: unknown[] = [];
  readonly events: { event: string; args: unknown[] }[] = [];
  private readonly waiters = new Set<() => void>();
  private disconnectReason: string | null = null;
  /** Index of the first message not yet consumed by {@link next}. */
  private cursor = 0;

  private constructor(readonly socket: Socket) {
    socket.on(MESSAGE_EVENT, (payload: unknown) => {
      this.received.push(payload);
      this.wake();
    });
    socket.onAny((event: string, ...args: unknown[]) => {
      this.events.push({ event, args });
      this.wake();
    });
    socket.on('disconnect', (reason) => {
      this.disconnectReason = reason;
      this.wake();
    });
  }

  static async connect(url: string, options: PeerOptions = {}): Promise<Peer> {
    const socket = io(`${url}${options.namespace ?? ''}`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      ...(options.from ? { localAddress: options.from } : {}),
    } as Parameters<typeof io>[1]);
    const peer = new Peer(socket);
    await new Promise<void>((ok, fail) => {
      socket.once('connect', () => ok());
      socket.once('connect_error', (err) => fail(err));
    });
    return peer;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  /** Emits one message on the protocol's event. */
  send(payload: unknown): void {
    this.socket.emit(MESSAGE_EVENT, payload);
  }

  /** Writes a raw socket.io packet (e.g. `2["petri",{...}]`) under the client's encoder. */
  sendPacket(raw: string): void {
    (this.socket.io.engine as unknown as { send(data: string): void }).send(raw);
  }

  /** Resolves once `check` returns a value (re-checked on every arrival), or rejects after a timeout. */
  private until<T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const attempt = (): void => {
        const value = check();
        if (value !== undefined) {
          this.waiters.delete(attempt);
          clearTimeout(timer);
          resolve(value);
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(attempt);
        reject(new Error(`timed out waiting for ${what}; received ${JSON.stringify(this.received.slice(-5))}`));
      }, timeoutMs);
      this.waiters.add(attempt);
      attempt();
    });
  }

  /** The next message (not yet consumed) that matches, consuming everything up to it. */
  next<T extends ServerMessage['type']>(type: T, timeoutMs = 10_000, match: (m: Extract<ServerMessage, { type: T }>) => boolean = () => true): Promise<Extract<ServerMessage, { type: T }>> {
    return this.until(() => {
      for (let i = this.cursor; i < this.received.length; i++) {
        const parsed = parseServerMessage(this.received[i]);
        if (!parsed.ok) throw new Error(`the server sent a message outside the protocol: ${parsed.error}`);
        const m = parsed.value;
        if (m.type === type && match(m as Extract<ServerMessage, { type: T }>)) {
          this.cursor = i + 1;
          return m as Extract<ServerMessage, { type: T }>;
        }
      }
      return undefined;
    }, `a "${type}" message`, timeoutMs);
  }

  /** The next `refused` message. */
  refused(timeoutMs = 10_000): Promise<Extract<ServerMessage, { type: 'refused' }>> {
    return this.next('refused', timeoutMs);
  }

  /** Resolves with the reason once the server (or the transport) closed the connection. */
  disconnected(timeoutMs = 10_000): Promise<string> {
    return this.until(() => this.disconnectReason ?? undefined, 'a disconnect', timeoutMs);
  }

  /** Says hello as a well-formed Node worker and waits for the welcome. */
  async hello(extra: Record<string, unknown> = {}): Promise<Extract<ServerMessage, { type: 'welcome' }>> {
    this.send(helloMessage(extra));
    return this.next('welcome');
  }

  /** The next message (not yet consumed) of any type that matches. */
  nextMessage(match: (m: ServerMessage) => boolean, timeoutMs = 10_000): Promise<ServerMessage> {
    return this.until(() => {
      for (let i = this.cursor; i < this.received.length; i++) {
        const parsed = parseServerMessage(this.received[i]);
        if (!parsed.ok) throw new Error(`the server sent a message outside the protocol: ${parsed.error}`);
        if (match(parsed.value)) {
          this.cursor = i + 1;
          return parsed.value;
        }
      }
      return undefined;
    }, 'a matching message', timeoutMs);
  }

  /** Asks for work until a lease comes (an idle answer is retried, as a worker does). */
  async lease(timeoutMs = 30_000): Promise<Lease> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.send({ type: 'ready' });
      const m = await this.nextMessage((x) => x.type === 'lease' || x.type === 'idle' || x.type === 'refused');
      if (m.type === 'lease') return m.lease;
      if (m.type === 'refused') throw new Error(`asked for work, got refused: ${m.code} ${m.message}`);
      if (m.type === 'idle' && Date.now() > deadline) throw new Error(`no work within ${timeoutMs} ms: ${m.reason}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Everything received since the last consumed message (for "nothing happened" checks). */
  pending(): unknown[] {
    return this.received.slice(this.cursor);
  }

  close(): void {
    this.socket.close();
  }
}

/** A well-formed hello. */
export function helloMessage(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'hello', protocol: PROTOCOL_VERSION, backend: 'cpu', adapter: 'hostile test', speed: 0, client: 'node', ...extra };
}

/** A well-formed result message for a lease. */
export function resultMessage(lease: Pick<Lease, 'leaseId' | 'steps'>, weightsSha256: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: 'result', leaseId: lease.leaseId, status: 'ok', weightsSha256, stepsDone: lease.steps, claimedAccuracy: 0.1, trainSeconds: 1, backend: 'cpu', ...extra };
}

// ---- plain HTTP ------------------------------------------------------------------

export interface HttpOutcome {
  /** HTTP status, or null when the connection failed before a response came. */
  readonly status: number | null;
  readonly body: unknown;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The socket error, when there was no response. */
  readonly error: string | null;
}

export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** The body, sent as it is (or chunk by chunk, with a pause between chunks). */
  readonly body?: Uint8Array | string | readonly Uint8Array[];
  /** Send no content-length: the body goes chunked. */
  readonly chunked?: boolean;
  readonly from?: string;
}

/** One request over a fresh connection with node:http: what came back, or how the connection failed. */
export function http(url: string, req: HttpRequest): Promise<HttpOutcome> {
  const target = new URL(req.path, url);
  const chunks = req.body === undefined ? [] : typeof req.body === 'string' ? [Buffer.from(req.body)] : req.body instanceof Uint8Array ? [req.body] : [...req.body];
  const total = chunks.reduce((n, c) => n + c.byteLength, 0);
  const headers: Record<string, string | number> = { ...req.headers, connection: 'close' };
  if (!req.chunked && req.body !== undefined) headers['content-length'] = total;
  return new Promise((resolve) => {
    let settled = false;
    const done = (outcome: HttpOutcome): void => {
      if (!settled) {
        settled = true;
        resolve(outcome);
      }
    };
    const client = request(
      { method: req.method, hostname: target.hostname, port: target.port, path: target.pathname + target.search, headers, agent: false, ...(req.from ? { localAddress: req.from } : {}) },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('error', (err) => done({ status: res.statusCode ?? null, body: null, headers: res.headers, error: String(err) }));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString();
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON: keep the text
          }
          done({ status: res.statusCode ?? null, body, headers: res.headers, error: null });
        });
      },
    );
    client.on('error', (err) => done({ status: null, body: null, headers: {}, error: `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}` }));
    void (async () => {
      for (const chunk of chunks) {
        if (client.destroyed) return;
        const ok = client.write(chunk);
        if (!ok) await new Promise<void>((r) => client.once('drain', () => r()));
        if (chunks.length > 1) await new Promise((r) => setTimeout(r, 5));
      }
      client.end();
    })().catch(() => undefined);
  });
}

/** PUTs weights to a lease's upload URL with its token. */
export function uploadWeights(url: string, lease: Pick<Lease, 'uploadUrl' | 'token'>, body: HttpRequest['body'], options: Partial<HttpRequest> = {}): Promise<HttpOutcome> {
  return http(url, {
    method: 'PUT',
    path: lease.uploadUrl,
    headers: { 'content-type': 'application/octet-stream', 'x-petri-lease-token': lease.token, ...options.headers },
    body,
    ...(options.chunked ? { chunked: true } : {}),
    ...(options.from ? { from: options.from } : {}),
  });
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

// ---- honest work and independent judgement --------------------------------------

let backendReady: Promise<unknown> | null = null;
/** The test process's tf.js backend: wasm, as the server's verification thread uses. */
export function testBackend(): Promise<unknown> {
  backendReady ??= initNodeBackend('wasm');
  return backendReady;
}

const trainingData = new Map<string, Promise<ImageSet>>();
/** The public train split, fetched from the server as any worker fetches it. */
export function publicTrainingData(server: TestServer, lease: Lease): Promise<ImageSet> {
  let loading = trainingData.get(server.url);
  if (loading === undefined) {
    loading = loadTrainingData(`${server.url}/`, lease.dataset.manifestUrl, join(server.dataDir, 'worker-cache')).then((r) => r.data);
    trainingData.set(server.url, loading);
  }
  return loading;
}

/** The I/O of a worker in this process, against a server. */
export function leaseIo(url: string, from?: string): LeaseIo {
  return {
    async fetchBytes(path) {
      const response = await fetch(new URL(path, url));
      if (!response.ok) throw new Error(`GET ${path}: HTTP ${response.status}`);
      return new Uint8Array(await response.arrayBuffer());
    },
    sha256: async (bytes) => sha256Hex(bytes),
    async upload(path, token, bytes) {
      const out = await uploadWeights(url, { uploadUrl: path, token }, bytes, from ? { from } : {});
      const sha = (out.body as { sha256?: unknown } | null)?.sha256;
      if (out.status !== 200 || typeof sha !== 'string') throw new Error(`upload refused: ${out.status} ${JSON.stringify(out.body)} ${out.error ?? ''}`);
      return sha;
    },
  };
}

export interface Trained {
  /** The weights binary the worker uploaded, and the server's hash of it. */
  readonly bytes: Uint8Array;
  readonly sha256: string;
  /** The worker's probe accuracy (what an honest worker claims). */
  readonly probeAccuracy: number;
  readonly stepsDone: number;
}

/** Trains a lease honestly with the shared trainer and uploads the weights; sends no result. */
export async function trainHonestly(server: TestServer, lease: Lease, from?: string): Promise<Trained> {
  await testBackend();
  const data = await publicTrainingData(server, lease);
  const base = leaseIo(server.url, from);
  let bytes: Uint8Array | null = null;
  const io: LeaseIo = {
    ...base,
    upload(path, token, b) {
      bytes = b;
      return base.upload(path, token, b);
    },
  };
  const outcome = await runLease(lease, data, io, { now: Date.now }, 'wasm');
  if (outcome.status !== 'ok' || bytes === null) throw new Error(`the honest child did not train: ${outcome.status}`);
  return { bytes, sha256: outcome.weightsSha256, probeAccuracy: outcome.claimedAccuracy, stepsDone: outcome.stepsDone };
}

export interface HonestOutcome {
  readonly lease: Lease;
  readonly trained: Trained;
  readonly result: Record<string, unknown>;
  readonly verdict: Extract<ServerMessage, { type: 'verdict' }>;
  /** The worker's connection, still open when asked for (else closed). */
  readonly peer: Peer;
}

export interface HonestOptions {
  readonly from?: string;
  readonly experimentId?: string;
  readonly nickname?: string;
  /** Runs once the lease is in hand, before training (for attacks on a live lease). */
  readonly onLease?: (lease: Lease) => Promise<void>;
  readonly keepOpen?: boolean;
}

/**
 * One honest child, start to end, from a fresh connection: hello, lease, the
 * shared trainer (runLease), upload, result, verdict.
 */
let honestTurn = 0;

export async function honestChild(server: TestServer, options: HonestOptions = {}): Promise<HonestOutcome> {
  await testBackend();
  // Honest workers take turns on 127.0.0.2-5, so many of them stay under the hello limit per address.
  const from = options.from ?? `127.0.0.${2 + (honestTurn++ % 4)}`;
  const peer = await Peer.connect(server.url, { from });
  try {
    await peer.hello({ experimentId: options.experimentId ?? server.experimentId, ...(options.nickname ? { nickname: options.nickname } : {}) });
    const lease = await peer.lease();
    await options.onLease?.(lease);
    const trained = await trainHonestly(server, lease, from);
    const result = { type: 'result', leaseId: lease.leaseId, status: 'ok', weightsSha256: trained.sha256, stepsDone: trained.stepsDone, claimedAccuracy: trained.probeAccuracy, trainSeconds: 1, backend: 'wasm' };
    peer.send(result);
    const verdict = await peer.next('verdict', 60_000);
    return { lease, trained, result, verdict, peer };
  } finally {
    if (!options.keepOpen) peer.close();
  }
}

const validation = new Map<string, Promise<ImageSet>>();
/**
 * The accuracy of a weights binary for a DNA on the validation split,
 * computed here, independently of the server: the split read from the data
 * directory, the model built and evaluated in this process.
 */
export async function expectedAccuracy(server: TestServer, dna: unknown, bytes: Uint8Array): Promise<number> {
  await testBackend();
  let split = validation.get(server.dataDir);
  if (split === undefined) {
    split = loadSplit(server.dataDir, 'synthetic', 'validation');
    validation.set(server.dataDir, split);
  }
  const data = await split;
  const parsed = parseDna(dna);
  const built = buildModel(parsed);
  try {
    writeWeights(built, decodeWeights(parsed, bytes));
    return (await evaluateModel(built, data)).accuracy;
  } finally {
    disposeModel(built);
    tf.disposeVariables();
  }
}

/** Polls until `fn` returns a value, or fails after `timeoutMs`. */
export async function until<T>(fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
