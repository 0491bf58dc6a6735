/**
 * The final result of an experiment, as the paper reports it: the test
 * accuracy of the best individual, and that of an ensemble of the top k
 * individuals voting by majority. The test split is read only here, on the
 * server, and only when asked (an operator's request, or the experiment
 * finishing or being stopped).
 *
 * Candidates are the best individuals the server verified itself whose
 * weights are still on disk, ranked as the leaderboard ranks them (fitness,
 * then earlier first). A report is computed once per set of members: asked
 * again with the same top k, the stored result is returned.
 */
import type { Coordinator } from './coordinator.ts';
import type { FinalResult, IndividualRecord, PopulationStore } from './store/types.ts';
import type { Verifier } from './verifier.ts';
import type { WeightsFiles } from './weights-files.ts';

/** Ensemble size when the server computes the report by itself (and the API's default). */
export const DEFAULT_ENSEMBLE_K = 5;
/** Largest ensemble the API accepts. */
export const MAX_ENSEMBLE_K = 25;

export interface FinalReportDeps {
  readonly store: PopulationStore;
  readonly verifier: Verifier;
  readonly weights: Pick<WeightsFiles, 'has' | 'path'>;
  /** Labels of a dataset's test split, in the order the verifier evaluates it. */
  readonly testLabels: (dataset: string) => Promise<Uint8Array>;
  readonly clock?: () => number;
}

export interface FinalReportMember {
  readonly rank: number;
  readonly id: string;
  readonly fitness: number;
  readonly testAccuracy: number;
}

/** What the API returns: the stored FinalResult, with each member's numbers. */
export interface FinalReport extends FinalResult {
  readonly experimentId: string;
  readonly k: number;
  readonly testImages: number;
  readonly members: readonly FinalReportMember[];
  /** False when the stored result was returned (same members as last time). */
  readonly computed: boolean;
}

/** An experiment with nothing to report; the API answers with `status`. */
export class FinalReportError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'FinalReportError';
  }
}

/**
 * Majority vote of ranked members: `predictions[m][i]` is member m's class
 * for image i, members best first. The class with the most votes wins; among
 * tied classes, the one voted by the best-ranked member who voted for one of
 * them (so two members that disagree give the better member's answer).
 */
export function majorityVote(predictions: readonly ArrayLike<number>[]): Int32Array {
  const first = predictions[0];
  if (first === undefined) throw new RangeError('majorityVote: no members');
  const n = first.length;
  for (const p of predictions) {
    if (p.length !== n) throw new RangeError(`majorityVote: members predicted ${p.length} and ${n} images`);
  }
  const out = new Int32Array(n);
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    counts.clear();
    let top = 0;
    for (const p of predictions) {
      const c = p[i] as number;
      const count = (counts.get(c) ?? 0) + 1;
      counts.set(c, count);
      if (count > top) top = count;
    }
    for (const p of predictions) {
      const c = p[i] as number;
      if (counts.get(c) === top) {
        out[i] = c;
        break;
      }
    }
  }
  return out;
}

/** Share of predictions equal to their labels. */
export function accuracyOf(predicted: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (predicted.length !== labels.length) throw new RangeError(`accuracyOf: ${predicted.length} predictions for ${labels.length} labels`);
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) correct++;
  return labels.length === 0 ? 0 : correct / labels.length;
}

/** The top `k` individuals a final report can use: server-verified, trained, with weights on disk. */
export function finalCandidates(deps: Pick<FinalReportDeps, 'store' | 'weights'>, experimentId: string, k: number): IndividualRecord[] {
  const out: IndividualRecord[] = [];
  for (const ind of deps.store.leaderboard(experimentId, k * 4 + 50)) {
    if (ind.provisional || ind.failed || ind.weightsSha256 === null || !deps.weights.has(ind.weightsSha256)) continue;
    out.push(ind);
    if (out.length === k) break;
  }
  return out;
}

/**
 * Evaluates the best verified individual and the top `k` on the test split
 * (with predictions), votes, stores the result on the experiment and each
 * member's test accuracy, and returns the report.
 */
