/**
 * The population store in memory, for tests and throw-away runs. It behaves
 * exactly like SqliteStore (the contract suite runs against both): records
 * are copied in and out (JSON parts through a JSON round trip, as in SQLite),
 * and every mutating method checks all its preconditions before it changes
 * anything, so a refused call changes nothing.
 */
import {
  afterCompletion,
  afterVerification,
  checkAccuracy,
  checkCompleteTask,
  checkEvent,
  checkExperiment,
  checkExperimentPatch,
  checkLimit,
  checkNewIndividual,
  checkNewTask,
  checkTaskStatus,
  copyEvent,
  copyExperiment,
  copyIndividual,
  copyTask,
  copyVolunteer,
  creditVolunteer,
  errors,
  jsonClone,
  leaderboardCompare,
  stepEventData,
  type ExperimentPatch,
  type NewTask,
} from './common.ts';
import type {
  CompleteTask,
  EventRecord,
  ExperimentRecord,
  IndividualRecord,
  IssueChild,
  PopulationStore,
  TaskRecord,
  VolunteerRecord,
} from './types.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class MemoryStore implements PopulationStore {
  // Maps iterate in insertion order, which plays the part of SQLite's row order.
  private readonly experiments = new Map<string, Mutable<ExperimentRecord>>();
  private readonly tasks = new Map<string, Mutable<TaskRecord>>();
  private readonly individuals = new Map<string, Mutable<IndividualRecord>>();
  private readonly eventLog: EventRecord[] = [];
  private readonly volunteerMap = new Map<string, VolunteerRecord>();
  private lastEventId = 0;
  private closed = false;

  private ensureOpen(): void {
    if (this.closed) throw errors.closed();
  }

  private experiment(id: string): Mutable<ExperimentRecord> {
    const exp = this.experiments.get(id);
    if (exp === undefined) throw errors.experimentNotFound(id);
    return exp;
  }

  private checkAlive(id: string, experimentId: string): Mutable<IndividualRecord> {
    const ind = this.individuals.get(id);
    if (ind === undefined || ind.status !== 'alive' || ind.experimentId !== experimentId) throw errors.notAlive(id, experimentId);
    return ind;
  }

  private pushEvent(experimentId: string, at: number, kind: string, data: Record<string, unknown>): void {
    this.lastEventId += 1;
    this.eventLog.push({ id: this.lastEventId, experimentId, at, kind, data });
  }

  private static outTask(t: TaskRecord): TaskRecord {
    return copyTask(t, t.status, t.attempts);
  }

  private static outIndividual(i: IndividualRecord): IndividualRecord {
    return copyIndividual(i, i.status, i.removedAt, i.testAccuracy);
  }

  createExperiment(record: ExperimentRecord, initialTasks: readonly NewTask[]): void {
    this.ensureOpen();
    checkExperiment(record);
    for (const t of initialTasks) checkNewTask(t, record.id);
    if (this.experiments.has(record.id)) throw errors.experimentExists(record.id);
    const ids = new Set<string>();
    for (const t of initialTasks) {
      if (this.tasks.has(t.id) || ids.has(t.id)) throw errors.taskExists(t.id);
      ids.add(t.id);
    }
    const exp = copyExperiment(record);
    const tasks = initialTasks.map((t) => copyTask(t, 'queued', 0));
    this.experiments.set(exp.id, exp);
    for (const t of tasks) this.tasks.set(t.id, t);
  }

  getExperiment(id: string): ExperimentRecord | null {
    this.ensureOpen();
    const exp = this.experiments.get(id);
    return exp === undefined ? null : copyExperiment(exp);
  }

  listExperiments(): ExperimentRecord[] {
    this.ensureOpen();
    return [...this.experiments.values()].sort((a, b) => a.createdAt - b.createdAt).map(copyExperiment);
  }

  updateExperiment(id: string, patch: ExperimentPatch): void {
    this.ensureOpen();
    checkExperimentPatch(patch);
    const exp = this.experiment(id);
    const finalResult = patch.finalResult === undefined || patch.finalResult === null ? patch.finalResult : jsonClone(patch.finalResult, 'finalResult');
    if (patch.status !== undefined) exp.status = patch.status;
    if (patch.boostRemaining !== undefined) exp.boostRemaining = patch.boostRemaining;
    if (patch.lastImprovementAt !== undefined) exp.lastImprovementAt = patch.lastImprovementAt;
    if (finalResult !== undefined) exp.finalResult = finalResult;
  }

  queuedTasks(experimentId: string, limit: number): TaskRecord[] {
    this.ensureOpen();
    const n = checkLimit(limit);
    return [...this.tasks.values()]
      .filter((t) => t.experimentId === experimentId && t.status === 'queued')
      .sort((a, b) => a.createdAt - b.createdAt)
      .slice(0, n)
      .map(MemoryStore.outTask);
  }

  getTask(id: string): TaskRecord | null {
    this.ensureOpen();
    const t = this.tasks.get(id);
    return t === undefined ? null : MemoryStore.outTask(t);
  }

  leasedTasks(): TaskRecord[] {
    this.ensureOpen();
    return [...this.tasks.values()]
      .filter((t) => t.status === 'leased')
      .sort((a, b) => a.createdAt - b.createdAt)
      .map(MemoryStore.outTask);
  }

  setTaskStatus(id: string, status: 'queued' | 'leased' | 'abandoned', bumpAttempts = false): void {
    this.ensureOpen();
    checkTaskStatus(status);
    const t = this.tasks.get(id);
    if (t === undefined) throw errors.taskNotFound(id);
    if (t.status === 'done') throw errors.taskDone(id);
    t.status = status;
    if (bumpAttempts) t.attempts += 1;
  }

  issueChild(step: IssueChild): void {
    this.ensureOpen();
    checkNewTask(step.task, step.experimentId);
    checkEvent('step', step.at);
    const exp = this.experiment(step.experimentId);
    if (this.tasks.has(step.task.id)) throw errors.taskExists(step.task.id);
    const loser = step.removeId === null ? null : this.checkAlive(step.removeId, step.experimentId);
    // Everything that can throw is done: apply.
    const task = copyTask(step.task, 'queued', 0);
    const data = jsonClone(stepEventData(step, exp.stepCounter + 1), 'event data');
    if (loser !== null) {
      loser.status = 'removed';
      loser.removedAt = step.at;
    }
    this.tasks.set(task.id, task);
    exp.stepCounter += 1;
    exp.taskCounter += 1;
    if (step.usedBoost) exp.boostRemaining = Math.max(0, exp.boostRemaining - 1);
    this.pushEvent(exp.id, step.at, 'step', data);
  }

  completeTask(done: CompleteTask): void {
    this.ensureOpen();
    checkCompleteTask(done);
    const task = this.tasks.get(done.taskId);
    if (task === undefined) throw errors.taskNotFound(done.taskId);
    if (task.status !== 'queued' && task.status !== 'leased') throw errors.taskNotOpen(task.id, task.status);
    checkNewIndividual(done.individual, task.id, task.experimentId);
    if (this.individuals.has(done.individual.id)) throw errors.individualExists(done.individual.id);
    const loser = done.removeId === null ? null : this.checkAlive(done.removeId, task.experimentId);
    const exp = this.experiment(task.experimentId);
    // Everything that can throw is done: apply.
    const ind = copyIndividual(done.individual, 'alive', null, null);
    const at = ind.trainedAt;
    const volunteer =
      done.volunteer === null ? null : creditVolunteer(this.volunteerMap.get(done.volunteer.nickname) ?? null, done.volunteer, at);
    const data = jsonClone(done.event.data, 'event data');

    this.individuals.set(ind.id, ind);
    task.status = 'done';
    Object.assign(exp, afterCompletion(exp, ind));
    if (loser !== null) {
      loser.status = 'removed';
      loser.removedAt = at;
    }
    if (volunteer !== null) this.volunteerMap.set(volunteer.nickname, volunteer);
    this.pushEvent(exp.id, at, done.event.kind, data);
  }

  getIndividual(id: string): IndividualRecord | null {
    this.ensureOpen();
    const ind = this.individuals.get(id);
    return ind === undefined ? null : MemoryStore.outIndividual(ind);
  }

  aliveIndividuals(experimentId: string): IndividualRecord[] {
    this.ensureOpen();
    return [...this.individuals.values()]
      .filter((i) => i.experimentId === experimentId && i.status === 'alive')
      .map(MemoryStore.outIndividual);
  }

  allIndividuals(experimentId: string): IndividualRecord[] {
    this.ensureOpen();
    return [...this.individuals.values()].filter((i) => i.experimentId === experimentId).map(MemoryStore.outIndividual);
  }

  private ranked(experimentId: string, limit: number): IndividualRecord[] {
    return [...this.individuals.values()]
      .filter((i) => i.experimentId === experimentId)
      .sort(leaderboardCompare)
      .slice(0, limit);
  }

  leaderboard(experimentId: string, limit: number): IndividualRecord[] {
    this.ensureOpen();
    return this.ranked(experimentId, checkLimit(limit)).map(MemoryStore.outIndividual);
  }

  private ancestors(id: string): IndividualRecord[] {
    const out: IndividualRecord[] = [];
    const seen = new Set<string>([id]);
    let parentId = this.individuals.get(id)?.parentId ?? null;
    while (parentId !== null && !seen.has(parentId)) {
      const parent = this.individuals.get(parentId);
      if (parent === undefined) break;
      seen.add(parentId);
      out.push(parent);
      parentId = parent.parentId;
    }
    return out;
  }

  lineage(id: string): IndividualRecord[] {
    this.ensureOpen();
    return this.ancestors(id).map(MemoryStore.outIndividual);
  }

  setTestAccuracy(id: string, accuracy: number): void {
    this.ensureOpen();
    checkAccuracy('test accuracy', accuracy);
    const ind = this.individuals.get(id);
    if (ind === undefined) throw errors.individualNotFound(id);
    ind.testAccuracy = accuracy;
  }

  setVerifiedFitness(id: string, fitness: number): void {
    this.ensureOpen();
    checkAccuracy('fitness', fitness);
    const ind = this.individuals.get(id);
    if (ind === undefined) throw errors.individualNotFound(id);
    const exp = this.experiment(ind.experimentId);
    ind.fitness = fitness;
    ind.provisional = false;
    let best: number | null = null;
    for (const i of this.individuals.values()) {
      if (i.experimentId === exp.id && !i.provisional && !i.failed && (best === null || i.fitness > best)) best = i.fitness;
    }
    Object.assign(exp, afterVerification(exp, best));
  }

  appendEvent(experimentId: string, at: number, kind: string, data: Record<string, unknown>): void {
    this.ensureOpen();
    checkEvent(kind, at);
    this.experiment(experimentId);
    const copy = jsonClone(data, 'event data');
    this.pushEvent(experimentId, at, kind, copy);
  }

  events(experimentId: string, afterId: number, limit: number): EventRecord[] {
    this.ensureOpen();
    const n = checkLimit(limit);
    return this.eventLog.filter((e) => e.experimentId === experimentId && e.id > afterId).slice(0, n).map(copyEvent);
  }

  volunteers(limit: number): VolunteerRecord[] {
    this.ensureOpen();
    const n = checkLimit(limit);
    return [...this.volunteerMap.values()]
      .sort((a, b) => b.credit - a.credit || b.childrenTrained - a.childrenTrained || (a.nickname < b.nickname ? -1 : a.nickname > b.nickname ? 1 : 0))
      .slice(0, n)
      .map(copyVolunteer);
  }

  referencedWeights(keepBest: number): Set<string> {
    this.ensureOpen();
    const n = checkLimit(keepBest);
    const keep = new Set<string>();
    const add = (sha: string | null): void => {
      if (sha !== null) keep.add(sha);
    };
    for (const i of this.individuals.values()) if (i.status === 'alive') add(i.weightsSha256);
    for (const t of this.tasks.values()) if (t.status === 'queued' || t.status === 'leased') add(t.parentWeightsSha256);
    for (const exp of this.experiments.values()) {
      for (const best of this.ranked(exp.id, n)) {
        add(best.weightsSha256);
        for (const a of this.ancestors(best.id)) add(a.weightsSha256);
      }
    }
    return keep;
  }

  close(): void {
    this.closed = true;
  }
}
