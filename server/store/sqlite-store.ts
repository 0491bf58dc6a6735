/**
 * The population store in SQLite (better-sqlite3, one connection, synchronous).
 *
 * Pragmas, set on every open:
 * - journal_mode = WAL: a commit appends to the write-ahead log; readers are
 *   never blocked and a crash mid-transaction leaves the log's uncommitted tail,
 *   which the next open ignores.
 * - synchronous = FULL: the log is fsynced at every commit. With NORMAL a
 *   commit is already safe from a crash of this process (`kill -9`: the bytes
 *   are in the OS page cache, which outlives the process), but the last
 *   commits can be lost if the machine itself goes down (power, kernel). A
 *   commit here is what the server acknowledges to a volunteer (its child
 *   joined, its credit counted) and comes after the weights file was fsynced,
 *   so it should be as durable as that file. The cost, one fsync per commit,
 *   is nothing at this write rate (a few commits per trained child).
 * - foreign_keys = ON: tasks, individuals and events belong to an experiment.
 * - busy_timeout: another process (a backup, the CLI) may briefly hold a lock.
 *
 * Schema migrations are numbered and recorded in `schema_version`; each is
 * applied in its own transaction at open. Every mutating method is one
 * transaction; its preconditions are checked inside it, so a refused call
 * rolls back having changed nothing.
 */
import Database from 'better-sqlite3';
import {
  afterCompletion,
  afterVerification,
  checkAccuracy,
  checkCompleteTask,
  checkEvent,
  checkExperiment,
  checkExperimentPatch,
  checkNewIndividual,
  checkNewTask,
  checkTaskStatus,
  creditVolunteer,
  errors,
  sqlLimit,
  stepEventData,
  toJson,
  type ExperimentPatch,
  type NewIndividual,
  type NewTask,
} from './common.ts';
import type {
  CompleteTask,
  EventRecord,
  ExperimentRecord,
  IndividualRecord,
  IssueChild,
  PopulationStore,
  TaskRecord,
  TaskStatus,
  VolunteerRecord,
} from './types.ts';

