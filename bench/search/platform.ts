/**
 * One search run through the real platform: a `petri serve` process with
 * the run's experiment, local `petri worker` processes training its
 * children, and this driver watching over HTTP as an operator would (and,
 * for the boost and reset analyses, applying the remedy through the admin
 * API once the population sits on a plateau of evolved networks). At the
 * end the server's final report gives the best model's test accuracy, and
 * the individuals list (the server's own numbers: fitness, the paper's
 * compute accounting, parents, removal times) becomes the run's trace.
 */
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Dna } from '../../shared/evolution/dna.ts';
import type { MutationName } from '../../shared/evolution/mutations.ts';
import { getJson, startPetri, startServer, until, type RunningProcess } from '../../e2e/support/processes.ts';
import type { RunKind, RunResult, TracePoint } from './core.ts';

export interface PlatformOptions {
  readonly dataset: string;
  /** A data directory whose datasets/ and shards/ are prepared; each run gets a hard-linked copy. */
  readonly preparedDir: string;
  /** Where the runs' data directories go. */
  readonly workRoot: string;
  /** The worker processes' shard cache. */
  readonly cacheDir: string;
  /** Trainings per run, the initial population included (the experiment's --max-children). */
  readonly budgetChildren: number;
  readonly steps: number;
  readonly batchSize: number;
  readonly population: number;
  /** `petri worker --workers N`. */
  readonly workers: number;
  /** Random search: chains of 1..randomMaxChain mutations. */
  readonly randomMaxChain: number;
  /** Trainings without a new best that make a plateau (boost and reset runs). */
  readonly patience: number;
  /** Apply the remedy at any plateau, the linear models' included (for the smoke run). */
  readonly anyPlateau: boolean;
  /** No remedy before this many trainings (the paper applied its remedies late in a run). */
  readonly plateauAfter: number;
  readonly boostChildren: number;
  /** Stops a run after this long (it is then marked truncated); 0: no limit. */
  readonly maxRunSeconds: number;
  readonly log?: (line: string) => void;
}

/** What GET /api/experiments/:id/individuals returns per individual (the fields used here). */
interface PublicIndividual {
  readonly id: string;
  readonly status: 'alive' | 'removed';
  readonly fitness: number;
  readonly provisional: boolean;
  readonly failed: boolean;
  readonly params: number;
  readonly flops: number;
  readonly costFlops: number;
  readonly depth: number;
  readonly learningRate: number;
  readonly parentId: string | null;
  readonly mutations: readonly { name: MutationName; detail: string }[];
  readonly trainedAt: number;
  readonly removedAt: number | null;
}

interface ExperimentView {
  readonly id: string;
  readonly status: string;
}

interface FinalView {
  readonly bestId: string;
  readonly bestTestAccuracy: number;
}

export const PLATFORM_KINDS = ['evolution', 'random', 'no-inherit', 'pop2', 'boost', 'reset'] as const satisfies readonly RunKind[];
export type PlatformKind = (typeof PLATFORM_KINDS)[number];

/** The `petri serve` flags of a run. */
export function experimentFlags(kind: PlatformKind, seed: number, o: PlatformOptions): string[] {
  const flags = [
    ['--preset', 'lab'],
    ['--dataset', o.dataset],
    ['--population', String(kind === 'pop2' ? 2 : o.population)],
    ['--steps', String(o.steps)],
    ['--batch-size', String(o.batchSize)],
    ['--max-children', String(o.budgetChildren)],
    ['--seed', `search-${seed}`],
    // Remedies only where this driver applies them (at a plateau of evolved networks).
    ['--boost', 'manual'],
    ['--reset', 'manual'],
    ['--boost-children', String(o.boostChildren)],
  ].flat();
  if (kind === 'random') flags.push('--selection', 'random', '--mutations', String(o.randomMaxChain));
  if (kind === 'no-inherit') flags.push('--no-inherit');
  return flags;
}

const post = async (url: string, token: string, body: unknown): Promise<unknown> => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
  const json: unknown = await res.json();
  if (!res.ok) throw new Error(`POST ${url}: ${res.status} ${JSON.stringify(json)}`);
  return json;
};

/** Individuals in the order they joined, trained ones only. */
function joined(all: readonly PublicIndividual[]): PublicIndividual[] {
  return all.filter((i) => i.trainedAt > 0).sort((a, b) => a.trainedAt - b.trainedAt || a.id.localeCompare(b.id, 'en', { numeric: true }));
}

/**
 * The plateau the paper's remedies are for: the best has not improved for
 * `patience` trainings, and (`late`) the best is an evolved network (at
 * least one convolution), not the linear models the search starts from.
 */
