/**
 * Where a training step's time goes, per tf.js kernel, in Node: warm-up
 * steps, then steps under tf.profile, kernel times summed by name and
 * divided by the number of profiled steps.
 *
 *   npx tsx bench/train-profile.ts [wasm|cpu] [linear|conv3|conv10-skip2] [batch] [--steps n] [--threads n] [--before | --without K,...] [--json]
 *   npx tsx bench/train-profile.ts compare [dna,...] [batch] [--steps n] [--threads n] [--baseline-without K,...]
 *
 * Defaults: wasm, conv10-skip2, 50, 1 profiled step after 1 warm-up step,
 * 1 thread (above 1: tf.js's threaded build, server/wasm-node-threads.ts).
 * Pure-JS cpu is slow: use a small batch there (kernel times scale with the
 * batch).
 *
 * `--before`: the wasm backend with the kernels tf.js 4.22 ships plus only
 * the one it lacks for training conv nets (Conv2DBackpropFilter, from
 * shared/model/wasm-kernels.ts), i.e. registerWasmTrainingKernels with
 * replaceSlow false. Without it: all of Petri's wasm training kernels.
 *
 * `--without K,...`: all of Petri's wasm training kernels except the named
 * ones (registerWasmTrainingKernels's `exclude`; `PetriFusedBatchNormGrad`
 * keeps tf.js's own batch-norm gradient).
 *
 * `compare`: runs this script for each DNA twice, before and after, each in
 * its own process (kernel registration is process-wide), and prints one
 * Markdown table per DNA with both profiles side by side. With
 * `--baseline-without K,...` the "before" column is all kernels but those.
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { referenceDnas } from '../shared/evolution/fixtures.ts';
import { buildModel, disposeModel } from '../shared/model/build.ts';
import { trainModel } from '../shared/model/train.ts';
import { randomImageSet } from './lib/train-measure.ts';

interface KernelTime {
  readonly kernel: string;
  /** Milliseconds per step. */
  readonly ms: number;
  /** Calls per step. */
  readonly calls: number;
}

interface Profile {
  readonly backend: string;
  /** 'before', 'after', 'cpu', or 'after without K,...'. */
  readonly kernels: string;
  /** XNNPACK threads (wasm). */
  readonly threads: number;
  readonly dna: string;
  readonly batch: number;
  readonly steps: number;
  /** Wall time per profiled step (under tf.profile, which adds a little). */
  readonly wallMs: number;
  /** Sum of all kernel times per step. */
  readonly kernelMs: number;
  readonly load: readonly [number, number];
  readonly byKernel: readonly KernelTime[];
}

function flagValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined) throw new Error(`${name} needs a value`);
  args.splice(i, 2);
  return v;
}

function flag(args: string[], name: string): boolean {
  const i = args.indexOf(name);
  if (i < 0) return false;
  args.splice(i, 1);
  return true;
}

/** Starts the backend; resolves to XNNPACK's thread count (1 for cpu and the single-threaded build). */
async function initBackend(backend: 'wasm' | 'cpu', before: boolean, threads: number, without: readonly string[]): Promise<number> {
  if (backend === 'cpu' || (!before && without.length === 0)) {
    const { initNodeBackend } = await import('../server/tf-backend.ts');
    process.env.PETRI_WASM_THREADS = String(threads);
    const info = await initNodeBackend(backend);
    if (info.backend !== backend) throw new Error(`backend is ${info.backend}: ${info.reason ?? ''}`);
    return info.threads ?? 1;
  }
  const { createRequire } = await import('node:module');
  const path = await import('node:path');
  const { setWasmPaths } = await import('@tensorflow/tfjs-backend-wasm');
  const { registerWasmTrainingKernels } = await import('../shared/model/wasm-kernels.ts');
  const dist = path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')) + path.sep;
  setWasmPaths(dist);
  registerWasmTrainingKernels(before ? { replaceSlow: false } : { exclude: without });
  if (threads > 1) {
    const { startThreadedWasmInNode } = await import('../server/wasm-node-threads.ts');
    const started = await startThreadedWasmInNode(threads, dist);
    if (!started.ok) throw new Error('the threaded wasm build did not start');
    return started.threads;
  }
  if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") returned false');
  return 1;
}

async function profileOne(
  backend: 'wasm' | 'cpu', name: string, batch: number, steps: number, before: boolean, wantThreads: number, without: readonly string[],
): Promise<Profile> {
  const threads = await initBackend(backend, before, wantThreads, without);
  const ref = referenceDnas().find((r) => r.name === name);
  if (ref === undefined) throw new Error(`no reference DNA ${name}`);
  const built = buildModel(ref.dna);
  const data = randomImageSet(ref.dna.inputShape, Math.max(200, batch * 4), ref.dna.numClasses, 1);
  await trainModel(built, data, { steps: 1, seed: 1, batchSize: batch });
  const load0 = loadavg()[0] ?? 0;
  const t0 = performance.now();
  const profile = await tf.profile(async () => {
    await trainModel(built, data, { steps, seed: 2, batchSize: batch });
  });
  const wall = performance.now() - t0;
  const load1 = loadavg()[0] ?? 0;
  disposeModel(built);

  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of profile.kernels) {
    // `<op>__op` records wrap the kernel records of the same call, and `forward` records the forward
    // function of a tf.customGrad op (batch-norm-relu.ts, the loss) around its own kernels: skip them
    // to avoid counting twice.
    if (k.name.endsWith('__op') || k.name === 'forward') continue;
    const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += Number(k.kernelTimeMs);
    entry.calls += 1;
    byKernel.set(k.name, entry);
  }
  const kernels = [...byKernel]
    .map(([kernel, { ms, calls }]) => ({ kernel, ms: ms / steps, calls: calls / steps }))
    .sort((a, b) => b.ms - a.ms);
  return {
    backend,
    kernels: backend === 'cpu' ? 'cpu' : before ? 'before' : without.length > 0 ? `after without ${without.join(',')}` : 'after',
    threads,
    dna: name,
    batch,
    steps,
    wallMs: wall / steps,
    kernelMs: kernels.reduce((a, k) => a + k.ms, 0),
    load: [Math.round(load0 * 100) / 100, Math.round(load1 * 100) / 100],
    byKernel: kernels,
  };
}

