/**
 * The population store: everything an experiment must not lose. One
 * interface, two implementations (SQLite for real use, memory for tests),
 * one contract suite run against both (contract.ts).
 *
 * Every method is synchronous and every mutating method is atomic: it
 * happens whole or not at all (SQLite: one transaction). A crash between two
 * calls leaves the last committed state, nothing half-inserted.
 */
import type { Dna } from '../../shared/evolution/dna.ts';
import type { AppliedMutation } from '../../shared/evolution/mutations.ts';

export type ExperimentStatus = 'running' | 'paused' | 'stopped' | 'finished';

/** Experiment settings, fixed at creation (see server/experiments/config.ts for the schema). */
export interface ExperimentConfig {
  readonly preset: string;
  readonly dataset: string;
  readonly populationSize: number;
  readonly stepsPerChild: number;
  readonly batchSize: number;
  readonly mutationsPerChild: number;
  readonly selection: 'tournament' | 'aging' | 'random';
  /** Aging evolution's sample size (ignored by the paper's tournament). */
  readonly sampleSize: number;
  /** Stop after this many children (initial individuals included); 0 = never. */
  readonly maxChildren: number;
  readonly inheritWeights: boolean;
  readonly augment: boolean;
  /** Share of children the server verifies (1 = all, the default). */
  readonly verifyFraction: number;
  readonly plateau: {
    readonly boost: 'off' | 'manual' | 'auto';
    readonly reset: 'off' | 'manual' | 'auto';
    /** Children without a new best before a plateau is declared (auto mode). */
    readonly patience: number;
    /** Children trained with the boosted mutation count. */
    readonly boostChildren: number;
    readonly boostMutations: number;
  };
  readonly seed: string;
}

export interface ExperimentRecord {
  readonly id: string;
  readonly name: string;
  readonly config: ExperimentConfig;
  readonly status: ExperimentStatus;
  readonly createdAt: number;
  /** Tournament steps taken so far (the rng of step n is derived from seed and n). */
  readonly stepCounter: number;
  /** Tasks created so far (numbers the next individual id). */
  readonly taskCounter: number;
  /** Children that joined the population (initial individuals included). */
  readonly childrenTrained: number;
  /** Paper's compute accounting, summed over every individual trained. */
  readonly totalFlops: number;
  /** Children still to be trained with the boosted mutation count. */
  readonly boostRemaining: number;
  /** childrenTrained when the best fitness last improved (plateau detection). */
  readonly lastImprovementAt: number;
  readonly bestFitness: number | null;
  /** Test accuracy of the best individual and of the top-k ensemble, once computed. */
  readonly finalResult: FinalResult | null;
}

export interface FinalResult {
  readonly bestId: string;
  readonly bestTestAccuracy: number;
  readonly ensembleIds: readonly string[];
  readonly ensembleTestAccuracy: number;
  readonly computedAt: number;
}

/** Who trained an individual. */
export interface TrainedBy {
  readonly workerId: string;
  readonly nickname: string | null;
  readonly backend: string;
  readonly adapter: string | null;
}

export type IndividualStatus = 'alive' | 'removed';

export interface IndividualRecord {
  readonly id: string;
  readonly experimentId: string;
  readonly dna: Dna;
  /** Content id of the DNA (evolution/canonical.ts). */
  readonly dnaId: string;
  readonly parentId: string | null;
  readonly mutations: readonly AppliedMutation[];
  readonly status: IndividualStatus;
  /** Validation accuracy in [0, 1] computed by the server (0 for a diverged child). */
  readonly fitness: number;
  /** True when the server has not (yet) computed the fitness itself. */
  readonly provisional: boolean;
  /** Training diverged (non-finite loss): worst fitness, no weights. */
  readonly failed: boolean;
  readonly weightsSha256: string | null;
  /** When the task was created, when the child joined, when it was removed. */
  readonly createdAt: number;
  readonly trainedAt: number;
  readonly removedAt: number | null;
  readonly params: number;
  readonly forwardFlops: number;
  /** Training + validation FLOPs of this individual (paper accounting). */
  readonly costFlops: number;
  /** Generation: 0 for initial individuals, parent's + 1 otherwise. */
  readonly generation: number;
  readonly trainedBy: TrainedBy;
  readonly claimedAccuracy: number | null;
  readonly testAccuracy: number | null;
}

