/**
 * Training throughput benchmark: the three reference DNAs
 * (shared/evolution/fixtures.ts) trained and evaluated with Petri's own code
 * (buildModel, trainModel, evaluateModel) on every tf.js backend that works
 * in Node (wasm, cpu) and in headless Chromium (webgpu, webgl, wasm, cpu),
 * side by side with the same networks in PyTorch on the CPU
 * (bench/torch_reference.py).
 *
 *   npx tsx bench/train.ts [--quick] [--only node|browser|torch|<target>,...] [--dna <name>,...] [--out file.json]
 *
 * Prints a table and writes JSON (to --out, else to stdout after the table).
 * Figures: training images/s (batch 50) and evaluation images/s (batch 250),
 * and the GFLOP/s those imply under Petri's FLOPs count
 * (shared/evolution/flops.ts): training = trainingPerStep * steps / s,
 * evaluation = forwardPerImage * images / s. Every figure has its ratio to
 * PyTorch (2 threads, as asked, and 1 thread). Data are random uint8 images:
 * speed, not accuracy.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import type { Dna } from '../shared/evolution/dna.ts';
import { referenceDnas } from '../shared/evolution/fixtures.ts';
import { flopsReport } from '../shared/evolution/flops.ts';
import type { CellResult, MeasurePlan } from './lib/train-measure.ts';

// ---------------------------------------------------------------- plans

type DnaName = 'linear' | 'conv3' | 'conv10-skip2';
type Runtime = 'node' | 'browser' | 'torch';

interface Target {
  /** e.g. node-wasm, browser-webgpu, torch. */
  readonly id: string;
  readonly runtime: Runtime;
  /** tf.js backend name, or torch thread count. */
  readonly backend: string;
  readonly threads?: number;
}

const TARGETS: readonly Target[] = [
  { id: 'node-wasm', runtime: 'node', backend: 'wasm' },
  // tf.js's threaded build in Node (server/wasm-node-threads.ts), in a child process with PETRI_WASM_THREADS=2.
  { id: 'node-wasm-2threads', runtime: 'node', backend: 'wasm', threads: 2 },
  { id: 'node-cpu', runtime: 'node', backend: 'cpu' },
  { id: 'browser-webgpu', runtime: 'browser', backend: 'webgpu' },
  { id: 'browser-webgl', runtime: 'browser', backend: 'webgl' },
  { id: 'browser-wasm', runtime: 'browser', backend: 'wasm', threads: 1 },
  { id: 'browser-wasm-2threads', runtime: 'browser', backend: 'wasm', threads: 2 },
  { id: 'browser-cpu', runtime: 'browser', backend: 'cpu' },
  { id: 'torch', runtime: 'torch', backend: 'torch', threads: 2 },
  { id: 'torch-1thread', runtime: 'torch', backend: 'torch', threads: 1 },
];

/** The PyTorch target every figure is compared with (2 threads, as asked). */
const REFERENCE = 'torch';
/**
 * The second comparison: PyTorch on one thread. tf.js wasm runs XNNPACK on
 * one thread here, and a 1-thread reference does not collapse when the
 * shared machine's other work takes a core (2-thread OpenMP does).
 */
const REFERENCE_1T = 'torch-1thread';

/** A cell's plan (with a note for the table, e.g. why training is not timed), or why it is not run at all. */
type Planned = (MeasurePlan & { note?: string }) | { skip: string };

function plan(
  warmupSteps: number,
  steps: number,
  evalImages: number,
  evalBatch = 250,
  evalWarmupBatches = 1,
  note?: string,
  repeats = 1,
): MeasurePlan & { note?: string } {
  return { warmupSteps, steps, batchSize: 50, evalImages, evalBatch: Math.min(evalBatch, evalImages), evalWarmupBatches, note, repeats };
}

/** A cheap cell: timed training and evaluation repeated 3 times, median reported. */
const x3 = (warmupSteps: number, steps: number, evalImages: number): MeasurePlan & { note?: string } =>
  plan(warmupSteps, steps, evalImages, 250, 1, undefined, 3);

