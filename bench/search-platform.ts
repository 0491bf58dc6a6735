/**
 * Search quality per FLOP through the real platform: each run is a
 * `petri serve` with its experiment and local `petri worker` processes (see
 * bench/search/platform.ts).
 *
 *   npx tsx bench/search-platform.ts --dataset fashion-mnist|synthetic --budget-children N --steps N
 *     --population N --workers N --seeds 1,2,3 --runs evolution,random,no-inherit[,pop2,boost,reset]
 *     --out DIR [--data-dir DIR] [--work-dir DIR] [--patience N] [--boost-children N]
 *     [--random-max-chain N] [--max-run-seconds S] [--any-plateau] [--plateau-after N] [--smoke] [--quiet]
 *   npx tsx bench/search-platform.ts --collect URL --token T --experiment ID --kind K --seeds S --out DIR
 *     (the report of one experiment on a running server, as far as it got)
 *
 * `evolution`: the paper's tournament with weight inheritance from the
 * linear initial population; `random`: random search (`--selection random`:
 * the initial DNA plus 1..N mutations, from scratch); `no-inherit`: every
 * child from scratch; `pop2`: a population of 2; `boost` and `reset`:
 * evolution, with the remedy applied once through the admin API when the
 * best evolved network has not improved for --patience trainings (any best
 * with --any-plateau, the linear models' plateau included), and not before
 * --plateau-after trainings. The hand
 * CNN is not a search; `npx tsx bench/search.ts --runs hand --hand-flops F`
 * trains it for an evolution run's FLOPs, and `bench/search.ts --merge`
 * joins the reports.
 *
 * Writes DIR/report.json, DIR/progress.svg and one CSV per run, and prints a table.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDataset } from '../server/datasets/index.ts';
import { RUN_KINDS, type RunKind, type RunResult } from './search/core.ts';
import { collectRun, PLATFORM_KINDS, runOnPlatform, type PlatformKind, type PlatformOptions } from './search/platform.ts';
import { flopsTable, summarise, table, writeReport, type Report } from './search.ts';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dataset: { type: 'string', default: 'synthetic' },
      'data-dir': { type: 'string', default: 'petri-data' },
      'work-dir': { type: 'string' },
      'budget-children': { type: 'string' },
      steps: { type: 'string' },
      population: { type: 'string' },
      workers: { type: 'string' },
      seeds: { type: 'string', default: '1' },
      runs: { type: 'string', default: 'evolution,random,no-inherit' },
      out: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      patience: { type: 'string' },
      'any-plateau': { type: 'boolean', default: false },
      'plateau-after': { type: 'string' },
      'boost-children': { type: 'string' },
      'random-max-chain': { type: 'string' },
      'max-run-seconds': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      collect: { type: 'string' },
      token: { type: 'string' },
      experiment: { type: 'string' },
      kind: { type: 'string' },
    },
  });
  const out = values.out;
  if (out === undefined) throw new Error('--out DIR is required');
  if (values.collect !== undefined) {
    await collect(values, out);
    return;
  }
  const smoke = values.smoke;
  const num = (name: string, text: string | undefined, fallback: number): number => {
    const n = text === undefined ? fallback : Number(text);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} needs a whole number, got "${String(text)}"`);
    return n;
  };
  const budgetChildren = num('budget-children', values['budget-children'], smoke ? 8 : 300);
  const runs = values.runs.split(',').map((r) => r.trim()) as PlatformKind[];
  for (const r of runs) {
    if (!PLATFORM_KINDS.includes(r)) throw new Error(`unknown run '${r}'; known: ${PLATFORM_KINDS.join(', ')} (the hand CNN: bench/search.ts --runs hand)`);
  }
  const seeds = values.seeds.split(',').map((s) => num('seeds', s.trim(), 1));
  const log = values.quiet ? undefined : (line: string) => console.log(line);
  const dataDir = resolve(values['data-dir']);
  // The runs' own data directories get hard-linked copies of this prepared dataset.
  await ensureDataset(dataDir, values.dataset, { log });
  const workRoot = resolve(values['work-dir'] ?? join(out, 'work'));
  const opts: PlatformOptions = {
    dataset: values.dataset,
    preparedDir: dataDir,
    workRoot,
    cacheDir: join(workRoot, 'worker-cache'),
    budgetChildren,
    steps: num('steps', values.steps, smoke ? 10 : 150),
    batchSize: 50,
    population: num('population', values.population, smoke ? 3 : 10),
    workers: num('workers', values.workers, smoke ? 1 : 2),
    randomMaxChain: num('random-max-chain', values['random-max-chain'], 12),
    patience: num('patience', values.patience, Math.max(2, Math.round(budgetChildren / 10))),
    anyPlateau: values['any-plateau'],
    plateauAfter: num('plateau-after', values['plateau-after'], 0),
    boostChildren: num('boost-children', values['boost-children'], Math.max(2, Math.round(budgetChildren / 10))),
    maxRunSeconds: num('max-run-seconds', values['max-run-seconds'], 0),
    log,
  };
  if (opts.population < 2 || opts.steps < 1 || opts.workers < 1 || budgetChildren <= opts.population) {
    throw new Error('need --population >= 2, --steps >= 1, --workers >= 1 and --budget-children above the population');
  }

  const started = Date.now();
  const loadAtStart = loadavg();
  const results: RunResult[] = [];
  for (const seed of seeds) for (const kind of runs) results.push(await runOnPlatform(kind, seed, opts));
  const report: Report = {
    format: 'petri-search-report/1',
    dataset: values.dataset,
    options: { ...opts, log: undefined, via: 'platform: petri serve + petri worker', stepsPerChild: opts.steps, seeds, runs, smoke },
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      loadavgAtStart: loadAtStart,
      backend: 'wasm (petri worker)',
      node: process.version,
    },
    startedAt: new Date(started).toISOString(),
    wallSeconds: (Date.now() - started) / 1000,
    runs: results,
    summary: summarise(results),
  };
  writeReport(out, report);
  console.log(table(report));
  console.log(`\n${flopsTable(report)}`);
  console.log(`wrote ${join(out, 'report.json')} and ${join(out, 'progress.svg')} in ${report.wallSeconds.toFixed(0)} s`);
}

/**
 * --collect URL --token T --experiment ID --kind K --seeds S: the report of one
 * experiment on a running server as far as it got (e.g. one stopped early).
 */