export async function computeFinalReport(deps: FinalReportDeps, experimentId: string, k: number): Promise<FinalReport> {
  if (!Number.isInteger(k) || k < 1 || k > MAX_ENSEMBLE_K) throw new FinalReportError(`k must be a whole number from 1 to ${MAX_ENSEMBLE_K}`, 400);
  const exp = deps.store.getExperiment(experimentId);
  if (exp === null) throw new FinalReportError(`no experiment ${experimentId}`, 404);
  const members = finalCandidates(deps, experimentId, k);
  const best = members[0];
  if (best === undefined) throw new FinalReportError(`experiment ${experimentId} has no verified individual with weights yet`, 409);
  const ids = members.map((m) => m.id);
  const labels = await deps.testLabels(exp.config.dataset);

  const stored = exp.finalResult;
  if (stored !== null && sameIds(stored.ensembleIds, ids) && members.every((m) => m.testAccuracy !== null)) {
    return report(experimentId, stored, members, labels.length, false);
  }

  const predictions: Int32Array[] = [];
  const accuracies: number[] = [];
  for (const member of members) {
    const evaluation = await deps.verifier.evaluate({
      dataset: exp.config.dataset,
      split: 'test',
      dna: member.dna,
      weightsPath: deps.weights.path(member.weightsSha256 as string),
      keepPredictions: true,
    });
    const p = evaluation.predictions;
    if (p === undefined || p.length !== labels.length) {
      throw new Error(`the verifier returned ${p?.length ?? 'no'} predictions for ${labels.length} test images`);
    }
    predictions.push(p);
    accuracies.push(accuracyOf(p, labels));
  }
  const result: FinalResult = {
    bestId: best.id,
    bestTestAccuracy: accuracies[0] as number,
    ensembleIds: ids,
    ensembleTestAccuracy: accuracyOf(majorityVote(predictions), labels),
    computedAt: (deps.clock ?? Date.now)(),
  };
  members.forEach((m, i) => deps.store.setTestAccuracy(m.id, accuracies[i] as number));
  deps.store.updateExperiment(experimentId, { finalResult: result });
  deps.store.appendEvent(experimentId, result.computedAt, 'final', { ...result, ensembleIds: [...ids], testImages: labels.length });
  const fresh = members.map((m) => deps.store.getIndividual(m.id) ?? m);
  return report(experimentId, result, fresh, labels.length, true);
}

function report(experimentId: string, result: FinalResult, members: readonly IndividualRecord[], testImages: number, computed: boolean): FinalReport {
  return {
    ...result,
    experimentId,
    k: members.length,
    testImages,
    computed,
    members: members.map((m, i) => ({ rank: i + 1, id: m.id, fitness: m.fitness, testAccuracy: m.testAccuracy ?? Number.NaN })),
  };
}

function sameIds(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export interface FinalReporter {
  /** Computes (or returns the stored) report; calls for one experiment run one after another. */
  compute(experimentId: string, k: number): Promise<FinalReport>;
  /** Computes the report by itself when an experiment finishes or is stopped (and for such experiments found at start). */
  whenDone(coordinator: Pick<Coordinator, 'onEvent'>): void;
  /** Resolves when no report is being computed. */
  settled(): Promise<void>;
}

export interface FinalReporterOptions extends FinalReportDeps {
  readonly log?: (line: string) => void;
  /** Told of every newly computed report (live pages re-read the summary). */
  readonly onReport?: (report: FinalReport) => void;
}

export function createFinalReporter(deps: FinalReporterOptions): FinalReporter {
  const chains = new Map<string, Promise<unknown>>();
  const attempted = new Set<string>();

  const compute = (experimentId: string, k: number): Promise<FinalReport> => {
    const previous = chains.get(experimentId) ?? Promise.resolve();
    const job = previous.then(async () => {
      const r = await computeFinalReport(deps, experimentId, k);
      if (r.computed) deps.onReport?.(r);
      return r;
    });
    const tail = job.catch(() => undefined);
    chains.set(experimentId, tail);
    void tail.then(() => {
      if (chains.get(experimentId) === tail) chains.delete(experimentId);
    });
    return job;
  };

  const maybeAuto = (experimentId: string): void => {
    const exp = deps.store.getExperiment(experimentId);
    if (exp === null || exp.finalResult !== null || (exp.status !== 'finished' && exp.status !== 'stopped')) return;
    if (attempted.has(experimentId)) return;
    attempted.add(experimentId);
    compute(experimentId, DEFAULT_ENSEMBLE_K).then(
      (r) => deps.log?.(`experiment ${experimentId}: final report, best ${r.bestId} ${(r.bestTestAccuracy * 100).toFixed(2)}% test, ensemble of ${r.k} ${(r.ensembleTestAccuracy * 100).toFixed(2)}%`),
      (err: unknown) => deps.log?.(`experiment ${experimentId}: no final report (${err instanceof Error ? err.message : String(err)})`),
    );
  };

  return {
    compute,
    whenDone(coordinator) {
      for (const exp of deps.store.listExperiments()) maybeAuto(exp.id);
      coordinator.onEvent((event) => {
        if (event.kind === 'experiment') maybeAuto(event.experimentId);
      });
    },
    async settled() {
      while (chains.size > 0) await Promise.all([...chains.values()]);
    },
  };
}