/**
 * Step counts per target and DNA, fixed (not time-based) and sized on this
 * 2-core machine so that the default run takes about 10 minutes and --quick
 * 1-2. The cheap cells (wasm, torch) repeat their timed part 3 times and
 * report the median. Pure-JS cpu trains conv nets hundreds of times slower
 * than wasm (one conv3 step of batch 50 takes ~2 minutes, almost all in its
 * Conv2DBackpropFilter), and WebGPU/WebGL run on SwiftShader here (a
 * software GPU: a conv3 step of batch 50 takes 20-50 s), so those get one
 * step, or evaluation only on the larger nets.
 */
function plansFor(quick: boolean): Record<string, Record<DnaName, Planned>> {
  const cpuTrainSkip = 'eval only: a pure-JS cpu training step of batch 50 takes minutes here';
  const cpuConv10 = 'eval only: one pure-JS cpu training step of conv10-skip2 would take ~15 minutes';
  if (quick) {
    const fast = { linear: plan(3, 20, 1000), conv3: plan(1, 4, 250), 'conv10-skip2': plan(1, 2, 250) };
    const cpu = { linear: plan(1, 5, 250), conv3: plan(0, 0, 25, 25, 0, cpuTrainSkip), 'conv10-skip2': { skip: 'not in --quick' } };
    const swiftshader = {
      linear: plan(2, 5, 250),
      conv3: { skip: 'not in --quick (a SwiftShader conv step takes 20-50 s)' },
      'conv10-skip2': { skip: 'not in --quick (a SwiftShader conv step takes 20-50 s)' },
    };
    const torch = { linear: plan(3, 20, 1000), conv3: plan(2, 5, 500), 'conv10-skip2': plan(1, 3, 250) };
    return {
      'node-wasm': fast,
      'node-wasm-2threads': fast,
      'node-cpu': cpu,
      'browser-webgpu': swiftshader,
      'browser-webgl': swiftshader,
      'browser-wasm': fast,
      'browser-wasm-2threads': fast,
      'browser-cpu': cpu,
      torch,
      'torch-1thread': torch,
    };
  }
  const fast = { linear: x3(5, 50, 2500), conv3: x3(2, 12, 500), 'conv10-skip2': x3(1, 5, 250) };
  const torch = { linear: x3(5, 100, 2500), conv3: x3(3, 30, 1000), 'conv10-skip2': x3(2, 10, 500) };
  return {
    'node-wasm': fast,
    'node-wasm-2threads': fast,
    'node-cpu': { linear: plan(2, 20, 1000), conv3: plan(0, 1, 50, 50, 0, 'no warm-up step'), 'conv10-skip2': plan(0, 0, 25, 25, 0, cpuConv10) },
    'browser-webgpu': {
      linear: plan(2, 10, 500),
      conv3: plan(1, 1, 100, 50),
      'conv10-skip2': plan(0, 0, 25, 25, 1, 'eval only: a SwiftShader WebGPU training step would take minutes'),
    },
    'browser-webgl': {
      linear: plan(2, 10, 500),
      conv3: plan(1, 1, 250),
      'conv10-skip2': plan(0, 0, 50, 25, 1, 'eval only: a SwiftShader WebGL training step would take minutes'),
    },
    'browser-wasm': fast,
    'browser-wasm-2threads': fast,
    'browser-cpu': {
      linear: plan(2, 20, 1000),
      conv3: plan(0, 0, 50, 50, 0, `${cpuTrainSkip} (same JS kernels as node-cpu)`),
      'conv10-skip2': plan(0, 0, 25, 25, 0, cpuConv10),
    },
    torch,
    'torch-1thread': torch,
  };
}

// ---------------------------------------------------------------- results