async function collect(values: { collect?: string; token?: string; experiment?: string; kind?: string; seeds: string; steps?: string; population?: string; dataset: string }, out: string): Promise<void> {
  const { collect: url, token, experiment, kind } = values;
  if (url === undefined || token === undefined || experiment === undefined || kind === undefined) {
    throw new Error('--collect URL needs --token (the admin token), --experiment ID and --kind (evolution, random, ...)');
  }
  if (!(RUN_KINDS as readonly string[]).includes(kind)) throw new Error(`unknown --kind '${kind}'; known: ${RUN_KINDS.join(', ')}`);
  const run = await collectRun({
    url,
    token,
    experimentId: experiment,
    kind: kind as RunKind,
    seed: Number(values.seeds),
    steps: Number(values.steps ?? 150),
    population: Number(values.population ?? 10),
    truncated: true,
  });
  const report: Report = {
    format: 'petri-search-report/1',
    dataset: values.dataset,
    options: { via: `collected from ${url} (experiment ${experiment})`, stepsPerChild: Number(values.steps ?? 150) },
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), loadavgAtStart: loadavg(), backend: 'wasm (petri worker)', node: process.version },
    startedAt: new Date().toISOString(),
    wallSeconds: run.seconds,
    runs: [run],
    summary: summarise([run]),
  };
  writeReport(out, report);
  console.log(table(report));
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