export function atPlateau(individuals: readonly PublicIndividual[], patience: number, late: boolean): boolean {
  const order = joined(individuals);
  let best = -1;
  let bestAt = 0;
  let bestDepth = 0;
  order.forEach((ind, i) => {
    if (!ind.failed && ind.fitness > best) {
      best = ind.fitness;
      bestAt = i + 1;
      bestDepth = ind.depth;
    }
  });
  return (!late || bestDepth > 0) && order.length - bestAt >= patience;
}

/** Training steps along each individual's lineage since its last fresh start. */
function lineageSteps(order: readonly PublicIndividual[], steps: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const ind of order) {
    const fresh = ind.parentId === null || ind.mutations.some((m) => m.name === 'RESET-WEIGHTS');
    const inherited = fresh ? 0 : (out.get(ind.parentId as string) ?? 0);
    out.set(ind.id, inherited + (ind.failed ? 0 : steps));
  }
  return out;
}

/** The run's curve and totals from the server's individuals (the paper's compute accounting is the server's). */
export function traceOf(all: readonly PublicIndividual[], inheritWeights: boolean, steps: number, startedAt: number): { trace: TracePoint[]; flops: number; failed: number; lineage: Map<string, number> } {
  const order = joined(all);
  const trace: TracePoint[] = [];
  let flops = 0;
  let best = 0;
  let failed = 0;
  for (const [i, ind] of order.entries()) {
    flops += ind.costFlops;
    if (ind.failed) failed++;
    else best = Math.max(best, ind.fitness);
    // Alive at this moment: joined by now and not yet removed.
    let bestAlive = 0;
    for (const other of order.slice(0, i + 1)) {
      if (!other.failed && (other.removedAt === null || other.removedAt > ind.trainedAt)) bestAlive = Math.max(bestAlive, other.fitness);
    }
    const event =
      ind.parentId === null ? (ind.mutations.length === 0 ? 'initial' : 'random') : ind.mutations.some((m) => m.detail.startsWith('plateau remedy')) ? 'reset' : ind.mutations.length > 1 ? 'boost' : 'child';
    trace.push({ trainings: i + 1, flops, fitness: ind.failed ? 0 : ind.fitness, best, bestAlive, params: ind.params, event, seconds: (ind.trainedAt - startedAt) / 1000 });
  }
  return { trace, flops, failed, lineage: inheritWeights ? lineageSteps(order, steps) : new Map(order.map((o) => [o.id, o.failed ? 0 : steps])) };
}

export interface CollectOptions {
  readonly url: string;
  readonly token: string;
  readonly experimentId: string;
  readonly kind: RunKind;
  readonly seed: number;
  /** Steps per child (for the lineage steps of the best model). */
  readonly steps: number;
  readonly population: number;
  /** When the run started (ms since the epoch), for the trace's seconds; default: the experiment's creation. */
  readonly startedAt?: number;
  readonly truncated?: boolean;
}

/**
 * A run's result from an experiment on a running server, as far as it got:
 * the individuals (the server's fitness and compute accounting), the
 * remedies from its events, and the final report's best model and its test
 * accuracy (the admin token is needed for that).
 */
export async function collectRun(c: CollectOptions): Promise<RunResult> {
  const base = `${c.url}/api/experiments/${c.experimentId}`;
  const experiment = await getJson<ExperimentView & { createdAt: number; config: { inheritWeights: boolean; selection: string } }>(base);
  const individuals = await getJson<PublicIndividual[]>(`${base}/individuals`);
  const events = await getJson<{ at: number; kind: string; data: { remedy?: 'boost' | 'reset' } }[]>(`${base}/events?after=0`);
  const final = (await post(`${base}/final`, c.token, { k: 1 })) as FinalView;
  const best = individuals.find((i) => i.id === final.bestId);
  if (best === undefined) throw new Error(`the final report's best ${final.bestId} is not in the population of ${c.experimentId}`);
  const bestDetail = await getJson<PublicIndividual & { dna: Dna }>(`${c.url}/api/individuals/${final.bestId}`);
  const startedAt = c.startedAt ?? experiment.createdAt;
  const inherit = experiment.config.inheritWeights && experiment.config.selection !== 'random';
  const { trace, flops, failed, lineage } = traceOf(individuals, inherit, c.steps, startedAt);
  const order = joined(individuals);
  const remedies = events
    .filter((e) => e.kind === 'remedy' && e.data.remedy !== undefined)
    .map((e) => ({ kind: e.data.remedy as 'boost' | 'reset', atTraining: order.filter((i) => i.trainedAt <= e.at).length }));
  const mutationCounts: Partial<Record<MutationName, number>> = {};
  for (const ind of individuals) for (const m of ind.mutations) mutationCounts[m.name] = (mutationCounts[m.name] ?? 0) + 1;
  return {
    kind: c.kind,
    seed: c.seed,
    population: c.population,
    trainings: trace.length,
    totalFlops: flops,
    // The final report's best: the best the platform still holds (after a reset it can be below the best
    // ever trained, whose weights are gone; the trace's `best` is the best ever).
    bestValidation: best.fitness,
    bestTest: final.bestTestAccuracy,
    best: {
      dna: bestDetail.dna,
      params: best.params,
      forwardFlops: best.flops,
      convs: best.depth,
      learningRate: best.learningRate,
      stepsTrained: lineage.get(best.id) ?? c.steps,
    },
    diverged: failed,
    seconds: ((order.at(-1)?.trainedAt ?? startedAt) - startedAt) / 1000,
    remedies,
    trace,
    mutationCounts,
    truncated: c.truncated ?? false,
  };
}

