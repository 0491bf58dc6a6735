/**
 * Realistic records for the store tests (contract.ts) and the crash writer:
 * experiments, initial and child tasks with real DNA, completions.
 */
import { createHash } from 'node:crypto';
import { initialDna, type Dna } from '../../shared/evolution/dna.ts';
import { convChain } from '../../shared/evolution/fixtures.ts';
import type { AppliedMutation } from '../../shared/evolution/mutations.ts';
import type { CompleteTask, ExperimentConfig, ExperimentRecord, IndividualRecord, PopulationStore, TaskRecord } from './types.ts';

export type NewTask = Omit<TaskRecord, 'status' | 'attempts'>;

const SHAPE = [32, 32, 3] as const;
export const T0 = 1_700_000_000_000;

export function sha(n: number | string): string {
  return createHash('sha256').update(`weights-${n}`).digest('hex');
}

export function testConfig(overrides: Partial<ExperimentConfig> = {}): ExperimentConfig {
  return {
    preset: 'cifar10-small',
    dataset: 'cifar10',
    populationSize: 4,
    stepsPerChild: 500,
    batchSize: 50,
    mutationsPerChild: 1,
    selection: 'tournament',
    sampleSize: 2,
    maxChildren: 0,
    inheritWeights: true,
    augment: false,
    verifyFraction: 1,
    plateau: { boost: 'auto', reset: 'manual', patience: 100, boostChildren: 10, boostMutations: 3 },
    seed: 'seed-α',
    ...overrides,
  };
}

export function testExperiment(id: string, overrides: Partial<ExperimentRecord> = {}): ExperimentRecord {
  return {
    id,
    name: `Experiment ${id}`,
    config: testConfig(),
    status: 'running',
    createdAt: T0,
    stepCounter: 0,
    taskCounter: 4,
    childrenTrained: 0,
    totalFlops: 0,
    boostRemaining: 0,
    lastImprovementAt: 0,
    bestFitness: null,
    finalResult: null,
    ...overrides,
  };
}

export function initialTask(experimentId: string, n: number, at = T0): NewTask {
  return {
    id: `${experimentId}-i${n}`,
    experimentId,
    kind: 'initial',
    parentId: null,
    parentWeightsSha256: null,
    dna: initialDna(SHAPE, 10),
    mutations: [],
    resetWeights: false,
    seed: `${experimentId}/${n}`,
    createdAt: at,
  };
}

/** A richer DNA per index: conv chains with skips (nested arrays, floats). */
function childDna(k: number): Dna {
  const layers = [{ channels: 16 + k }, { channels: 32, stride: 2 }, { channels: 64, stride: 2, filter: [5, 3] as [number, number] }];
  return convChain(SHAPE, 10, layers.slice(0, 1 + (k % 3)), k % 3 === 2 ? [[0, 2]] : [], 0.1 * (1 + k / 7));
}

const MUTATIONS: AppliedMutation[] = [
  { name: 'INSERT-CONVOLUTION', detail: 'conv 3x3 x16 between v0 and v1 "quoted", ünïcode' },
  { name: 'ALTER-LEARNING-RATE', detail: '0.1 → 0.123457' },
];

export function childTask(experimentId: string, id: string, parent: IndividualRecord, k = 1, at = T0 + 1000 * k): NewTask {
  return {
    id,
    experimentId,
    kind: 'child',
    parentId: parent.id,
    parentWeightsSha256: parent.weightsSha256,
    dna: childDna(k),
    mutations: MUTATIONS,
    resetWeights: k % 4 === 3,
    seed: `${experimentId}/${id}`,
    createdAt: at,
  };
}

export function individualOf(
  task: NewTask | TaskRecord,
  fitness: number,
  overrides: Partial<CompleteTask['individual']> = {},
  generation = task.parentId === null ? 0 : 1,
): CompleteTask['individual'] {
  return {
    id: task.id,
    experimentId: task.experimentId,
    dna: task.dna,
    dnaId: `dna-${task.id}`,
    parentId: task.parentId,
    mutations: task.mutations,
    fitness,
    provisional: false,
    failed: false,
    weightsSha256: sha(task.id),
    createdAt: task.createdAt,
    trainedAt: task.createdAt + 500,
    params: 12_345,
    forwardFlops: 4.56e7,
    costFlops: 1.5e12,
    generation,
    trainedBy: { workerId: 'w-1', nickname: 'ada', backend: 'webgpu', adapter: 'Apple M2' },
    claimedAccuracy: fitness,
    ...overrides,
  };
}

export function completion(
  task: NewTask | TaskRecord,
  fitness: number,
  overrides: Partial<CompleteTask['individual']> = {},
  extra: Partial<Omit<CompleteTask, 'individual' | 'taskId'>> = {},
): CompleteTask {
  const individual = individualOf(task, fitness, overrides);
  return {
    taskId: task.id,
    individual,
    volunteer: { nickname: 'ada', flops: individual.costFlops, backend: individual.trainedBy.backend },
    removeId: null,
    event: { kind: 'child', data: { id: task.id, fitness } },
    ...extra,
  };
}

/** Everything a store holds, read through its interface. */
export function snapshot(store: PopulationStore, taskIds: readonly string[]): unknown {
  const experiments = store.listExperiments();
  return {
    experiments,
    perExperiment: experiments.map((e) => ({
      individuals: store.allIndividuals(e.id),
      alive: store.aliveIndividuals(e.id),
      queued: store.queuedTasks(e.id, Infinity),
      events: store.events(e.id, 0, Infinity),
      leaderboard: store.leaderboard(e.id, Infinity),
    })),
    leased: store.leasedTasks(),
    tasks: taskIds.map((id) => store.getTask(id)),
    volunteers: store.volunteers(Infinity),
    weights: [...store.referencedWeights(3)].sort(),
  };
}

