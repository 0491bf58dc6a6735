/**
 * Messages between the volunteer page and its training Web Worker
 * (client/train/worker.ts). The page runs the conversation with the server;
 * the worker owns tf.js, the dataset and the checkpoints.
 */
import type { Backend, Lease } from '../../shared/protocol.ts';
import type { LeaseOutcome } from '../../shared/worker/run-lease.ts';

/** The tf.js backend the worker settled on, and why it is not WebGPU when it is not. */
export interface BackendReport {
  readonly backend: Backend;
  /** GPU adapter name, or a description of the CPU path. */
  readonly adapter: string;
  readonly fallbackReason?: string;
  /** True for a software GPU (SwiftShader, a fallback adapter): correct but slow. */
  readonly software: boolean;
  /** WebAssembly only: XNNPACK's thread count (more than 1 where the page is cross-origin isolated). */
  readonly threads?: number;
}

/** How far the training data has come (from the network or the tab's cache). */
export interface DatasetProgress {
  readonly dataset: string;
  readonly version: string;
  readonly shards: number;
  readonly shardsDone: number;
  readonly bytesTotal: number;
  readonly bytesDone: number;
  /** Bytes that came over the network (the rest came from the cache). */
  readonly bytesDownloaded: number;
  readonly done: boolean;
  /** Set when the cache could not store the data (quota): it will be downloaded again next time. */
  readonly cacheWarning?: string;
}

export interface MemoryReport {
  readonly numTensors: number;
  readonly numBytes: number;
}

export type FailureKind = 'network' | 'data' | 'training' | 'upload';

export type ToWorker =
  | { type: 'init'; forced: Backend | null; base: string }
  | { type: 'train'; lease: Lease; checkpointEvery: number | null }
  /** Stop this lease between steps; the outcome is 'stopped'. */
  | { type: 'stop'; leaseId: string }
  /** Hold between steps (paused) or carry on. */
  | { type: 'hold'; hold: boolean }
  /** Train at most this share of the time (1-100). */
  | { type: 'duty'; percent: number };

export type FromWorker =
  | { type: 'ready'; report: BackendReport }
  | { type: 'fatal'; message: string }
  | { type: 'alive' }
  | { type: 'dataset'; leaseId: string; progress: DatasetProgress }
  /** Training begins (after the data, and the parent's weights); `resumedFrom` > 0 after a checkpoint. */
  | { type: 'started'; leaseId: string; resumedFrom: number }
  | { type: 'step'; leaseId: string; step: number; total: number; imagesPerSecond: number; etaSeconds: number }
  | { type: 'checkpoint'; leaseId: string; step: number }
  | { type: 'warning'; message: string }
  | { type: 'done'; leaseId: string; outcome: LeaseOutcome; memory: MemoryReport }
  | { type: 'failed'; leaseId: string; kind: FailureKind; message: string };
