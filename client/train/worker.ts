/**
 * The tab's training engine, in a dedicated Web Worker so the page never
 * freezes: picks the tf.js backend, gets the dataset (cache or network),
 * and trains each lease the page hands over with the shared runLease,
 * resting between steps to honour the duty-cycle limit, holding while
 * paused, and checkpointing to IndexedDB.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImageSet } from '../../shared/data/image-set.ts';
import type { Lease } from '../../shared/protocol.ts';
import { runLease, type LeaseIo } from '../../shared/worker/run-lease.ts';
import { IdbShardCache } from '../data/idb-shard-cache.ts';
import { DownloadError, IntegrityError, loadDataset } from '../data/load-dataset.ts';
import { sha256 } from '../data/sha256.ts';
import type { ShardCache } from '../data/shard-cache.ts';
import { selectBackend } from './backend.ts';
import { CheckpointStore } from './checkpoints.ts';
import { DutyCycle, clampDuty } from './duty-cycle.ts';
import type { BackendReport, DatasetProgress, FailureKind, FromWorker, ToWorker } from './messages.ts';

interface WorkerScope {
  postMessage(message: FromWorker): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
}
const scope = self as unknown as WorkerScope;
const post = (message: FromWorker) => scope.postMessage(message);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** How often the worker says it is alive (the page's watchdog listens). */
const ALIVE_EVERY_MS = 2000;
/** Least time between two step (or dataset) messages to the page. */
const REPORT_EVERY_MS = 150;

let report: BackendReport | null = null;
let base = '';
const stops = new Set<string>();
let holding = false;
const duty = new DutyCycle(100);
const datasets = new Map<string, Promise<ImageSet>>();

const cache: Promise<ShardCache | null> = IdbShardCache.open().catch((err: unknown) => {
  post({ type: 'warning', message: `the dataset cannot be kept between visits here (IndexedDB: ${err instanceof Error ? err.message : String(err)})` });
  return null;
});
const checkpoints: Promise<CheckpointStore | null> = CheckpointStore.open()
  .then(async (store) => {
    await store.prune().catch(() => {});
    return store;
  })
  .catch(() => null);

setInterval(() => post({ type: 'alive' }), ALIVE_EVERY_MS);

const leaseIo: LeaseIo = {
  async fetchBytes(url) {
    let response: Response;
    try {
      response = await fetch(new URL(url, base).href);
    } catch (err) {
      throw new DownloadError(`could not reach the server for ${url} (${err instanceof Error ? err.message : String(err)})`);
    }
    if (!response.ok) throw new DownloadError(`the server answered HTTP ${response.status} for ${url}`);
    return new Uint8Array(await response.arrayBuffer());
  },
  sha256,
  async upload(url, token, bytes) {
    let response: Response;
    try {
      response = await fetch(new URL(url, base).href, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'x-petri-lease-token': token },
        body: bytes as Uint8Array<ArrayBuffer>,
      });
    } catch (err) {
      throw new UploadError(`the weights could not be sent (${err instanceof Error ? err.message : String(err)})`);
    }
    const body = (await response.json().catch(() => ({}))) as { sha256?: unknown; message?: unknown };
    if (!response.ok || typeof body.sha256 !== 'string') {
      throw new UploadError(`the server refused the weights: HTTP ${response.status} ${typeof body.message === 'string' ? body.message : ''}`.trim());
    }
    return body.sha256;
  },
};

class UploadError extends Error {
  override readonly name = 'UploadError';
}

function dataFor(lease: Lease): Promise<ImageSet> {
  const key = `${lease.dataset.manifestUrl}@${lease.dataset.version}`;
  let loading = datasets.get(key);
  if (loading === undefined) {
    // One dataset in memory at a time: a new version replaces the old.
    datasets.clear();
    let lastReport = 0;
    const onProgress = (progress: DatasetProgress) => {
      const now = performance.now();
      if (now - lastReport < REPORT_EVERY_MS && !progress.done && progress.shardsDone < progress.shards) return;
      lastReport = now;
      post({ type: 'dataset', leaseId: lease.leaseId, progress });
    };
    loading = cache.then((c) => loadDataset({ base, manifestUrl: lease.dataset.manifestUrl, cache: c, sha256, onProgress })).then((loaded) => {
      if (loaded.manifest.version !== lease.dataset.version) {
        throw new DownloadError(`the server now has version ${loaded.manifest.version} of ${lease.dataset.name}, the lease was for ${lease.dataset.version}`);
      }
      post({ type: 'dataset', leaseId: lease.leaseId, progress: loaded.progress });
      return loaded.data;
    });
    datasets.set(key, loading);
    loading.catch(() => datasets.delete(key));
  }
  return loading;
}