/** Migrations, in order; `MIGRATIONS[n]` brings the schema from version n to n + 1. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE experiments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'paused', 'stopped', 'finished')),
    created_at REAL NOT NULL,
    step_counter INTEGER NOT NULL,
    task_counter INTEGER NOT NULL,
    children_trained INTEGER NOT NULL,
    total_flops REAL NOT NULL,
    boost_remaining INTEGER NOT NULL,
    last_improvement_at REAL NOT NULL,
    best_fitness REAL,
    final_result TEXT
  );

  CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    experiment_id TEXT NOT NULL REFERENCES experiments (id),
    kind TEXT NOT NULL CHECK (kind IN ('initial', 'child')),
    parent_id TEXT,
    parent_weights_sha256 TEXT,
    dna TEXT NOT NULL,
    mutations TEXT NOT NULL,
    reset_weights INTEGER NOT NULL CHECK (reset_weights IN (0, 1)),
    seed TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'leased', 'done', 'abandoned')),
    attempts INTEGER NOT NULL,
    created_at REAL NOT NULL
  );
  CREATE INDEX tasks_by_experiment_status ON tasks (experiment_id, status, created_at, seq);
  CREATE INDEX tasks_by_status ON tasks (status);

  CREATE TABLE individuals (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    experiment_id TEXT NOT NULL REFERENCES experiments (id),
    dna TEXT NOT NULL,
    dna_id TEXT NOT NULL,
    parent_id TEXT,
    mutations TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('alive', 'removed')),
    fitness REAL NOT NULL,
    provisional INTEGER NOT NULL CHECK (provisional IN (0, 1)),
    failed INTEGER NOT NULL CHECK (failed IN (0, 1)),
    weights_sha256 TEXT,
    created_at REAL NOT NULL,
    trained_at REAL NOT NULL,
    removed_at REAL,
    params REAL NOT NULL,
    forward_flops REAL NOT NULL,
    cost_flops REAL NOT NULL,
    generation INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    nickname TEXT,
    backend TEXT NOT NULL,
    adapter TEXT,
    claimed_accuracy REAL,
    test_accuracy REAL
  );
  CREATE INDEX individuals_by_experiment_status ON individuals (experiment_id, status);
  CREATE INDEX individuals_by_experiment_fitness ON individuals (experiment_id, fitness);

  CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id TEXT NOT NULL REFERENCES experiments (id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
  );
  CREATE INDEX events_by_experiment ON events (experiment_id, id);

  CREATE TABLE volunteers (
    nickname TEXT PRIMARY KEY,
    children_trained INTEGER NOT NULL,
    flops_donated REAL NOT NULL,
    credit REAL NOT NULL,
    last_seen REAL NOT NULL,
    backends TEXT NOT NULL
  );
  CREATE INDEX volunteers_by_credit ON volunteers (credit);
  `,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

interface ExperimentRow {
  id: string;
  name: string;
  config: string;
  status: ExperimentRecord['status'];
  created_at: number;
  step_counter: number;
  task_counter: number;
  children_trained: number;
  total_flops: number;
  boost_remaining: number;
  last_improvement_at: number;
  best_fitness: number | null;
  final_result: string | null;
}

interface TaskRow {
  id: string;
  experiment_id: string;
  kind: TaskRecord['kind'];
  parent_id: string | null;
  parent_weights_sha256: string | null;
  dna: string;
  mutations: string;
  reset_weights: number;
  seed: string;
  status: TaskStatus;
  attempts: number;
  created_at: number;
}

interface IndividualRow {
  id: string;
  experiment_id: string;
  dna: string;
  dna_id: string;
  parent_id: string | null;
  mutations: string;
  status: IndividualRecord['status'];
  fitness: number;
  provisional: number;
  failed: number;
  weights_sha256: string | null;
  created_at: number;
  trained_at: number;
  removed_at: number | null;
  params: number;
  forward_flops: number;
  cost_flops: number;
  generation: number;
  worker_id: string;
  nickname: string | null;
  backend: string;
  adapter: string | null;
  claimed_accuracy: number | null;
  test_accuracy: number | null;
}

interface EventRow {
  id: number;
  experiment_id: string;
  at: number;
  kind: string;
  data: string;
}

interface VolunteerRow {
  nickname: string;
  children_trained: number;
  flops_donated: number;
  credit: number;
  last_seen: number;
  backends: string;
}

function experimentFromRow(r: ExperimentRow): ExperimentRecord {
  return {
    id: r.id,
    name: r.name,
    config: JSON.parse(r.config) as ExperimentRecord['config'],
    status: r.status,
    createdAt: r.created_at,
    stepCounter: r.step_counter,
    taskCounter: r.task_counter,
    childrenTrained: r.children_trained,
    totalFlops: r.total_flops,
    boostRemaining: r.boost_remaining,
    lastImprovementAt: r.last_improvement_at,
    bestFitness: r.best_fitness,
    finalResult: r.final_result === null ? null : (JSON.parse(r.final_result) as ExperimentRecord['finalResult']),
  };
}

function experimentParams(r: ExperimentRecord): Record<string, unknown> {
  return {
    id: r.id,
    name: r.name,
    config: toJson(r.config, 'experiment config'),
    status: r.status,
    created_at: r.createdAt,
    step_counter: r.stepCounter,
    task_counter: r.taskCounter,
    children_trained: r.childrenTrained,
    total_flops: r.totalFlops,
    boost_remaining: r.boostRemaining,
    last_improvement_at: r.lastImprovementAt,
    best_fitness: r.bestFitness,
    final_result: r.finalResult === null ? null : toJson(r.finalResult, 'finalResult'),
  };
}

function taskFromRow(r: TaskRow): TaskRecord {
  return {
    id: r.id,
    experimentId: r.experiment_id,
    kind: r.kind,
    parentId: r.parent_id,
    parentWeightsSha256: r.parent_weights_sha256,
    dna: JSON.parse(r.dna) as TaskRecord['dna'],
    mutations: JSON.parse(r.mutations) as TaskRecord['mutations'],
    resetWeights: r.reset_weights === 1,
    seed: r.seed,
    status: r.status,
    attempts: r.attempts,
    createdAt: r.created_at,
  };
}

function taskParams(t: NewTask): Record<string, unknown> {
  return {
    id: t.id,
    experiment_id: t.experimentId,
    kind: t.kind,
    parent_id: t.parentId,
    parent_weights_sha256: t.parentWeightsSha256,
    dna: toJson(t.dna, 'task dna'),
    mutations: toJson(t.mutations, 'task mutations'),
    reset_weights: t.resetWeights ? 1 : 0,
    seed: t.seed,
    created_at: t.createdAt,
  };
}

function individualFromRow(r: IndividualRow): IndividualRecord {
  return {
    id: r.id,
    experimentId: r.experiment_id,
    dna: JSON.parse(r.dna) as IndividualRecord['dna'],
    dnaId: r.dna_id,
    parentId: r.parent_id,
    mutations: JSON.parse(r.mutations) as IndividualRecord['mutations'],
    status: r.status,
    fitness: r.fitness,
    provisional: r.provisional === 1,
    failed: r.failed === 1,
    weightsSha256: r.weights_sha256,
    createdAt: r.created_at,
    trainedAt: r.trained_at,
    removedAt: r.removed_at,
    params: r.params,
    forwardFlops: r.forward_flops,
    costFlops: r.cost_flops,
    generation: r.generation,
    trainedBy: { workerId: r.worker_id, nickname: r.nickname, backend: r.backend, adapter: r.adapter },
    claimedAccuracy: r.claimed_accuracy,
    testAccuracy: r.test_accuracy,
  };
}

function individualParams(i: NewIndividual): Record<string, unknown> {
  return {
    id: i.id,
    experiment_id: i.experimentId,
    dna: toJson(i.dna, 'individual dna'),
    dna_id: i.dnaId,
    parent_id: i.parentId,
    mutations: toJson(i.mutations, 'individual mutations'),
    fitness: i.fitness,
    provisional: i.provisional ? 1 : 0,
    failed: i.failed ? 1 : 0,
    weights_sha256: i.weightsSha256,
    created_at: i.createdAt,
    trained_at: i.trainedAt,
    params: i.params,
    forward_flops: i.forwardFlops,
    cost_flops: i.costFlops,
    generation: i.generation,
    worker_id: i.trainedBy.workerId,
    nickname: i.trainedBy.nickname,
    backend: i.trainedBy.backend,
    adapter: i.trainedBy.adapter,
    claimed_accuracy: i.claimedAccuracy,
  };
}

function eventFromRow(r: EventRow): EventRecord {
  return { id: r.id, experimentId: r.experiment_id, at: r.at, kind: r.kind, data: JSON.parse(r.data) as EventRecord['data'] };
}

function volunteerFromRow(r: VolunteerRow): VolunteerRecord {
  return {
    nickname: r.nickname,
    childrenTrained: r.children_trained,
    flopsDonated: r.flops_donated,
    credit: r.credit,
    lastSeen: r.last_seen,
    backends: JSON.parse(r.backends) as VolunteerRecord['backends'],
  };
}

const EXPERIMENT_COLUMNS =
  'id, name, config, status, created_at, step_counter, task_counter, children_trained, total_flops, boost_remaining, last_improvement_at, best_fitness, final_result';
const TASK_COLUMNS = 'id, experiment_id, kind, parent_id, parent_weights_sha256, dna, mutations, reset_weights, seed, status, attempts, created_at';
const INDIVIDUAL_COLUMNS =
  'id, experiment_id, dna, dna_id, parent_id, mutations, status, fitness, provisional, failed, weights_sha256, created_at, trained_at, removed_at, ' +
  'params, forward_flops, cost_flops, generation, worker_id, nickname, backend, adapter, claimed_accuracy, test_accuracy';
const LEADERBOARD_ORDER = 'ORDER BY fitness DESC, trained_at ASC, seq ASC';

function prepareAll(db: Database.Database) {
  const p = <Row = unknown>(sql: string) => db.prepare<unknown[], Row>(sql);
  return {
    getExperiment: p<ExperimentRow>(`SELECT ${EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?`),
    listExperiments: p<ExperimentRow>(`SELECT ${EXPERIMENT_COLUMNS} FROM experiments ORDER BY created_at, seq`),
    insertExperiment: p(
      `INSERT INTO experiments (${EXPERIMENT_COLUMNS}) VALUES (:id, :name, :config, :status, :created_at, :step_counter, :task_counter, ` +
        ':children_trained, :total_flops, :boost_remaining, :last_improvement_at, :best_fitness, :final_result)',
    ),
    updateExperimentFields: p(
      'UPDATE experiments SET status = :status, boost_remaining = :boost_remaining, final_result = :final_result, ' +
        'last_improvement_at = :last_improvement_at WHERE id = :id',
    ),
    countStep: p(
      'UPDATE experiments SET step_counter = step_counter + 1, task_counter = task_counter + 1, ' +
        'boost_remaining = CASE WHEN :used_boost = 1 THEN MAX(boost_remaining - 1, 0) ELSE boost_remaining END WHERE id = :id',
    ),
    countChild: p(
      'UPDATE experiments SET children_trained = :children_trained, total_flops = :total_flops, best_fitness = :best_fitness, ' +
        'last_improvement_at = :last_improvement_at WHERE id = :id',
    ),
    setBest: p('UPDATE experiments SET best_fitness = :best_fitness, last_improvement_at = :last_improvement_at WHERE id = :id'),

    getTask: p<TaskRow>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE id = ?`),
    insertTask: p(
      `INSERT INTO tasks (${TASK_COLUMNS}) VALUES (:id, :experiment_id, :kind, :parent_id, :parent_weights_sha256, :dna, :mutations, ` +
        `:reset_weights, :seed, 'queued', 0, :created_at)`,
    ),
    queuedTasks: p<TaskRow>(
      `SELECT ${TASK_COLUMNS} FROM tasks WHERE experiment_id = ? AND status = 'queued' ORDER BY created_at, seq LIMIT ?`,
    ),
    leasedTasks: p<TaskRow>(`SELECT ${TASK_COLUMNS} FROM tasks WHERE status = 'leased' ORDER BY created_at, seq`),
    setTaskStatus: p('UPDATE tasks SET status = :status, attempts = attempts + :bump WHERE id = :id'),
    openTaskWeights: p<{ sha: string }>(
      "SELECT parent_weights_sha256 AS sha FROM tasks WHERE status IN ('queued', 'leased') AND parent_weights_sha256 IS NOT NULL",
    ),

    getIndividual: p<IndividualRow>(`SELECT ${INDIVIDUAL_COLUMNS} FROM individuals WHERE id = ?`),
    insertIndividual: p(
      `INSERT INTO individuals (${INDIVIDUAL_COLUMNS}) VALUES (:id, :experiment_id, :dna, :dna_id, :parent_id, :mutations, 'alive', ` +
        ':fitness, :provisional, :failed, :weights_sha256, :created_at, :trained_at, NULL, :params, :forward_flops, :cost_flops, ' +
        ':generation, :worker_id, :nickname, :backend, :adapter, :claimed_accuracy, NULL)',
    ),
    removeIndividual: p("UPDATE individuals SET status = 'removed', removed_at = :at WHERE id = :id"),
    aliveIndividuals: p<IndividualRow>(
      `SELECT ${INDIVIDUAL_COLUMNS} FROM individuals WHERE experiment_id = ? AND status = 'alive' ORDER BY seq`,
    ),
    allIndividuals: p<IndividualRow>(`SELECT ${INDIVIDUAL_COLUMNS} FROM individuals WHERE experiment_id = ? ORDER BY seq`),
    leaderboard: p<IndividualRow>(`SELECT ${INDIVIDUAL_COLUMNS} FROM individuals WHERE experiment_id = ? ${LEADERBOARD_ORDER} LIMIT ?`),
    leaderboardWeights: p<{ id: string; parent_id: string | null; sha: string | null }>(
      `SELECT id, parent_id, weights_sha256 AS sha FROM individuals WHERE experiment_id = ? ${LEADERBOARD_ORDER} LIMIT ?`,
    ),
    parentWeights: p<{ parent_id: string | null; sha: string | null }>(
      'SELECT parent_id, weights_sha256 AS sha FROM individuals WHERE id = ?',
    ),
    aliveWeights: p<{ sha: string }>("SELECT weights_sha256 AS sha FROM individuals WHERE status = 'alive' AND weights_sha256 IS NOT NULL"),
    setTestAccuracy: p('UPDATE individuals SET test_accuracy = :accuracy WHERE id = :id'),
    setVerifiedFitness: p('UPDATE individuals SET fitness = :fitness, provisional = 0 WHERE id = :id'),
    bestFitness: p<{ best: number | null }>(
      'SELECT MAX(fitness) AS best FROM individuals WHERE experiment_id = ? AND provisional = 0 AND failed = 0',
    ),

    insertEvent: p('INSERT INTO events (experiment_id, at, kind, data) VALUES (:experiment_id, :at, :kind, :data)'),
    events: p<EventRow>('SELECT id, experiment_id, at, kind, data FROM events WHERE experiment_id = ? AND id > ? ORDER BY id LIMIT ?'),

    getVolunteer: p<VolunteerRow>(
      'SELECT nickname, children_trained, flops_donated, credit, last_seen, backends FROM volunteers WHERE nickname = ?',
    ),
    upsertVolunteer: p(
      'INSERT INTO volunteers (nickname, children_trained, flops_donated, credit, last_seen, backends) ' +
        'VALUES (:nickname, :children_trained, :flops_donated, :credit, :last_seen, :backends) ' +
        'ON CONFLICT (nickname) DO UPDATE SET children_trained = excluded.children_trained, flops_donated = excluded.flops_donated, ' +
        'credit = excluded.credit, last_seen = excluded.last_seen, backends = excluded.backends',
    ),
    volunteers: p<VolunteerRow>(
      'SELECT nickname, children_trained, flops_donated, credit, last_seen, backends FROM volunteers ' +
        'ORDER BY credit DESC, children_trained DESC, nickname ASC LIMIT ?',
    ),
    experimentIds: p<{ id: string }>('SELECT id FROM experiments ORDER BY seq'),
  };
}

type Statements = ReturnType<typeof prepareAll>;

function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)');
  const current = (db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number | null }).v ?? 0;
  if (current > MIGRATIONS.length) {
    throw new Error(`the database has schema version ${current}, newer than this server's ${MIGRATIONS.length}: upgrade Petri`);
  }
  const record = db.prepare('INSERT INTO schema_version (version, applied_at) VALUES (?, ?)');
  for (let v = current; v < MIGRATIONS.length; v++) {
    const sql = MIGRATIONS[v] as string;
    db.transaction(() => {
      db.exec(sql);
      record.run(v + 1, Date.now());
    }).immediate();
  }
}

export class SqliteStore implements PopulationStore {
  private readonly db: Database.Database;
  private readonly s: Statements;

  private readonly txCreateExperiment: Database.Transaction<(record: ExperimentRecord, tasks: readonly NewTask[]) => void>;
  private readonly txUpdateExperiment: Database.Transaction<(id: string, patch: ExperimentPatch) => void>;
  private readonly txSetTaskStatus: Database.Transaction<(id: string, status: 'queued' | 'leased' | 'abandoned', bump: boolean) => void>;
  private readonly txIssueChild: Database.Transaction<(step: IssueChild) => void>;
  private readonly txCompleteTask: Database.Transaction<(done: CompleteTask) => void>;
  private readonly txSetTestAccuracy: Database.Transaction<(id: string, accuracy: number) => void>;
  private readonly txSetVerifiedFitness: Database.Transaction<(id: string, fitness: number) => void>;
  private readonly txAppendEvent: Database.Transaction<(experimentId: string, at: number, kind: string, data: Record<string, unknown>) => void>;
  private readonly txReferencedWeights: Database.Transaction<(keepBest: number) => Set<string>>;

  /** Opens (creating if needed) the database at `path` and brings its schema up to date. */
  static open(path: string): SqliteStore {
    const db = new Database(path);
    try {
      const mode = String(db.pragma('journal_mode = WAL', { simple: true }));
      if (mode !== 'wal' && path !== ':memory:' && path !== '') {
        throw new Error(`SQLite refused WAL mode for ${path} (journal_mode is ${mode})`);
      }
      db.pragma('synchronous = FULL');
      db.pragma('foreign_keys = ON');
      db.pragma('busy_timeout = 5000');
      migrate(db);
      return new SqliteStore(db);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  private constructor(db: Database.Database) {
    this.db = db;
    const s = prepareAll(db);
    this.s = s;

    const experimentRow = (id: string): ExperimentRow => {
      const row = s.getExperiment.get(id);
      if (row === undefined) throw errors.experimentNotFound(id);
      return row;
    };
    const removeAlive = (id: string, experimentId: string, at: number): void => {
      const ind = s.getIndividual.get(id);
      if (ind === undefined || ind.status !== 'alive' || ind.experiment_id !== experimentId) throw errors.notAlive(id, experimentId);
      s.removeIndividual.run({ id, at });
    };
    const insertEvent = (experimentId: string, at: number, kind: string, data: Record<string, unknown>): void => {
      s.insertEvent.run({ experiment_id: experimentId, at, kind, data: toJson(data, 'event data') });
    };

    this.txCreateExperiment = db.transaction((record: ExperimentRecord, tasks: readonly NewTask[]) => {
      checkExperiment(record);
      for (const t of tasks) checkNewTask(t, record.id);
      if (s.getExperiment.get(record.id) !== undefined) throw errors.experimentExists(record.id);
      s.insertExperiment.run(experimentParams(record));
      for (const t of tasks) {
        if (s.getTask.get(t.id) !== undefined) throw errors.taskExists(t.id);
        s.insertTask.run(taskParams(t));
      }
    });

    this.txUpdateExperiment = db.transaction((id: string, patch: ExperimentPatch) => {
      checkExperimentPatch(patch);
      const row = experimentRow(id);
      const finalResult =
        patch.finalResult === undefined ? row.final_result : patch.finalResult === null ? null : toJson(patch.finalResult, 'finalResult');
      s.updateExperimentFields.run({
        id,
        status: patch.status ?? row.status,
        boost_remaining: patch.boostRemaining ?? row.boost_remaining,
        final_result: finalResult,
        last_improvement_at: patch.lastImprovementAt ?? row.last_improvement_at,
      });
    });

    this.txSetTaskStatus = db.transaction((id: string, status: 'queued' | 'leased' | 'abandoned', bump: boolean) => {
      checkTaskStatus(status);
      const task = s.getTask.get(id);
      if (task === undefined) throw errors.taskNotFound(id);
      if (task.status === 'done') throw errors.taskDone(id);
      s.setTaskStatus.run({ id, status, bump: bump ? 1 : 0 });
    });

    this.txIssueChild = db.transaction((step: IssueChild) => {
      checkNewTask(step.task, step.experimentId);
      checkEvent('step', step.at);
      const exp = experimentRow(step.experimentId);
      if (s.getTask.get(step.task.id) !== undefined) throw errors.taskExists(step.task.id);
      if (step.removeId !== null) removeAlive(step.removeId, step.experimentId, step.at);
      s.insertTask.run(taskParams(step.task));
      s.countStep.run({ id: step.experimentId, used_boost: step.usedBoost ? 1 : 0 });
      insertEvent(step.experimentId, step.at, 'step', stepEventData(step, exp.step_counter + 1));
    });

    this.txCompleteTask = db.transaction((done: CompleteTask) => {
      checkCompleteTask(done);
      const task = s.getTask.get(done.taskId);
      if (task === undefined) throw errors.taskNotFound(done.taskId);
      if (task.status !== 'queued' && task.status !== 'leased') throw errors.taskNotOpen(task.id, task.status);
      const ind = done.individual;
      checkNewIndividual(ind, task.id, task.experiment_id);
      if (s.getIndividual.get(ind.id) !== undefined) throw errors.individualExists(ind.id);
      const at = ind.trainedAt;
      if (done.removeId !== null) removeAlive(done.removeId, task.experiment_id, at);
      const exp = experimentFromRow(experimentRow(task.experiment_id));

      s.insertIndividual.run(individualParams(ind));
      s.setTaskStatus.run({ id: task.id, status: 'done', bump: 0 });
      const next = afterCompletion(exp, ind);
      s.countChild.run({
        id: exp.id,
        children_trained: next.childrenTrained,
        total_flops: next.totalFlops,
        best_fitness: next.bestFitness,
        last_improvement_at: next.lastImprovementAt,
      });
      if (done.volunteer !== null) {
        const row = s.getVolunteer.get(done.volunteer.nickname);
        const v = creditVolunteer(row === undefined ? null : volunteerFromRow(row), done.volunteer, at);
        s.upsertVolunteer.run({
          nickname: v.nickname,
          children_trained: v.childrenTrained,
          flops_donated: v.flopsDonated,
          credit: v.credit,
          last_seen: v.lastSeen,
          backends: toJson(v.backends, 'volunteer backends'),
        });
      }
      insertEvent(exp.id, at, done.event.kind, done.event.data);
    });

    this.txSetTestAccuracy = db.transaction((id: string, accuracy: number) => {
      checkAccuracy('test accuracy', accuracy);
      if (s.getIndividual.get(id) === undefined) throw errors.individualNotFound(id);
      s.setTestAccuracy.run({ id, accuracy });
    });

    this.txSetVerifiedFitness = db.transaction((id: string, fitness: number) => {
      checkAccuracy('fitness', fitness);
      const ind = s.getIndividual.get(id);
      if (ind === undefined) throw errors.individualNotFound(id);
      const exp = experimentFromRow(experimentRow(ind.experiment_id));
      s.setVerifiedFitness.run({ id, fitness });
      const best = s.bestFitness.get(exp.id)?.best ?? null;
      const next = afterVerification(exp, best);
      s.setBest.run({ id: exp.id, best_fitness: next.bestFitness, last_improvement_at: next.lastImprovementAt });
    });

    this.txAppendEvent = db.transaction((experimentId: string, at: number, kind: string, data: Record<string, unknown>) => {
      checkEvent(kind, at);
      experimentRow(experimentId);
      insertEvent(experimentId, at, kind, data);
    });

    // A read transaction, so that the set is taken from one consistent snapshot.
    this.txReferencedWeights = db.transaction((keepBest: number) => {
      const limit = sqlLimit(keepBest);
      const keep = new Set<string>();
      for (const r of s.aliveWeights.all()) keep.add(r.sha);
      for (const r of s.openTaskWeights.all()) keep.add(r.sha);
      const walked = new Set<string>();
      for (const { id: expId } of s.experimentIds.all()) {
        for (const best of s.leaderboardWeights.all(expId, limit)) {
          if (best.sha !== null) keep.add(best.sha);
          walked.add(best.id);
          let parentId = best.parent_id;
          while (parentId !== null && !walked.has(parentId)) {
            walked.add(parentId);
            const parent = s.parentWeights.get(parentId);
            if (parent === undefined) break;
            if (parent.sha !== null) keep.add(parent.sha);
            parentId = parent.parent_id;
          }
        }
      }
      return keep;
    });
  }

  /** The connection's pragmas, for checks and diagnostics. */
  pragmas(): { journalMode: string; synchronous: number; foreignKeys: number; schemaVersion: number } {
    this.ensureOpen();
    return {
      journalMode: String(this.db.pragma('journal_mode', { simple: true })),
      synchronous: Number(this.db.pragma('synchronous', { simple: true })),
      foreignKeys: Number(this.db.pragma('foreign_keys', { simple: true })),
      schemaVersion: (this.db.prepare('SELECT MAX(version) AS v FROM schema_version').get() as { v: number }).v,
    };
  }

  private ensureOpen(): void {
    if (!this.db.open) throw errors.closed();
  }

  createExperiment(record: ExperimentRecord, initialTasks: readonly NewTask[]): void {
    this.ensureOpen();
    this.txCreateExperiment.immediate(record, initialTasks);
  }

  getExperiment(id: string): ExperimentRecord | null {
    this.ensureOpen();
    const row = this.s.getExperiment.get(id);
    return row === undefined ? null : experimentFromRow(row);
  }

  listExperiments(): ExperimentRecord[] {
    this.ensureOpen();
    return this.s.listExperiments.all().map(experimentFromRow);
  }

  updateExperiment(id: string, patch: ExperimentPatch): void {
    this.ensureOpen();
    this.txUpdateExperiment.immediate(id, patch);
  }

  queuedTasks(experimentId: string, limit: number): TaskRecord[] {
    this.ensureOpen();
    return this.s.queuedTasks.all(experimentId, sqlLimit(limit)).map(taskFromRow);
  }

  getTask(id: string): TaskRecord | null {
    this.ensureOpen();
    const row = this.s.getTask.get(id);
    return row === undefined ? null : taskFromRow(row);
  }

  leasedTasks(): TaskRecord[] {
    this.ensureOpen();
    return this.s.leasedTasks.all().map(taskFromRow);
  }

  setTaskStatus(id: string, status: 'queued' | 'leased' | 'abandoned', bumpAttempts = false): void {
    this.ensureOpen();
    this.txSetTaskStatus.immediate(id, status, bumpAttempts);
  }

  issueChild(step: IssueChild): void {
    this.ensureOpen();
    this.txIssueChild.immediate(step);
  }

  completeTask(done: CompleteTask): void {
    this.ensureOpen();
    this.txCompleteTask.immediate(done);
  }

  getIndividual(id: string): IndividualRecord | null {
    this.ensureOpen();
    const row = this.s.getIndividual.get(id);
    return row === undefined ? null : individualFromRow(row);
  }

  aliveIndividuals(experimentId: string): IndividualRecord[] {
    this.ensureOpen();
    return this.s.aliveIndividuals.all(experimentId).map(individualFromRow);
  }

  allIndividuals(experimentId: string): IndividualRecord[] {
    this.ensureOpen();
    return this.s.allIndividuals.all(experimentId).map(individualFromRow);
  }

  leaderboard(experimentId: string, limit: number): IndividualRecord[] {
    this.ensureOpen();
    return this.s.leaderboard.all(experimentId, sqlLimit(limit)).map(individualFromRow);
  }

  lineage(id: string): IndividualRecord[] {
    this.ensureOpen();
    const out: IndividualRecord[] = [];
    const seen = new Set<string>([id]);
    let parentId = this.s.getIndividual.get(id)?.parent_id ?? null;
    while (parentId !== null && !seen.has(parentId)) {
      const parent = this.s.getIndividual.get(parentId);
      if (parent === undefined) break;
      seen.add(parentId);
      out.push(individualFromRow(parent));
      parentId = parent.parent_id;
    }
    return out;
  }

  setTestAccuracy(id: string, accuracy: number): void {
    this.ensureOpen();
    this.txSetTestAccuracy.immediate(id, accuracy);
  }

  setVerifiedFitness(id: string, fitness: number): void {
    this.ensureOpen();
    this.txSetVerifiedFitness.immediate(id, fitness);
  }

  appendEvent(experimentId: string, at: number, kind: string, data: Record<string, unknown>): void {
    this.ensureOpen();
    this.txAppendEvent.immediate(experimentId, at, kind, data);
  }

  events(experimentId: string, afterId: number, limit: number): EventRecord[] {
    this.ensureOpen();
    return this.s.events.all(experimentId, afterId, sqlLimit(limit)).map(eventFromRow);
  }

  volunteers(limit: number): VolunteerRecord[] {
    this.ensureOpen();
    return this.s.volunteers.all(sqlLimit(limit)).map(volunteerFromRow);
  }

  referencedWeights(keepBest: number): Set<string> {
    this.ensureOpen();
    return this.txReferencedWeights.deferred(keepBest);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
