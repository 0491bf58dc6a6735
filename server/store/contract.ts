/**
 * The behaviour every PopulationStore must have, as a vitest suite:
 * `populationStoreContract('SqliteStore', () => ({ store, reopen, cleanup }))`.
 * Run by sqlite-store.test.ts and memory-store.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StoreError } from './common.ts';
import { childTask, completion, individualOf, initialTask, sha, snapshot, T0, testConfig, testExperiment, type NewTask } from './fixtures.ts';
import type {
  CompleteTask,
  EventRecord,
  ExperimentConfig,
  ExperimentRecord,
  IndividualRecord,
  IssueChild,
  PopulationStore,
  TaskRecord,
  VolunteerRecord,
} from './types.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface Made {
  store: PopulationStore;
  reopen?: () => PopulationStore;
  cleanup?: () => void;
}

export function populationStoreContract(name: string, make: () => Made): void {
  describe(`PopulationStore contract: ${name}`, () => {
    let made: Made;
    let store: PopulationStore;

    beforeEach(() => {
      made = make();
      store = made.store;
    });
    afterEach(() => {
      store.close();
      made.cleanup?.();
    });

    /** An experiment with its `n` initial individuals trained (fitness 0.1, 0.2, ...). */
    function seeded(id = 'exp', n = 4, overrides: Partial<ExperimentRecord> = {}): { tasks: NewTask[]; individuals: IndividualRecord[] } {
      const tasks = Array.from({ length: n }, (_, k) => initialTask(id, k, T0 + k));
      store.createExperiment(testExperiment(id, { taskCounter: n, ...overrides }), tasks);
      for (const [k, t] of tasks.entries()) store.completeTask(completion(t, (k + 1) / 10));
      return { tasks, individuals: tasks.map((t) => store.getIndividual(t.id) as IndividualRecord) };
    }

    function step(experimentId: string, task: NewTask, removeId: string | null, usedBoost = false, at = task.createdAt): IssueChild {
      return { experimentId, removeId, task, at, usedBoost };
    }

    function expectStoreError(fn: () => void, code: StoreError['code']): void {
      let caught: unknown = null;
      try {
        fn();
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(StoreError);
      expect((caught as StoreError).code).toBe(code);
    }

    describe('experiments', () => {
      it('creates an experiment with its queued initial tasks and reads it back', () => {
        const exp = testExperiment('e1', { config: testConfig({ selection: 'aging', sampleSize: 25 }) });
        const tasks = [initialTask('e1', 0), initialTask('e1', 1, T0 + 1)];
        store.createExperiment(exp, tasks);
        expect(store.getExperiment('e1')).toEqual(exp);
        expect(store.getExperiment('nope')).toBeNull();
        const queued = store.queuedTasks('e1', 10);
        expect(queued).toEqual(tasks.map((t) => ({ ...t, status: 'queued', attempts: 0 })));
        expect(queued[0]?.dna.inputShape).toEqual([32, 32, 3]);
        expect(store.getTask('e1-i1')).toEqual({ ...tasks[1], status: 'queued', attempts: 0 });
        expect(store.getTask('nope')).toBeNull();
      });

      it('lists experiments oldest first', () => {
        store.createExperiment(testExperiment('b', { createdAt: T0 + 5 }), []);
        store.createExperiment(testExperiment('a', { createdAt: T0 + 9 }), []);
        store.createExperiment(testExperiment('c', { createdAt: T0 }), []);
        expect(store.listExperiments().map((e) => e.id)).toEqual(['c', 'b', 'a']);
      });

      it('refuses a duplicate experiment or task id and changes nothing', () => {
        store.createExperiment(testExperiment('e1'), [initialTask('e1', 0)]);
        const before = snapshot(store, ['e1-i0', 'e2-i0', 'e2-i1']);
        expectStoreError(() => store.createExperiment(testExperiment('e1', { name: 'again' }), [initialTask('e1', 5)]), 'conflict');
        // Second task collides with an existing one: neither the experiment nor the first task stays.
        const clash = { ...initialTask('e2', 1), id: 'e1-i0' };
        expectStoreError(() => store.createExperiment(testExperiment('e2'), [initialTask('e2', 0), clash]), 'conflict');
        // Two initial tasks with the same id.
        expectStoreError(() => store.createExperiment(testExperiment('e2'), [initialTask('e2', 0), initialTask('e2', 0)]), 'conflict');
        // A task of another experiment.
        expectStoreError(() => store.createExperiment(testExperiment('e2'), [initialTask('e3', 0)]), 'invalid');
        expect(snapshot(store, ['e1-i0', 'e2-i0', 'e2-i1'])).toEqual(before);
        expect(store.getExperiment('e2')).toBeNull();
      });

      it('updates only the fields given', () => {
        store.createExperiment(testExperiment('e1', { boostRemaining: 2 }), []);
        store.updateExperiment('e1', { status: 'paused' });
        expect(store.getExperiment('e1')).toEqual(testExperiment('e1', { status: 'paused', boostRemaining: 2 }));
        const finalResult = { bestId: 'e1-i3', bestTestAccuracy: 0.912345678, ensembleIds: ['e1-i3', 'e1-i1'], ensembleTestAccuracy: 0.93, computedAt: T0 + 99 };
        store.updateExperiment('e1', { finalResult, boostRemaining: 0, lastImprovementAt: 17 });
        expect(store.getExperiment('e1')).toEqual(
          testExperiment('e1', { status: 'paused', boostRemaining: 0, lastImprovementAt: 17, finalResult }),
        );
        store.updateExperiment('e1', { finalResult: null, status: 'finished' });
        expect(store.getExperiment('e1')?.finalResult).toBeNull();
        expect(store.getExperiment('e1')?.status).toBe('finished');
        expectStoreError(() => store.updateExperiment('nope', { status: 'stopped' }), 'not-found');
      });
    });

    describe('tasks', () => {
      it('queues oldest first, per experiment, with a limit', () => {
        store.createExperiment(testExperiment('a'), [initialTask('a', 0, T0 + 30), initialTask('a', 1, T0 + 10), initialTask('a', 2, T0 + 20)]);
        store.createExperiment(testExperiment('b'), [initialTask('b', 0, T0)]);
        expect(store.queuedTasks('a', 10).map((t) => t.id)).toEqual(['a-i1', 'a-i2', 'a-i0']);
        expect(store.queuedTasks('a', 2).map((t) => t.id)).toEqual(['a-i1', 'a-i2']);
        expect(store.queuedTasks('a', 0)).toEqual([]);
        expect(store.queuedTasks('b', 10).map((t) => t.id)).toEqual(['b-i0']);
        expect(store.queuedTasks('zzz', 10)).toEqual([]);
      });

      it('leases, re-queues with attempts, abandons', () => {
        store.createExperiment(testExperiment('a'), [initialTask('a', 0), initialTask('a', 1, T0 + 1)]);
        store.createExperiment(testExperiment('b'), [initialTask('b', 0, T0 + 2)]);
        store.setTaskStatus('a-i0', 'leased', true);
        store.setTaskStatus('b-i0', 'leased', true);
        expect(store.leasedTasks().map((t) => [t.id, t.status, t.attempts])).toEqual([
          ['a-i0', 'leased', 1],
          ['b-i0', 'leased', 1],
        ]);
        expect(store.queuedTasks('a', 10).map((t) => t.id)).toEqual(['a-i1']);
        store.setTaskStatus('a-i0', 'queued');
        expect(store.getTask('a-i0')).toMatchObject({ status: 'queued', attempts: 1 });
        store.setTaskStatus('a-i0', 'leased', true);
        expect(store.getTask('a-i0')).toMatchObject({ status: 'leased', attempts: 2 });
        store.setTaskStatus('a-i1', 'abandoned');
        expect(store.queuedTasks('a', 10)).toEqual([]);
        expect(store.leasedTasks().map((t) => t.id)).toEqual(['a-i0', 'b-i0']);
        expectStoreError(() => store.setTaskStatus('nope', 'queued'), 'not-found');
        expectStoreError(() => store.setTaskStatus('a-i0', 'done' as 'queued'), 'invalid');
      });

      it('a done task keeps its status', () => {
        const { tasks } = seeded('e', 2);
        const before = snapshot(store, tasks.map((t) => t.id));
        expectStoreError(() => store.setTaskStatus(tasks[0]!.id, 'queued'), 'conflict');
        expect(snapshot(store, tasks.map((t) => t.id))).toEqual(before);
      });
    });

    describe('completeTask', () => {
      it('inserts the individual, closes the task, counts, credits and logs', () => {
        store.createExperiment(testExperiment('e', { taskCounter: 2 }), [initialTask('e', 0), initialTask('e', 1, T0 + 1)]);
        store.setTaskStatus('e-i1', 'leased', true);
        const t0 = store.getTask('e-i0')!;
        const done = completion(t0, 0.123456789, { costFlops: 1e20, params: 7_000_001, forwardFlops: 3.3e9 }, {
          volunteer: { nickname: 'ada', flops: 1e20, backend: 'webgpu' },
        });
        store.completeTask(done);
        const ind = store.getIndividual('e-i0');
        expect(ind).toEqual({ ...done.individual, status: 'alive', removedAt: null, testAccuracy: null });
        expect(ind?.fitness).toBe(0.123456789);
        expect(ind?.costFlops).toBe(1e20);
        expect(store.getTask('e-i0')?.status).toBe('done');
        expect(store.queuedTasks('e', 10).map((t) => t.id)).toEqual([]);
        expect(store.getExperiment('e')).toMatchObject({ childrenTrained: 1, totalFlops: 1e20, bestFitness: 0.123456789, lastImprovementAt: 1 });

        // A leased task completes too; a different volunteer and backend.
        const t1 = store.getTask('e-i1')!;
        store.completeTask(
          completion(t1, 0.05, { costFlops: 123456789.125, trainedAt: T0 + 77, trainedBy: { workerId: 'w-2', nickname: null, backend: 'wasm', adapter: null } }, {
            volunteer: { nickname: 'bob', flops: 2_000_000, backend: 'wasm' },
            event: { kind: 'child', data: { nested: [[1, 2], [3, [4.5, null]]], s: 'x' } },
          }),
        );
        expect(store.getIndividual('e-i1')?.trainedBy).toEqual({ workerId: 'w-2', nickname: null, backend: 'wasm', adapter: null });
        expect(store.getExperiment('e')).toMatchObject({ childrenTrained: 2, totalFlops: 1e20 + 123456789.125, bestFitness: 0.123456789, lastImprovementAt: 1 });
        expect(store.volunteers(10)).toEqual([
          { nickname: 'ada', childrenTrained: 1, flopsDonated: 1e20, credit: 1e11, lastSeen: T0 + 500, backends: { webgpu: 1 } },
          { nickname: 'bob', childrenTrained: 1, flopsDonated: 2_000_000, credit: 0.002, lastSeen: T0 + 77, backends: { wasm: 1 } },
        ]);
        const events = store.events('e', 0, 10);
        expect(events.map((e) => [e.kind, e.at, e.experimentId])).toEqual([
          ['child', T0 + 500, 'e'],
          ['child', T0 + 77, 'e'],
        ]);
        expect(events[1]?.data).toEqual({ nested: [[1, 2], [3, [4.5, null]]], s: 'x' });
        expect(events[1]!.id).toBeGreaterThan(events[0]!.id);
      });

      it('tracks the best verified fitness and when it last strictly improved', () => {
        const n = 7;
        const tasks = Array.from({ length: n }, (_, k) => initialTask('e', k, T0 + k));
        store.createExperiment(testExperiment('e', { taskCounter: n }), tasks);
        const plan: [number, Partial<CompleteTask['individual']>, number | null, number][] = [
          // fitness, flags, expected best, expected lastImprovementAt
          [0.5, {}, 0.5, 1],
          [0.9, { provisional: true }, 0.5, 1], // provisional: not counted
          [0.95, { failed: true, weightsSha256: null }, 0.5, 1], // failed: not counted
          [0.5, {}, 0.5, 1], // equal: no strict improvement
          [0.6, {}, 0.6, 5],
          [0.2, {}, 0.6, 5],
          [0.61, {}, 0.61, 7],
        ];
        for (const [k, [fitness, flags, best, at]] of plan.entries()) {
          store.completeTask(completion(tasks[k]!, fitness, flags));
          expect(store.getExperiment('e')).toMatchObject({ childrenTrained: k + 1, bestFitness: best, lastImprovementAt: at });
        }
        expect(store.getExperiment('e')?.totalFlops).toBe(1.5e12 * n);
      });

      it('a failed first child leaves the best fitness null', () => {
        store.createExperiment(testExperiment('e', { taskCounter: 1 }), [initialTask('e', 0)]);
        store.completeTask(completion(initialTask('e', 0), 0, { failed: true, weightsSha256: null }, { volunteer: null }));
        expect(store.getExperiment('e')).toMatchObject({ childrenTrained: 1, bestFitness: null, lastImprovementAt: 0 });
        expect(store.volunteers(10)).toEqual([]);
      });

      it('removes `removeId` (aging) in the same step', () => {
        const { individuals } = seeded('e', 2);
        const t = childTask('e', 'e-c0', individuals[1]!);
        store.issueChild(step('e', t, null));
        store.completeTask(completion(t, 0.3, {}, { removeId: individuals[0]!.id }));
        expect(store.getIndividual(individuals[0]!.id)).toMatchObject({ status: 'removed', removedAt: t.createdAt + 500 });
        expect(store.aliveIndividuals('e').map((i) => i.id)).toEqual([individuals[1]!.id, 'e-c0']);
      });

      it('credits a volunteer cumulatively, rounding credit to 3 decimals', () => {
        store.createExperiment(testExperiment('e', { taskCounter: 3 }), [0, 1, 2].map((k) => initialTask('e', k, T0 + k)));
        const flops = [1_234_567, 1e9 / 3, 2.5e9];
        const backends = ['webgpu', 'wasm', 'webgpu'];
        for (const k of [0, 1, 2]) {
          store.completeTask(
            completion(initialTask('e', k, T0 + k), 0.1, { trainedAt: T0 + 10 * k }, { volunteer: { nickname: 'ada', flops: flops[k]!, backend: backends[k]! } }),
          );
        }
        const [ada] = store.volunteers(10);
        expect(ada).toEqual({
          nickname: 'ada',
          childrenTrained: 3,
          flopsDonated: 1_234_567 + 1e9 / 3 + 2.5e9,
          credit: 2.834, // 0.001 + 0.333 + 2.5, each rounded
          lastSeen: T0 + 20,
          backends: { webgpu: 2, wasm: 1 },
        });
      });

      it('refuses a replayed result and changes nothing', () => {
        const { tasks } = seeded('e', 2);
        const ids = tasks.map((t) => t.id);
        const before = snapshot(store, ids);
        expectStoreError(() => store.completeTask(completion(tasks[0]!, 0.99)), 'conflict');
        expect(snapshot(store, ids)).toEqual(before);
        expect(store.allIndividuals('e')).toHaveLength(2);
      });

      it('refuses an abandoned or unknown task, a mismatched individual, a dead removeId: nothing changes', () => {
        const { individuals } = seeded('e', 3);
        const open = [childTask('e', 'e-c0', individuals[0]!, 1), childTask('e', 'e-c1', individuals[1]!, 2), childTask('e', 'e-c2', individuals[2]!, 3)];
        for (const t of open) store.issueChild(step('e', t, null));
        store.setTaskStatus('e-c1', 'abandoned');
        store.completeTask(completion(open[2]!, 0.4, {}, { removeId: individuals[2]!.id }));
        const ids = ['e-i0', 'e-i1', 'e-i2', 'e-c0', 'e-c1', 'e-c2'];
        const before = snapshot(store, ids);
        expectStoreError(() => store.completeTask(completion(open[1]!, 0.9)), 'conflict'); // abandoned
        expectStoreError(() => store.completeTask({ ...completion(open[0]!, 0.9), taskId: 'nope' }), 'not-found');
        expectStoreError(() => store.completeTask({ ...completion(open[0]!, 0.9), individual: individualOf(open[1]!, 0.9) }), 'invalid');
        // removeId already removed: the whole completion is refused, the task stays queued.
        expectStoreError(() => store.completeTask(completion(open[0]!, 0.9, {}, { removeId: individuals[2]!.id })), 'conflict');
        expectStoreError(() => store.completeTask(completion(open[0]!, 0.9, {}, { removeId: 'ghost' })), 'conflict');
        // A non-finite fitness.
        expectStoreError(() => store.completeTask(completion(open[0]!, Number.NaN)), 'invalid');
        expect(snapshot(store, ids)).toEqual(before);
        expect(store.getTask('e-c0')?.status).toBe('queued');
      });

      it('rolls back a completion that fails after its first writes', () => {
        const { individuals } = seeded('e', 2);
        const t = childTask('e', 'e-c0', individuals[1]!);
        store.issueChild(step('e', t, null));
        const ids = ['e-i0', 'e-i1', 'e-c0'];
        const before = snapshot(store, ids);
        // The event data cannot be serialised: found only after the individual, the task,
        // the counters, the removal and the credit were written.
        const bad = completion(t, 0.99, {}, { removeId: individuals[0]!.id, event: { kind: 'child', data: { big: 1n } } });
        expect(() => store.completeTask(bad)).toThrow(TypeError);
        expect(snapshot(store, ids)).toEqual(before);
        expect(store.getIndividual('e-c0')).toBeNull();
        // The same completion, fixed, then goes through once.
        store.completeTask({ ...bad, event: { kind: 'child', data: {} } });
        expect(store.getIndividual('e-c0')?.status).toBe('alive');
        expect(store.getIndividual('e-i0')?.status).toBe('removed');
      });

      it('refuses to remove an individual of another experiment', () => {
        const a = seeded('a', 1);
        const b = seeded('b', 1);
        const t = childTask('a', 'a-c0', a.individuals[0]!);
        store.issueChild(step('a', t, null));
        const ids = ['a-i0', 'b-i0', 'a-c0'];
        const before = snapshot(store, ids);
        expectStoreError(() => store.completeTask(completion(t, 0.5, {}, { removeId: b.individuals[0]!.id })), 'conflict');
        expect(snapshot(store, ids)).toEqual(before);
      });
    });

    describe('issueChild', () => {
      it('removes the loser, queues the child, counts the step and logs it', () => {
        const { individuals } = seeded('e', 4, { boostRemaining: 2 });
        const [loser, winner] = [individuals[0]!, individuals[3]!];
        const t = childTask('e', 'e-c4', winner, 4, T0 + 9000);
        store.issueChild(step('e', t, loser.id, true, T0 + 9001));
        expect(store.getIndividual(loser.id)).toMatchObject({ status: 'removed', removedAt: T0 + 9001 });
        expect(store.aliveIndividuals('e').map((i) => i.id)).toEqual(['e-i1', 'e-i2', 'e-i3']);
        expect(store.getTask('e-c4')).toEqual({ ...t, status: 'queued', attempts: 0 });
        expect(store.getTask('e-c4')?.dna).toEqual(t.dna);
        expect(store.getExperiment('e')).toMatchObject({ stepCounter: 1, taskCounter: 5, boostRemaining: 1, childrenTrained: 4 });
        const last = store.events('e', 0, 100).at(-1);
        expect(last).toMatchObject({ kind: 'step', at: T0 + 9001, experimentId: 'e' });
        expect(last?.data).toMatchObject({ step: 1, taskId: 'e-c4', parentId: winner.id, removedId: loser.id, usedBoost: true });

        // Without a removal (aging before the population is full), without boost.
        const t2 = childTask('e', 'e-c5', winner, 5, T0 + 9500);
        store.issueChild(step('e', t2, null));
        expect(store.aliveIndividuals('e')).toHaveLength(3);
        expect(store.getExperiment('e')).toMatchObject({ stepCounter: 2, taskCounter: 6, boostRemaining: 1 });
        expect(store.events('e', 0, 100).at(-1)?.data).toMatchObject({ step: 2, removedId: null, usedBoost: false });
        expect(store.queuedTasks('e', 10).map((t) => t.id)).toEqual(['e-c4', 'e-c5']);
      });

      it('never takes boostRemaining below zero', () => {
        const { individuals } = seeded('e', 2);
        store.issueChild(step('e', childTask('e', 'e-c0', individuals[1]!), null, true));
        expect(store.getExperiment('e')?.boostRemaining).toBe(0);
      });

      it('refuses a removed, unknown or foreign loser, or a taken task id: nothing changes', () => {
        const { individuals } = seeded('e', 3);
        seeded('f', 1);
        store.issueChild(step('e', childTask('e', 'e-c0', individuals[2]!), individuals[0]!.id));
        const ids = ['e-i0', 'e-i1', 'e-i2', 'e-c0', 'e-c1', 'f-i0'];
        const before = snapshot(store, ids);
        const t = childTask('e', 'e-c1', individuals[2]!, 2);
        expectStoreError(() => store.issueChild(step('e', t, individuals[0]!.id)), 'conflict'); // already removed
        expectStoreError(() => store.issueChild(step('e', t, 'ghost')), 'conflict');
        expectStoreError(() => store.issueChild(step('e', t, 'f-i0')), 'conflict'); // another experiment's
        // The task id exists: the loser (alive) must stay alive.
        expectStoreError(() => store.issueChild(step('e', { ...t, id: 'e-c0' }, individuals[1]!.id)), 'conflict');
        expectStoreError(() => store.issueChild(step('e', { ...t, id: 'e-i2' }, individuals[1]!.id)), 'conflict');
        expectStoreError(() => store.issueChild(step('nope', { ...t, experimentId: 'nope' }, null)), 'not-found');
        expectStoreError(() => store.issueChild(step('e', { ...t, experimentId: 'f' }, null)), 'invalid');
        expect(snapshot(store, ids)).toEqual(before);
        expect(store.getIndividual(individuals[1]!.id)?.status).toBe('alive');
      });
      it('rolls back a step that fails after removing the loser', () => {
        const { individuals } = seeded('e', 2);
        const ids = ['e-i0', 'e-i1', 'e-c0'];
        const before = snapshot(store, ids);
        const t = childTask('e', 'e-c0', individuals[1]!);
        const bad = { ...t, dna: { ...t.dna, learningRate: 1n as unknown as number } };
        expect(() => store.issueChild(step('e', bad, individuals[0]!.id, true))).toThrow(TypeError);
        expect(snapshot(store, ids)).toEqual(before);
        expect(store.getIndividual('e-i0')?.status).toBe('alive');
      });
    });

    describe('individuals', () => {
      it('lists alive and all individuals in insertion order, and sets test accuracy and verified fitness', () => {
        const { individuals } = seeded('e', 3);
        store.issueChild(step('e', childTask('e', 'e-c0', individuals[2]!), individuals[1]!.id));
        expect(store.allIndividuals('e').map((i) => i.id)).toEqual(['e-i0', 'e-i1', 'e-i2']);
        expect(store.aliveIndividuals('e').map((i) => i.id)).toEqual(['e-i0', 'e-i2']);
        expect(store.getIndividual('nope')).toBeNull();
        store.setTestAccuracy('e-i2', 0.876543219);
        expect(store.getIndividual('e-i2')?.testAccuracy).toBe(0.876543219);
        expectStoreError(() => store.setTestAccuracy('nope', 0.5), 'not-found');
      });

      it('verifying a provisional child updates its fitness, the best and the improvement mark', () => {
        store.createExperiment(testExperiment('e', { taskCounter: 3 }), [0, 1, 2].map((k) => initialTask('e', k, T0 + k)));
        store.completeTask(completion(initialTask('e', 0), 0.4));
        store.completeTask(completion(initialTask('e', 1, T0 + 1), 0.9, { provisional: true }));
        store.completeTask(completion(initialTask('e', 2, T0 + 2), 0.3));
        expect(store.getExperiment('e')).toMatchObject({ bestFitness: 0.4, lastImprovementAt: 1, childrenTrained: 3 });
        store.setVerifiedFitness('e-i1', 0.7);
        expect(store.getIndividual('e-i1')).toMatchObject({ fitness: 0.7, provisional: false });
        expect(store.getExperiment('e')).toMatchObject({ bestFitness: 0.7, lastImprovementAt: 3 });
        store.setVerifiedFitness('e-i2', 0.35);
        expect(store.getExperiment('e')).toMatchObject({ bestFitness: 0.7, lastImprovementAt: 3 });
        expectStoreError(() => store.setVerifiedFitness('nope', 0.5), 'not-found');
      });

      it('leaderboard: fitness descending, ties by earlier trainedAt, every status, with a limit', () => {
        store.createExperiment(testExperiment('e', { taskCounter: 5 }), [0, 1, 2, 3, 4].map((k) => initialTask('e', k, T0 + k)));
        const rows: [number, number, number][] = [
          // task, fitness, trainedAt
          [0, 0.5, T0 + 50],
          [1, 0.8, T0 + 40],
          [2, 0.5, T0 + 30],
          [3, 0.9, T0 + 60],
          [4, 0.1, T0 + 10],
        ];
        for (const [k, fitness, trainedAt] of rows) store.completeTask(completion(initialTask('e', k, T0 + k), fitness, { trainedAt }));
        const t = childTask('e', 'e-c0', store.getIndividual('e-i3')!);
        store.issueChild(step('e', t, 'e-i3')); // the best is removed: still on the leaderboard
        seeded('other', 1);
        expect(store.leaderboard('e', 10).map((i) => i.id)).toEqual(['e-i3', 'e-i1', 'e-i2', 'e-i0', 'e-i4']);
        expect(store.leaderboard('e', 2).map((i) => [i.id, i.status])).toEqual([
          ['e-i3', 'removed'],
          ['e-i1', 'alive'],
        ]);
        expect(store.leaderboard('e', 0)).toEqual([]);
        expect(store.leaderboard('nope', 5)).toEqual([]);
      });

      it('lineage: ancestors from the parent back to the root', () => {
        const { individuals } = seeded('e', 2);
        let parent = individuals[1]!;
        const chain: string[] = [parent.id];
        for (let g = 1; g <= 4; g++) {
          const t = childTask('e', `e-g${g}`, parent, g);
          store.issueChild(step('e', t, g === 2 ? individuals[0]!.id : null));
          store.completeTask(completion(t, 0.2 + g / 10, { generation: g }));
          parent = store.getIndividual(t.id)!;
          chain.unshift(parent.id);
        }
        expect(store.lineage('e-g4').map((i) => i.id)).toEqual(['e-g3', 'e-g2', 'e-g1', 'e-i1']);
        expect(store.lineage('e-g4').map((i) => i.generation)).toEqual([3, 2, 1, 0]);
        expect(store.lineage('e-g4')[0]).toEqual(store.getIndividual('e-g3'));
        expect(store.lineage('e-i1')).toEqual([]);
        expect(store.lineage('nope')).toEqual([]);
        expect(chain).toHaveLength(5);
      });
    });

    describe('events and volunteers', () => {
      it('appends events with increasing ids, per experiment, paged by afterId', () => {
        store.createExperiment(testExperiment('a'), []);
        store.createExperiment(testExperiment('b'), []);
        store.appendEvent('a', T0 + 1, 'created', { config: testConfig() });
        store.appendEvent('b', T0 + 2, 'created', {});
        store.appendEvent('a', T0 + 3, 'status', { status: 'paused', list: [1, [2, [3]]], f: 0.1 + 0.2 });
        store.appendEvent('a', T0 + 4, 'remedy', { remedy: 'boost' });
        const all = store.events('a', 0, 100);
        expect(all.map((e) => e.kind)).toEqual(['created', 'status', 'remedy']);
        expect(all[0]?.data).toEqual({ config: testConfig() });
        expect(all[1]?.data).toEqual({ status: 'paused', list: [1, [2, [3]]], f: 0.1 + 0.2 });
        const ids = all.map((e) => e.id);
        expect([...ids].sort((x, y) => x - y)).toEqual(ids);
        expect(store.events('a', ids[0]!, 100).map((e) => e.kind)).toEqual(['status', 'remedy']);
        expect(store.events('a', ids[0]!, 1).map((e) => e.kind)).toEqual(['status']);
        expect(store.events('a', ids[2]!, 100)).toEqual([]);
        expect(store.events('b', 0, 100).map((e: EventRecord) => [e.kind, e.at])).toEqual([['created', T0 + 2]]);
        expectStoreError(() => store.appendEvent('nope', T0, 'x', {}), 'not-found');
        expect(store.events('nope', 0, 10)).toEqual([]);
      });

      it('orders volunteers by credit and limits them', () => {
        store.createExperiment(testExperiment('e', { taskCounter: 4 }), [0, 1, 2, 3].map((k) => initialTask('e', k, T0 + k)));
        const credits: [string, number][] = [
          ['carol', 3e9],
          ['ada', 1e9],
          ['bob', 5e9],
          ['ada', 1e9],
        ];
        for (const [k, [nickname, flops]] of credits.entries()) {
          store.completeTask(completion(initialTask('e', k, T0 + k), 0.1, {}, { volunteer: { nickname, flops, backend: 'webgl' } }));
        }
        expect(store.volunteers(10).map((v: VolunteerRecord) => [v.nickname, v.credit, v.childrenTrained])).toEqual([
          ['bob', 5, 1],
          ['carol', 3, 1],
          ['ada', 2, 2],
        ]);
        expect(store.volunteers(1).map((v) => v.nickname)).toEqual(['bob']);
      });
    });

    describe('referencedWeights', () => {
      it('keeps alive weights, open tasks’ parent weights, the best and their ancestors', () => {
        const { individuals } = seeded('e', 4); // fitness 0.1 .. 0.4
        const [i0, i1, i2, i3] = individuals as [IndividualRecord, IndividualRecord, IndividualRecord, IndividualRecord];
        // Child of i3 (fitness 0.95): the best; then its parent i3 is removed.
        const c = childTask('e', 'e-c0', i3, 1);
        store.issueChild(step('e', c, i0.id));
        store.completeTask(completion(c, 0.95, { generation: 1 }));
        const g = childTask('e', 'e-c1', store.getIndividual('e-c0')!, 2);
        store.issueChild(step('e', g, i3.id));
        store.completeTask(completion(g, 0.97, { generation: 2 }, { removeId: 'e-c0' }));
        // Open task whose parent (i1) is removed meanwhile.
        const open = childTask('e', 'e-c2', i1, 3);
        store.issueChild(step('e', open, i1.id));
        // A leased task, an abandoned one, and a failed child without weights.
        const leased = childTask('e', 'e-c3', i2, 4);
        store.issueChild(step('e', leased, null));
        store.setTaskStatus('e-c3', 'leased');
        const gone = childTask('e', 'e-c4', { ...i2, weightsSha256: sha('abandoned-parent') }, 5);
        store.issueChild(step('e', gone, null));
        store.setTaskStatus('e-c4', 'abandoned');
        // A second experiment: only its alive ones and its best.
        const other = seeded('f', 2);
        store.issueChild(step('f', childTask('f', 'f-c0', other.individuals[1]!), other.individuals[0]!.id));

        expect(store.aliveIndividuals('e').map((i) => i.id)).toEqual(['e-i2', 'e-c1']);
        const expectedBase = [sha('e-i2'), sha('e-c1'), sha('e-i1'), sha('f-i1')];
        expect([...store.referencedWeights(0)].sort()).toEqual([...expectedBase].sort());
        // keepBest 1: e's best is e-c1 (alive), its ancestors e-c0 and e-i3 (removed); f's best f-i1.
        expect([...store.referencedWeights(1)].sort()).toEqual([...expectedBase, sha('e-c0'), sha('e-i3')].sort());
        // keepBest 3: e-c1, e-c0, e-i3 (0.4) in e; f-i1, f-i0 in f.
        expect([...store.referencedWeights(3)].sort()).toEqual([...expectedBase, sha('e-c0'), sha('e-i3'), sha('f-i0')].sort());
        expect(store.referencedWeights(100).has(sha('abandoned-parent'))).toBe(false);
        expect(store.referencedWeights(100).size).toBe(8); // the 8 trained individuals all have weights
      });

      it('skips individuals without weights', () => {
        store.createExperiment(testExperiment('e', { taskCounter: 1 }), [initialTask('e', 0)]);
        store.completeTask(completion(initialTask('e', 0), 0, { failed: true, weightsSha256: null }));
        expect(store.referencedWeights(5).size).toBe(0);
      });
    });

    describe('copies', () => {
      it('records going in and out are copies', () => {
        const exp = testExperiment('e', { taskCounter: 1 }) as Mutable<ExperimentRecord>;
        const task = initialTask('e', 0) as Mutable<NewTask>;
        store.createExperiment(exp, [task]);
        exp.name = 'changed';
        (exp.config.plateau as Mutable<ExperimentConfig['plateau']>).patience = -1;
        (task.dna.inputShape as unknown as number[])[0] = 999;
        expect(store.getExperiment('e')).toEqual(testExperiment('e', { taskCounter: 1 }));
        expect(store.getTask('e-i0')?.dna.inputShape).toEqual([32, 32, 3]);

        const out = store.getTask('e-i0') as Mutable<TaskRecord>;
        (out.dna.vertices as unknown[]).length = 0;
        out.status = 'done';
        expect(store.getTask('e-i0')?.dna.vertices).toHaveLength(2);
        expect(store.getTask('e-i0')?.status).toBe('queued');

        const done = completion(store.getTask('e-i0')!, 0.5);
        store.completeTask(done);
        (done.individual.trainedBy as Mutable<IndividualRecord['trainedBy']>).backend = 'x';
        const ind = store.getIndividual('e-i0') as Mutable<IndividualRecord>;
        ind.status = 'removed';
        (ind.mutations as unknown[]).push('junk');
        expect(store.getIndividual('e-i0')).toMatchObject({ status: 'alive', trainedBy: { backend: 'webgpu' } });
        expect(store.aliveIndividuals('e')).toHaveLength(1);

        const data = { list: [1, 2] };
        store.appendEvent('e', T0, 'x', data);
        data.list.push(3);
        const [, ev] = store.events('e', 0, 10);
        expect(ev?.data).toEqual({ list: [1, 2] });
        (ev!.data.list as number[]).push(4);
        expect(store.events('e', 0, 10)[1]?.data).toEqual({ list: [1, 2] });

        const [v] = store.volunteers(1);
        (v!.backends as Record<string, number>).webgpu = 100;
        expect(store.volunteers(1)[0]?.backends).toEqual({ webgpu: 1 });
      });

      it('JSON columns drop undefined like JSON does', () => {
        store.createExperiment(testExperiment('e'), []);
        store.appendEvent('e', T0, 'x', { a: undefined, b: [undefined, 1], c: null });
        expect(store.events('e', 0, 1)[0]?.data).toEqual({ b: [null, 1], c: null });
        expect(Object.keys(store.events('e', 0, 1)[0]!.data)).toEqual(['b', 'c']);
      });
    });

    it('refuses calls once closed', () => {
      store.close();
      expect(() => store.listExperiments()).toThrow(StoreError);
      store.close(); // twice is fine
    });

    it('a closed and reopened store holds exactly the same data', (ctx) => {
      if (made.reopen === undefined) {
        ctx.skip();
        return;
      }
      // Build a varied state: two experiments, removals, open/leased/abandoned tasks, events, volunteers.
      const { individuals } = seeded('e', 4, { boostRemaining: 3 });
      seeded('f', 2);
      let parent = individuals[3]!;
      for (let k = 0; k < 6; k++) {
        const t = childTask('e', `e-c${k}`, parent, k);
        const loser = store.aliveIndividuals('e').sort((a, b) => a.fitness - b.fitness)[0]!;
        store.issueChild(step('e', t, loser.id, k % 2 === 0, T0 + 10_000 + k));
        if (k < 4) {
          store.completeTask(
            completion(t, 0.123456789 * (k + 1), { generation: parent.generation + 1, costFlops: 1e20 / (k + 3), provisional: k === 2 }, {
              volunteer: { nickname: k % 2 ? 'bob' : 'ada', flops: 1e20 / (k + 3), backend: k % 2 ? 'wasm' : 'webgpu' },
            }),
          );
          parent = store.getIndividual(t.id)!;
        }
      }
      store.setTaskStatus('e-c4', 'leased', true);
      store.setTaskStatus('e-c5', 'abandoned', true);
      store.setTestAccuracy('e-c1', 0.87654321);
      store.updateExperiment('f', {
        status: 'finished',
        finalResult: { bestId: 'f-i1', bestTestAccuracy: 0.5, ensembleIds: ['f-i1', 'f-i0'], ensembleTestAccuracy: 0.55, computedAt: T0 + 1 },
      });
      store.appendEvent('f', T0 + 2, 'status', { nested: [[[1]], { a: [0.1, 1e-300, 1e300] }] });
      const ids = ['e-i0', 'e-i1', 'e-i2', 'e-i3', 'f-i0', 'f-i1', ...[0, 1, 2, 3, 4, 5].map((k) => `e-c${k}`)];
      const before = snapshot(store, ids);
      const lineage = store.lineage('e-c3');
      const lastEvent = store.events('f', 0, 100).at(-1)!.id;

      store.close();
      store = made.reopen();
      expect(snapshot(store, ids)).toEqual(before);
      expect(store.lineage('e-c3')).toEqual(lineage);
      expect(store.getExperiment('e')?.totalFlops).toBe((before as { experiments: ExperimentRecord[] }).experiments[0]?.totalFlops);

      // It goes on where it stopped: event ids keep increasing.
      store.appendEvent('f', T0 + 3, 'after', {});
      expect(store.events('f', lastEvent, 10).map((e) => e.kind)).toEqual(['after']);
      store.completeTask(completion(store.getTask('e-c4')!, 0.99));
      expect(store.getExperiment('e')).toMatchObject({ bestFitness: 0.99, childrenTrained: 9 });
    });
  });
}
