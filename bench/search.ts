/**
 * Search quality per FLOP: Petri's evolution against baselines, in process.
 *
 *   npx tsx bench/search.ts --dataset fashion-mnist|synthetic --budget-children N --steps N
 *     --population N --seeds 1,2,3 --runs evolution,random,no-inherit,hand[,pop2,boost,reset]
 *     --out DIR [--smoke] [--data-dir DIR] [--patience N] [--boost-children N]
 *     [--random-max-chain N] [--hand-flops F] [--hand-segments N] [--max-run-seconds S] [--no-augment] [--quiet]
 *   npx tsx bench/search.ts --merge DIR1,DIR2,... --out DIR
 *
 * Runs (see bench/search/core.ts): `evolution` (paper tournament, weight
 * inheritance, from the linear initial population), `random` (random chains
 * of mutations of the initial DNA, trained from scratch), `no-inherit`
 * (evolution, every child from scratch), `hand` (a small hand-designed CNN
 * trained for the compute the evolution run of the same seed spent, or
 * --hand-flops), and the paper's analyses: `pop2` (population of 2),
 * `boost` (5 mutations per child for a while at a plateau), `reset` (every
 * member's weights reset at a plateau). --budget-children counts every
 * training of a run, the initial population included.
 *
 * Writes DIR/report.json, DIR/progress.svg and DIR/<run>-seed<k>.csv, and
 * prints a table. --merge combines the report.json of several output
 * folders (e.g. runs done in parallel processes) into one.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { ensureDataset, loadSplit } from '../server/datasets/index.ts';
import { initNodeBackend } from '../server/tf-backend.ts';
import { failures, RUN_KINDS, runEvolution, runHand, runRandom, type Data, type RunKind, type RunResult, type SearchOptions } from './search/core.ts';
import { progressSvg } from './search/svg.ts';

export interface Summary {
  readonly kind: RunKind;
  readonly seeds: number[];
  readonly bestValidation: Stat;
  readonly bestTest: Stat;
  readonly totalFlops: Stat;
  readonly trainings: number;
  readonly seconds: Stat;
}

interface Stat {
  readonly mean: number;
  readonly sd: number;
  readonly min: number;
  readonly max: number;
}

export interface Report {
  readonly format: 'petri-search-report/1';
  readonly dataset: string;
  readonly options: Record<string, unknown>;
  readonly machine: { cpu: string; cores: number; memoryGiB: number; loadavgAtStart: number[]; backend: string; node: string };
  readonly startedAt: string;
  readonly wallSeconds: number;
  readonly runs: RunResult[];
  readonly summary: Summary[];
  /** Individuals whose training or evaluation threw (counted as failed children, fitness 0). */
  readonly failures?: { message: string; edges: string }[];
}

function stat(values: readonly number[]): Stat {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, n);
  const sd = n > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sd, min: Math.min(...values), max: Math.max(...values) };
}

export function summarise(runs: readonly RunResult[]): Summary[] {
  const out: Summary[] = [];
  for (const kind of RUN_KINDS) {
    const rs = runs.filter((r) => r.kind === kind);
    if (rs.length === 0) continue;
    out.push({
      kind,
      seeds: rs.map((r) => r.seed),
      bestValidation: stat(rs.map((r) => r.bestValidation)),
      bestTest: stat(rs.map((r) => r.bestTest)),
      totalFlops: stat(rs.map((r) => r.totalFlops)),
      trainings: rs.reduce((a, r) => a + r.trainings, 0),
      seconds: stat(rs.map((r) => r.seconds)),
    });
  }
  return out;
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

/** The table printed at the end (and pasted into docs/RESULTS.md). */
export function table(report: Report): string {
  const lines: string[] = [];
  lines.push('| run | seed | trainings | compute (FLOPs) | best val | its test | best model | wall |');
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const r of report.runs) {
    const b = r.best;
    lines.push(
      `| ${r.kind}${r.kind === 'pop2' ? '' : ` (P=${r.population})`} | ${r.seed} | ${r.trainings} | ${r.totalFlops.toExponential(2)} | ${pct(r.bestValidation)} | ${pct(r.bestTest)} | ` +
        `${b.convs} conv, ${b.params} params, lr ${b.learningRate}, ${b.stepsTrained} steps | ${r.seconds.toFixed(0)} s${r.truncated ? ' (stopped before its budget)' : ''} |`,
    );
  }
  lines.push('');
  lines.push('| run | seeds | best val mean ± sd | test mean ± sd (min..max) | compute mean |');
  lines.push('|---|---|---|---|---|');
  for (const s of report.summary) {
    lines.push(
      `| ${s.kind} | ${s.seeds.join(',')} | ${pct(s.bestValidation.mean)} ± ${pct(s.bestValidation.sd)} | ${pct(s.bestTest.mean)} ± ${pct(s.bestTest.sd)} (${pct(s.bestTest.min)}..${pct(s.bestTest.max)}) | ${s.totalFlops.mean.toExponential(2)} |`,
    );
  }
  return lines.join('\n');
}