function printProfile(p: Profile, top = 12): void {
  process.stdout.write(
    `${p.backend} (${p.kernels} kernels, ${p.threads} thread${p.threads === 1 ? '' : 's'}) ${p.dna}, batch ${p.batch}, ${p.steps} step(s): ` +
      `step wall ${p.wallMs.toFixed(0)} ms under tf.profile, kernels ${p.kernelMs.toFixed(0)} ms per step, load ${p.load[0]}-${p.load[1]}\n`,
  );
  for (const k of p.byKernel.slice(0, top)) {
    process.stdout.write(
      `  ${k.kernel.padEnd(24)} ${k.calls.toFixed(0).padStart(4)} calls ${k.ms.toFixed(1).padStart(9)} ms ${((100 * k.ms) / p.kernelMs).toFixed(1).padStart(5)}%\n`,
    );
  }
}

function runChild(args: string[]): Profile {
  const script = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [...process.execArgv, script, ...args, '--json'], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`train-profile ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Profile;
}

/** A Markdown table: each kernel's ms and calls per step, before and after. */
function compareTable(before: Profile, after: Profile): string {
  const names = [...new Set([...before.byKernel, ...after.byKernel].map((k) => k.kernel))];
  const get = (p: Profile, n: string): KernelTime | undefined => p.byKernel.find((k) => k.kernel === n);
  names.sort((a, b) => Math.max(get(before, b)?.ms ?? 0, get(after, b)?.ms ?? 0) - Math.max(get(before, a)?.ms ?? 0, get(after, a)?.ms ?? 0));
  const cell = (k: KernelTime | undefined): [string, string] => (k === undefined ? ['-', '-'] : [k.ms.toFixed(1), k.calls.toFixed(0)]);
  const lines = [
    '| kernel | before ms | before calls | after ms | after calls | after/before |',
    '|--------|----------:|-------------:|---------:|------------:|-------------:|',
  ];
  for (const n of names) {
    const b = get(before, n);
    const a = get(after, n);
    const ratio = b !== undefined && a !== undefined && b.ms > 0 ? `${(a.ms / b.ms).toFixed(2)}x` : '-';
    lines.push(`| ${n} | ${cell(b).join(' | ')} | ${cell(a).join(' | ')} | ${ratio} |`);
  }
  lines.push(
    `| **all kernels** | **${before.kernelMs.toFixed(0)}** | | **${after.kernelMs.toFixed(0)}** | | **${(after.kernelMs / before.kernelMs).toFixed(2)}x** |`,
    `| step wall (under tf.profile) | ${before.wallMs.toFixed(0)} | | ${after.wallMs.toFixed(0)} | | ${(after.wallMs / before.wallMs).toFixed(2)}x |`,
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const steps = Number(flagValue(args, '--steps') ?? '1');
  const threads = Number(flagValue(args, '--threads') ?? '1');
  const before = flag(args, '--before');
  const without = (flagValue(args, '--without') ?? '').split(',').filter((k) => k !== '');
  const baselineWithout = flagValue(args, '--baseline-without');
  const json = flag(args, '--json');
  if (before && without.length > 0) throw new Error('--before and --without exclude each other');
  if (!(steps >= 1)) throw new Error('--steps must be at least 1');
  if (!Number.isInteger(threads) || threads < 1 || threads > 8) throw new Error('--threads must be 1 to 8');
  if (args[0] === 'compare') {
    const dnas = (args[1] ?? 'conv3,conv10-skip2').split(',');
    const batch = args[2] ?? '50';
    for (const dna of dnas) {
      const common = ['wasm', dna, batch, '--steps', String(steps), '--threads', String(threads)];
      const b = runChild([...common, ...(baselineWithout === undefined ? ['--before'] : ['--without', baselineWithout])]);
      const a = runChild(common);
      process.stdout.write(
        `\n${dna}, batch ${batch}, ${a.threads} XNNPACK thread(s), before = ${b.kernels}, per step (mean of ${steps} profiled step(s) after 1 warm-up step), ms and calls; ` +
          `load ${b.load[0]}-${b.load[1]} (before), ${a.load[0]}-${a.load[1]} (after)\n\n${compareTable(b, a)}\n`,
      );
    }
    return;
  }
  const [backendArg = 'wasm', name = 'conv10-skip2', batchArg = '50'] = args;
  if (backendArg !== 'wasm' && backendArg !== 'cpu') throw new Error(`backend must be wasm or cpu, not ${backendArg}`);
  const p = await profileOne(backendArg, name, Number(batchArg), steps, before, threads, without);
  if (json) process.stdout.write(`${JSON.stringify(p)}\n`);
  else printProfile(p);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
