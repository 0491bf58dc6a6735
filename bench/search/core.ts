/**
 * In-process search runs for bench/search.ts: Petri's evolution (the paper's
 * tournament, weight inheritance), random search over the same DNA space,
 * evolution without inheritance, and a hand-designed CNN trained for the
 * same compute. No server and no sockets: one process trains every
 * individual in turn, with the shared core exactly as the server and the
 * workers use it (seeded step rng, tournament, mutate, planInheritance +
 * inheritWeights, trainModel, evaluateModel on the validation split).
 *
 * Compute is counted as the paper does (shared/evolution/flops.ts): every
 * individual ever trained costs its training FLOPs per step x steps plus its
 * validation FLOPs; a run's compute is the sum.
 */
import type { ImageSet } from '../../shared/data/image-set.ts';
import { initialDna, type Dna } from '../../shared/evolution/dna.ts';
import { flopsReport, individualCost } from '../../shared/evolution/flops.ts';
import { planInheritance } from '../../shared/evolution/inheritance.ts';
import { mutate, type MutationName } from '../../shared/evolution/mutations.ts';
import { createRng } from '../../shared/evolution/rng.ts';
import { tournament } from '../../shared/evolution/selection.ts';
import { buildModel, disposeModel } from '../../shared/model/build.ts';
import { evaluateModel } from '../../shared/model/evaluate.ts';
import { PAPER_TRAINING, trainModel } from '../../shared/model/train.ts';
import { inheritWeights, readWeights, writeWeights, type WeightMap } from '../../shared/model/weights.ts';

