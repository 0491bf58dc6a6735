/**
 * `petri worker`: trains children for a server from a terminal, in Node
 * (tf.js wasm or cpu) or by driving a headless Chrome/Chromium on the
 * volunteer page (--browser) so the workstation's GPU is used via WebGPU.
 */
import { fork } from 'node:child_process';
import { availableParallelism, homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { SessionEvent } from '../../shared/worker/session.ts';
import { IdleWatch } from '../worker/idle.ts';
import { startNodeWorker } from '../worker/node-worker.ts';
import { chooseWorkerThreads, type WorkerThreadsChoice } from '../worker/threads.ts';

const HELP = `Usage: petri worker --server URL [options]

  --server URL       the Petri server (default http://localhost:3000)
  --backend NAME     wasm (default) | cpu: tf.js backend in Node
  --browser          run the volunteer page in headless Chrome/Chromium instead (WebGPU)
  --chrome PATH      the Chrome/Chromium binary for --browser
  --workers N        run N workers at once (default 1)
  --threads N        wasm threads per worker, 1 to 8 (default: cores / workers, at most 4;
                     1 = tf.js's single-threaded build; PETRI_WASM_THREADS sets the default)
  --experiment ID    work only for this experiment
  --nickname NAME    your name on the volunteer leaderboard
  --max-hours H      stop after H hours
  --when-idle        train only while the machine is otherwise idle
  --quiet            no progress lines (for services)
  --cache-dir DIR    dataset cache (default ~/.cache/petri)

SIGINT/SIGTERM stop cleanly: the lease in hand goes back to the server at once.`;

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      server: { type: 'string' },
      backend: { type: 'string' },
      browser: { type: 'boolean' },
      chrome: { type: 'string' },
      workers: { type: 'string' },
      threads: { type: 'string' },
      'worker-count': { type: 'string' },
      experiment: { type: 'string' },
      nickname: { type: 'string' },
      'max-hours': { type: 'string' },
      'when-idle': { type: 'boolean' },
      quiet: { type: 'boolean' },
      'cache-dir': { type: 'string' },
      'worker-index': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const server = values.server ?? process.env.PETRI_SERVER ?? 'http://localhost:3000';
  try {
    new URL(server);
  } catch {
    console.error(`petri worker: --server needs a URL such as http://host:3000, got "${server}"`);
    return 2;
  }
  const backend = values.backend ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'cpu') {
    console.error(`petri worker: --backend is wasm or cpu, got "${backend}"`);
    return 2;
  }
  const workers = Number(values.workers ?? '1');
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    console.error('petri worker: --workers needs a whole number from 1 to 64');
    return 2;
  }
  const maxHours = values['max-hours'] === undefined ? undefined : Number(values['max-hours']);
  if (maxHours !== undefined && !(maxHours > 0)) {
    console.error('petri worker: --max-hours needs a positive number');
    return 2;
  }
  const quiet = values.quiet ?? false;
  let threads: WorkerThreadsChoice;
  // A worker started by --workers N learns N from --worker-count.
  const together = values['worker-count'] === undefined ? workers : Number(values['worker-count']);
  try {
    threads = chooseWorkerThreads({ cores: availableParallelism(), workers: together, flag: values.threads, env: process.env });
  } catch (err) {
    console.error(`petri worker: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }

  if (workers > 1) return runMany(args, workers);

  const tag = values['worker-index'] ? `[w${values['worker-index']}] ` : '';
  const say = (line: string) => console.log(`${tag}${line}`);
  const deadline = maxHours === undefined ? Infinity : Date.now() + maxHours * 3_600_000;
  const idle = values['when-idle'] ? new IdleWatch() : null;

  if (values.browser) {
    const { runBrowserWorker } = await import('../worker/browser-worker.ts');
    return runBrowserWorker({ server, chrome: values.chrome, nickname: values.nickname, experimentId: values.experiment, quiet, deadline, say });
  }

  let lastPrinted = 0;
  const onEvent = (event: SessionEvent) => {
    if (quiet && event.kind !== 'error' && event.kind !== 'refused') return;
    switch (event.kind) {
      case 'connected':
        say(`connected to ${server}`);
        break;
      case 'disconnected':
        say('disconnected; reconnecting…');
        break;
      case 'lease':
        lastPrinted = 0;
        say(`child ${event.lease.childId} of ${event.lease.parentId ?? '(initial)'}: ${event.lease.mutations.map((m) => m.name).join(', ') || 'initial linear model'}, ${event.lease.steps} steps`);
        break;
      case 'progress': {
        const now = Date.now();
        if (now - lastPrinted > 5000 || event.step === event.total) {
          lastPrinted = now;
          say(`  ${event.lease.childId} step ${event.step}/${event.total}, ${event.imagesPerSecond.toFixed(0)} images/s`);
        }
        break;
      }
      case 'trained':
        if (event.outcome.status !== 'stopped') say(`  ${event.lease.childId} trained (${event.outcome.status}) in ${event.outcome.trainSeconds.toFixed(1)} s`);
        break;
      case 'verdict':
        say(`  ${event.message.individualId} ${event.message.outcome}: fitness ${event.message.fitness.toFixed(4)} (computed by the server)`);
        break;
      case 'idle':
        say(`no work: ${event.reason}`);
        break;
      case 'refused':
        say(`refused (${event.code}): ${event.message}`);
        break;
      case 'error':
        say(`error: ${event.message}`);
        break;
    }
  };

  const worker = await startNodeWorker({
    server,
    backend,
    threads: threads.threads,
    nickname: values.nickname,
    experimentId: values.experiment,
    cacheDir: values['cache-dir'] ?? join(homedir(), '.cache', 'petri'),
    onEvent,
    log: quiet ? () => {} : say,
    shouldPause: () => Date.now() > deadline || (idle !== null && idle.busy),
  });
  if (!quiet) {
    const how = worker.backend === 'wasm' ? `, ${worker.threads} ${worker.threads === 1 ? 'thread' : 'threads'} (${threads.source === 'cores' ? `${availableParallelism()} cores${together > 1 ? ` / ${together} workers` : ''}` : threads.source})` : '';
    say(`worker started on tf.js ${worker.backend}${how}`);
  }

  return await new Promise<number>((resolveExit) => {
    let stopping = false;
    const stop = async (why: string) => {
      if (stopping) return;
      stopping = true;
      clearInterval(watch);
      if (!quiet) say(`${why}: handing the lease back and stopping`);
      await worker.stop();
      resolveExit(0);
    };
    process.once('SIGINT', () => void stop('SIGINT'));
    process.once('SIGTERM', () => void stop('SIGTERM'));
    const watch = setInterval(() => {
      if (Date.now() > deadline) void stop(`--max-hours ${maxHours} reached`);
      if (idle !== null) {
        const wasBusy = idle.busy;
        const busy = idle.update();
        if (busy !== wasBusy) {
          say(busy ? 'pausing: someone else is using this machine (--when-idle)' : 'resuming: the machine is idle again');
          worker.session.setPaused(busy);
        }
      }
    }, 1000);
  });
}

/** Runs N single workers as child processes and forwards signals to them. */
async function runMany(args: string[], n: number): Promise<number> {
  const entry = fileURLToPath(new URL('../../bin/petri.mjs', import.meta.url));
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--workers') i++;
    else if (!a.startsWith('--workers=')) rest.push(a);
  }
  const children = Array.from({ length: n }, (_, i) =>
    fork(entry, ['worker', ...rest, '--worker-count', String(n), '--worker-index', String(i + 1)], { stdio: 'inherit' }),
  );
  const forward = (signal: NodeJS.Signals) => {
    for (const child of children) child.kill(signal);
  };
  process.on('SIGINT', () => forward('SIGINT'));
  process.on('SIGTERM', () => forward('SIGTERM'));
  const codes = await Promise.all(children.map((c) => new Promise<number>((ok) => c.on('exit', (code) => ok(code ?? 1)))));
  return codes.every((c) => c === 0) ? 0 : 1;
}
