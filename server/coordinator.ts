/**
 * The coordinator owns the experiments: it hands out work as leases, takes
 * results back, has the server judge them, and lets children into the
 * population. It talks to narrow interfaces (store, weight files, verifier,
 * clock, an outbox to workers); socket.ts and http/ bind the real I/O.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dnaId } from '../shared/evolution/canonical.ts';
import { flopsReport, individualCost } from '../shared/evolution/flops.ts';
import { planInheritance } from '../shared/evolution/inheritance.ts';
import { WeightsFormatError, decodeWeights, weightsByteLength } from '../shared/model/weights-codec.ts';
import { PROTOCOL_VERSION, Refusal, type Hello, type Lease, type ResultMessage, type ServerMessage } from '../shared/protocol.ts';
import { LeaseTable, type LeaseEntry } from './leases.ts';
import { initialTasks, planReset, planStep } from './experiments/step.ts';
import { BadWeightsError, type Evaluation, type Verifier } from './verifier.ts';
import type { WeightsFiles } from './weights-files.ts';
import type { ExperimentConfig, ExperimentRecord, IndividualRecord, PopulationStore, TaskRecord } from './store/types.ts';

/** What the coordinator needs to know of a prepared dataset. */
export interface DatasetInfo {
  readonly name: string;
  readonly shape: readonly [number, number, number];
  readonly numClasses: number;
  readonly manifestUrl: string;
  readonly version: string;
  readonly validationCount: number;
}

export interface CoordinatorDeps {
  readonly store: PopulationStore;
  readonly weights: WeightsFiles;
  readonly verifier: Verifier;
  readonly dataset: (name: string) => Promise<DatasetInfo>;
  readonly clock: () => number;
  readonly randomHex: (bytes: number) => string;
  /** Delivers a message to a connected worker (dropped when it is gone). */
  readonly send: (workerId: string, message: ServerMessage) => void;
  readonly leaseTtlMs?: number;
  readonly heartbeatMs?: number;
  readonly log?: (line: string) => void;
}

export interface WorkerInfo {
  readonly id: string;
  readonly hello: Hello;
  readonly address: string;
  readonly connectedAt: number;
  lastSeen: number;
  connected: boolean;
  /** Claims that disagreed with the server's fitness. */
  mismatches: number;
  quarantined: boolean;
}

/** Changes the leaderboard pages listen to. */
export type CoordinatorEvent =
  | { kind: 'individual'; experimentId: string; individual: IndividualRecord; removedId: string | null }
  | { kind: 'removed'; experimentId: string; id: string }
  | { kind: 'experiment'; experimentId: string }
  | { kind: 'remedy'; experimentId: string; remedy: 'boost' | 'reset'; at: number };

/** Claims further than this from the server's accuracy count against a worker. */
export const CLAIM_TOLERANCE = 0.02;
/** Mismatched claims after which a worker is quarantined. */
export const QUARANTINE_AFTER = 3;
/** Best individuals (and their lineage) whose weights are never collected. */
export const KEEP_BEST = 10;

export class Coordinator {
  private readonly leases: LeaseTable;
  private readonly workers = new Map<string, WorkerInfo>();
  private readonly listeners = new Set<(event: CoordinatorEvent) => void>();
  private readonly heartbeatMs: number;
  private readonly leaseTtlMs: number;
  /** Verification runs one at a time, off the socket handlers. */
  private verifyQueue: Promise<void> = Promise.resolve();
  private pendingVerifications = 0;
  private completionsSinceGc = 0;
  /** Prepared datasets of the experiments, loaded before they get work. */
  private readonly datasets = new Map<string, DatasetInfo>();
  /** Workers whose results for a task the server could not evaluate, by task id. */
  private readonly unevaluable = new Map<string, Set<string>>();
  readonly metrics = {
    stepsIssued: 0,
    leasesIssued: 0,
    leasesExpired: 0,
    leasesReleased: 0,
    resultsAccepted: 0,
    resultsFailed: 0,
    resultsRefused: 0,
    verifications: { ok: 0, badWeights: 0, error: 0, skipped: 0 },
    claimMismatches: 0,
  };

  constructor(private readonly deps: CoordinatorDeps) {
    this.heartbeatMs = deps.heartbeatMs ?? 10_000;
    this.leaseTtlMs = deps.leaseTtlMs ?? 60_000;
    this.leases = new LeaseTable(
      this.leaseTtlMs,
      () => `L${deps.randomHex(12)}`,
      () => deps.randomHex(24),
    );
  }

  private log(line: string): void {
    this.deps.log?.(line);
  }