function classify(err: unknown): FailureKind {
  if (err instanceof DownloadError) return 'network';
  if (err instanceof IntegrityError) return 'data';
  if (err instanceof UploadError) return 'upload';
  return 'training';
}

async function train(lease: Lease, checkpointEvery: number | null): Promise<void> {
  const backend = report;
  if (backend === null) {
    post({ type: 'failed', leaseId: lease.leaseId, kind: 'training', message: 'the training engine is not ready yet' });
    return;
  }
  try {
    const data = await dataFor(lease);
    const store = await checkpoints;
    const resume = store === null ? null : await store.forLease(lease).catch(() => null);
    post({ type: 'started', leaseId: lease.leaseId, resumedFrom: resume?.step ?? 0 });

    let checkpointing = store !== null;
    let lastMark = performance.now();
    let lastReport = 0;
    // Smoothed step times: work only (for images/s) and wall time with rests (for time left).
    let busyEma = 0;
    let wallEma = 0;
    const outcome = await runLease(
      lease,
      data,
      leaseIo,
      {
        now: Date.now,
        shouldStop: () => stops.has(lease.leaseId),
        ...(resume === null ? {} : { resumeFrom: resume }),
        checkpointEvery: checkpointEvery ?? Math.max(1, Math.min(100, Math.ceil(lease.steps / 8))),
        checkpoint: async (step, weights) => {
          if (!checkpointing || store === null) return;
          try {
            await store.save(lease, step, await weights());
            post({ type: 'checkpoint', leaseId: lease.leaseId, step });
          } catch (err) {
            checkpointing = false;
            post({ type: 'warning', message: `checkpoints are off for this child: the browser would not store them (${err instanceof Error ? err.name : String(err)})` });
          }
        },
        onStep: async (step, total) => {
          const started = lastMark;
          const busy = performance.now() - started;
          const rest = duty.afterWork(busy);
          if (rest > 0) await sleep(rest);
          while (holding && !stops.has(lease.leaseId)) await sleep(200);
          lastMark = performance.now();
          const wall = lastMark - started;
          busyEma = busyEma === 0 ? busy : 0.8 * busyEma + 0.2 * busy;
          wallEma = wallEma === 0 ? wall : 0.8 * wallEma + 0.2 * wall;
          if (lastMark - lastReport >= REPORT_EVERY_MS || step === total) {
            lastReport = lastMark;
            post({
              type: 'step',
              leaseId: lease.leaseId,
              step,
              total,
              imagesPerSecond: busyEma > 0 ? (lease.batchSize * 1000) / busyEma : 0,
              etaSeconds: ((total - step) * wallEma) / 1000,
            });
          }
        },
      },
      backend.backend,
    );
    if (outcome.status !== 'stopped') await store?.delete(lease.childId).catch(() => {});
    const memory = tf.memory();
    post({ type: 'done', leaseId: lease.leaseId, outcome, memory: { numTensors: memory.numTensors, numBytes: memory.numBytes } });
  } catch (err) {
    // The details (stack) go to the browser's console for whoever debugs; the page shows the message.
    console.error(`petri: child ${lease.childId} failed`, err);
    post({ type: 'failed', leaseId: lease.leaseId, kind: classify(err), message: err instanceof Error ? err.message : String(err) });
  } finally {
    stops.delete(lease.leaseId);
  }
}

scope.onmessage = (event) => {
  const message = event.data;
  switch (message.type) {
    case 'init':
      base = message.base;
      selectBackend(message.forced).then(
        (r) => {
          report = r;
          post({ type: 'ready', report: r });
        },
        (err: unknown) => post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) }),
      );
      return;
    case 'train':
      void train(message.lease, message.checkpointEvery);
      return;
    case 'stop':
      stops.add(message.leaseId);
      return;
    case 'hold':
      holding = message.hold;
      return;
    case 'duty':
      duty.percent = clampDuty(message.percent);
      return;
  }
};
