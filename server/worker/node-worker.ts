/**
 * One `petri worker` in Node: a socket.io connection, the shared session,
 * and the shared lease trainer on tf.js (wasm, or the pure JS cpu backend).
 */
import { cpus } from 'node:os';
import { io } from 'socket.io-client';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { MESSAGE_EVENT, type Backend } from '../../shared/protocol.ts';
import { runLease, type LeaseIo } from '../../shared/worker/run-lease.ts';
import { WorkerSession, type SessionEvent, type Trainer } from '../../shared/worker/session.ts';
import { referenceDnas } from '../../shared/evolution/fixtures.ts';
import { planInheritance } from '../../shared/evolution/inheritance.ts';
import { createRng } from '../../shared/evolution/rng.ts';
import { buildModel, disposeModel } from '../../shared/model/build.ts';
import { trainModel } from '../../shared/model/train.ts';
import { inheritWeights, writeWeights } from '../../shared/model/weights.ts';
import { initNodeBackend } from '../tf-backend.ts';
import { fetchBytes, loadTrainingData, sha256 } from './shard-cache.ts';

export interface NodeWorkerOptions {
  readonly server: string;
  readonly backend: 'wasm' | 'cpu';
  /** wasm: XNNPACK threads (above 1: tf.js's threaded build; default PETRI_WASM_THREADS, else 1). */
  readonly threads?: number;
  readonly nickname?: string;
  readonly experimentId?: string;
  readonly cacheDir: string;
  readonly onEvent?: (event: SessionEvent) => void;
  readonly log?: (line: string) => void;
  /** Extra stop condition polled during training (--max-hours, --when-idle). */
  readonly shouldPause?: () => boolean;
}

export interface NodeWorker {
  readonly session: WorkerSession;
  readonly backend: string;
  /** wasm: the XNNPACK threads training runs on (1 on the single-threaded build). */
  readonly threads: number;
  stop(): Promise<void>;
}

/**
 * A quick speed score for the hello: training images per second of the
 * 3-convolution reference net on random data (about a second of work).
 */
async function probeSpeed(): Promise<number> {
  const dna = referenceDnas().find((r) => r.name === 'conv3')?.dna;
  if (dna === undefined) return 0;
  const batch = 10;
  const data = { shape: [32, 32, 3] as const, count: batch, pixels: new Uint8Array(batch * 32 * 32 * 3).fill(128), labels: new Uint8Array(batch) };
  const built = buildModel(dna);
  try {
    writeWeights(built, inheritWeights(planInheritance(null, dna), null, createRng('probe')));
    await trainModel(built, data, { steps: 1, batchSize: batch, seed: 'probe', augment: false });
    const started = performance.now();
    await trainModel(built, data, { steps: 2, batchSize: batch, seed: 'probe', augment: false });
    return Math.round((2 * batch) / ((performance.now() - started) / 1000));
  } finally {
    disposeModel(built);
  }
}

export async function startNodeWorker(options: NodeWorkerOptions): Promise<NodeWorker> {
  const log = options.log ?? (() => {});
  const info = await initNodeBackend(options.backend, options.threads === undefined ? {} : { threads: options.threads });
  if (info.reason) log(`backend: ${info.backend} (${info.reason})`);
  if (info.threadsFallback) log(`wasm threads: ${options.threads ?? 'several'} asked for, running on the single-threaded build instead (${info.threadsFallback})`);
  if (info.simdThreadsFallback) log(`Petri's SIMD kernels (Winograd convolutions) stay on one thread: ${info.simdThreadsFallback}`);
  const threads = info.backend === 'wasm' ? (info.threads ?? 1) : 1;
  const threadNote = info.backend === 'wasm' ? `, ${threads} ${threads === 1 ? 'thread' : 'threads'}` : '';
  const base = options.server.endsWith('/') ? options.server : `${options.server}/`;
  const datasets = new Map<string, Promise<ImageSet>>();
  const dataFor = (manifestUrl: string, version: string): Promise<ImageSet> => {
    const key = `${manifestUrl}@${version}`;
    let loading = datasets.get(key);
    if (loading === undefined) {
      loading = loadTrainingData(base, manifestUrl, options.cacheDir, log).then((r) => r.data);
      datasets.set(key, loading);
      loading.catch(() => datasets.delete(key));
    }
    return loading;
  };

  const leaseIo: LeaseIo = {
    fetchBytes: (url) => fetchBytes(new URL(url, base).href),
    sha256: async (bytes) => sha256(bytes),
    async upload(url, token, bytes) {
      const response = await fetch(new URL(url, base).href, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'x-petri-lease-token': token },
        body: new Blob([bytes as Uint8Array<ArrayBuffer>]),
      });
      const body = (await response.json().catch(() => ({}))) as { sha256?: string; message?: string };
      if (!response.ok || typeof body.sha256 !== 'string') throw new Error(`upload refused: HTTP ${response.status} ${body.message ?? ''}`);
      return body.sha256;
    },
  };

  const backend = info.backend as Backend;
  const trainer: Trainer = {
    async train(lease, hooks) {
      const data = await dataFor(lease.dataset.manifestUrl, lease.dataset.version);
      return runLease(lease, data, leaseIo, { onStep: hooks.onStep, shouldStop: () => hooks.shouldStop() || (options.shouldPause?.() ?? false), now: Date.now }, backend);
    },
  };

  const socket = io(base, { transports: ['websocket'], reconnectionDelay: 500, reconnectionDelayMax: 5000 });
  const transport = {
    send: (m: unknown) => void socket.emit(MESSAGE_EVENT, m),
    onMessage: (h: (p: unknown) => void) => void socket.on(MESSAGE_EVENT, h),
    onConnection: (h: (up: boolean) => void) => {
      socket.on('connect', () => h(true));
      socket.on('disconnect', () => h(false));
    },
    close: () => void socket.close(),
  };
  const session = new WorkerSession(transport, trainer, {
    hello: {
      backend,
      adapter: `${cpus()[0]?.model ?? 'CPU'} (Node ${process.version}, tf.js ${info.backend}${threadNote})`,
      ...(info.reason ? { fallbackReason: info.reason } : {}),
      speed: await probeSpeed(),
      client: 'node',
      ...(options.nickname ? { nickname: options.nickname } : {}),
      ...(options.experimentId ? { experimentId: options.experimentId } : {}),
    },
    now: Date.now,
    onEvent: options.onEvent,
  });

  return {
    session,
    backend: info.backend,
    threads,
    async stop() {
      await session.stop();
      // Give the release frame a moment to leave before the socket closes.
      if (socket.connected) await new Promise<void>((ok) => setTimeout(ok, 300));
      socket.close();
    },
  };
}