  /**
   * Start-up after a restart: leases in flight are gone, their tasks go back
   * to the queue; unreferenced weight files (a crash between upload and
   * commit) are deleted; the experiments' datasets are loaded.
   */
  async recover(): Promise<{ requeued: number; weightsDeleted: number }> {
    for (const exp of this.deps.store.listExperiments()) {
      if (exp.status === 'running' || exp.status === 'paused') await this.datasetOf(exp.config.dataset);
    }
    const leased = this.deps.store.leasedTasks();
    for (const task of leased) this.deps.store.setTaskStatus(task.id, 'queued');
    const { deleted } = this.collectGarbage();
    return { requeued: leased.length, weightsDeleted: deleted.length };
  }

  /** Deletes weight files no one needs any more (removed individuals, abandoned uploads). */
  collectGarbage(): { deleted: string[] } {
    return this.deps.weights.gc(this.neededWeights());
  }

  /** Weights still needed: what the store references, plus uploads of leases not yet judged. */
  private neededWeights(): Set<string> {
    const keep = this.deps.store.referencedWeights(KEEP_BEST);
    for (const lease of this.leases.all()) if (lease.uploadedSha256) keep.add(lease.uploadedSha256);
    return keep;
  }

  onEvent(listener: (event: CoordinatorEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async datasetOf(name: string): Promise<DatasetInfo> {
    const known = this.datasets.get(name);
    if (known !== undefined) return known;
    const info = await this.deps.dataset(name);
    this.datasets.set(name, info);
    return info;
  }

  private emit(event: CoordinatorEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  // ---- experiments ------------------------------------------------------------

  /** Creates an experiment and its initial population of linear models (to be trained first). */
  async createExperiment(config: ExperimentConfig, name?: string): Promise<ExperimentRecord> {
    const info = await this.datasetOf(config.dataset);
    const now = this.deps.clock();
    const id = `${config.preset}-${this.deps.randomHex(3)}`;
    const record: ExperimentRecord = {
      id,
      name: name ?? `${config.preset} on ${config.dataset}`,
      config,
      status: 'running',
      createdAt: now,
      stepCounter: 0,
      taskCounter: config.populationSize,
      childrenTrained: 0,
      totalFlops: 0,
      boostRemaining: 0,
      lastImprovementAt: 0,
      bestFitness: null,
      finalResult: null,
    };
    this.deps.store.createExperiment(record, initialTasks(id, config.seed, config.populationSize, info.shape, info.numClasses, now));
    this.deps.store.appendEvent(id, now, 'created', { config });
    this.log(`experiment ${id} created: ${record.name}, population ${config.populationSize}`);
    this.emit({ kind: 'experiment', experimentId: id });
    return record;
  }

  /** Operator actions. */
  setStatus(experimentId: string, status: 'running' | 'paused' | 'stopped'): ExperimentRecord {
    const exp = this.requireExperiment(experimentId);
    if (exp.status === 'finished' || (exp.status === 'stopped' && status !== 'stopped')) {
      throw new Error(`experiment ${experimentId} is ${exp.status}; it cannot be set ${status}`);
    }
    this.deps.store.updateExperiment(experimentId, { status });
    this.deps.store.appendEvent(experimentId, this.deps.clock(), 'status', { status });
    if (status === 'stopped') {
      for (const lease of this.leases.all().filter((l) => l.experimentId === experimentId && !l.verifying)) {
        this.leases.end(lease.leaseId, 'released');
        this.deps.store.setTaskStatus(lease.taskId, 'abandoned');
      }
    }
    this.emit({ kind: 'experiment', experimentId });
    return this.requireExperiment(experimentId);
  }

  /** Applies a plateau remedy now: the mutation-rate boost or the weight reset. */
  applyRemedy(experimentId: string, remedy: 'boost' | 'reset'): ExperimentRecord {
    const exp = this.requireExperiment(experimentId);
    const now = this.deps.clock();
    if (remedy === 'boost') {
      this.deps.store.updateExperiment(experimentId, { boostRemaining: exp.config.plateau.boostChildren, lastImprovementAt: exp.childrenTrained });
    } else {
      let current = exp;
      const alive = this.deps.store.aliveIndividuals(experimentId);
      for (const step of planReset(current, alive, now)) {
        this.deps.store.issueChild(step);
        current = this.requireExperiment(experimentId);
      }
      this.deps.store.updateExperiment(experimentId, { lastImprovementAt: current.childrenTrained });
    }
    this.deps.store.appendEvent(experimentId, now, 'remedy', { remedy });
    this.log(`experiment ${experimentId}: ${remedy} remedy applied`);
    this.emit({ kind: 'remedy', experimentId, remedy, at: now });
    return this.requireExperiment(experimentId);
  }

  private requireExperiment(id: string): ExperimentRecord {
    const exp = this.deps.store.getExperiment(id);
    if (exp === null) throw new Error(`no experiment ${id}`);
    return exp;
  }

  // ---- workers ----------------------------------------------------------------

  /** A worker said hello; returns the welcome (or a refusal) to send back. */
  hello(workerId: string, hello: Hello, address: string): ServerMessage[] {
    if (hello.protocol !== PROTOCOL_VERSION) {
      return [{ type: 'refused', code: Refusal.BadProtocol, message: `this server speaks protocol ${PROTOCOL_VERSION}, the worker ${hello.protocol}; reload the page or update petri` }];
    }
    if (hello.experimentId !== undefined && this.deps.store.getExperiment(hello.experimentId) === null) {
      return [{ type: 'refused', code: Refusal.BadMessage, message: `no experiment ${hello.experimentId}` }];
    }
    const now = this.deps.clock();
    const previous = this.workers.get(workerId);
    this.workers.set(workerId, {
      id: workerId,
      hello,
      address,
      connectedAt: previous?.connectedAt ?? now,
      lastSeen: now,
      connected: true,
      mismatches: previous?.mismatches ?? 0,
      quarantined: previous?.quarantined ?? this.isQuarantined(hello.nickname, address),
    });
    const out: ServerMessage[] = [{ type: 'welcome', workerId, protocol: PROTOCOL_VERSION, experimentId: hello.experimentId ?? null }];
    if (hello.resume !== undefined) {
      const lease = this.leases.rebind(hello.resume.leaseId, hello.resume.token, workerId, now);
      const task = lease === null ? null : this.deps.store.getTask(lease.taskId);
      if (lease !== null && task !== null) out.push({ type: 'lease', lease: this.leaseMessage(lease, task) });
      else {
        // Gone (expired, or the server restarted): the worker should drop it rather than finish it for nothing.
        out.push({ type: 'refused', code: Refusal.UnknownLease, message: `lease ${hello.resume.leaseId} cannot be resumed: it expired, or the server restarted since, and its child was queued again`, leaseId: hello.resume.leaseId });
      }
    }
    return out;
  }

  private isQuarantined(nickname: string | undefined, address: string): boolean {
    for (const w of this.workers.values()) {
      if (w.quarantined && (w.address === address || (nickname !== undefined && w.hello.nickname === nickname))) return true;
    }
    return false;
  }

  /** The worker's connection closed: its leases stay until they expire (a reload may resume them). */
  disconnected(workerId: string): void {
    const worker = this.workers.get(workerId);
    if (worker !== undefined) worker.connected = false;
    for (const exp of new Set(this.leases.byWorker(workerId).map((l) => l.experimentId))) this.emit({ kind: 'experiment', experimentId: exp });
  }

  worker(workerId: string): WorkerInfo | undefined {
    return this.workers.get(workerId);
  }

  onlineWorkers(experimentId?: string): WorkerInfo[] {
    return [...this.workers.values()].filter(
      (w) => w.connected && (experimentId === undefined || w.hello.experimentId === undefined || w.hello.experimentId === experimentId),
    );
  }

  /** Hands the worker a lease, or tells it why there is no work now. */
  requestWork(workerId: string): ServerMessage {
    const worker = this.workers.get(workerId);
    if (worker === undefined) return { type: 'refused', code: Refusal.NotHello, message: 'say hello first' };
    if (worker.quarantined) {
      return { type: 'refused', code: Refusal.Quarantined, message: 'this worker\'s results disagreed with the server too often; it gets no more work' };
    }
    worker.lastSeen = this.deps.clock();
    const held = this.leases.byWorker(workerId).find((l) => !l.verifying);
    if (held !== undefined) {
      const task = this.deps.store.getTask(held.taskId);
      if (task !== null) return { type: 'lease', lease: this.leaseMessage(held, task) };
    }
    const candidates = worker.hello.experimentId !== undefined
      ? [this.deps.store.getExperiment(worker.hello.experimentId)].filter((e): e is ExperimentRecord => e !== null)
      : this.deps.store.listExperiments();
    let reason = 'no experiment is running';
    for (const exp of candidates) {
      if (exp.status !== 'running') {
        reason = `experiment ${exp.id} is ${exp.status}`;
        continue;
      }
      if (!this.datasets.has(exp.config.dataset)) {
        reason = `the dataset ${exp.config.dataset} is being prepared`;
        void this.datasetOf(exp.config.dataset).catch((err: unknown) => this.log(`dataset ${exp.config.dataset}: ${String(err)}`));
        continue;
      }
      const task = this.nextTask(exp);
      if (typeof task === 'string') {
        reason = task;
        continue;
      }
      const lease = this.leases.issue(task.id, exp.id, workerId, this.deps.clock());
      this.deps.store.setTaskStatus(task.id, 'leased', true);
      this.metrics.leasesIssued++;
      this.emit({ kind: 'experiment', experimentId: exp.id });
      return { type: 'lease', lease: this.leaseMessage(lease, task) };
    }
    return { type: 'idle', reason, retryInMs: 3_000 };
  }

  /** A queued task, a new step's task, or why there is none. */
  private nextTask(exp: ExperimentRecord): TaskRecord | string {
    const queued = this.deps.store.queuedTasks(exp.id, 1)[0];
    if (queued !== undefined) return queued;
    if (exp.config.maxChildren > 0) {
      // Counted only when there is a budget: it reads every queued task.
      const open = this.openTasks(exp.id);
      if (exp.childrenTrained + open >= exp.config.maxChildren) {
        return open === 0 ? `experiment ${exp.id} reached its ${exp.config.maxChildren} children` : 'the last children are being trained';
      }
    }
    if (exp.childrenTrained < exp.config.populationSize && exp.stepCounter === 0) {
      return 'the initial population is still being trained';
    }
    // Every step removes its loser when it is issued, so children in flight shrink the population. At most
    // half of it may be out at once: many workers (or a flood of connections that take leases and sit on
    // them) then wait instead of wearing the population down to two.
    const inFlight = this.leases.all().filter((l) => l.experimentId === exp.id).length;
    if (inFlight >= Math.ceil(exp.config.populationSize / 2)) {
      return `${inFlight} children are in flight, the most a population of ${exp.config.populationSize} allows; waiting for one to return`;
    }
    const step = planStep(exp, this.deps.store.aliveIndividuals(exp.id), this.deps.clock());
    if (step === null) return 'fewer than two trained individuals are alive; waiting for children to return';
    this.deps.store.issueChild(step);
    this.metrics.stepsIssued++;
    if (step.removeId !== null) this.emit({ kind: 'removed', experimentId: exp.id, id: step.removeId });
    const task = this.deps.store.getTask(step.task.id);
    if (task === null) throw new Error(`task ${step.task.id} vanished`);
    return task;
  }

  private openTasks(experimentId: string): number {
    return this.leases.all().filter((l) => l.experimentId === experimentId).length + this.deps.store.queuedTasks(experimentId, 1_000_000).length;
  }

  private leaseMessage(lease: LeaseEntry, task: TaskRecord): Lease {
    const exp = this.requireExperiment(task.experimentId);
    const parent = task.parentId === null ? null : this.deps.store.getIndividual(task.parentId);
    const parentWeights =
      task.parentWeightsSha256 === null || parent === null
        ? null
        : { url: `/api/weights/${task.parentWeightsSha256}`, sha256: task.parentWeightsSha256, bytes: weightsByteLength(parent.dna) };
    const plan = planInheritance(parentWeights === null ? null : (parent?.dna ?? null), task.dna, parentWeights === null || task.resetWeights);
    return {
      leaseId: lease.leaseId,
      token: lease.token,
      experimentId: task.experimentId,
      childId: task.id,
      parentId: task.parentId,
      parentWeights,
      parentDna: parentWeights === null || parent === null ? null : (parent.dna as Lease['dna']),
      dna: task.dna as Lease['dna'],
      plan: plan as Lease['plan'],
      mutations: task.mutations.map((m) => ({ name: m.name, detail: m.detail })),
      seed: task.seed,
      steps: exp.config.stepsPerChild,
      batchSize: exp.config.batchSize,
      momentum: 0.9,
      weightDecay: 1e-4,
      augment: exp.config.augment,
      dataset: this.leaseDataset(exp.config.dataset),
      uploadUrl: `/api/leases/${lease.leaseId}/weights`,
      maxUploadBytes: weightsByteLength(task.dna),
      heartbeatMs: this.heartbeatMs,
      expiresInMs: Math.max(0, lease.expiresAt - this.deps.clock()),
    };
  }

  private leaseDataset(name: string): Lease['dataset'] {
    const info = this.datasets.get(name);
    if (info === undefined) throw new Error(`dataset ${name} is not loaded`);
    return { name, manifestUrl: info.manifestUrl, version: info.version };
  }

  /** A heartbeat with progress keeps the lease alive. */
  progress(workerId: string, leaseId: string, step: number): ServerMessage | null {
    const now = this.deps.clock();
    const check = this.leases.check(leaseId, workerId, now);
    if (!check.ok) return { type: 'refused', code: check.code, message: check.message, leaseId };
    this.leases.heartbeat(check.lease, step, now);
    const worker = this.workers.get(workerId);
    if (worker) worker.lastSeen = now;
    return null;
  }

  /** The worker gives a lease back (SIGTERM, pause): its task is queued again at once. */
  release(workerId: string, leaseId: string): ServerMessage | null {
    const check = this.leases.check(leaseId, workerId, this.deps.clock());
    if (!check.ok) return { type: 'refused', code: check.code, message: check.message, leaseId };
    if (check.lease.verifying) return null;
    this.leases.end(leaseId, 'released');
    this.deps.store.setTaskStatus(check.lease.taskId, 'queued');
    this.metrics.leasesReleased++;
    this.emit({ kind: 'experiment', experimentId: check.lease.experimentId });
    return null;
  }

  /** Expires leases without heartbeats; their tasks go back to the queue. Returns how many. */
  tick(): number {
    const expired = this.leases.expire(this.deps.clock());
    for (const lease of expired) {
      const task = this.deps.store.getTask(lease.taskId);
      if (task !== null && task.status === 'leased') this.deps.store.setTaskStatus(task.id, 'queued');
      this.metrics.leasesExpired++;
      this.log(`lease ${lease.leaseId} of ${lease.taskId} expired; the task is queued again`);
      this.emit({ kind: 'experiment', experimentId: lease.experimentId });
    }
    return expired.length;
  }

  // ---- results ----------------------------------------------------------------

  /**
   * Accepts the weights upload of a lease: checks the token, streams the body
   * to a content-addressed file capped at the exact size the child DNA
   * implies. Returns the SHA-256.
   */
  async acceptUpload(leaseId: string, token: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<{ ok: true; sha256: string } | { ok: false; status: number; code: string; message: string }> {
    const lease = this.leases.get(leaseId);
    if (lease === undefined) {
      const check = this.leases.check(leaseId, '', this.deps.clock());
      return { ok: false, status: check.ok ? 404 : check.code === 'lease-expired' ? 410 : 404, code: check.ok ? Refusal.UnknownLease : check.code, message: check.ok ? 'no such lease' : check.message };
    }
    if (!tokenMatches(lease.token, token)) return { ok: false, status: 403, code: Refusal.NotYourLease, message: 'wrong lease token' };
    if (lease.verifying) return { ok: false, status: 409, code: Refusal.AlreadyDone, message: 'this lease\'s result is already in' };
    if (lease.expiresAt <= this.deps.clock()) return { ok: false, status: 410, code: Refusal.LeaseExpired, message: `lease ${leaseId} expired` };
    const task = this.deps.store.getTask(lease.taskId);
    if (task === null) return { ok: false, status: 404, code: Refusal.UnknownLease, message: 'the lease\'s task is gone' };
    const expected = weightsByteLength(task.dna);
    let stored: { sha256: string; bytes: number };
    try {
      stored = await this.deps.weights.putStream(body, expected);
    } catch (err) {
      return { ok: false, status: 413, code: Refusal.BadWeights, message: err instanceof Error ? err.message : String(err) };
    }
    if (stored.bytes !== expected) {
      this.deleteIfUnreferenced(stored.sha256);
      return { ok: false, status: 400, code: Refusal.BadWeights, message: `weights are ${stored.bytes} bytes; the child's tensors need exactly ${expected}` };
    }
    lease.uploadedSha256 = stored.sha256;
    return { ok: true, sha256: stored.sha256 };
  }

  private deleteIfUnreferenced(sha: string): void {
    if (!this.neededWeights().has(sha)) this.deps.weights.delete(sha);
  }

  /**
   * A worker reports a finished child. Returns the immediate answer (a
   * refusal), or null when the result was taken: the verdict follows once
   * the server has judged the weights.
   */
  submitResult(workerId: string, result: ResultMessage): ServerMessage | null {
    const now = this.deps.clock();
    const check = this.leases.check(result.leaseId, workerId, now);
    if (!check.ok) {
      this.metrics.resultsRefused++;
      return { type: 'refused', code: check.code, message: check.message, leaseId: result.leaseId };
    }
    const lease = check.lease;
    if (lease.verifying) {
      this.metrics.resultsRefused++;
      return { type: 'refused', code: Refusal.AlreadyDone, message: 'this lease\'s result is already in', leaseId: lease.leaseId };
    }
    const task = this.deps.store.getTask(lease.taskId);
    if (task === null || (task.status !== 'leased' && task.status !== 'queued')) {
      this.leases.end(lease.leaseId, 'completed');
      return { type: 'refused', code: Refusal.AlreadyDone, message: `task ${lease.taskId} is already ${task?.status ?? 'gone'}`, leaseId: lease.leaseId };
    }
    if (result.status === 'ok') {
      if (lease.uploadedSha256 === null) {
        this.metrics.resultsRefused++;
        return { type: 'refused', code: Refusal.NoUpload, message: `upload the weights to /api/leases/${lease.leaseId}/weights first`, leaseId: lease.leaseId };
      }
      if (result.weightsSha256 !== lease.uploadedSha256) {
        this.metrics.resultsRefused++;
        return { type: 'refused', code: Refusal.BadWeights, message: 'the announced SHA-256 is not the one of the uploaded weights', leaseId: lease.leaseId };
      }
    }
    lease.verifying = true;
    this.enqueue(`verification of ${task.id}`, () => this.judge(workerId, lease, task, result));
    return null;
  }

  /** Queues a verification job: one at a time, off the socket handlers. */
  private enqueue(what: string, job: () => Promise<void>): void {
    this.pendingVerifications++;
    this.verifyQueue = this.verifyQueue
      .then(job)
      .catch((err: unknown) => this.log(`${what} failed: ${String(err)}`))
      .finally(() => {
        this.pendingVerifications--;
      });
  }

  /** Results waiting for, or in, verification. */
  get verificationBacklog(): number {
    return this.pendingVerifications;
  }

  /** Resolves once every result submitted so far has been judged (and the re-verifications a judgement queued). */
  async drained(): Promise<void> {
    while (this.pendingVerifications > 0) await this.verifyQueue;
  }

  private async judge(workerId: string, lease: LeaseEntry, task: TaskRecord, result: ResultMessage): Promise<void> {
    const exp = this.requireExperiment(task.experimentId);
    const worker = this.workers.get(workerId);
    const info = await this.datasetOf(exp.config.dataset);
    const report = flopsReport(task.dna, exp.config.batchSize, info.validationCount);
    const diverged = result.status === 'diverged';
    let failed = diverged;
    // Credit and cost count the steps the lease asked for, never more than a worker says it did.
    const stepsDone = Math.min(result.stepsDone, exp.config.stepsPerChild);
    let fitness = 0;
    let provisional = false;
    if (!diverged) {
      const sha = lease.uploadedSha256 as string;
      // Which children are spot-checked is drawn from server randomness (not the public seed), so a worker cannot
      // tell which claims will be checked; a quarantined worker's results are always verified.
      const draw = Number.parseInt(this.deps.randomHex(4), 16) / 0x1_0000_0000;
      const verify = exp.config.verifyFraction >= 1 || result.claimedAccuracy === undefined || worker?.quarantined === true || draw < exp.config.verifyFraction;
      if (verify) {
        let evaluation: Evaluation | null = null;
        try {
          evaluation = await this.deps.verifier.evaluate({ dataset: exp.config.dataset, split: 'validation', dna: task.dna, weightsPath: this.deps.weights.path(sha), probe: result.claimedAccuracy !== undefined });
          fitness = evaluation.accuracy;
          this.metrics.verifications.ok++;
        } catch (err) {
          const message = `the server could not evaluate these weights: ${err instanceof Error ? err.message : String(err)}`;
          if (!this.rejectWeights(workerId, lease, task, err instanceof BadWeightsError, message)) return;
          failed = true;
        }
        const probe = evaluation?.probeAccuracy;
        if (result.claimedAccuracy !== undefined && probe !== undefined && Math.abs(result.claimedAccuracy - probe) > CLAIM_TOLERANCE) {
          this.recordMismatch(workerId, task.id, result.claimedAccuracy, probe);
        }
      } else {
        // Not evaluated now, but a provisional child may become a parent: its weights must still fit its DNA and be finite.
        try {
          decodeWeights(task.dna, new Uint8Array(await readFile(this.deps.weights.path(sha))));
        } catch (err) {
          const message = `the server could not read these weights: ${err instanceof Error ? err.message : String(err)}`;
          if (!this.rejectWeights(workerId, lease, task, err instanceof WeightsFormatError, message)) return;
          failed = true;
        }
        fitness = failed ? 0 : (result.claimedAccuracy ?? 0);
        provisional = !failed;
        this.metrics.verifications.skipped++;
      }
    }
    const parent = task.parentId === null ? null : this.deps.store.getIndividual(task.parentId);
    const nickname = worker?.hello.nickname ?? null;
    const backend = result.backend;
    const cost = individualCost(task.dna, stepsDone, exp.config.batchSize, info.validationCount);
    const now = this.deps.clock();
    const fresh = this.deps.store.getTask(task.id);
    if (fresh === null || (fresh.status !== 'leased' && fresh.status !== 'queued')) {
      this.leases.end(lease.leaseId, 'completed');
      this.deps.send(workerId, { type: 'refused', code: Refusal.AlreadyDone, message: `task ${task.id} was completed meanwhile`, leaseId: lease.leaseId });
      return;
    }
    const individual: Omit<IndividualRecord, 'status' | 'removedAt' | 'testAccuracy'> = {
      id: task.id,
      experimentId: task.experimentId,
      dna: task.dna,
      dnaId: dnaId(task.dna),
      parentId: task.parentId,
      mutations: task.mutations,
      fitness,
      provisional,
      failed,
      weightsSha256: failed ? null : lease.uploadedSha256,
      createdAt: task.createdAt,
      trainedAt: now,
      params: report.params,
      forwardFlops: report.forwardPerImage,
      costFlops: cost,
      generation: parent === null ? 0 : parent.generation + 1,
      trainedBy: { workerId, nickname, backend, adapter: worker?.hello.adapter ?? null },
      claimedAccuracy: result.claimedAccuracy ?? null,
    };
    const trainingFlops = report.trainingPerStep * stepsDone;
    this.deps.store.completeTask({
      taskId: task.id,
      individual,
      volunteer: provisional || failed ? null : { nickname: nickname ?? 'anonymous', flops: trainingFlops, backend },
      removeId: null,
      event: { kind: failed ? 'failed' : 'child', data: { id: task.id, parentId: task.parentId, fitness, mutations: task.mutations.map((m) => m.name), backend } },
    });
    this.leases.end(lease.leaseId, 'completed');
    this.unevaluable.delete(task.id);
    if (failed && lease.uploadedSha256) this.deleteIfUnreferenced(lease.uploadedSha256);
    if (failed) this.metrics.resultsFailed++;
    else this.metrics.resultsAccepted++;
    this.deps.send(workerId, {
      type: 'verdict',
      leaseId: lease.leaseId,
      outcome: failed ? 'failed' : 'accepted',
      individualId: task.id,
      fitness,
      provisional,
      creditFlops: provisional || failed ? 0 : trainingFlops,
    });
    const stored = this.deps.store.getIndividual(task.id);
    if (stored !== null) this.emit({ kind: 'individual', experimentId: exp.id, individual: stored, removedId: null });
    this.afterCompletion(exp.id);
  }

  /**
   * A result the server could not accept: the task goes back to the queue.
   * Only bad weights count against the worker; a fault of the server's own
   * (the verification thread died, a dataset file vanished) does not.
   */
  private refuseResult(workerId: string, lease: LeaseEntry, task: TaskRecord, workersFault: boolean, message: string): void {
    this.metrics.resultsRefused++;
    this.leases.end(lease.leaseId, 'completed');
    const fresh = this.deps.store.getTask(task.id);
    if (fresh !== null && fresh.status === 'leased') this.deps.store.setTaskStatus(task.id, 'queued');
    if (lease.uploadedSha256) this.deleteIfUnreferenced(lease.uploadedSha256);
    if (workersFault) this.recordOffence(workerId);
    else this.log(`server-side verification error for ${task.id}: ${message}`);
    this.deps.send(workerId, { type: 'refused', code: workersFault ? Refusal.BadWeights : Refusal.ServerError, message, leaseId: lease.leaseId });
  }

  /**
   * Weights the server could not use (`bad`: the worker's fault, else the server's). Returns false once
   * the result is refused and the task queued again; true when two different workers' weights for this
   * child did not evaluate (e.g. non-finite batch-norm statistics under a finite loss): then the child
   * itself fails, like a diverged one, instead of going round the queue and quarantining honest workers.
   */
  private rejectWeights(workerId: string, lease: LeaseEntry, task: TaskRecord, bad: boolean, message: string): boolean {
    if (bad) this.metrics.verifications.badWeights++;
    else this.metrics.verifications.error++;
    if (bad && this.childIsUnevaluable(task, workerId, message)) return true;
    this.refuseResult(workerId, lease, task, bad, message);
    return false;
  }

  /**
   * Notes that `workerId`'s weights for `task` did not evaluate; true once two
   * different workers' have not (the child, not a worker, is at fault then).
   */
  private childIsUnevaluable(task: TaskRecord, workerId: string, message: string): boolean {
    const workers = this.unevaluable.get(task.id) ?? new Set<string>();
    workers.add(workerId);
    this.unevaluable.set(task.id, workers);
    if (workers.size < 2) return false;
    this.unevaluable.delete(task.id);
    this.log(`child ${task.id} failed: ${workers.size} workers' weights for it could not be evaluated (${message})`);
    return true;
  }

  private recordMismatch(workerId: string, childId: string, claimed: number, actual: number): void {
    this.metrics.claimMismatches++;
    const worker = this.workers.get(workerId);
    this.deps.store.appendEvent(childId.slice(0, childId.lastIndexOf('-')), this.deps.clock(), 'claim-mismatch', { workerId, childId, claimed, actual, nickname: worker?.hello.nickname ?? null });
    this.recordOffence(workerId);
  }

  private recordOffence(workerId: string): void {
    const worker = this.workers.get(workerId);
    if (worker === undefined) return;
    worker.mismatches++;
    if (worker.mismatches >= QUARANTINE_AFTER && !worker.quarantined) {
      worker.quarantined = true;
      this.log(`worker ${workerId} (${worker.hello.nickname ?? 'anonymous'}, ${worker.address}) quarantined`);
      for (const lease of this.leases.byWorker(workerId)) {
        if (lease.verifying) continue;
        this.leases.end(lease.leaseId, 'released');
        this.deps.store.setTaskStatus(lease.taskId, 'queued');
      }
      this.reverifyProvisional(worker);
    }
  }

  /**
   * A quarantined worker's provisional children (from any of its connections:
   * same address or nickname) are verified now, through the verification
   * queue: they get the server's fitness, or are dropped to fitness 0 when
   * their weights do not evaluate.
   */
  private reverifyProvisional(worker: WorkerInfo): void {
    const nickname = worker.hello.nickname;
    const ids = new Set<string>();
    for (const w of this.workers.values()) {
      if (w.id === worker.id || w.address === worker.address || (nickname !== undefined && w.hello.nickname === nickname)) ids.add(w.id);
    }
    for (const exp of this.deps.store.listExperiments()) {
      for (const ind of this.deps.store.allIndividuals(exp.id)) {
        if (ind.provisional && !ind.failed && ids.has(ind.trainedBy.workerId)) this.enqueue(`re-verification of ${ind.id}`, () => this.reverify(ind.id));
      }
    }
  }

  private async reverify(id: string): Promise<void> {
    const ind = this.deps.store.getIndividual(id);
    if (ind === null || !ind.provisional) return;
    const exp = this.requireExperiment(ind.experimentId);
    if (ind.weightsSha256 === null || !this.deps.weights.has(ind.weightsSha256)) {
      // Removed and collected: it stays provisional, which never counts as best nor exports.
      this.log(`re-verification of ${id}: its weights are gone; it stays provisional`);
      return;
    }
    let fitness = 0;
    let dropped = false;
    try {
      fitness = (await this.deps.verifier.evaluate({ dataset: exp.config.dataset, split: 'validation', dna: ind.dna, weightsPath: this.deps.weights.path(ind.weightsSha256) })).accuracy;
      this.metrics.verifications.ok++;
    } catch (err) {
      if (!(err instanceof BadWeightsError)) {
        this.metrics.verifications.error++;
        this.log(`re-verification of ${id}: server-side error, it stays provisional: ${String(err)}`);
        return;
      }
      this.metrics.verifications.badWeights++;
      dropped = true;
    }
    this.deps.store.setVerifiedFitness(id, fitness);
    this.deps.store.appendEvent(exp.id, this.deps.clock(), 'reverified', { id, claimed: ind.fitness, fitness, dropped, workerId: ind.trainedBy.workerId });
    const stored = this.deps.store.getIndividual(id);
    if (stored !== null) this.emit({ kind: 'individual', experimentId: exp.id, individual: stored, removedId: null });
    this.emit({ kind: 'experiment', experimentId: exp.id });
  }

  /** Plateau detection, the end of an experiment, and weight collection. */
  private afterCompletion(experimentId: string): void {
    const exp = this.requireExperiment(experimentId);
    const { plateau } = exp.config;
    const stalled = exp.childrenTrained - exp.lastImprovementAt;
    if (exp.stepCounter > 0 && exp.boostRemaining === 0 && plateau.boost === 'auto' && stalled >= plateau.patience) {
      this.applyRemedy(experimentId, 'boost');
    } else if (exp.stepCounter > 0 && plateau.reset === 'auto' && stalled >= 2 * plateau.patience) {
      this.applyRemedy(experimentId, 'reset');
    }
    if (exp.config.maxChildren > 0 && exp.childrenTrained >= exp.config.maxChildren && exp.status === 'running') {
      this.deps.store.updateExperiment(experimentId, { status: 'finished' });
      this.deps.store.appendEvent(experimentId, this.deps.clock(), 'status', { status: 'finished' });
      this.log(`experiment ${experimentId} finished: ${exp.childrenTrained} children`);
    }
    this.emit({ kind: 'experiment', experimentId });
    if (++this.completionsSinceGc >= 20) {
      this.completionsSinceGc = 0;
      this.collectGarbage();
    }
  }

  // ---- reports ------------------------------------------------------------------

  /** Leases in flight per experiment, for status pages. */
  leasesInFlight(experimentId?: string): LeaseEntry[] {
    return this.leases.all().filter((l) => experimentId === undefined || l.experimentId === experimentId);
  }
}

function tokenMatches(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
