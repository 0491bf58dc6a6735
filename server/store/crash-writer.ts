/**
 * Test helper for sqlite-store.test.ts: writes to a store in a loop until it
 * is killed, printing each committed write on stdout (after the commit).
 *
 *   node --import tsx server/store/crash-writer.ts <db file>
 *
 * Lines: `issued <taskId>` after an issueChild commit, `done <taskId>` after a
 * completeTask commit. Restarted on the same file it first completes the open
 * tasks left by the previous run, then goes on.
 */
import { writeSync } from 'node:fs';
import { convChain } from '../../shared/evolution/fixtures.ts';
import { CRASH_EXPERIMENT, CRASH_POPULATION } from './crash-writer-constants.ts';
import { completion, initialTask, testConfig, testExperiment } from './fixtures.ts';
import { SqliteStore } from './sqlite-store.ts';
import type { PopulationStore, TaskRecord } from './types.ts';


function say(line: string): void {
  // Synchronous: once printed, the line is in the pipe even if we are killed next.
  writeSync(1, `${line}\n`);
}

function complete(store: PopulationStore, task: TaskRecord, n: number): void {
  const flops = 1e12 * (1 + (n % 7)) + 0.5;
  const nickname = `vol${n % 3}`;
  const backend = n % 2 ? 'wasm' : 'webgpu';
  store.completeTask(
    completion(
      task,
      Math.round(Math.random() * 1e9) / 1e9,
      { costFlops: flops, trainedAt: Date.now(), trainedBy: { workerId: `w${n % 3}`, nickname, backend, adapter: null } },
      { volunteer: { nickname, flops, backend }, event: { kind: 'child', data: { id: task.id, n } } },
    ),
  );
  say(`done ${task.id}`);
}

function main(): void {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: crash-writer.ts <db file>');
  const store = SqliteStore.open(file);
  const id = CRASH_EXPERIMENT;
  if (store.getExperiment(id) === null) {
    const tasks = Array.from({ length: CRASH_POPULATION }, (_, k) => initialTask(id, k, Date.now()));
    store.createExperiment(testExperiment(id, { config: testConfig({ populationSize: CRASH_POPULATION }), taskCounter: CRASH_POPULATION }), tasks);
    say('created');
  }
  // Tasks left open by a previous run.
  for (const task of store.queuedTasks(id, Infinity)) complete(store, task, store.getExperiment(id)!.taskCounter);
  for (;;) {
    const exp = store.getExperiment(id)!;
    const alive = store.aliveIndividuals(id);
    // A tournament of two distinct individuals: the fitter one is the parent, the other is removed.
    const i = Math.floor(Math.random() * alive.length);
    const j = (i + 1 + Math.floor(Math.random() * (alive.length - 1))) % alive.length;
    const [a, b] = [alive[i]!, alive[j]!];
    const [winner, loser] = a.fitness >= b.fitness ? [a, b] : [b, a];
    const n = exp.taskCounter;
    const taskId = `${id}-c${n}`;
    store.issueChild({
      experimentId: id,
      removeId: loser.id,
      usedBoost: false,
      at: Date.now(),
      task: {
        id: taskId,
        experimentId: id,
        kind: 'child',
        parentId: winner.id,
        parentWeightsSha256: winner.weightsSha256,
        dna: convChain([32, 32, 3], 10, [{ channels: 8 + (n % 9) }, { channels: 16, stride: 2 }], [[0, 1]], 0.1 + n / 1000),
        mutations: [{ name: 'ALTER-NUMBER-OF-CHANNELS', detail: `step ${n}` }],
        resetWeights: false,
        seed: `${id}/${n}`,
        createdAt: Date.now(),
      },
    });
    say(`issued ${taskId}`);
    complete(store, store.getTask(taskId)!, n);
  }
}

main();
