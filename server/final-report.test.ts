import { describe, expect, it } from 'vitest';
import { accuracyOf, computeFinalReport, createFinalReporter, finalCandidates, majorityVote, type FinalReportDeps } from './final-report.ts';
import { MemoryStore } from './store/memory-store.ts';
import { completion, initialTask, sha, T0, testExperiment } from './store/fixtures.ts';
import type { CoordinatorEvent } from './coordinator.ts';
import type { Verifier } from './verifier.ts';

describe('majorityVote', () => {
  it('takes the most voted class per image', () => {
    const votes = majorityVote([
      [1, 2, 3, 0],
      [1, 5, 4, 0],
      [7, 5, 4, 9],
    ]);
    expect([...votes]).toEqual([1, 5, 4, 0]);
  });

  it('breaks ties with the best-ranked member among the tied classes', () => {
    // Two members that disagree: the better one (first) decides.
    expect([...majorityVote([[3, 1], [4, 2]])]).toEqual([3, 1]);
    // 2-2 tie between classes 6 and 8; member 0 voted 8 first.
    expect([...majorityVote([[8], [6], [6], [8], [1]])]).toEqual([8]);
    // The best member's class is not among the tied ones: the next best member who voted a tied class decides.
    expect([...majorityVote([[1], [5], [6], [6], [5]])]).toEqual([5]);
  });

  it('is the member itself for one member, and refuses ragged input', () => {
    expect([...majorityVote([Int32Array.from([4, 2, 0])])]).toEqual([4, 2, 0]);
    expect(() => majorityVote([])).toThrow(RangeError);
    expect(() => majorityVote([[1, 2], [1]])).toThrow(RangeError);
  });

  it('measures accuracy against labels', () => {
    expect(accuracyOf([1, 2, 3, 4], Uint8Array.from([1, 2, 0, 0]))).toBe(0.5);
    expect(() => accuracyOf([1], [1, 2])).toThrow(RangeError);
  });
});

/** An experiment whose individuals have the given fitnesses (ids exp-i0, exp-i1, ...). */
function seeded(fitness: number[], overrides: Record<number, Parameters<typeof completion>[2]> = {}) {
  const store = new MemoryStore();
  const tasks = fitness.map((_, k) => initialTask('exp', k, T0 + k));
  store.createExperiment(testExperiment('exp', { taskCounter: tasks.length }), tasks);
  tasks.forEach((t, k) => store.completeTask(completion(t, fitness[k] as number, overrides[k] ?? {})));
  return store;
}

/** Test labels 0..9 repeated; each individual predicts from a table of its own. */
const LABELS = Uint8Array.from({ length: 10 }, (_, i) => i);

