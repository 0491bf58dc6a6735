/**
 * The volunteer page end to end: a real Petri server (synthetic dataset,
 * tiny experiments) and real headless Chromium tabs, one on WebGPU
 * (SwiftShader here), one forced to WebAssembly.
 *
 * - Both tabs contribute to experiment A; each child records the backend
 *   that trained it. The WebGPU tab is closed mid-child: its lease expires
 *   and the wasm tab finishes the work; nothing is lost.
 * - The wasm tab also serves experiment B (bigger children), whose
 *   population improves on the linear initial model.
 * - A reloaded tab continues its lease from the IndexedDB checkpoint, and
 *   loads the dataset from its cache: no shard request reaches the server.
 *   One reloaded while XNNPACK computes on its threads is back at once.
 * - Pause/resume (the button, a hidden tab) keep the child; a server
 *   restart costs at most the steps since the last checkpoint.
 * - `petri worker --browser` trains a child in headless Chromium on WebGPU,
 *   stops cleanly on SIGTERM, and at its deadline.
 * - Screenshots (idle, training, phone, errors) go to test-artifacts/, and so
 *   do the wasm tab's console (page and workers, timestamped) and the server log.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PageState } from '../client/volunteer/state.ts';
import { startPetriServer, type PetriServer } from '../server/app.ts';
import { resolveConfig } from '../server/experiments/config.ts';
import type { Verifier } from '../server/verifier.ts';
import { ThreadVerifier } from '../server/verify-pool.ts';
import { defaultWasmThreads } from '../shared/model/wasm-threads.ts';
import { launchChromium } from './support/browser.ts';
import { getJson, startPetri, until, type RunningProcess } from './support/processes.ts';
import { serveStatic } from './support/static-server.ts';
import { buildVolunteerPages } from './support/volunteer-pages.ts';
import { runBrowserWorker } from '../server/worker/browser-worker.ts';

const ARTIFACTS = join(process.cwd(), 'test-artifacts');
const dir = mkdtempSync(join(tmpdir(), 'petri-volunteer-'));
const serverLog: string[] = [];
/** Every request path that reached the server, in order. */
const requests: string[] = [];
const processes: RunningProcess[] = [];

let server: PetriServer;
let gpuBrowser: Browser;
let wasmBrowser: Browser;
let wasmTab: Page;
let expA = '';
let expB = '';

interface IndividualView {
  id: string;
  fitness: number;
  parentId: string | null;
  failed: boolean;
  trainedBy: { nickname: string | null; backend: string };
}

const state = (page: Page): Promise<PageState> => page.evaluate(() => window.petri.state());
/** The tab's state once it is training a child past a checkpoint at `checkpoint` steps or later, with 60 steps or more to go. */
const midChild = (page: Page, checkpoint: number): Promise<PageState> =>
  until(async () => {
    const s = await state(page);
    return s.phase === 'training' && s.lease !== null && s.lastCheckpoint >= checkpoint && s.step <= s.total - 60 ? s : null;
  }, 'the tab is past a checkpoint', 120_000, 50);
/** The tab's history entry for the child once its verdict is in. */
const judged = (page: Page, childId: string, what: string) =>
  until(async () => (await state(page)).history.find((h) => h.childId === childId && h.verdict !== undefined), what, 180_000, 200);
const shardRequests = () => requests.filter((r) => r.startsWith('/data/shards/')).length;
const individuals = (exp: string) => getJson<IndividualView[]>(`${server.url}/api/experiments/${exp}/individuals`);

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return Number(line?.split(' ').pop() ?? Number.NaN);
}

let clientDir = '';

/**
 * Waits for an element's text: the page renders on its next frame (or within 250 ms,
 * client/volunteer/main.ts `update`), so the DOM lags the state `window.petri.state()` returns.
 */
function textOf(page: Page, selector: string, expected: string | RegExp): Promise<string> {
  const matches = (t: string) => (typeof expected === 'string' ? t === expected : expected.test(t));
  return until(async () => {
    const text = (await page.textContent(selector)) ?? '';
    return matches(text) ? text : null;
  }, `${selector} reads ${String(expected)}`, 10_000, 50);
}