async function stop(proc: RunningProcess | undefined): Promise<void> {
  if (proc === undefined) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
  await proc.exited;
  clearTimeout(timer);
}

/** Runs one experiment on a fresh server with local workers; returns the run's result. */
export async function runOnPlatform(kind: PlatformKind, seed: number, o: PlatformOptions): Promise<RunResult> {
  const label = `[${kind} seed ${seed}]`;
  const dir = join(o.workRoot, `${kind}-seed${seed}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // Hard links: the run reads the prepared dataset without preparing it again.
  for (const sub of ['datasets', 'shards']) cpSync(join(o.preparedDir, sub), join(dir, sub), { recursive: true });
  const started = Date.now();
  let server: (RunningProcess & { url: string }) | undefined;
  let worker: RunningProcess | undefined;
  let remedied = false;
  let truncated = false;
  try {
    server = await startServer(dir, experimentFlags(kind, seed, o));
    const url = server.url;
    const token = (await server.waitFor(/admin token\s+(\S+)/))[1] as string;
    const exp = (await getJson<ExperimentView[]>(`${url}/api/experiments`))[0];
    if (exp === undefined) throw new Error(`${label} the server created no experiment:\n${server.output().slice(-2000)}`);
    o.log?.(`${label} server ${url}, experiment ${exp.id}; ${o.workers} local worker(s)`);
    worker = startPetri(['worker', '--server', url, '--workers', String(o.workers), '--experiment', exp.id, '--quiet', '--cache-dir', o.cacheDir, '--nickname', 'search-bench']);
    let lastLogged = 0;
    const remedy = kind === 'boost' || kind === 'reset' ? kind : null;
    await until(
      async () => {
        const state = await getJson<ExperimentView>(`${url}/api/experiments/${exp.id}`);
        if (state.status === 'finished') return true;
        if (worker?.proc.exitCode !== null) throw new Error(`${label} the worker exited:\n${worker?.output().slice(-2000) ?? ''}`);
        const individuals = await getJson<PublicIndividual[]>(`${url}/api/experiments/${exp.id}/individuals`);
        const trained = joined(individuals).length;
        if (trained >= lastLogged + 25) {
          lastLogged = trained;
          const best = Math.max(0, ...individuals.filter((i) => !i.failed).map((i) => i.fitness));
          o.log?.(`${label} ${trained}/${o.budgetChildren} trained, best ${(100 * best).toFixed(1)}%, ${((Date.now() - started) / 1000).toFixed(0)} s`);
        }
        if (remedy !== null && !remedied && trained >= o.plateauAfter && atPlateau(individuals, o.patience, !o.anyPlateau)) {
          await post(`${url}/api/experiments/${exp.id}/remedy`, token, { remedy });
          remedied = true;
          o.log?.(`${label} plateau of evolved networks at training ${trained}: ${remedy} applied`);
        }
        if (o.maxRunSeconds > 0 && Date.now() - started > o.maxRunSeconds * 1000) {
          truncated = true;
          await post(`${url}/api/experiments/${exp.id}/stop`, token, {});
          return true;
        }
        return false;
      },
      `${label} the experiment finished`,
      24 * 3600_000,
      2000,
    );
    await stop(worker);
    worker = undefined;
    const result = await collectRun({ url, token, experimentId: exp.id, kind, seed, steps: o.steps, population: kind === 'pop2' ? 2 : o.population, startedAt: started, truncated });
    o.log?.(`${label} done: ${result.trainings} trainings, best ever val ${(100 * (result.trace.at(-1)?.best ?? 0)).toFixed(1)}%, final best val ${(100 * result.bestValidation).toFixed(1)}% test ${(100 * result.bestTest).toFixed(1)}%, ${result.seconds.toFixed(0)} s`);
    return result;
  } finally {
    await stop(worker);
    await stop(server);
  }
}
