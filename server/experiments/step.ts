/**
 * One evolution step, as data: from an experiment and its alive population
 * to the child's task and the individual removed. Pure given its inputs; the
 * rng of step n is derived from the experiment's seed and n, so a restarted
 * server takes the very steps it would have taken.
 */
import { initialDna, type Dna } from '../../shared/evolution/dna.ts';
import { mutate } from '../../shared/evolution/mutations.ts';
import { createRng, type Rng } from '../../shared/evolution/rng.ts';
import { aging, tournament } from '../../shared/evolution/selection.ts';
import type { ExperimentRecord, IndividualRecord, IssueChild, TaskRecord } from '../store/types.ts';

/** Id of the n-th task (and individual) of an experiment. */
export function taskId(experimentId: string, n: number): string {
  return `${experimentId}-${n}`;
}

/** The initial population's tasks: copies of the paper's linear model, to be trained once each. */
export function initialTasks(
  experimentId: string,
  seed: string,
  size: number,
  inputShape: readonly [number, number, number],
  numClasses: number,
  at: number,
): Omit<TaskRecord, 'status' | 'attempts'>[] {
  const dna: Dna = initialDna(inputShape, numClasses);
  return Array.from({ length: size }, (_, i) => ({
    id: taskId(experimentId, i + 1),
    experimentId,
    kind: 'initial' as const,
    parentId: null,
    parentWeightsSha256: null,
    dna,
    mutations: [],
    resetWeights: true,
    seed: `${seed}:task:${i + 1}`,
    createdAt: at,
  }));
}

/**
 * Plans the next step: selection among the trained, alive individuals and a
 * freshly mutated child of the parent. Null when fewer than two compete.
 */
export function planStep(experiment: ExperimentRecord, alive: readonly IndividualRecord[], at: number): IssueChild | null {
  const { config } = experiment;
  // Provisional individuals compete on their claimed fitness; failed ones score 0.
  const competitors = alive.map((ind, order) => ({ id: ind.id, fitness: ind.fitness, order: ind.trainedAt * 1e6 + order }));
  const rng = createRng(`${config.seed}:step:${experiment.stepCounter}`);
  const selection = config.selection === 'aging' ? aging(competitors, config.sampleSize, rng) : tournament(competitors, rng);
  if (selection === null) return null;
  const parent = alive.find((ind) => ind.id === selection.parentId) as IndividualRecord;
  const boosted = experiment.boostRemaining > 0;
  const n = experiment.taskCounter + 1;
  if (config.selection === 'random') return randomSearchStep(experiment, parent, selection.removeId, rng, n, at);
  const k = boosted ? config.plateau.boostMutations : config.mutationsPerChild;
  const outcome = mutate(parent.dna, rng.fork('mutate'), k);
  const inherit = config.inheritWeights && parent.weightsSha256 !== null && !outcome.resetWeights;
  return {
    experimentId: experiment.id,
    removeId: selection.removeId,
    usedBoost: boosted,
    at,
    task: {
      id: taskId(experiment.id, n),
      experimentId: experiment.id,
      kind: 'child',
      parentId: parent.id,
      parentWeightsSha256: inherit ? parent.weightsSha256 : null,
      dna: outcome.child,
      mutations: outcome.applied,
      resetWeights: !inherit,
      seed: `${config.seed}:task:${n}`,
      createdAt: at,
    },
  };
}

/**
 * Random search, the baseline evolution is measured against: the tournament
 * only keeps the population bounded (its loser goes, so the best so far is
 * never lost), and the child ignores the parent: it is the initial DNA with
 * a chain of 1..mutationsPerChild mutations drawn exactly as evolution draws
 * them, trained from scratch.
 */
function randomSearchStep(experiment: ExperimentRecord, parent: IndividualRecord, removeId: string, rng: Rng, n: number, at: number): IssueChild {
  const { config } = experiment;
  const chain = rng.fork('chain').int(1, config.mutationsPerChild);
  const outcome = mutate(initialDna(parent.dna.inputShape, parent.dna.numClasses), rng.fork('mutate'), chain);
  return {
    experimentId: experiment.id,
    removeId,
    usedBoost: false,
    at,
    task: {
      id: taskId(experiment.id, n),
      experimentId: experiment.id,
      kind: 'child',
      parentId: null,
      parentWeightsSha256: null,
      dna: outcome.child,
      mutations: outcome.applied,
      resetWeights: true,
      seed: `${config.seed}:task:${n}`,
      createdAt: at,
    },
  };
}

/**
 * The weight-reset remedy (the paper's plateau analysis): every alive
 * individual is replaced by a copy of itself with fresh weights, trained
 * again. Returns one step per individual (each removes the original).
 */
export function planReset(experiment: ExperimentRecord, alive: readonly IndividualRecord[], at: number): IssueChild[] {
  return alive.map((ind, i) => {
    const n = experiment.taskCounter + i + 1;
    return {
      experimentId: experiment.id,
      removeId: ind.id,
      usedBoost: false,
      at,
      task: {
        id: taskId(experiment.id, n),
        experimentId: experiment.id,
        kind: 'child' as const,
        parentId: ind.id,
        parentWeightsSha256: null,
        dna: ind.dna,
        mutations: [{ name: 'RESET-WEIGHTS' as const, detail: 'plateau remedy: every member reset at once' }],
        resetWeights: true,
        seed: `${experiment.config.seed}:task:${n}`,
        createdAt: at,
      },
    };
  });
}