interface Row {
  readonly target: string;
  readonly runtime: Runtime;
  readonly backend: string;
  readonly dna: string;
  readonly status: 'ok' | 'failed' | 'skipped';
  readonly reason?: string;
  /** A remark on the plan (no warm-up, eval only and why). */
  readonly note?: string;
  /** 1-minute load average when the cell (for torch: the target's whole run) started and ended. */
  readonly load?: readonly [number, number];
  /** Backend detail: wasm threads, GL renderer, GPU adapter, torch threads. */
  readonly detail?: string;
  readonly result?: Partial<CellResult>;
  readonly vsTorch?: { readonly train?: number; readonly eval?: number };
  readonly vsTorch1Thread?: { readonly train?: number; readonly eval?: number };
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'unknown error';

/** Images/s and GFLOP/s from seconds (the same formulas for tf.js and torch cells). */
function withRates(dna: Dna, r: Partial<CellResult>): Partial<CellResult> {
  const flops = flopsReport(dna, r.batchSize ?? 50, r.evalImages ?? 0);
  const trained = r.steps !== undefined && r.steps > 0 && typeof r.trainSeconds === 'number';
  const evaluated = r.evalImages !== undefined && r.evalImages > 0 && typeof r.evalSeconds === 'number';
  return {
    ...r,
    trainImagesPerSecond: trained ? ((r.steps ?? 0) * (r.batchSize ?? 50)) / (r.trainSeconds as number) : null,
    trainGflops: trained ? (flops.trainingPerStep * (r.steps ?? 0)) / (r.trainSeconds as number) / 1e9 : null,
    ...(evaluated
      ? {
          evalImagesPerSecond: (r.evalImages as number) / (r.evalSeconds as number),
          evalGflops: (flops.forwardPerImage * (r.evalImages as number)) / (r.evalSeconds as number) / 1e9,
        }
      : {}),
  };
}

function withTimeout<T>(promise: Promise<T>, seconds: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${seconds} s`)), seconds * 1000);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

const load1 = (): number => Math.round((loadavg()[0] ?? 0) * 100) / 100;

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function describeCell(r: Partial<CellResult>): string {
  const parts: string[] = [];
  if (r.trainImagesPerSecond != null) parts.push(`train ${r.trainImagesPerSecond.toFixed(1)} img/s`);
  if (r.evalImagesPerSecond != null) parts.push(`eval ${r.evalImagesPerSecond.toFixed(1)} img/s`);
  if (r.warmupSeconds !== undefined) parts.push(`warm-up ${r.warmupSeconds.toFixed(1)} s`);
  return parts.join(', ');
}

// ---------------------------------------------------------------- runners

/**
 * A Node wasm target with its own XNNPACK thread count: only the first start
 * of the wasm backend in a process sets it, so the target runs as
 * `bench/train.ts --only node-wasm` in a child process with
 * PETRI_WASM_THREADS, and its rows are renamed.
 */
function runNodeThreadsChild(target: Target, dnas: { name: string; dna: Dna }[], quick: boolean): Row[] {
  const out = join(mkdtempSync(join(tmpdir(), 'petri-bench-node-')), 'rows.json');
  const args = [...process.execArgv, fileURLToPath(import.meta.url), '--only', 'node-wasm', '--dna', dnas.map((d) => d.name).join(','), '--out', out];
  if (quick) args.push('--quick');
  log(`${target.id}: in a child process with PETRI_WASM_THREADS=${target.threads ?? 1} ...`);
  const r = spawnSync(process.execPath, args, { env: { ...process.env, PETRI_WASM_THREADS: String(target.threads ?? 1) }, stdio: ['ignore', 'ignore', 'inherit'] });
  let rows: Row[] = [];
  try {
    rows = (JSON.parse(readFileSync(out, 'utf8')) as { results: Row[] }).results.filter((row) => row.target === 'node-wasm');
  } catch (err) {
    const reason = `child process failed (status ${String(r.status)}): ${message(err)}`;
    return dnas.map(({ name }) => ({ target: target.id, runtime: 'node', backend: 'wasm', dna: name, status: 'failed', reason }));
  }
  return rows.map((row) => ({ ...row, target: target.id }));
}

async function runNode(targets: Target[], dnas: { name: string; dna: Dna }[], plans: ReturnType<typeof plansFor>, quick: boolean): Promise<Row[]> {
  const rows: Row[] = [];
  const threaded = targets.filter((t) => t.threads !== undefined);
  targets = targets.filter((t) => t.threads === undefined);
  let init: ((b: 'wasm' | 'cpu') => Promise<{ backend: string; reason?: string; threads?: number }>) | undefined;
  let measure: ((dna: Dna, plan: MeasurePlan) => Promise<CellResult>) | undefined;
  let petriSimdActive: (() => boolean) | undefined;
  let petriSimdThreads: (() => number) | undefined;
  let relaxedSimd: (() => boolean) | undefined;
  const simdNote = (): string =>
    petriSimdActive === undefined
      ? ''
      : `, Petri SIMD kernels ${petriSimdActive() ? 'on' : 'off'}${petriSimdThreads !== undefined && petriSimdThreads() > 1 ? ` (${petriSimdThreads()} threads)` : ''}` +
        (relaxedSimd === undefined ? '' : `, relaxed SIMD (FMA) ${relaxedSimd() ? 'on' : 'off'}`);
  let loadError: string | undefined;
  try {
    ({ initNodeBackend: init } = await import('../server/tf-backend.ts'));
    ({ petriSimdActive } = await import('../shared/model/wasm-heap.ts'));
    ({ petriSimdThreads } = await import('../shared/model/simd-threads.ts'));
    ({ relaxedSimd } = await import('../shared/model/simd-kernels.ts'));
    ({ measureCellChecked: measure } = await import('./lib/train-measure.ts'));
  } catch (err) {
    loadError = `cannot load the Node tf.js backend: ${message(err)}`;
  }
  for (const target of targets) {
    let failure = loadError;
    let detail: string | undefined;
    if (failure === undefined && init !== undefined) {
      try {
        const info = await init(target.backend as 'wasm' | 'cpu');
        if (info.backend !== target.backend) failure = `backend is '${info.backend}': ${info.reason ?? 'unknown reason'}`;
        detail =
          target.backend !== 'wasm'
            ? 'pure JavaScript'
            : info.threads !== undefined
              ? `Node: threaded SIMD build, XNNPACK threads=${info.threads} (server/wasm-node-threads.ts)${simdNote()}`
              : `Node: single-threaded SIMD build (what tf.js itself runs in Node)${simdNote()}`;
      } catch (err) {
        failure = message(err);
      }
    }
    for (const { name, dna } of dnas) {
      const p = plans[target.id]?.[name as DnaName];
      const base = { target: target.id, runtime: target.runtime, backend: target.backend, dna: name, detail };
      if (p === undefined || 'skip' in p) {
        rows.push({ ...base, status: 'skipped', reason: p === undefined ? 'no plan' : p.skip });
        continue;
      }
      if (failure !== undefined || measure === undefined) {
        rows.push({ ...base, status: 'failed', reason: failure ?? 'not loaded' });
        continue;
      }
      log(`${target.id} ${name}: ${p.warmupSteps} warm-up + ${p.steps} timed steps, ${p.evalImages} eval images ...`);
      const loadStart = load1();
      try {
        const result = withRates(dna, await measure(dna, p));
        log(`  ${describeCell(result)}`);
        rows.push({ ...base, status: 'ok', note: p.note, result, load: [loadStart, load1()] });
      } catch (err) {
        log(`  failed: ${message(err)}`);
        rows.push({ ...base, status: 'failed', reason: message(err) });
      }
    }
  }
  for (const target of threaded) rows.push(...runNodeThreadsChild(target, dnas, quick));
  return rows;
}

async function buildPage(): Promise<string> {
  const { buildTestPage } = await import('../e2e/support/build-page.ts');
  const dir = await buildTestPage('bench/pages/train-page.ts');
  const require = createRequire(import.meta.url);
  const wasmDist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  for (const file of readdirSync(wasmDist)) if (file.endsWith('.wasm')) copyFileSync(join(wasmDist, file), join(dir, file));
  return dir;
}

async function runBrowser(
  targets: Target[],
  dnas: { name: string; dna: Dna }[],
  plans: ReturnType<typeof plansFor>,
  cellTimeoutSeconds: number,
): Promise<{ rows: Row[]; chromium?: string }> {
  const rows: Row[] = [];
  let browser: Browser | undefined;
  let site: { url: string; close: () => Promise<void> } | undefined;
  let setupError: string | undefined;
  let chromiumVersion: string | undefined;
  try {
    const { serveStatic } = await import('../e2e/support/static-server.ts');
    const { launchChromium } = await import('../e2e/support/browser.ts');
    log('browser: building the benchmark page ...');
    const served = await serveStatic(await buildPage());
    // Cross-origin isolation, so that the wasm backend can use its threaded build.
    served.server.prependListener('request', (_req, res) => {
      res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    });
    site = served;
    browser = await launchChromium({ webgpu: true });
    chromiumVersion = browser.version();
  } catch (err) {
    setupError = `browser setup failed: ${message(err)}`;
  }

  for (const target of targets) {
    let page: Page | undefined;
    let failure = setupError;
    let detail: string | undefined;
    const consoleErrors: string[] = [];
    const open = async (): Promise<void> => {
      if (browser === undefined || site === undefined) throw new Error(setupError ?? 'no browser');
      page = await browser.newPage();
      page.on('console', (m) => {
        // The built page has no favicon; its 404 is noise, not a reason.
        if (m.type() === 'error' && !m.location().url.endsWith('/favicon.ico')) consoleErrors.push(m.text());
      });
      page.on('pageerror', (e) => consoleErrors.push(e.message));
      await page.goto(site.url);
      await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 });
      const info = await withTimeout(
        page.evaluate(({ b, t }) => window.petriBenchInit(b, t), { b: target.backend, t: target.threads }),
        180,
        `initialising ${target.backend}`,
      );
      if (info.backend !== target.backend) throw new Error(`backend is '${info.backend}'`);
      detail = info.detail;
    };
    if (failure === undefined) {
      try {
        log(`${target.id}: starting ...`);
        await open();
        log(`  ${detail ?? ''}`);
      } catch (err) {
        failure = `${message(err)}${consoleErrors.length > 0 ? ` (console: ${consoleErrors[0]})` : ''}`;
      }
    }
    for (const { name, dna } of dnas) {
      const p = plans[target.id]?.[name as DnaName];
      const base = { target: target.id, runtime: target.runtime, backend: target.backend, dna: name };
      if (p === undefined || 'skip' in p) {
        rows.push({ ...base, detail, status: 'skipped', reason: p === undefined ? 'no plan' : p.skip });
        continue;
      }
      if (failure !== undefined || page === undefined) {
        rows.push({ ...base, detail, status: 'failed', reason: failure ?? 'no page' });
        continue;
      }
      log(`${target.id} ${name}: ${p.warmupSteps} warm-up + ${p.steps} timed steps, ${p.evalImages} eval images ...`);
      const current: Page = page;
      const loadStart = load1();
      try {
        const raw = await withTimeout(
          current.evaluate(({ d, pl }) => window.petriBenchCell(d, pl), { d: dna as unknown, pl: p }),
          cellTimeoutSeconds,
          `${target.id} ${name}`,
        );
        const result = withRates(dna, raw);
        log(`  ${describeCell(result)}`);
        rows.push({ ...base, detail, status: 'ok', note: p.note, result, load: [loadStart, load1()] });
      } catch (err) {
        const reason = `${message(err)}${consoleErrors.length > 0 ? ` (console: ${consoleErrors[consoleErrors.length - 1]})` : ''}`;
        log(`  failed: ${reason}`);
        rows.push({ ...base, detail, status: 'failed', reason });
        // A hung or broken page is replaced for the next DNA.
        await current.close().catch(() => undefined);
        page = undefined;
        try {
          await open();
        } catch (reopenErr) {
          failure = `could not reopen the page: ${message(reopenErr)}`;
        }
      }
    }
    await page?.close().catch(() => undefined);
  }
  await browser?.close().catch(() => undefined);
  await site?.close().catch(() => undefined);
  return { rows, chromium: chromiumVersion };
}

interface TorchCell {
  name: string;
  status: 'ok' | 'failed';
  reason?: string;
  warmupSteps?: number;
  steps?: number;
  batchSize?: number;
  warmupSeconds?: number;
  trainSeconds?: number;
  evalSeconds?: number;
  evalImages?: number;
  evalBatch?: number;
  lastLoss?: number;
}

function runTorch(targets: Target[], dnas: { name: string; dna: Dna }[], plans: ReturnType<typeof plansFor>): { rows: Row[]; torch?: string } {
  const rows: Row[] = [];
  let version: string | undefined;
  const script = join(dirname(new URL(import.meta.url).pathname), 'torch_reference.py');
  for (const target of targets) {
    const cells: { name: string; dna: Dna; plan: MeasurePlan & { note?: string } }[] = [];
    for (const { name, dna } of dnas) {
      const p = plans[target.id]?.[name as DnaName];
      if (p === undefined || 'skip' in p) {
        rows.push({ target: target.id, runtime: 'torch', backend: 'torch', dna: name, status: 'skipped', reason: p === undefined ? 'no plan' : p.skip });
      } else {
        cells.push({ name, dna, plan: p });
      }
    }
    if (cells.length === 0) continue;
    log(`${target.id}: ${cells.map((c) => `${c.name} ${c.plan.warmupSteps}+${c.plan.steps} steps`).join(', ')} ...`);
    const jobDir = join(tmpdir(), `petri-bench-torch-${process.pid}`);
    mkdirSync(jobDir, { recursive: true });
    const jobFile = join(jobDir, `${target.id}.json`);
    writeFileSync(jobFile, JSON.stringify({ threads: target.threads ?? 2, cells }));
    const loadStart = load1();
    const run = spawnSync('/usr/bin/python3', [script, jobFile], { encoding: 'utf8', timeout: 600_000, maxBuffer: 16 << 20 });
    let parsed: { torch: string; threads: number; cells: TorchCell[] } | undefined;
    let failure: string | undefined;
    if (run.error !== undefined) failure = `python3 failed: ${message(run.error)}`;
    else if (run.status !== 0) failure = `python3 exited ${run.status}: ${(run.stderr ?? '').trim().split('\n').slice(-1)[0] ?? ''}`;
    else {
      try {
        parsed = JSON.parse(run.stdout) as typeof parsed;
      } catch (err) {
        failure = `unreadable output from torch_reference.py: ${message(err)}`;
      }
    }
    version = parsed?.torch ?? version;
    const load: [number, number] = [loadStart, load1()];
    for (const { name, dna } of cells) {
      const base = { target: target.id, runtime: 'torch' as const, backend: 'torch', dna: name, detail: parsed ? `torch ${parsed.torch}, ${parsed.threads} thread(s)` : undefined };
      const cell = parsed?.cells.find((c) => c.name === name);
      if (cell === undefined || cell.status !== 'ok') {
        rows.push({ ...base, status: 'failed', reason: cell?.reason ?? failure ?? 'no result' });
        continue;
      }
      const { name: _n, status: _s, reason: _r, ...figures } = cell;
      const result = withRates(dna, figures);
      log(`  ${name}: ${describeCell(result)}`);
      rows.push({ ...base, status: 'ok', note: cells.find((c) => c.name === name)?.plan.note, result, load });
    }
  }
  return { rows, torch: version };
}

// ---------------------------------------------------------------- output

function addRatios(rows: Row[]): Row[] {
  const ratio = (a?: number | null, b?: number | null): number | undefined => (a != null && b != null && b > 0 ? a / b : undefined);
  const versus = (row: Row, target: string): { train?: number; eval?: number } | undefined => {
    const ref = rows.find((r) => r.target === target && r.dna === row.dna && r.status === 'ok');
    if (row.status !== 'ok' || ref?.result === undefined || row.result === undefined) return undefined;
    return {
      train: ratio(row.result.trainImagesPerSecond, ref.result.trainImagesPerSecond),
      eval: ratio(row.result.evalImagesPerSecond, ref.result.evalImagesPerSecond),
    };
  };
  return rows.map((row) => ({ ...row, vsTorch: versus(row, REFERENCE), vsTorch1Thread: versus(row, REFERENCE_1T) }));
}

function fmt(x: number | null | undefined, digits?: number): string {
  if (x == null || !Number.isFinite(x)) return '-';
  const d = digits ?? (x >= 100 ? 0 : x >= 10 ? 1 : x >= 1 ? 2 : 3);
  return x.toFixed(d);
}

const fmtRatio = (x: number | undefined): string => (x === undefined ? '-' : x >= 0.1 ? `${x.toFixed(2)}x` : `${x.toPrecision(2)}x`);

/** An aligned plain-text table (also valid as a Markdown table). */
export function formatTable(rows: Row[]): string {
  const header = [
    'target',
    'dna',
    'steps warm+timed',
    'train img/s',
    'train GFLOP/s',
    'vs torch',
    'vs torch 1t',
    'eval img/s',
    'eval GFLOP/s',
    'vs torch',
    'vs torch 1t',
    'load',
    'note',
  ];
  const lines: string[][] = [header];
  for (const r of rows) {
    const x = r.result;
    const trained = x?.steps !== undefined && x.steps > 0;
    lines.push([
      r.target,
      r.dna,
      x === undefined ? '-' : `${x.warmupSteps ?? 0}+${(x.trainSecondsAll?.length ?? 1) > 1 ? `${x.trainSecondsAll?.length}x` : ''}${x.steps ?? 0}`,
      trained ? fmt(x?.trainImagesPerSecond) : '-',
      trained ? fmt(x?.trainGflops) : '-',
      trained ? fmtRatio(r.vsTorch?.train) : '-',
      trained ? fmtRatio(r.vsTorch1Thread?.train) : '-',
      fmt(x?.evalImagesPerSecond),
      fmt(x?.evalGflops),
      fmtRatio(r.vsTorch?.eval),
      fmtRatio(r.vsTorch1Thread?.eval),
      r.load === undefined ? '-' : `${r.load[0].toFixed(1)}-${r.load[1].toFixed(1)}`,
      r.status === 'ok' ? (r.note ?? (trained ? '' : 'eval only')) : `${r.status}: ${r.reason ?? ''}`,
    ]);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => (l[i] ?? '').length)));
  const numeric = new Set([3, 4, 5, 6, 7, 8, 9, 10, 11]);
  const render = (l: string[]): string =>
    `| ${l.map((c, i) => (numeric.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (numeric.has(i) ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [render(header), rule, ...lines.slice(1).map(render)].join('\n');
}

// ---------------------------------------------------------------- main

interface Args {
  quick: boolean;
  only: string[];
  dnas: string[];
  out?: string;
  cellTimeout: number;
  tableFrom?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, only: [], dnas: [], cellTimeout: 300 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') args.quick = true;
    else if (a === '--only') args.only.push(...value().split(','));
    else if (a === '--dna') args.dnas.push(...value().split(','));
    else if (a === '--out') args.out = value();
    else if (a === '--cell-timeout') args.cellTimeout = Number(value());
    else if (a === '--table-from') args.tableFrom = value();
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'usage: npx tsx bench/train.ts [--quick] [--only node|browser|torch|<target>,...] [--dna linear|conv3|conv10-skip2,...] [--out file.json] [--cell-timeout s]\n' +
          '       npx tsx bench/train.ts --table-from file.json   (re-print the table of an earlier run)\n' +
          `targets: ${TARGETS.map((t) => t.id).join(', ')}\n`,
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

function commandVersion(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 30_000 }).trim();
  } catch {
    return undefined;
  }
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    return line?.split(':')[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  } catch {
    return cpus()[0]?.model ?? 'unknown';
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.tableFrom !== undefined) {
    const earlier = JSON.parse(readFileSync(args.tableFrom, 'utf8')) as { date: string; command: string; results: Row[] };
    process.stdout.write(`${earlier.command} (${earlier.date})\n\n${formatTable(addRatios(earlier.results))}\n`);
    return;
  }
  const selected = TARGETS.filter(
    (t) => args.only.length === 0 || args.only.includes(t.runtime) || args.only.includes(t.id) || (args.only.includes('torch') && t.runtime === 'torch'),
  );
  if (selected.length === 0) throw new Error(`--only ${args.only.join(',')} selects no target`);
  const dnas = referenceDnas().filter((d) => args.dnas.length === 0 || args.dnas.includes(d.name));
  if (dnas.length === 0) throw new Error(`--dna ${args.dnas.join(',')} selects no DNA`);
  const plans = plansFor(args.quick);
  const started = new Date();
  const loadBefore = loadavg();
  const t0 = performance.now();

  const rows: Row[] = [];
  const torchTargets = selected.filter((t) => t.runtime === 'torch');
  // The PyTorch reference first, so that every later line can show its ratio.
  const torch = torchTargets.length > 0 ? runTorch(torchTargets, dnas, plans) : { rows: [] as Row[], torch: undefined };
  const nodeTargets = selected.filter((t) => t.runtime === 'node');
  if (nodeTargets.length > 0) rows.push(...(await runNode(nodeTargets, dnas, plans, args.quick)));
  const browserTargets = selected.filter((t) => t.runtime === 'browser');
  const browser = browserTargets.length > 0 ? await runBrowser(browserTargets, dnas, plans, args.cellTimeout) : { rows: [] as Row[], chromium: undefined };
  rows.push(...browser.rows, ...torch.rows);

  const finalRows = addRatios(rows);
  const report = {
    benchmark: 'train',
    date: started.toISOString(),
    command: `npx tsx bench/train.ts ${process.argv.slice(2).join(' ')}`.trim(),
    quick: args.quick,
    wallSeconds: (performance.now() - t0) / 1000,
    machine: {
      cpu: cpuModel(),
      cores: cpus().length,
      node: process.version,
      chromium: browser.chromium ?? commandVersion('/usr/bin/chromium', ['--version']),
      torch: torch.torch,
      python: commandVersion('/usr/bin/python3', ['--version']),
      loadAverageBefore: loadBefore,
      loadAverageAfter: loadavg(),
    },
    notes: [
      'Random uint8 images; augmentation (pad 4, crop, flip) on, as in trainModel.',
      'Training timed from the first timed step to the loss read back after the last one; warm-up steps excluded.',
      'GFLOP/s from shared/evolution/flops.ts: a training step counts 3x forward.',
      `Ratios: images/s of the row divided by images/s of '${REFERENCE}' (PyTorch CPU, 2 threads) and of '${REFERENCE_1T}' on the same DNA.`,
      'load: the 1-minute load average when the cell started and ended (for torch: its whole target).',
    ],
    dnas: dnas.map(({ name, dna }) => {
      const f = flopsReport(dna, 50, 0);
      return { name, forwardFlopsPerImage: f.forwardPerImage, trainingFlopsPerStep: f.trainingPerStep, params: f.params };
    }),
    results: finalRows,
  };
  const table = formatTable(finalRows);
  const tableOut = args.out !== undefined ? process.stdout : process.stderr;
  tableOut.write(`\n${table}\n\nwall ${report.wallSeconds.toFixed(0)} s, load ${loadBefore.map((x) => x.toFixed(2)).join(' ')} -> ${report.machine.loadAverageAfter.map((x) => x.toFixed(2)).join(' ')}\n`);
  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (args.out !== undefined) {
    mkdirSync(dirname(args.out), { recursive: true });
    writeFileSync(args.out, json);
    process.stderr.write(`wrote ${args.out}\n`);
  } else {
    process.stdout.write(json);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