/** Best validation accuracy within each compute budget: per run, then the mean per kind over the runs that reached it. */
export function flopsTable(report: Report, budgets: readonly number[] = [1e10, 3e10, 1e11, 2e11]): string {
  // null: the run ended before x; undefined: nothing validated by x yet (the hand CNN's first point comes late).
  const at = (r: RunResult, x: number): number | null | undefined => {
    if (r.totalFlops < x * 0.999) return null;
    const seen = r.trace.filter((t) => t.flops <= x);
    return seen.length === 0 ? undefined : Math.max(...seen.map((t) => t.best));
  };
  const lines = [`| run | seed | ${budgets.map((x) => `best val by ${x.toExponential(0)} FLOPs`).join(' | ')} |`, `|---|---|${'---|'.repeat(budgets.length)}`];
  for (const r of report.runs) {
    lines.push(`| ${r.kind} | ${r.seed} | ${budgets.map((x) => {
      const v = at(r, x);
      return v === null ? `(ended at ${r.totalFlops.toExponential(1)}: ${pct(r.bestValidation)})` : v === undefined ? '—' : pct(v);
    }).join(' | ')} |`);
  }
  lines.push('', `| run | ${budgets.map((x) => `mean best val by ${x.toExponential(0)} (runs that got there)`).join(' | ')} |`, `|---|${'---|'.repeat(budgets.length)}`);
  for (const s of report.summary) {
    const rs = report.runs.filter((r) => r.kind === s.kind);
    lines.push(`| ${s.kind} | ${budgets.map((x) => {
      const vs = rs.map((r) => at(r, x)).filter((v): v is number => typeof v === 'number');
      return vs.length === 0 ? '—' : `${pct(vs.reduce((a, b) => a + b, 0) / vs.length)} (${vs.length}/${rs.length})`;
    }).join(' | ')} |`);
  }
  return lines.join('\n');
}

function csv(run: RunResult): string {
  const rows = ['trainings,flops,fitness,best,best_alive,params,event,seconds'];
  for (const t of run.trace) rows.push([t.trainings, t.flops, t.fitness, t.best, t.bestAlive, t.params, t.event, t.seconds.toFixed(1)].join(','));
  return rows.join('\n') + '\n';
}

/** Writes report.json, progress.svg and the CSVs. */
export function writeReport(dir: string, report: Report): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'report.json'), JSON.stringify(report, null, 1) + '\n');
  const title = `${report.dataset}: ${String(report.options.stepsPerChild)} steps per child, batch ${String(report.options.batchSize)}, ${String(report.options.budgetChildren)} trainings per run, population ${String(report.options.population)}`;
  writeFileSync(join(dir, 'progress.svg'), progressSvg(report.runs, title));
  for (const r of report.runs) writeFileSync(join(dir, `${r.kind}-seed${r.seed}.csv`), csv(r));
}

