/**
 * What both population stores share, so that they behave identically: the
 * error type, input checks, the copy rules for records (JSON parts go through
 * a JSON round trip, as they do in SQLite) and the small pieces of arithmetic
 * (credit rounding, best fitness, the step event).
 */
import type {
  CompleteTask,
  EventRecord,
  ExperimentRecord,
  ExperimentStatus,
  IndividualRecord,
  IssueChild,
  PopulationStore,
  TaskRecord,
  TaskStatus,
  VolunteerRecord,
} from './types.ts';

export type StoreErrorCode = 'not-found' | 'conflict' | 'invalid' | 'closed';

/**
 * A refused store call. Nothing was changed. `conflict` is what a replayed or
 * stale write gets (task already done, individual no longer alive, id taken).
 */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }
}

export const EXPERIMENT_STATUSES: readonly ExperimentStatus[] = ['running', 'paused', 'stopped', 'finished'];
export const TASK_STATUSES: readonly TaskStatus[] = ['queued', 'leased', 'done', 'abandoned'];

export type NewTask = Omit<TaskRecord, 'status' | 'attempts'>;
export type NewIndividual = CompleteTask['individual'];

// ---------------------------------------------------------------- errors

export const errors = {
  closed: (): StoreError => new StoreError('closed', 'the population store is closed'),
  experimentNotFound: (id: string): StoreError => new StoreError('not-found', `no experiment ${JSON.stringify(id)}`),
  experimentExists: (id: string): StoreError => new StoreError('conflict', `experiment ${JSON.stringify(id)} already exists`),
  taskNotFound: (id: string): StoreError => new StoreError('not-found', `no task ${JSON.stringify(id)}`),
  taskExists: (id: string): StoreError => new StoreError('conflict', `task ${JSON.stringify(id)} already exists`),
  taskNotOpen: (id: string, status: TaskStatus): StoreError =>
    new StoreError('conflict', `task ${JSON.stringify(id)} is ${status}, not queued or leased (a replayed result?)`),
  taskDone: (id: string): StoreError => new StoreError('conflict', `task ${JSON.stringify(id)} is done; its status can no longer change`),
  individualNotFound: (id: string): StoreError => new StoreError('not-found', `no individual ${JSON.stringify(id)}`),
  individualExists: (id: string): StoreError => new StoreError('conflict', `individual ${JSON.stringify(id)} already exists`),
  notAlive: (id: string, experimentId: string): StoreError =>
    new StoreError('conflict', `individual ${JSON.stringify(id)} is not alive in experiment ${JSON.stringify(experimentId)}`),
  invalid: (message: string): StoreError => new StoreError('invalid', message),
};

// ---------------------------------------------------------------- checks

function finite(name: string, x: unknown): void {
  if (typeof x !== 'number' || !Number.isFinite(x)) throw errors.invalid(`${name} must be a finite number, got ${String(x)}`);
}

function finiteOrNull(name: string, x: unknown): void {
  if (x !== null) finite(name, x);
}

function nonNegativeInteger(name: string, x: unknown): void {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw errors.invalid(`${name} must be a non-negative integer, got ${String(x)}`);
}

function nonEmptyString(name: string, x: unknown): void {
  if (typeof x !== 'string' || x.length === 0) throw errors.invalid(`${name} must be a non-empty string`);
}

/** A row limit: a non-negative number, Infinity for no limit; fractions round down. */
export function checkLimit(limit: number): number {
  if (typeof limit !== 'number' || Number.isNaN(limit) || limit < 0) throw errors.invalid(`limit must be a non-negative number, got ${String(limit)}`);
  return Number.isFinite(limit) ? Math.floor(limit) : Infinity;
}

/** SQLite's spelling of a limit from {@link checkLimit}: -1 is none. */
export function sqlLimit(limit: number): number {
  const n = checkLimit(limit);
  return Number.isFinite(n) ? n : -1;
}

export function checkExperiment(r: ExperimentRecord): void {
  nonEmptyString('experiment id', r.id);
  if (typeof r.name !== 'string') throw errors.invalid('experiment name must be a string');
  if (!EXPERIMENT_STATUSES.includes(r.status)) throw errors.invalid(`bad experiment status ${String(r.status)}`);
  if (typeof r.config !== 'object' || r.config === null) throw errors.invalid('experiment config must be an object');
  finite('createdAt', r.createdAt);
  nonNegativeInteger('stepCounter', r.stepCounter);
  nonNegativeInteger('taskCounter', r.taskCounter);
  nonNegativeInteger('childrenTrained', r.childrenTrained);
  finite('totalFlops', r.totalFlops);
  nonNegativeInteger('boostRemaining', r.boostRemaining);
  finite('lastImprovementAt', r.lastImprovementAt);
  finiteOrNull('bestFitness', r.bestFitness);
}

export type ExperimentPatch = Parameters<PopulationStore['updateExperiment']>[1];