function fakeDeps(store: MemoryStore, predictionsBySha: Map<string, number[]>, missing: Set<string> = new Set()) {
  const calls: { split: string; path: string; keep: boolean | undefined }[] = [];
  const verifier: Verifier = {
    async evaluate(request) {
      calls.push({ split: request.split, path: request.weightsPath, keep: request.keepPredictions });
      const shaOf = request.weightsPath.replace(/^\/w\//, '');
      const p = predictionsBySha.get(shaOf);
      if (p === undefined) throw new Error(`no predictions for ${shaOf}`);
      return { accuracy: -1, predictions: Int32Array.from(p) };
    },
    async close() {},
  };
  const deps: FinalReportDeps = {
    store,
    verifier,
    weights: { has: (s: string) => !missing.has(s), path: (s: string) => `/w/${s}` },
    testLabels: async (name) => {
      expect(name).toBe('cifar10');
      return LABELS;
    },
    clock: () => T0 + 99,
  };
  return { deps, calls };
}

describe('computeFinalReport', () => {
  // exp-i2 is best (0.9), then i0 (0.8), i3 (0.7), i1 (0.5).
  const right = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const preds = new Map<string, number[]>([
    [sha('exp-i2'), [0, 1, 2, 3, 4, 5, 6, 0, 0, 0]], // 7/10
    [sha('exp-i0'), [0, 1, 2, 3, 4, 5, 1, 1, 1, 1]], // 6/10
    [sha('exp-i3'), [9, 9, 2, 3, 4, 5, 6, 7, 8, 9]], // 8/10
    [sha('exp-i1'), right],
  ]);

  it('evaluates the best and the top k on the test split, votes, and stores the results', async () => {
    const store = seeded([0.8, 0.5, 0.9, 0.7]);
    const { deps, calls } = fakeDeps(store, preds);
    const report = await computeFinalReport(deps, 'exp', 3);
    expect(calls.map((c) => [c.split, c.keep])).toEqual([['test', true], ['test', true], ['test', true]]);
    expect(report.computed).toBe(true);
    expect(report.bestId).toBe('exp-i2');
    expect(report.bestTestAccuracy).toBeCloseTo(0.7);
    expect(report.ensembleIds).toEqual(['exp-i2', 'exp-i0', 'exp-i3']);
    // Votes: images 0-6 have a right majority; on 7-9 the three disagree (0, 1, right), so the best member's wrong 0 wins.
    expect(report.ensembleTestAccuracy).toBeCloseTo(0.7);
    expect(report.members.map((m) => [m.rank, m.id, m.testAccuracy])).toEqual([
      [1, 'exp-i2', 0.7],
      [2, 'exp-i0', 0.6],
      [3, 'exp-i3', 0.8],
    ]);
    expect(report.testImages).toBe(10);
    const stored = store.getExperiment('exp')?.finalResult;
    expect(stored).toEqual({ bestId: 'exp-i2', bestTestAccuracy: 0.7, ensembleIds: ['exp-i2', 'exp-i0', 'exp-i3'], ensembleTestAccuracy: report.ensembleTestAccuracy, computedAt: T0 + 99 });
    expect(store.getIndividual('exp-i3')?.testAccuracy).toBe(0.8);
    expect(store.getIndividual('exp-i1')?.testAccuracy).toBeNull();
    expect(store.events('exp', 0, 100).some((e) => e.kind === 'final')).toBe(true);

    // Asked again for the same members: the stored result, no second look at the test split.
    const again = await computeFinalReport(deps, 'exp', 3);
    expect(again.computed).toBe(false);
    expect(again.ensembleTestAccuracy).toBe(report.ensembleTestAccuracy);
    expect(calls).toHaveLength(3);
    // Another k is another ensemble.
    const four = await computeFinalReport(deps, 'exp', 4);
    expect(four.computed).toBe(true);
    expect(four.ensembleIds).toHaveLength(4);
    expect(calls).toHaveLength(7);
  });

  it('improves on the members when they err differently', async () => {
    const store = seeded([0.9, 0.8, 0.7]);
    const a = [0, 1, 2, 3, 4, 5, 6, 0, 0, 0];
    const b = [1, 1, 1, 3, 4, 5, 6, 7, 8, 9];
    const c = [0, 2, 2, 2, 2, 5, 6, 7, 8, 9];
    const { deps } = fakeDeps(store, new Map([[sha('exp-i0'), a], [sha('exp-i1'), b], [sha('exp-i2'), c]]));
    const report = await computeFinalReport(deps, 'exp', 3);
    expect(report.bestTestAccuracy).toBeCloseTo(0.7);
    expect(report.ensembleTestAccuracy).toBe(1);
  });

  it('skips provisional, failed and weightless individuals', async () => {
    const store = seeded([0.99, 0.98, 0.97, 0.5, 0.4], { 0: { provisional: true }, 1: { failed: true, weightsSha256: null } });
    const { deps } = fakeDeps(store, preds, new Set([sha('exp-i2')]));
    expect(finalCandidates(deps, 'exp', 5).map((i) => i.id)).toEqual(['exp-i3', 'exp-i4']);
  });

  it('says why when there is nothing to report', async () => {
    const store = seeded([0.5], { 0: { provisional: true } });
    const { deps } = fakeDeps(store, preds);
    await expect(computeFinalReport(deps, 'exp', 2)).rejects.toMatchObject({ status: 409 });
    await expect(computeFinalReport(deps, 'nope', 2)).rejects.toMatchObject({ status: 404 });
    await expect(computeFinalReport(deps, 'exp', 0)).rejects.toMatchObject({ status: 400 });
  });
});

describe('createFinalReporter', () => {
  it('computes the report by itself once an experiment finishes, and tells listeners', async () => {
    const store = seeded([0.6, 0.7]);
    const { deps } = fakeDeps(store, new Map([[sha('exp-i0'), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], [sha('exp-i1'), [0, 1, 2, 3, 4, 0, 0, 0, 0, 0]]]));
    const told: string[] = [];
    const reporter = createFinalReporter({ ...deps, onReport: (r) => told.push(`${r.experimentId}:${r.bestId}`) });
    let listener: ((e: CoordinatorEvent) => void) | undefined;
    reporter.whenDone({ onEvent: (l) => ((listener = l), () => true) });
    listener?.({ kind: 'experiment', experimentId: 'exp' });
    await reporter.settled();
    expect(store.getExperiment('exp')?.finalResult).toBeNull(); // still running

    store.updateExperiment('exp', { status: 'finished' });
    listener?.({ kind: 'experiment', experimentId: 'exp' });
    listener?.({ kind: 'experiment', experimentId: 'exp' });
    await reporter.settled();
    expect(store.getExperiment('exp')?.finalResult?.bestId).toBe('exp-i1');
    expect(store.getExperiment('exp')?.finalResult?.ensembleIds).toEqual(['exp-i1', 'exp-i0']);
    expect(told).toEqual(['exp:exp-i1']);

    // Requests for one experiment run one after another and share the stored result.
    const [x, y] = await Promise.all([reporter.compute('exp', 2), reporter.compute('exp', 2)]);
    expect([x.computed, y.computed]).toEqual([false, false]);
  });
});