export type TaskStatus = 'queued' | 'leased' | 'done' | 'abandoned';

/** A child to be trained: created by a tournament step (or for the initial population). */
export interface TaskRecord {
  /** Also the id the individual will have. */
  readonly id: string;
  readonly experimentId: string;
  readonly kind: 'initial' | 'child';
  readonly parentId: string | null;
  /** The parent's weights, kept until this task is done even if the parent is removed. */
  readonly parentWeightsSha256: string | null;
  readonly dna: Dna;
  readonly mutations: readonly AppliedMutation[];
  readonly resetWeights: boolean;
  readonly seed: string;
  readonly status: TaskStatus;
  readonly attempts: number;
  readonly createdAt: number;
}

export interface VolunteerRecord {
  readonly nickname: string;
  readonly childrenTrained: number;
  /** Training FLOPs of server-verified children. */
  readonly flopsDonated: number;
  readonly credit: number;
  readonly lastSeen: number;
  readonly backends: Readonly<Record<string, number>>;
}

export interface EventRecord {
  readonly id: number;
  readonly experimentId: string;
  readonly at: number;
  readonly kind: string;
  readonly data: Readonly<Record<string, unknown>>;
}

/** What a tournament step writes, atomically. */
export interface IssueChild {
  readonly experimentId: string;
  /** The individual removed by this step (null for aging when none is removed yet). */
  readonly removeId: string | null;
  readonly task: Omit<TaskRecord, 'status' | 'attempts'>;
  readonly at: number;
  /** Consumes one boosted child. */
  readonly usedBoost: boolean;
}

/** What a finished child writes, atomically. */
export interface CompleteTask {
  readonly taskId: string;
  readonly individual: Omit<IndividualRecord, 'status' | 'removedAt' | 'testAccuracy'>;
  /** Credit for the volunteer, when the child was verified. */
  readonly volunteer: { readonly nickname: string; readonly flops: number; readonly backend: string } | null;
  /** For aging: the oldest individual removed as this one joins. */
  readonly removeId: string | null;
  readonly event: { readonly kind: string; readonly data: Record<string, unknown> };
}

export interface PopulationStore {
  createExperiment(record: ExperimentRecord, initialTasks: readonly Omit<TaskRecord, 'status' | 'attempts'>[]): void;
  getExperiment(id: string): ExperimentRecord | null;
  listExperiments(): ExperimentRecord[];
  /** Updates status, boost, final result (the fields an operator or the coordinator may change). */
  updateExperiment(id: string, patch: Partial<Pick<ExperimentRecord, 'status' | 'boostRemaining' | 'finalResult' | 'lastImprovementAt'>>): void;

  /** Queued tasks of an experiment, oldest first. */
  queuedTasks(experimentId: string, limit: number): TaskRecord[];
  getTask(id: string): TaskRecord | null;
  /** Tasks in `leased` state (all experiments): re-queued at start-up. */
  leasedTasks(): TaskRecord[];
  setTaskStatus(id: string, status: 'queued' | 'leased' | 'abandoned', bumpAttempts?: boolean): void;

  /** A tournament step: remove the loser, create the child's task, count the step. */
  issueChild(step: IssueChild): void;
  /** A child joins the population (task done, individual inserted, counters, credit, event). */
  completeTask(done: CompleteTask): void;

  getIndividual(id: string): IndividualRecord | null;
  aliveIndividuals(experimentId: string): IndividualRecord[];
  /** Every individual ever trained, in insertion order (for plots), optionally after a trainedAt. */
  allIndividuals(experimentId: string): IndividualRecord[];
  /** Top individuals by fitness (non-provisional first ordering is the caller's), best first. */
  leaderboard(experimentId: string, limit: number): IndividualRecord[];
  /** Ancestors from the parent back to the initial individual. */
  lineage(id: string): IndividualRecord[];
  setTestAccuracy(id: string, accuracy: number): void;
  /** Marks a provisional individual verified with the server's fitness. */
  setVerifiedFitness(id: string, fitness: number): void;

  appendEvent(experimentId: string, at: number, kind: string, data: Record<string, unknown>): void;
  events(experimentId: string, afterId: number, limit: number): EventRecord[];

  volunteers(limit: number): VolunteerRecord[];

  /** Every weights hash still needed: alive individuals, parents of open tasks, the best and their lineage. */
  referencedWeights(keepBest: number): Set<string>;

  close(): void;
}
