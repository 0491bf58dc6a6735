import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { populationStoreContract } from './contract.ts';
import { CRASH_EXPERIMENT, CRASH_POPULATION } from './crash-writer-constants.ts';
import { SCHEMA_VERSION, SqliteStore } from './sqlite-store.ts';

const HERE = dirname(fileURLToPath(import.meta.url));

populationStoreContract('SqliteStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'petri-store-'));
  const file = join(dir, 'petri.db');
  return {
    store: SqliteStore.open(file),
    reopen: () => SqliteStore.open(file),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
});

describe('SqliteStore on disk', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'petri-store-'));
    file = join(dir, 'petri.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs in WAL mode, synchronous FULL, with foreign keys, at the current schema version', () => {
    const store = SqliteStore.open(file);
    expect(store.pragmas()).toEqual({ journalMode: 'wal', synchronous: 2, foreignKeys: 1, schemaVersion: SCHEMA_VERSION });
    store.close();
  });

  it('applies each migration once and refuses a newer schema', () => {
    SqliteStore.open(file).close();
    SqliteStore.open(file).close();
    const db = new Database(file);
    expect(db.prepare('SELECT version FROM schema_version').all()).toEqual([{ version: 1 }]);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all();
    expect(tables).toEqual(['events', 'experiments', 'individuals', 'schema_version', 'tasks', 'volunteers'].map((name) => ({ name })));
    db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (99, 0)').run();
    db.close();
    expect(() => SqliteStore.open(file)).toThrow(/schema version 99, newer/);
  });

  describe('a writer killed with SIGKILL keeps every committed transaction', () => {
    interface Run {
      issued: string[];
      done: string[];
      code: number | null;
      signal: NodeJS.Signals | null;
      stderr: string;
    }

    /** Runs the crash writer on `file` and kills it once it has printed `killAfter` completions. */
    function runWriter(killAfter: number): Promise<Run> {
      return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', join(HERE, 'crash-writer.ts'), file], {
          cwd: HERE,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const run: Run = { issued: [], done: [], code: null, signal: null, stderr: '' };
        let pending = '';
        let killed = false;
        const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
        child.stderr.setEncoding('utf8').on('data', (s: string) => (run.stderr += s));
        child.stdout.setEncoding('utf8').on('data', (s: string) => {
          pending += s;
          for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            const [what, id] = line.split(' ');
            if (what === 'issued' && id !== undefined) run.issued.push(id);
            if (what === 'done' && id !== undefined) run.done.push(id);
            if (!killed && run.done.length >= killAfter) {
              // A random delay, so the kill lands anywhere: mid-transaction, mid-fsync, between commits.
              killed = true;
              setTimeout(() => child.kill('SIGKILL'), Math.random() * 15);
            }
          }
        });
        child.on('error', reject);
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          run.code = code;
          run.signal = signal;
          resolve(run);
        });
      });
    }

    it('reopening gives exactly the committed writes, consistent, round after round', async () => {
      const issued = new Set<string>();
      const done = new Set<string>();
      for (let round = 0; round < 6; round++) {
        const run = await runWriter(8 + Math.floor(Math.random() * 40));
        expect(run.signal, run.stderr).toBe('SIGKILL');
        for (const id of run.issued) issued.add(id);
        for (const id of run.done) done.add(id);

        const db = new Database(file, { readonly: true });
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
        expect(db.pragma('foreign_key_check')).toEqual([]);
        db.close();

        const store = SqliteStore.open(file);
        try {
          const exp = store.getExperiment(CRASH_EXPERIMENT);
          expect(exp).not.toBeNull();
          if (exp === null) return;
          const individuals = store.allIndividuals(CRASH_EXPERIMENT);
          const ids = individuals.map((i) => i.id);

          // Every printed commit is there; at most one more per kind in this round (committed,
          // killed before printing). Those unprinted ones are known from now on.
          for (const id of done) expect(store.getIndividual(id), `done ${id}`).not.toBeNull();
          for (const id of issued) expect(store.getTask(id), `issued ${id}`).not.toBeNull();
          expect(ids.length - done.size).toBeGreaterThanOrEqual(0);
          expect(ids.length - done.size).toBeLessThanOrEqual(1);
          for (const id of ids) done.add(id);

          // Counters equal the rows.
          const taskIds = Array.from({ length: exp.taskCounter }, (_, k) =>
            k < CRASH_POPULATION ? `${CRASH_EXPERIMENT}-i${k}` : `${CRASH_EXPERIMENT}-c${k}`,
          );
          const tasks = taskIds.map((id) => store.getTask(id));
          expect(tasks.every((t) => t !== null)).toBe(true);
          expect(store.getTask(`${CRASH_EXPERIMENT}-c${exp.taskCounter}`)).toBeNull();
          expect(exp.taskCounter - (issued.size + CRASH_POPULATION)).toBeGreaterThanOrEqual(0);
          expect(exp.taskCounter - (issued.size + CRASH_POPULATION)).toBeLessThanOrEqual(1);
          for (const id of taskIds.slice(CRASH_POPULATION)) issued.add(id);
          expect(exp.stepCounter).toBe(exp.taskCounter - CRASH_POPULATION);
          expect(exp.childrenTrained).toBe(individuals.length);
          const events = store.events(CRASH_EXPERIMENT, 0, Infinity);
          expect(events.filter((e) => e.kind === 'step')).toHaveLength(exp.stepCounter);
          expect(events.filter((e) => e.kind === 'child').map((e) => e.data.id)).toEqual(ids);

          // Each task is done exactly when its individual exists; the rest are queued.
          for (const t of tasks) expect(t?.status).toBe(ids.includes(t?.id ?? '') ? 'done' : 'queued');
          const queued = store.queuedTasks(CRASH_EXPERIMENT, Infinity);
          expect(queued.length).toBeLessThanOrEqual(1);
          expect(store.aliveIndividuals(CRASH_EXPERIMENT).length + queued.length).toBe(CRASH_POPULATION);
          for (const i of individuals) expect(i.status === 'removed').toBe(i.removedAt !== null);

          // Sums, in insertion order (the order the store added them).
          let flops = 0;
          let best: number | null = null;
          const perVolunteer = new Map<string, { n: number; flops: number }>();
          for (const i of individuals) {
            flops += i.costFlops;
            if (best === null || i.fitness > best) best = i.fitness;
            const v = perVolunteer.get(i.trainedBy.nickname ?? '') ?? { n: 0, flops: 0 };
            perVolunteer.set(i.trainedBy.nickname ?? '', { n: v.n + 1, flops: v.flops + i.costFlops });
          }
          expect(exp.totalFlops).toBe(flops);
          expect(exp.bestFitness).toBe(best);
          const volunteers = store.volunteers(Infinity);
          expect(volunteers).toHaveLength(perVolunteer.size);
          for (const v of volunteers) {
            expect(v.childrenTrained).toBe(perVolunteer.get(v.nickname)?.n);
            expect(v.flopsDonated).toBe(perVolunteer.get(v.nickname)?.flops);
          }
        } finally {
          store.close();
        }
      }
      expect(done.size).toBeGreaterThan(6 * 8);
    });
  });
});