/** The tabs' console (page and workers), timestamped, for test-artifacts/volunteer-console.log. */
const consoleLog: string[] = [];
function watch(page: Page, name: string): void {
  const at = () => new Date().toISOString();
  page.on('console', (m) => consoleLog.push(`${at()} ${name} console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => consoleLog.push(`${at()} ${name} pageerror: ${e.message}`));
  page.on('worker', (w) => {
    consoleLog.push(`${at()} ${name} worker started ${w.url().slice(0, 80)}`);
    w.on('close', () => consoleLog.push(`${at()} ${name} worker closed ${w.url().slice(0, 80)}`));
  });
  page.on('load', () => consoleLog.push(`${at()} ${name} load`));
}

/** Starts (or restarts, on the same port and data) the Petri server. */
async function startServer(port = 0, verifier?: Verifier): Promise<PetriServer> {
  const started = await startPetriServer({
    ...(verifier ? { verifier } : {}),
    dataDir: join(dir, 'data'),
    port,
    host: '127.0.0.1',
    clientDir,
    leaseTtlMs: 8_000,
    heartbeatMs: 1_000,
    log: (line) => serverLog.push(`${new Date().toISOString()} ${line}`),
    // A: small linear-model children both tabs can finish quickly (WebGPU on SwiftShader is slow).
    initialExperiment: resolveConfig({ preset: 'quick', seed: 'two-tabs', populationSize: 3, stepsPerChild: 60, batchSize: 10, sampleSize: 2, maxChildren: 8 }),
    datasetOptions: { synthetic: { train: 1000, test: 100 }, shardSize: 300 },
  });
  started.http.prependListener('request', (req: { url?: string }) => requests.push(req.url ?? ''));
  return started;
}

/** Closes the server, noting in the server log how long it took (a paused tab hands its child back after 60 s). */
async function closeServer(): Promise<void> {
  const started = Date.now();
  await server.close();
  serverLog.push(`${new Date().toISOString()} [test] server closed in ${Date.now() - started} ms`);
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  clientDir = await buildVolunteerPages();
  server = await startServer();
  // B: children that can learn (the linear initial model cannot beat chance on the synthetic
  // textures; a conv followed by a ReLU can, given a few hundred steps). Five mutations per
  // child find such nets within a dozen children or so; only the wasm tab takes them (the
  // WebGPU tab is pinned to A), and the test stops as soon as the population has improved.
  const b = await server.coordinator.createExperiment(
    resolveConfig({ preset: 'quick', seed: 'improve', populationSize: 4, stepsPerChild: 200, batchSize: 25, mutationsPerChild: 5, sampleSize: 2, maxChildren: 400 }),
  );
  expB = b.id;
  expA = (await getJson<{ id: string }[]>(`${server.url}/api/experiments`)).map((e) => e.id).find((id) => id !== expB) ?? '';
  gpuBrowser = await launchChromium({ webgpu: true });
  wasmBrowser = await launchChromium();
});

afterAll(async () => {
  writeFileSync(join(ARTIFACTS, 'volunteer-console.log'), `${consoleLog.join('\n')}\n`);
  writeFileSync(join(ARTIFACTS, 'volunteer-server.log'), `${serverLog.join('\n')}\n`);
  for (const p of processes) p.kill('SIGKILL');
  await Promise.all(processes.map((p) => p.exited));
  await gpuBrowser?.close();
  await wasmBrowser?.close();
  await server?.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

describe('the volunteer page', () => {
  it('shows what it will run on before it starts', async () => {
    const page = await gpuBrowser.newPage({ viewport: { width: 1000, height: 820 } });
    await page.goto(`${server.url}/`);
    const s = await until(async () => {
      const x = await state(page);
      return x.backend !== null ? x : null;
    }, 'the page reports its backend', 60_000);
    expect(s.phase).toBe('idle');
    expect(s.backend?.backend).toBe('webgpu');
    await textOf(page, '#backend-text', /WebGPU/);
    await textOf(page, '#toggle', 'Start contributing');
    await page.screenshot({ path: join(ARTIFACTS, 'volunteer-idle.png'), fullPage: true });
    await page.close();
  });

  it('two tabs, WebGPU and WASM, train children of one experiment, each recorded with its backend; a closed tab loses nothing', async () => {
    // The WebGPU tab starts alone on A, so it gets children before the fast wasm tab takes them all.
    const gpuTab = await gpuBrowser.newPage({ viewport: { width: 1000, height: 900 } });
    await gpuTab.goto(`${server.url}/?autostart=1&nickname=gpu-tab&experiment=${expA}&checkpointEvery=5`);
    await until(async () => (await state(gpuTab)).history.some((h) => h.verdict?.outcome === 'accepted'), 'the WebGPU tab has a child accepted', 150_000, 500);
    const midChild = async (margin: number) => {
      const s = await state(gpuTab);
      return s.phase === 'training' && s.lease !== null && s.step >= 2 && s.step <= s.total - margin ? s : null;
    };
    await until(() => midChild(30), 'the WebGPU tab is early in a child', 150_000, 100);

    // Now the wasm tab joins (any experiment: A's children and B's).
    wasmTab = await wasmBrowser.newPage({ viewport: { width: 420, height: 900 } });
    watch(wasmTab, 'wasm-tab');
    await wasmTab.goto(`${server.url}/?autostart=1&nickname=wasm-tab&backend=wasm&checkpointEvery=20`);
    await until(async () => (await state(wasmTab)).lease !== null, 'the wasm tab gets a child', 60_000, 100);

    const gpu = await state(gpuTab);
    const wasm = await state(wasmTab);
    expect(gpu.backend?.backend).toBe('webgpu');
    expect(gpu.backend?.fallbackReason).toBeUndefined();
    expect(wasm.backend?.backend).toBe('wasm');
    expect(wasm.backend?.fallbackReason).toMatch(/backend=wasm/);
    // The server sends the pages cross-origin isolated, so tf.js wasm runs XNNPACK on several threads.
    expect(wasm.backend?.threads).toBe(defaultWasmThreads(cpus().length));
    expect(wasm.backend?.adapter).toMatch(/^CPU via WebAssembly, (one thread|\d+ threads) \(\d+ logical cores\)$/);
    expect(gpu.totals.children).toBeGreaterThan(0);
    expect(gpu.totals.flops).toBeGreaterThan(0);

    // Mid-child: a screenshot, then the WebGPU tab goes away without a word.
    const mid = await until(() => midChild(4), 'the WebGPU tab is mid-child', 150_000, 100);
    await gpuTab.screenshot({ path: join(ARTIFACTS, 'volunteer-training.png'), fullPage: true });
    const abandoned = mid.lease?.childId ?? '';
    const expiredBefore = await metric('petri_leases_total{outcome="expired"}');
    await gpuTab.close();

    // The wasm tab does the rest of A, the abandoned child included, once its lease expires.
    const done = await until(async () => {
      const e = await getJson<{ status: string; counts: { childrenTrained: number } }>(`${server.url}/api/experiments/${expA}`);
      return e.status === 'finished' ? e : null;
    }, `experiment A finishes (server log: ${serverLog.slice(-5).join(' | ')})`, 180_000, 500);
    expect(done.counts.childrenTrained).toBe(8);
    const all = await individuals(expA);
    expect(all).toHaveLength(8);
    expect(new Set(all.map((i) => i.id)).size).toBe(8);
    for (const i of all) expect(i.trainedBy.backend).toBe(i.trainedBy.nickname === 'gpu-tab' ? 'webgpu' : 'wasm');
    expect(all.filter((i) => i.trainedBy.nickname === 'gpu-tab').length).toBeGreaterThan(0);
    expect(all.filter((i) => i.trainedBy.nickname === 'wasm-tab').length).toBeGreaterThan(0);
    const redone = all.find((i) => i.id === abandoned);
    expect(redone?.trainedBy).toEqual({ nickname: 'wasm-tab', backend: 'wasm' });
    expect(await metric('petri_leases_total{outcome="expired"}')).toBe(expiredBefore + 1);
  });

  it('a reloaded tab continues its child from the checkpoint and takes the dataset from its cache', async () => {
    await until(async () => (await state(wasmTab)).phase === 'training', 'the wasm tab is training', 60_000, 50);
    await wasmTab.screenshot({ path: join(ARTIFACTS, 'volunteer-phone.png'), fullPage: true });
    // Mid-child, past a checkpoint, and held there (the Pause button) in the same turn of the page:
    // a margin in steps is no margin in time (on two XNNPACK threads these children train 60 steps
    // in under half a second, less than a screenshot or a reload takes), and a child that ends
    // before the reload lands leaves no lease to continue. The worker holds at its next yield.
    const before = await until(
      () =>
        wasmTab.evaluate(() => {
          const s = window.petri.state();
          if (s.phase !== 'training' || s.lease === null || s.lastCheckpoint < 40 || s.step > s.total - 60) return null;
          window.petri.pause();
          return s;
        }),
      'the wasm tab is past a checkpoint',
      120_000,
      20,
    );
    const lease = before.lease!;
    const held = await until(async () => {
      const s = await state(wasmTab);
      return s.phase === 'paused' ? s : null;
    }, 'the tab holds its child', 10_000, 50);
    expect(held.lease?.leaseId).toBe(lease.leaseId);
    expect(held.step).toBeLessThan(held.total);
    const shardsBefore = shardRequests();
    const resumesBefore = serverLog.length;
    await wasmTab.reload();
    const after = await until(async () => {
      const s = await state(wasmTab);
      return s.lease?.leaseId === lease.leaseId && s.resumedFrom > 0 ? s : null;
    }, 'the reloaded tab continues the same lease', 60_000, 100);
    expect(after.resumedFrom).toBeGreaterThanOrEqual(before.lastCheckpoint);
    expect(after.pausedBy).toBeNull();
    const finished = await until(async () => (await state(wasmTab)).history.find((h) => h.leaseId === lease.leaseId && h.verdict !== undefined), 'the resumed child is judged', 120_000, 200);
    expect(finished.stepsDone).toBe(lease.steps);
    expect(finished.resumedFrom).toBe(after.resumedFrom);
    // A second visit: the dataset came from IndexedDB; no shard request reached the server.
    expect(shardRequests()).toBe(shardsBefore);
    const s = await state(wasmTab);
    expect(s.dataset?.done).toBe(true);
    expect(s.dataset?.bytesDownloaded).toBe(0);
    expect(serverLog.slice(resumesBefore).some((l) => l.includes(`lease ${lease.leaseId}`) && l.includes('expired'))).toBe(false);
  });

  it('a tab reloaded while XNNPACK computes comes straight back: its threads do not hold up the new page, no lease expires', async () => {
    const before = await until(async () => {
      const s = await state(wasmTab);
      return s.phase === 'training' && s.lease !== null && s.step >= 10 && s.step < s.total ? s : null;
    }, 'the wasm tab is well into a child', 60_000, 20);
    const expiredBefore = await metric('petri_leases_total{outcome="expired"}');
    const reloadedAt = Date.now();
    await wasmTab.reload();
    const back = await until(async () => {
      const s = await state(wasmTab);
      return s.phase === 'training' && s.lease !== null && s.step > s.resumedFrom ? s : null;
    }, 'the reloaded tab trains again', 60_000, 50);
    const seconds = (Date.now() - reloadedAt) / 1000;
    consoleLog.push(`${new Date().toISOString()} reloaded at step ${before.step}/${before.total}: training again after ${seconds.toFixed(1)} s`);
    expect(back.backend?.threads).toBe(before.backend?.threads);
    // Held over a reload, the lease stays this tab's: the server sees no expiry (its TTL here is 8 s).
    expect(await metric('petri_leases_total{outcome="expired"}')).toBe(expiredBefore);
  });

  it('the population of the wasm tab’s experiment improves on its initial fitness; memory stays flat', async () => {
    const initial = await until(async () => {
      const all = await individuals(expB);
      const first = all.filter((i) => i.parentId === null);
      return first.length === 4 ? first : null;
    }, 'the initial population of B is trained', 120_000, 1000);
    const initialBest = Math.max(...initial.map((i) => i.fitness));
    const best = await until(async () => {
      const children = (await individuals(expB)).filter((i) => i.parentId !== null && !i.failed);
      const top = Math.max(0, ...children.map((i) => i.fitness));
      return top >= initialBest + 0.1 ? top : null;
    }, `a child of B beats the initial best (${initialBest}) by 10 points`, 200_000, 1000);
    expect(best).toBeGreaterThanOrEqual(initialBest + 0.1);
    // tf.memory() in the tab's worker after each child (since the last reload): no tensor is left behind.
    const s = await until(async () => {
      const x = await state(wasmTab);
      return x.memory.length >= 6 ? x : null;
    }, 'the wasm tab trains six children after its last reload', 120_000, 500);
    const tensors = s.memory.map((m) => m.numTensors);
    expect(Math.max(...tensors)).toBe(Math.min(...tensors));
  });

  it('pauses and resumes with one button, and while hidden when asked to', async () => {
    const training = async () => {
      const s = await state(wasmTab);
      return s.phase === 'training' && s.step <= s.total - 60 ? s : null;
    };
    await until(training, 'the wasm tab is training', 60_000, 50);
    await wasmTab.click('#toggle');
    await until(async () => (await state(wasmTab)).phase === 'paused', 'the tab pauses', 10_000, 50);
    await textOf(wasmTab, '#toggle', 'Resume');
    await wasmTab.waitForTimeout(500);
    const held = await state(wasmTab);
    await wasmTab.waitForTimeout(1500);
    const still = await state(wasmTab);
    expect(still.step).toBe(held.step);
    expect(still.lease?.leaseId).toBe(held.lease?.leaseId); // the child is kept while paused
    await wasmTab.click('#toggle');
    await until(async () => (await state(wasmTab)).step !== held.step, 'training goes on after Resume', 20_000, 50);
    await textOf(wasmTab, '#toggle', 'Pause');

    const setHidden = (hidden: boolean) =>
      wasmTab.evaluate((h) => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
        document.dispatchEvent(new Event('visibilitychange'));
      }, hidden);
    await setHidden(true); // the setting is off: nothing happens
    expect((await state(wasmTab)).pausedBy).toBeNull();
    await wasmTab.click('#settings summary');
    await wasmTab.check('#pause-hidden');
    expect((await state(wasmTab)).pausedBy).toBe('hidden');
    await setHidden(false);
    expect((await state(wasmTab)).pausedBy).toBeNull();
    await setHidden(true);
    expect((await state(wasmTab)).pausedBy).toBe('hidden');
    await setHidden(false);
    await wasmTab.uncheck('#pause-hidden');

    // The duty-cycle limit is a setting kept for the next visit.
    await wasmTab.$eval('#duty', (el) => {
      (el as HTMLInputElement).value = '50';
      el.dispatchEvent(new Event('input'));
    });
    expect((await state(wasmTab)).settings.dutyPercent).toBe(50);
    expect(await wasmTab.evaluate(() => localStorage.getItem('petri.settings.v1'))).toContain('"dutyPercent":50');
    await wasmTab.$eval('#duty', (el) => {
      (el as HTMLInputElement).value = '100';
      el.dispatchEvent(new Event('input'));
    });
  });

  it('rides out a server restart, resuming the child from its checkpoint, and says what is going on', async () => {
    await wasmTab.evaluate(() => window.petri.resume()); // in case the test before failed while paused
    const before = await midChild(wasmTab, 40);
    const child = before.lease!.childId;
    const port = server.port;
    // Held until the tab has lost the server: however fast it trains, the child cannot end (and its
    // result reach a closing server) before the outage. The server closes its sockets first, so
    // the tab may go on while the server finishes closing.
    await wasmTab.evaluate(() => window.petri.pause());
    await until(async () => (await state(wasmTab)).phase === 'paused', 'the tab pauses', 10_000, 50);
    const closing = closeServer();
    try {
      const gone = await until(async () => {
        const s = await state(wasmTab);
        return s.notice?.key === 'disconnected' ? s : null;
      }, 'the page says the server is gone', 30_000, 100);
      expect(gone.notice?.title).toMatch(/Lost contact/);
      expect(gone.notice?.action).toMatch(/Nothing to do/);
      await wasmTab.evaluate(() => window.petri.resume());
      const resumedAt = Date.now();
      // The child ends while the server is away (training goes on) and its weights cannot be sent:
      // the notice stays what it was, not a failure notice that would outlive the reconnection.
      const ended = await until(async () => {
        const s = await state(wasmTab);
        return s.lease === null ? s : null;
      }, 'the child ends while the server is away', 60_000, 100);
      // What the tab looked like, should this fail (once in CI a child ended 'stopped', about a minute on).
      const seen = JSON.stringify({
        endedAfterMs: Date.now() - resumedAt, phase: ended.phase, pausedBy: ended.pausedBy, connected: ended.connected,
        notice: ended.notice?.title, last: ended.history.slice(-2),
      });
      serverLog.push(`${new Date().toISOString()} [test] the child ended while the server was away: ${seen}`);
      expect(ended.history.at(-1), seen).toMatchObject({ childId: child, status: 'failed' });
      expect(ended.notice?.key).toBe('disconnected');
      expect(ended.notice?.detail).toMatch(/could not be delivered.*last checkpoint/);
      await wasmTab.screenshot({ path: join(ARTIFACTS, 'volunteer-error-phone.png'), fullPage: true });
    } finally {
      // Back whatever happened above, so that a failure here does not fail the tests after it too.
      await closing;
      server = await startServer(port);
    }
    const resumed = await judged(wasmTab, child, 'the child is finished after the restart');
    expect(resumed.resumedFrom).toBeGreaterThanOrEqual(before.lastCheckpoint);
    expect(resumed.stepsDone).toBe(before.total);
    const after = await state(wasmTab);
    expect(after.connected).toBe(true);
    expect(after.notice?.key).not.toBe('disconnected');
    await wasmTab.evaluate(() => window.petri.stop());
    expect((await state(wasmTab)).phase).toBe('stopped');
  });

  it('a tab whose verdict is lost in a server restart stops showing \'Judging\' once it is back, and the child is kept', async () => {
    // The restarted server holds the verification of the experiment's second child (verifications run
    // one at a time, so the first is in the population by then) until the test lets it go.
    const port = server.port;
    const real = new ThreadVerifier(join(dir, 'data'));
    let experimentId = '';
    let held: { release: () => void } | null = null;
    let holding = true;
    const gated: Verifier = {
      async evaluate(request) {
        if (holding && server.store.getExperiment(experimentId)?.childrenTrained === 1) {
          holding = false;
          await new Promise<void>((release) => {
            held = { release };
          });
        }
        return real.evaluate(request);
      },
      close: () => real.close(),
    };
    await closeServer();
    server = await startServer(port, gated);
    let page: Page | null = null;
    try {
      // Two children in all: the initial population of two.
      const c = await server.coordinator.createExperiment(
        resolveConfig({ preset: 'quick', seed: 'lost-verdict', populationSize: 2, stepsPerChild: 20, batchSize: 10, maxChildren: 2 }),
      );
      experimentId = c.id;
      page = await wasmBrowser.newPage({ viewport: { width: 420, height: 900 } });
      await page.goto(`${server.url}/?autostart=1&nickname=lost-verdict&backend=wasm&experiment=${c.id}`);
      const tab = page;
      // The second child's result is in and its verification held; with no more work, the tab shows 'Judging'.
      const judging = await until(async () => {
        const s = await state(tab);
        return held !== null && s.phase === 'judging' && s.lease !== null ? s : null;
      }, 'the second child is being judged', 120_000, 100);
      const second = judging.lease!.childId;
      // The server goes down before its verdict reaches the tab (its sockets close first), then judges the child.
      const closing = closeServer();
      await until(async () => !(await state(tab)).connected, 'the tab loses the server', 30_000, 50);
      (held as { release: () => void } | null)?.release();
      await closing;
      server = await startServer(port);
      const back = await until(async () => {
        const s = await state(tab);
        return s.connected && s.phase !== 'connecting' ? s : null;
      }, 'the tab is back', 60_000, 100);
      expect(back.phase).toBe('waiting');
      expect(back.lease).toBeNull();
      // The verdict never came; the child is in the history and in the population all the same.
      expect(back.history.find((h) => h.childId === second)).toMatchObject({ status: 'ok' });
      expect(back.history.find((h) => h.childId === second)?.verdict).toBeUndefined();
      expect((await individuals(c.id)).map((i) => i.id)).toContain(second);
    } finally {
      holding = false;
      (held as { release: () => void } | null)?.release();
      await page?.close();
      if (!server.http.listening) server = await startServer(port);
    }
  });

  it('a tab that trains through a server restart lets go of the lease the new server does not know, and the child is trained again from its checkpoint', async () => {
    const port = server.port;
    // The one tab on this experiment: the wasm tab (stopped at the end of the restart test) must not take its child.
    await wasmTab.evaluate(() => window.petri.stop());
    const page = await wasmBrowser.newPage({ viewport: { width: 420, height: 900 } });
    try {
      await page.goto(`${server.url}/?autostart=1&nickname=through-restart&backend=wasm&experiment=${expB}&checkpointEvery=20`);
      const before = await midChild(page, 20);
      const child = before.lease!.childId;
      // Paused with the child in hand: it is still the tab's child in progress when the server is back.
      await page.evaluate(() => window.petri.pause());
      await until(async () => (await state(page)).phase === 'paused', 'the tab pauses', 10_000, 50);
      await closeServer();
      server = await startServer(port);
      // Leases live in the server's memory: the new one refuses to resume it, and the tab says so.
      const refused = await until(async () => {
        const s = await state(page);
        return s.connected && s.notice?.key === 'refused' ? s : null;
      }, 'the tab hears that its lease is gone', 60_000, 100);
      expect(refused.notice?.title).toMatch(/no longer this tab/);
      expect(refused.notice?.detail).toMatch(/server restarted/);
      await page.evaluate(() => window.petri.resume());
      // The child was queued again; the tab takes it back and continues it from its checkpoint.
      const done = await judged(page, child, 'the child is trained again and judged');
      expect(done.resumedFrom).toBeGreaterThanOrEqual(before.lastCheckpoint);
      expect((await state(page)).history.find((h) => h.childId === child)).toMatchObject({ status: 'stopped' });
    } finally {
      await page.close();
    }
  });

  it('petri worker --browser trains a child on WebGPU in headless Chromium and stops cleanly on SIGTERM', async () => {
    const c = await server.coordinator.createExperiment(resolveConfig({ preset: 'quick', seed: 'cli', populationSize: 2, stepsPerChild: 10, batchSize: 10, maxChildren: 2 }));
    const worker = startPetri(['worker', '--browser', '--server', server.url, '--nickname', 'cli-worker', '--experiment', c.id], { PETRI_CHROME_PROFILE: join(dir, 'chrome-profile') });
    processes.push(worker);
    await worker.waitFor(/training on WebGPU/, 90_000);
    await worker.waitFor(/accepted: fitness \d/, 150_000);
    worker.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(worker.output()).toMatch(/SIGTERM: handing the lease back and stopping/);
    const trained = (await individuals(c.id)).filter((i) => i.trainedBy.nickname === 'cli-worker');
    expect(trained.length).toBeGreaterThan(0);
    expect(trained.every((i) => i.trainedBy.backend === 'webgpu')).toBe(true);

    // And it honours its deadline (--max-hours), in process this time.
    const lines: string[] = [];
    const started = Date.now();
    const code = await runBrowserWorker({ server: server.url, experimentId: c.id, quiet: false, deadline: Date.now() + 4_000, say: (l) => lines.push(l), profileDir: join(dir, 'chrome-profile-2') });
    expect(code).toBe(0);
    expect(lines.join('\n')).toMatch(/the deadline \(--max-hours\): handing the lease back and stopping/);
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it('without cross-origin isolation, WebAssembly runs on one thread, on the single-threaded build, and says why', async () => {
    // The same built page from a plain static server: no COOP/COEP headers, no SharedArrayBuffer.
    const site = await serveStatic(clientDir);
    const page = await wasmBrowser.newPage();
    const workers: string[] = [];
    page.on('worker', (w) => workers.push(w.url()));
    try {
      await page.goto(`${site.url}?backend=wasm`);
      const s = await until(async () => {
        const x = await state(page);
        return x.backend !== null ? x : null;
      }, 'the page reports its backend', 60_000);
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(false);
      expect(s.backend?.threads).toBe(1);
      expect(s.backend?.adapter).toMatch(/^CPU via WebAssembly, one thread \(\d+ logical cores; the page is not cross-origin isolated\)$/);
      // Only the training worker: the threaded build would have started its pool of pthread workers.
      expect(workers).toHaveLength(1);
    } finally {
      await page.close();
      await site.close();
    }
  });

  it('explains in plain words when the backend asked for does not work, or the experiment does not exist', async () => {
    const bad = await wasmBrowser.newPage({ viewport: { width: 1000, height: 760 } });
    await bad.goto(`${server.url}/?backend=webgpu`);
    const s = await until(async () => {
      const x = await state(bad);
      return x.engineError !== null ? x : null;
    }, 'the page reports that WebGPU does not work here', 60_000);
    expect(s.notice?.level).toBe('error');
    expect(s.notice?.action).toMatch(/backend=/);
    await until(() => bad.isDisabled('#toggle'), 'the button is disabled', 10_000, 50);
    await bad.screenshot({ path: join(ARTIFACTS, 'volunteer-error.png'), fullPage: true });
    await bad.close();

    const lost = await wasmBrowser.newPage();
    await lost.goto(`${server.url}/?autostart=1&backend=wasm&experiment=no-such-thing`);
    const refused = await until(async () => {
      const x = await state(lost);
      return x.phase === 'error' ? x : null;
    }, 'the page says the experiment does not exist', 60_000);
    expect(refused.notice?.title).toMatch(/no experiment “no-such-thing”/);
    expect(refused.notice?.action).toMatch(/Remove “experiment=…”/);
    expect(refused.running).toBe(false);
    await lost.close();
  });
});