export function checkExperimentPatch(p: ExperimentPatch): void {
  if (p.status !== undefined && !EXPERIMENT_STATUSES.includes(p.status)) throw errors.invalid(`bad experiment status ${String(p.status)}`);
  if (p.boostRemaining !== undefined) nonNegativeInteger('boostRemaining', p.boostRemaining);
  if (p.lastImprovementAt !== undefined) finite('lastImprovementAt', p.lastImprovementAt);
  if (p.finalResult !== undefined && p.finalResult !== null && typeof p.finalResult !== 'object') throw errors.invalid('finalResult must be an object or null');
}

export function checkNewTask(t: NewTask, experimentId: string): void {
  nonEmptyString('task id', t.id);
  if (t.experimentId !== experimentId) {
    throw errors.invalid(`task ${JSON.stringify(t.id)} belongs to experiment ${JSON.stringify(t.experimentId)}, not ${JSON.stringify(experimentId)}`);
  }
  if (t.kind !== 'initial' && t.kind !== 'child') throw errors.invalid(`bad task kind ${String(t.kind)}`);
  if (typeof t.seed !== 'string') throw errors.invalid('task seed must be a string');
  if (typeof t.resetWeights !== 'boolean') throw errors.invalid('task resetWeights must be a boolean');
  if (typeof t.dna !== 'object' || t.dna === null) throw errors.invalid('task dna must be an object');
  if (!Array.isArray(t.mutations)) throw errors.invalid('task mutations must be an array');
  finite('task createdAt', t.createdAt);
}

export function checkTaskStatus(status: string): void {
  if (status !== 'queued' && status !== 'leased' && status !== 'abandoned') throw errors.invalid(`a task can be set queued, leased or abandoned, not ${String(status)}`);
}

export function checkNewIndividual(ind: NewIndividual, taskId: string, experimentId: string): void {
  if (ind.id !== taskId) throw errors.invalid(`individual ${JSON.stringify(ind.id)} does not match task ${JSON.stringify(taskId)}`);
  if (ind.experimentId !== experimentId) throw errors.invalid(`individual ${JSON.stringify(ind.id)} belongs to experiment ${JSON.stringify(experimentId)}`);
  if (typeof ind.dna !== 'object' || ind.dna === null) throw errors.invalid('individual dna must be an object');
  if (!Array.isArray(ind.mutations)) throw errors.invalid('individual mutations must be an array');
  if (typeof ind.dnaId !== 'string') throw errors.invalid('individual dnaId must be a string');
  if (typeof ind.provisional !== 'boolean' || typeof ind.failed !== 'boolean') throw errors.invalid('provisional and failed must be booleans');
  finite('fitness', ind.fitness);
  finite('createdAt', ind.createdAt);
  finite('trainedAt', ind.trainedAt);
  finite('params', ind.params);
  finite('forwardFlops', ind.forwardFlops);
  finite('costFlops', ind.costFlops);
  nonNegativeInteger('generation', ind.generation);
  finiteOrNull('claimedAccuracy', ind.claimedAccuracy);
  const tb = ind.trainedBy as unknown;
  if (typeof tb !== 'object' || tb === null) throw errors.invalid('trainedBy must be an object');
  if (typeof ind.trainedBy.workerId !== 'string' || typeof ind.trainedBy.backend !== 'string') throw errors.invalid('trainedBy needs workerId and backend');
}

export function checkCompleteTask(done: CompleteTask): void {
  if (done.volunteer !== null) {
    nonEmptyString('volunteer nickname', done.volunteer.nickname);
    nonEmptyString('volunteer backend', done.volunteer.backend);
    finite('volunteer flops', done.volunteer.flops);
  }
  nonEmptyString('event kind', done.event.kind);
}

export function checkEvent(kind: string, at: number): void {
  nonEmptyString('event kind', kind);
  finite('event at', at);
}

export function checkAccuracy(name: string, x: number): void {
  finite(name, x);
}

// ---------------------------------------------------------------- JSON

/** The JSON round trip a value takes through a SQLite text column. */
export function toJson(value: unknown, what: string): string {
  const text = JSON.stringify(value);
  if (typeof text !== 'string') throw errors.invalid(`${what} is not JSON-serialisable`);
  return text;
}

export function jsonClone<T>(value: T, what: string): T {
  return JSON.parse(toJson(value, what)) as T;
}

// ---------------------------------------------------------------- records

export function copyExperiment(r: ExperimentRecord): ExperimentRecord {
  return {
    id: r.id,
    name: r.name,
    config: jsonClone(r.config, 'experiment config'),
    status: r.status,
    createdAt: r.createdAt,
    stepCounter: r.stepCounter,
    taskCounter: r.taskCounter,
    childrenTrained: r.childrenTrained,
    totalFlops: r.totalFlops,
    boostRemaining: r.boostRemaining,
    lastImprovementAt: r.lastImprovementAt,
    bestFitness: r.bestFitness,
    finalResult: r.finalResult === null ? null : jsonClone(r.finalResult, 'finalResult'),
  };
}

