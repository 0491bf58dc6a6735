/**
 * Everything the volunteer page shows, as one plain object. The page
 * renders it, and `window.petri.state()` hands a copy to tests and to
 * `petri worker --browser`.
 */
import type { Lease } from '../../shared/protocol.ts';
import type { BackendReport, DatasetProgress, MemoryReport } from '../train/messages.ts';
import type { Settings, Totals } from './storage.ts';

export type Phase =
  | 'idle'
  | 'starting'
  | 'connecting'
  | 'waiting'
  | 'loading-data'
  | 'preparing'
  | 'training'
  | 'judging'
  | 'paused'
  | 'stopped'
  | 'error';

export interface ChildView {
  readonly leaseId: string;
  readonly childId: string;
  readonly parentId: string | null;
  readonly experimentId: string;
  readonly mutations: readonly { name: string; detail: string }[];
  readonly steps: number;
  readonly batchSize: number;
  readonly dataset: string;
}

export interface HistoryEntry {
  readonly leaseId: string;
  readonly childId: string;
  /** ok/diverged/stopped from training; failed when training threw. */
  status: 'ok' | 'diverged' | 'stopped' | 'failed';
  readonly stepsDone: number;
  readonly resumedFrom: number;
  readonly backend: string;
  /** Set once the server's verdict arrives. */
  verdict?: { outcome: 'accepted' | 'failed'; fitness: number; provisional: boolean; creditFlops: number };
}

export interface Notice {
  readonly level: 'info' | 'warning' | 'error';
  readonly title: string;
  readonly detail: string;
  readonly action?: string;
  /** Which condition raised it, so the page can clear it when the condition goes. */
  readonly key: string;
}

export interface PageState {
  phase: Phase;
  /** The volunteer asked this tab to contribute (and has not stopped it). */
  running: boolean;
  pausedBy: 'user' | 'hidden' | null;
  backend: BackendReport | null;
  /** Set when no backend works at all. */
  engineError: string | null;
  connected: boolean;
  reconnects: number;
  experimentId: string | null;
  nickname: string;
  forcedBackend: string | null;
  lease: ChildView | null;
  step: number;
  total: number;
  imagesPerSecond: number;
  etaSeconds: number | null;
  /** Step the current child continued from (0: from the start). */
  resumedFrom: number;
  lastCheckpoint: number;
  dataset: DatasetProgress | null;
  idleReason: string | null;
  history: HistoryEntry[];
  totals: Totals;
  /** Children accepted since the page loaded. */
  sessionChildren: number;
  /** tf.memory() in the worker after each child (tensor leaks show here). */
  memory: MemoryReport[];
  settings: Settings;
  notice: Notice | null;
}

export function initialState(init: Pick<PageState, 'experimentId' | 'nickname' | 'forcedBackend' | 'settings' | 'totals'>): PageState {
  return {
    phase: 'idle',
    running: false,
    pausedBy: null,
    backend: null,
    engineError: null,
    connected: false,
    reconnects: 0,
    lease: null,
    step: 0,
    total: 0,
    imagesPerSecond: 0,
    etaSeconds: null,
    resumedFrom: 0,
    lastCheckpoint: 0,
    dataset: null,
    idleReason: null,
    history: [],
    sessionChildren: 0,
    memory: [],
    notice: null,
    ...init,
  };
}

export function childView(lease: Lease): ChildView {
  return {
    leaseId: lease.leaseId,
    childId: lease.childId,
    parentId: lease.parentId,
    experimentId: lease.experimentId,
    mutations: lease.mutations.map((m) => ({ name: m.name, detail: m.detail })),
    steps: lease.steps,
    batchSize: lease.batchSize,
    dataset: lease.dataset.name,
  };
}

/** A deep copy safe to hand out (JSON only). */
export function snapshot(state: PageState): PageState {
  return JSON.parse(JSON.stringify(state)) as PageState;
}