function intList(text: string): number[] {
  return text.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n)) throw new Error(`not an integer: ${s}`);
    return n;
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dataset: { type: 'string', default: 'synthetic' },
      'data-dir': { type: 'string', default: 'petri-data' },
      'budget-children': { type: 'string' },
      steps: { type: 'string' },
      population: { type: 'string' },
      seeds: { type: 'string', default: '1' },
      runs: { type: 'string', default: 'evolution,random,no-inherit,hand' },
      out: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      patience: { type: 'string' },
      'boost-children': { type: 'string' },
      'random-max-chain': { type: 'string' },
      'hand-flops': { type: 'string' },
      'hand-segments': { type: 'string' },
      'max-run-seconds': { type: 'string' },
      'no-augment': { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      merge: { type: 'string' },
    },
  });
  const out = values.out;
  if (out === undefined) throw new Error('--out DIR is required');

  if (values.merge !== undefined) {
    const parts = values.merge.split(',').map((d) => JSON.parse(readFileSync(join(d, 'report.json'), 'utf8')) as Report);
    const first = parts[0];
    if (first === undefined) throw new Error('--merge needs at least one folder');
    const runs = parts.flatMap((p) => p.runs).sort((a, b) => RUN_KINDS.indexOf(a.kind) - RUN_KINDS.indexOf(b.kind) || a.seed - b.seed);
    const merged: Report = {
      ...first,
      wallSeconds: Math.max(...parts.map((p) => p.wallSeconds)),
      options: { ...first.options, mergedFrom: values.merge, wallSecondsPerPart: parts.map((p) => p.wallSeconds) },
      runs,
      summary: summarise(runs),
    };
    writeReport(out, merged);
    console.log(table(merged));
    console.log(`\n${flopsTable(merged)}`);
    return;
  }

  const smoke = values.smoke;
  const num = (v: string | undefined, fallback: number): number => (v === undefined ? fallback : Number(v));
  const steps = num(values.steps, smoke ? 10 : 300);
  const population = num(values.population, smoke ? 3 : 10);
  const budgetChildren = num(values['budget-children'], smoke ? 6 : 60);
  const runs = values.runs.split(',').map((r) => r.trim()) as RunKind[];
  for (const r of runs) if (!RUN_KINDS.includes(r)) throw new Error(`unknown run '${r}'; known: ${RUN_KINDS.join(', ')}`);
  const seeds = intList(values.seeds);
  const opts: SearchOptions = {
    budgetChildren,
    steps,
    population,
    batchSize: 50,
    augment: !values['no-augment'],
    randomMaxChain: num(values['random-max-chain'], 12),
    patience: num(values.patience, Math.max(2, Math.round(budgetChildren / 6))),
    boostChildren: num(values['boost-children'], Math.max(2, Math.round(budgetChildren / 6))),
    boostMutations: 5,
    handSegments: num(values['hand-segments'], smoke ? 2 : 8),
    maxRunSeconds: num(values['max-run-seconds'], 0),
    log: values.quiet ? undefined : (line) => console.log(line),
  };
  for (const [k, v] of Object.entries({ steps, population, budgetChildren })) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer`);
  }
  if (population < 2) throw new Error('population must be at least 2');

  const started = Date.now();
  const backend = await initNodeBackend('wasm');
  const dataset = values.dataset;
  // The smoke run uses a small synthetic dataset of its own (its size is part of the prepared copy's identity).
  const synthetic = smoke ? { train: 600, test: 200, seed: 1 } : { train: 5000, test: 1000, seed: 1 };
  const dataDir = values['data-dir'];
  const prepared = await ensureDataset(dataDir, dataset, { synthetic, log: opts.log });
  const data: Data = {
    train: await loadSplit(dataDir, dataset, 'train'),
    validation: await loadSplit(dataDir, dataset, 'validation'),
    test: await loadSplit(dataDir, dataset, 'test'),
    numClasses: prepared.manifest.numClasses,
  };
  opts.log?.(`${dataset}: ${data.train.count} train, ${data.validation.count} validation, ${data.test.count} test, ${data.train.shape.join('x')}; backend ${backend.backend}`);

  const results: RunResult[] = [];
  const handFlops = values['hand-flops'] === undefined ? undefined : Number(values['hand-flops']);
  for (const seed of seeds) {
    for (const kind of runs.filter((r) => r !== 'hand')) {
      results.push(kind === 'random' ? await runRandom(seed, data, opts) : await runEvolution(kind, seed, data, opts));
    }
    if (runs.includes('hand')) {
      // The same compute as the evolution run of this seed (else: the given budget, else the mean of the runs so far).
      const reference = results.find((r) => r.seed === seed && r.kind === 'evolution');
      const others = results.filter((r) => r.seed === seed);
      const budget = handFlops ?? reference?.totalFlops ?? (others.length > 0 ? others.reduce((a, r) => a + r.totalFlops, 0) / others.length : undefined);
      if (budget === undefined) throw new Error('hand alone needs --hand-flops (or an evolution run of the same seed)');
      results.push(await runHand(seed, budget, data, opts));
    }
  }
  const report: Report = {
    format: 'petri-search-report/1',
    dataset,
    options: { ...opts, log: undefined, stepsPerChild: steps, seeds, runs, smoke, dataDir, handFlops: handFlops ?? 'evolution run of the same seed' },
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      loadavgAtStart: loadavg(),
      backend: tf.getBackend(),
      node: process.version,
    },
    startedAt: new Date(started).toISOString(),
    wallSeconds: (Date.now() - started) / 1000,
    runs: results,
    summary: summarise(results),
    failures: failures.map((f) => ({ message: f.message, edges: f.dna.edges.map((e) => `${e.id}:${e.from}->${e.to}:${e.role}:${e.type}`).join(' ') })),
  };
  writeReport(out, report);
  console.log(table(report));
  console.log(`\n${flopsTable(report)}`);
  console.log(`wrote ${join(out, 'report.json')} and ${join(out, 'progress.svg')} in ${report.wallSeconds.toFixed(0)} s`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  });
}