export function copyTask(t: NewTask, status: TaskStatus, attempts: number): TaskRecord {
  return {
    id: t.id,
    experimentId: t.experimentId,
    kind: t.kind,
    parentId: t.parentId,
    parentWeightsSha256: t.parentWeightsSha256,
    dna: jsonClone(t.dna, 'task dna'),
    mutations: jsonClone(t.mutations, 'task mutations'),
    resetWeights: t.resetWeights,
    seed: t.seed,
    status,
    attempts,
    createdAt: t.createdAt,
  };
}

export function copyIndividual(
  ind: NewIndividual,
  status: IndividualRecord['status'],
  removedAt: number | null,
  testAccuracy: number | null,
): IndividualRecord {
  return {
    id: ind.id,
    experimentId: ind.experimentId,
    dna: jsonClone(ind.dna, 'individual dna'),
    dnaId: ind.dnaId,
    parentId: ind.parentId,
    mutations: jsonClone(ind.mutations, 'individual mutations'),
    status,
    fitness: ind.fitness,
    provisional: ind.provisional,
    failed: ind.failed,
    weightsSha256: ind.weightsSha256,
    createdAt: ind.createdAt,
    trainedAt: ind.trainedAt,
    removedAt,
    params: ind.params,
    forwardFlops: ind.forwardFlops,
    costFlops: ind.costFlops,
    generation: ind.generation,
    trainedBy: {
      workerId: ind.trainedBy.workerId,
      nickname: ind.trainedBy.nickname,
      backend: ind.trainedBy.backend,
      adapter: ind.trainedBy.adapter,
    },
    claimedAccuracy: ind.claimedAccuracy,
    testAccuracy,
  };
}

export function copyVolunteer(v: VolunteerRecord): VolunteerRecord {
  return {
    nickname: v.nickname,
    childrenTrained: v.childrenTrained,
    flopsDonated: v.flopsDonated,
    credit: v.credit,
    lastSeen: v.lastSeen,
    backends: jsonClone(v.backends, 'volunteer backends'),
  };
}

export function copyEvent(e: EventRecord): EventRecord {
  return { id: e.id, experimentId: e.experimentId, at: e.at, kind: e.kind, data: jsonClone(e.data, 'event data') };
}

// ---------------------------------------------------------------- arithmetic

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** A volunteer after one more verified child of `flops` training FLOPs on `backend`. */
export function creditVolunteer(
  before: VolunteerRecord | null,
  v: NonNullable<CompleteTask['volunteer']>,
  at: number,
): VolunteerRecord {
  const backends: Record<string, number> = before === null ? {} : jsonClone(before.backends, 'volunteer backends');
  backends[v.backend] = (backends[v.backend] ?? 0) + 1;
  return {
    nickname: v.nickname,
    childrenTrained: (before?.childrenTrained ?? 0) + 1,
    flopsDonated: (before?.flopsDonated ?? 0) + v.flops,
    credit: round3((before?.credit ?? 0) + round3(v.flops / 1e9)),
    lastSeen: at,
    backends,
  };
}

/** True when a verified, non-failed fitness beats the best so far. */
export function improves(best: number | null, ind: { fitness: number; provisional: boolean; failed: boolean }): boolean {
  return !ind.provisional && !ind.failed && (best === null || ind.fitness > best);
}

/** The experiment counters after a child joins (see PopulationStore.completeTask). */
export function afterCompletion(
  exp: ExperimentRecord,
  ind: NewIndividual,
): Pick<ExperimentRecord, 'childrenTrained' | 'totalFlops' | 'bestFitness' | 'lastImprovementAt'> {
  const childrenTrained = exp.childrenTrained + 1;
  const better = improves(exp.bestFitness, ind);
  return {
    childrenTrained,
    totalFlops: exp.totalFlops + ind.costFlops,
    bestFitness: better ? ind.fitness : exp.bestFitness,
    lastImprovementAt: better ? childrenTrained : exp.lastImprovementAt,
  };
}

/** Best fitness and improvement mark after a re-computation of the best (setVerifiedFitness). */
export function afterVerification(
  exp: ExperimentRecord,
  newBest: number | null,
): Pick<ExperimentRecord, 'bestFitness' | 'lastImprovementAt'> {
  const better = newBest !== null && (exp.bestFitness === null || newBest > exp.bestFitness);
  return { bestFitness: newBest, lastImprovementAt: better ? exp.childrenTrained : exp.lastImprovementAt };
}

/** The data of the `step` event issueChild appends. */
export function stepEventData(step: IssueChild, stepNumber: number): Record<string, unknown> {
  return {
    step: stepNumber,
    taskId: step.task.id,
    parentId: step.task.parentId,
    removedId: step.removeId,
    usedBoost: step.usedBoost,
  };
}

/** Leaderboard order: fitness descending, then trainedAt ascending, then insertion order (stable sort). */
export function leaderboardCompare(a: IndividualRecord, b: IndividualRecord): number {
  if (a.fitness !== b.fitness) return b.fitness - a.fitness;
  return a.trainedAt - b.trainedAt;
}