/** The kinds of run the driver knows. */
export const RUN_KINDS = ['evolution', 'random', 'no-inherit', 'hand', 'pop2', 'boost', 'reset'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

export interface Data {
  readonly train: ImageSet;
  readonly validation: ImageSet;
  readonly test: ImageSet;
  readonly numClasses: number;
}

export interface SearchOptions {
  /** Trainings per run, the initial population included. */
  readonly budgetChildren: number;
  readonly steps: number;
  readonly population: number;
  readonly batchSize: number;
  readonly augment: boolean;
  /** Random search: each candidate is a chain of 1..maxChain mutations of the initial DNA. */
  readonly randomMaxChain: number;
  /** Trainings without a new best validation accuracy that make a plateau (boost, reset). */
  readonly patience: number;
  /** Children with 5 mutations each once a boost starts. */
  readonly boostChildren: number;
  readonly boostMutations: number;
  /** Validation points of the hand-designed CNN's curve. */
  readonly handSegments: number;
  /** Stops a search run (not hand) once it has run this long; it then reports `truncated`. 0: no limit. */
  readonly maxRunSeconds?: number;
  /** Called with one line per trained individual. */
  readonly log?: (line: string) => void;
}

/** One point of a run's curve: after each training. */
export interface TracePoint {
  /** Trainings so far (the initial population included). */
  readonly trainings: number;
  /** Cumulative FLOPs, the paper's accounting. */
  readonly flops: number;
  /** Validation accuracy of the individual just trained. */
  readonly fitness: number;
  /** Best validation accuracy seen so far in this run. */
  readonly best: number;
  /** Best validation accuracy among the individuals alive now (evolution runs; else = best). */
  readonly bestAlive: number;
  readonly params: number;
  /** What happened: initial, child, boost, reset, random, hand. */
  readonly event: string;
  readonly seconds: number;
}

export interface RunResult {
  readonly kind: RunKind;
  readonly seed: number;
  readonly population: number;
  readonly trainings: number;
  readonly totalFlops: number;
  readonly bestValidation: number;
  readonly bestTest: number;
  readonly best: { readonly dna: Dna; readonly params: number; readonly forwardFlops: number; readonly convs: number; readonly learningRate: number; readonly stepsTrained: number };
  readonly diverged: number;
  readonly seconds: number;
  /** Trainings at which a boost started or a reset happened. */
  readonly remedies: readonly { readonly kind: 'boost' | 'reset'; readonly atTraining: number }[];
  readonly trace: readonly TracePoint[];
  readonly mutationCounts: Partial<Record<MutationName, number>>;
  /** For the hand CNN: the FLOPs it was allowed. */
  readonly flopsBudget?: number;
  /** True when --max-run-seconds stopped the run before its budget of trainings. */
  readonly truncated: boolean;
}

interface Member {
  readonly id: number;
  readonly dna: Dna;
  readonly weights: WeightMap | null;
  readonly fitness: number;
  /** Steps of training along this lineage since its last fresh start. */
  readonly lineageSteps: number;
}

interface Trained {
  readonly weights: WeightMap | null;
  readonly fitness: number;
  readonly cost: number;
  readonly diverged: boolean;
  readonly stepsDone: number;
}

/** Trains one individual from the given starting weights; fitness is one validation evaluation. */
async function trainIndividual(dna: Dna, start: WeightMap, steps: number, seed: string, data: Data, opts: SearchOptions): Promise<Trained> {
  try {
    return await trainOnce(dna, start, steps, seed, data, opts);
  } catch (err) {
    // A model tf.js cannot run counts as a failed child (fitness 0, no weights), as a diverged one does.
    const edges = dna.edges.map((e) => `${e.id}:${e.from}->${e.to}:${e.role}:${e.type}`).join(' ');
    const vertices = dna.vertices.map((v) => `${v.id}:${v.activation}`).join(' ');
    opts.log?.(`FAILED ${err instanceof Error ? err.message : String(err)}; vertices ${vertices}; edges ${edges}`);
    failures.push({ message: err instanceof Error ? err.message : String(err), dna });
    return { weights: null, fitness: 0, cost: individualCost(dna, 0, opts.batchSize, data.validation.count), diverged: true, stepsDone: 0 };
  }
}

/** Individuals whose training or evaluation threw, for the report. */
export const failures: { message: string; dna: Dna }[] = [];

async function trainOnce(dna: Dna, start: WeightMap, steps: number, seed: string, data: Data, opts: SearchOptions): Promise<Trained> {
  const built = buildModel(dna);
  try {
    writeWeights(built, start);
    const result = await trainModel(built, data.train, { steps, batchSize: opts.batchSize, augment: opts.augment, seed: `${seed}:train:0`, lossEvery: 50 });
    const cost = individualCost(dna, result.stepsDone, opts.batchSize, data.validation.count);
    if (result.status !== 'ok') return { weights: null, fitness: 0, cost, diverged: true, stepsDone: result.stepsDone };
    const evaluation = await evaluateModel(built, data.validation);
    const fitness = Number.isFinite(evaluation.accuracy) ? evaluation.accuracy : 0;
    return { weights: await readWeights(built), fitness, cost, diverged: false, stepsDone: result.stepsDone };
  } finally {
    disposeModel(built);
  }
}

async function testAccuracy(dna: Dna, weights: WeightMap, data: Data): Promise<number> {
  const built = buildModel(dna);
  try {
    writeWeights(built, weights);
    return (await evaluateModel(built, data.test)).accuracy;
  } finally {
    disposeModel(built);
  }
}

function freshWeights(dna: Dna, seed: string): WeightMap {
  return inheritWeights(planInheritance(null, dna, true), null, createRng(`${seed}:init`));
}

function convCount(dna: Dna): number {
  return dna.edges.filter((e) => e.type === 'conv').length;
}

/** Bookkeeping shared by every run kind: cumulative FLOPs, the best-ever individual and the trace. */
class Tracker {
  flops = 0;
  trainings = 0;
  diverged = 0;
  bestFitness = -1;
  bestDna: Dna | null = null;
  bestWeights: WeightMap | null = null;
  bestSteps = 0;
  readonly trace: TracePoint[] = [];
  readonly mutationCounts: Partial<Record<MutationName, number>> = {};
  private readonly started = Date.now();
  truncated = false;

  /** True once the run has used its wall-time allowance (then marks it truncated). */
  outOfTime(maxSeconds: number | undefined): boolean {
    if (maxSeconds === undefined || maxSeconds <= 0) return false;
    if ((Date.now() - this.started) / 1000 < maxSeconds) return false;
    this.truncated = true;
    return true;
  }

  constructor(
    private readonly label: string,
    private readonly log?: (line: string) => void,
  ) {}

  record(dna: Dna, t: Trained, lineageSteps: number, event: string, bestAlive: number | null, extra = ''): void {
    this.flops += t.cost;
    this.trainings += 1;
    if (t.diverged) this.diverged += 1;
    if (t.weights !== null && t.fitness > this.bestFitness) {
      this.bestFitness = t.fitness;
      this.bestDna = dna;
      this.bestWeights = t.weights;
      this.bestSteps = lineageSteps;
    }
    const params = flopsReport(dna, 1, 0).params;
    const seconds = (Date.now() - this.started) / 1000;
    this.trace.push({
      trainings: this.trainings,
      flops: this.flops,
      fitness: t.fitness,
      best: Math.max(0, this.bestFitness),
      bestAlive: bestAlive ?? Math.max(0, this.bestFitness),
      params,
      event,
      seconds,
    });
    this.log?.(
      `${this.label} #${this.trainings} ${event}: val ${t.fitness.toFixed(4)}${t.diverged ? ' (diverged)' : ''} best ${Math.max(0, this.bestFitness).toFixed(4)} ` +
        `convs ${convCount(dna)} params ${params} lr ${dna.learningRate} ${this.flops.toExponential(2)} FLOPs ${seconds.toFixed(0)} s${extra}`,
    );
  }

  count(names: readonly MutationName[]): void {
    for (const n of names) this.mutationCounts[n] = (this.mutationCounts[n] ?? 0) + 1;
  }

  async finish(kind: RunKind, seed: number, population: number, data: Data, remedies: RunResult['remedies'], flopsBudget?: number): Promise<RunResult> {
    if (this.bestDna === null || this.bestWeights === null) throw new Error(`${this.label}: no individual trained without diverging`);
    const report = flopsReport(this.bestDna, 1, 0);
    const bestTest = await testAccuracy(this.bestDna, this.bestWeights, data);
    this.log?.(`${this.label} done: best val ${this.bestFitness.toFixed(4)} test ${bestTest.toFixed(4)} ${this.flops.toExponential(3)} FLOPs`);
    return {
      kind,
      seed,
      population,
      trainings: this.trainings,
      totalFlops: this.flops,
      bestValidation: this.bestFitness,
      bestTest,
      best: {
        dna: this.bestDna,
        params: report.params,
        forwardFlops: report.forwardPerImage,
        convs: convCount(this.bestDna),
        learningRate: this.bestDna.learningRate,
        stepsTrained: this.bestSteps,
      },
      diverged: this.diverged,
      seconds: (Date.now() - this.started) / 1000,
      remedies,
      trace: this.trace,
      mutationCounts: this.mutationCounts,
      ...(flopsBudget === undefined ? {} : { flopsBudget }),
      truncated: this.truncated,
    };
  }
}

/**
 * Evolution as the server runs it, serially: the initial population of
 * linear models is trained first; then each step draws its rng from
 * `${seed}:step:${n}`, runs the tournament among the alive, removes the
 * loser, mutates the winner (k mutations, 5 during a boost), trains the
 * child from the inherited weights (fresh ones without inheritance or after
 * RESET-WEIGHTS) and puts it into the population.
 */
export async function runEvolution(
  kind: 'evolution' | 'no-inherit' | 'pop2' | 'boost' | 'reset',
  seed: number,
  data: Data,
  opts: SearchOptions,
): Promise<RunResult> {
  const population = kind === 'pop2' ? 2 : opts.population;
  const inherit = kind !== 'no-inherit';
  const label = `[${kind} seed ${seed}]`;
  const tracker = new Tracker(label, opts.log);
  const experimentSeed = `search:${seed}`;
  const shape = data.train.shape;
  let alive: Member[] = [];
  let taskCounter = 0;
  const bestAlive = (): number => alive.reduce((m, x) => Math.max(m, x.fitness), 0);
  const remedies: { kind: 'boost' | 'reset'; atTraining: number }[] = [];

  for (let i = 0; i < population && tracker.trainings < opts.budgetChildren; i++) {
    const n = ++taskCounter;
    const dna = initialDna(shape, data.numClasses);
    const taskSeed = `${experimentSeed}:task:${n}`;
    const t = await trainIndividual(dna, freshWeights(dna, taskSeed), opts.steps, taskSeed, data, opts);
    alive.push({ id: n, dna, weights: t.weights, fitness: t.fitness, lineageSteps: t.stepsDone });
    tracker.record(dna, t, t.stepsDone, 'initial', bestAlive());
  }

  let stepCounter = 0;
  let boostRemaining = 0;
  let lastImprovementAt = tracker.trainings;
  let bestSeen = tracker.bestFitness;
  let remedyUsed = false;
  while (tracker.trainings < opts.budgetChildren && !tracker.outOfTime(opts.maxRunSeconds)) {
    // The paper's plateau remedies, each applied once per run, when the best has not improved for `patience` trainings.
    const stalled = tracker.trainings - lastImprovementAt;
    if (!remedyUsed && stalled >= opts.patience && kind === 'boost') {
      boostRemaining = opts.boostChildren;
      remedyUsed = true;
      remedies.push({ kind: 'boost', atTraining: tracker.trainings });
      opts.log?.(`${label} plateau after ${stalled} trainings: boost, ${opts.boostMutations} mutations per child for ${opts.boostChildren} children`);
    }
    if (!remedyUsed && stalled >= opts.patience && kind === 'reset') {
      remedyUsed = true;
      remedies.push({ kind: 'reset', atTraining: tracker.trainings });
      opts.log?.(`${label} plateau after ${stalled} trainings: every member's weights reset at once`);
      // As server/experiments/step.ts planReset: each member is replaced by a copy of itself with fresh weights, trained again.
      const members = [...alive];
      for (const member of members) {
        if (tracker.trainings >= opts.budgetChildren) break;
        const n = ++taskCounter;
        const taskSeed = `${experimentSeed}:task:${n}`;
        const t = await trainIndividual(member.dna, freshWeights(member.dna, taskSeed), opts.steps, taskSeed, data, opts);
        alive = alive.filter((x) => x.id !== member.id);
        alive.push({ id: n, dna: member.dna, weights: t.weights, fitness: t.fitness, lineageSteps: t.stepsDone });
        tracker.record(member.dna, t, t.stepsDone, 'reset', bestAlive());
      }
      // The dip is the point: the plateau clock restarts after the reset.
      lastImprovementAt = tracker.trainings;
      continue;
    }

    const rng = createRng(`${experimentSeed}:step:${stepCounter}`);
    stepCounter += 1;
    const selection = tournament(
      alive.map((m) => ({ id: String(m.id), fitness: m.fitness, order: m.id })),
      rng,
    );
    if (selection === null) throw new Error(`${label}: fewer than two individuals alive`);
    const parent = alive.find((m) => String(m.id) === selection.parentId) as Member;
    alive = alive.filter((m) => String(m.id) !== selection.removeId);
    const boosted = boostRemaining > 0;
    if (boosted) boostRemaining -= 1;
    const outcome = mutate(parent.dna, rng.fork('mutate'), boosted ? opts.boostMutations : 1);
    tracker.count(outcome.applied.map((a) => a.name));
    const n = ++taskCounter;
    const taskSeed = `${experimentSeed}:task:${n}`;
    const inheritNow = inherit && parent.weights !== null && !outcome.resetWeights;
    const plan = planInheritance(inheritNow ? parent.dna : null, outcome.child, !inheritNow);
    const start = inheritWeights(plan, inheritNow ? parent.weights : null, createRng(`${taskSeed}:init`));
    const t = await trainIndividual(outcome.child, start, opts.steps, taskSeed, data, opts);
    const lineageSteps = (inheritNow ? parent.lineageSteps : 0) + t.stepsDone;
    alive.push({ id: n, dna: outcome.child, weights: t.weights, fitness: t.fitness, lineageSteps });
    tracker.record(outcome.child, t, lineageSteps, boosted ? 'boost' : 'child', bestAlive(), ` [${outcome.applied.map((a) => a.name).join(', ')}]`);
    if (tracker.bestFitness > bestSeen) {
      bestSeen = tracker.bestFitness;
      lastImprovementAt = tracker.trainings;
    }
  }
  return tracker.finish(kind, seed, population, data, remedies);
}

/**
 * Random search over the same DNA space: each candidate is a chain of
 * 1..maxChain mutations (drawn as evolution draws them) applied to the
 * initial DNA, trained from scratch for the same steps as a child.
 */
export async function runRandom(seed: number, data: Data, opts: SearchOptions): Promise<RunResult> {
  const tracker = new Tracker(`[random seed ${seed}]`, opts.log);
  const base = initialDna(data.train.shape, data.numClasses);
  for (let n = 1; n <= opts.budgetChildren && !tracker.outOfTime(opts.maxRunSeconds); n++) {
    const rng = createRng(`random:${seed}:candidate:${n}`);
    const length = rng.int(1, Math.max(1, opts.randomMaxChain));
    const outcome = mutate(base, rng.fork('mutate'), length);
    tracker.count(outcome.applied.map((a) => a.name));
    const taskSeed = `random:${seed}:task:${n}`;
    const t = await trainIndividual(outcome.child, freshWeights(outcome.child, taskSeed), opts.steps, taskSeed, data, opts);
    tracker.record(outcome.child, t, t.stepsDone, 'random', null, ` [chain of ${length}]`);
  }
  return tracker.finish('random', seed, 1, data, []);
}

/**
 * A small hand-designed CNN for Fashion-MNIST/synthetic-sized images: three
 * 3x3 BN+ReLU convolutions (16, 32 stride 2, 64 stride 2), global pooling,
 * linear classifier; learning rate 0.05 (the paper's 0.1 halved for a
 * short run). Built with the same DNA machinery, so FLOPs are counted alike.
 */
export function handDna(shape: readonly [number, number, number], numClasses: number): Dna {
  return {
    format: 'petri-dna/1',
    inputShape: [shape[0], shape[1], shape[2]],
    numClasses,
    learningRate: 0.05,
    vertices: [
      { id: 'v0', activation: 'linear' },
      { id: 'v1', activation: 'bn_relu' },
      { id: 'v3', activation: 'bn_relu' },
      { id: 'v5', activation: 'bn_relu' },
    ],
    edges: [
      { id: 'e2', from: 'v0', to: 'v1', role: 'backbone', type: 'conv', filterHeight: 3, filterWidth: 3, stride: 1, channels: 16 },
      { id: 'e4', from: 'v1', to: 'v3', role: 'backbone', type: 'conv', filterHeight: 3, filterWidth: 3, stride: 2, channels: 32 },
      { id: 'e6', from: 'v3', to: 'v5', role: 'backbone', type: 'conv', filterHeight: 3, filterWidth: 3, stride: 2, channels: 64 },
    ],
    input: 'v0',
    output: 'v5',
    nextId: 7,
  };
}

/**
 * The hand-designed CNN trained for a FLOPs budget (validation evaluations
 * included, as for every evolved individual): the steps the budget allows
 * are split into up to `handSegments` segments (fewer when the validation
 * evaluations would take more than a quarter of the budget), each followed
 * by one validation evaluation, which gives its curve. Each segment starts a
 * new SGD momentum buffer and batch order (trainModel's own), a small
 * handicap.
 */
export async function runHand(seed: number, flopsBudget: number, data: Data, opts: SearchOptions): Promise<RunResult> {
  const tracker = new Tracker(`[hand seed ${seed}]`, opts.log);
  const dna = handDna(data.train.shape, data.numClasses);
  const report = flopsReport(dna, opts.batchSize, data.validation.count);
  // Validation points cost compute too: at most a quarter of the budget goes to them (at least one, at the end).
  const segments = Math.max(1, Math.min(opts.handSegments, Math.floor((0.25 * flopsBudget) / report.validation)));
  const totalSteps = Math.max(segments, Math.floor((flopsBudget - segments * report.validation) / report.trainingPerStep));
  const taskSeed = `hand:${seed}`;
  let weights = freshWeights(dna, taskSeed);
  let done = 0;
  for (let s = 0; s < segments; s++) {
    const steps = Math.round(((s + 1) * totalSteps) / segments) - done;
    const t = await trainIndividual(dna, weights, steps, `${taskSeed}:segment:${s}`, data, opts);
    done += t.stepsDone;
    tracker.record(dna, t, done, 'hand', null, ` [${done}/${totalSteps} steps]`);
    if (t.weights === null) break;
    weights = t.weights;
  }
  return tracker.finish('hand', seed, 1, data, [], flopsBudget);
}

export const DEFAULT_BATCH = PAPER_TRAINING.batchSize;
