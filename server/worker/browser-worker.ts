/**
 * `petri worker --browser`: drives a headless Chrome/Chromium on the
 * volunteer page, so a workstation trains with its GPU through WebGPU
 * exactly as a volunteer's tab does. It prints one line per child from the
 * page's own state (`window.petri.state()`), and on SIGINT/SIGTERM or at
 * the deadline it asks the page to stop (`window.petri.stop()`: the lease
 * in hand goes back to the server at once), closes the browser, exits 0.
 *
 * The Chromium launcher lives here (e2e/support/browser.ts re-exports it):
 * server code must not depend on test code.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, LaunchOptions, Page } from 'playwright-core';

export const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable', '/opt/google/chrome/chrome'];

/** The first Chromium/Chrome binary found, or a clear error saying how to install one. */
export function findChromium(explicit?: string): string {
  const candidates = explicit ? [explicit] : [process.env.PETRI_CHROME, ...CHROMIUM_CANDIDATES].filter((x): x is string => !!x);
  for (const path of candidates) if (existsSync(path)) return path;
  throw new Error(
    `no Chromium or Chrome found (tried ${candidates.join(', ')}); install one (Debian: apt-get install -y chromium) or pass its path with --chrome`,
  );
}

/** Flags for a headless Chromium run by a service or a test (no sandbox: may run as root). */
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

/** WebGPU in headless Chromium on Linux (on a machine without a GPU it runs on SwiftShader). */
export const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan'];

/** Chromium launch options with the flags above. */
export function chromiumLaunchOptions(options: { webgpu?: boolean; executablePath?: string } & LaunchOptions = {}): LaunchOptions {
  const { webgpu = false, executablePath, ...rest } = options;
  return {
    executablePath: findChromium(executablePath),
    headless: true,
    args: [...CHROMIUM_FLAGS, ...(webgpu ? WEBGPU_FLAGS : [])],
    ...rest,
  };
}

export interface BrowserWorkerOptions {
  readonly server: string;
  readonly chrome?: string;
  readonly nickname?: string;
  readonly experimentId?: string;
  readonly quiet: boolean;
  /** Epoch ms at which to stop (Infinity: never). */
  readonly deadline: number;
  readonly say: (line: string) => void;
  /** Extra query parameters for the page (backend=wasm, duty=50, …). */
  readonly query?: Readonly<Record<string, string>>;
  /** The Chrome profile (keeps the dataset cache between runs); default ~/.cache/petri/chrome-profile/<slot>. */
  readonly profileDir?: string;
  /** Seconds between two polls of the page (default 1). */
  readonly pollSeconds?: number;
}

/** The part of the page's state (client/volunteer/state.ts) read here. */
interface PageView {
  phase: string;
  running: boolean;
  backend: { backend: string; adapter: string; fallbackReason?: string; software: boolean } | null;
  engineError: string | null;
  connected: boolean;
  lease: { leaseId: string; childId: string; parentId: string | null; mutations: { name: string }[]; steps: number } | null;
  step: number;
  total: number;
  imagesPerSecond: number;
  resumedFrom: number;
  history: {
    leaseId: string;
    childId: string;
    status: string;
    stepsDone: number;
    backend: string;
    verdict?: { outcome: string; fitness: number; provisional: boolean; creditFlops: number };
  }[];
  notice: { level: string; title: string; detail: string; action?: string } | null;
}

/** The page's automation hook (client/volunteer/main.ts), as seen from here. */
type PetriWindow = { petri?: { state(): unknown; stop(): Promise<void> } };

/** Locks one profile slot for this process, so parallel workers do not share a Chrome profile. */
function lockProfile(root: string): { dir: string; release: () => void } {
  mkdirSync(root, { recursive: true });
  for (let slot = 0; slot < 64; slot++) {
    const dir = join(root, String(slot));
    const lock = join(root, `${slot}.lock`);
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
    } catch {
      const owner = Number(readFileSync(lock, 'utf8').trim());
      if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) continue;
      writeFileSync(lock, String(process.pid));
    }
    return { dir, release: () => rmSync(lock, { force: true }) };
  }
  const dir = join(tmpdir(), `petri-chrome-${process.pid}`);
  return { dir, release: () => rmSync(dir, { recursive: true, force: true }) };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function describeBackend(b: NonNullable<PageView['backend']>): string {
  if (b.backend === 'webgpu') return `WebGPU on ${b.adapter}${b.software ? ' (a software GPU: slow)' : ''}`;
  return `${b.backend} on ${b.adapter}${b.fallbackReason ? ` (not WebGPU: ${b.fallbackReason})` : ''}`;
}

/** Runs the volunteer page in headless Chromium until a signal or the deadline. Resolves to the exit code. */
export async function runBrowserWorker(options: BrowserWorkerOptions): Promise<number> {
  const { say, quiet } = options;
  let executablePath: string;
  try {
    executablePath = findChromium(options.chrome);
  } catch (err) {
    say(`petri worker --browser: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    say('petri worker --browser needs the playwright-core package to drive Chrome: run "npm install playwright-core" in the Petri folder');
    return 1;
  }

  const url = new URL('/', options.server);
  url.searchParams.set('autostart', '1');
  if (options.nickname) url.searchParams.set('nickname', options.nickname);
  if (options.experimentId) url.searchParams.set('experiment', options.experimentId);
  for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);

  const profile = options.profileDir !== undefined ? { dir: options.profileDir, release: () => {} } : lockProfile(process.env.PETRI_CHROME_PROFILE ?? join(homedir(), '.cache', 'petri', 'chrome-profile'));
  let context: BrowserContext | null = null;
  let stopping: string | null = null;
  let wake: () => void = () => {};
  const onSignal = (signal: string) => {
    stopping ??= signal;
    wake();
  };
  const onInt = () => onSignal('SIGINT');
  const onTerm = () => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  try {
    context = await chromium.launchPersistentContext(profile.dir, { ...chromiumLaunchOptions({ webgpu: true, executablePath }), viewport: { width: 1024, height: 800 } });
    const page: Page = context.pages()[0] ?? (await context.newPage());
    let crashed = false;
    page.on('crash', () => {
      crashed = true;
      wake();
    });
    if (!quiet) page.on('pageerror', (err) => say(`page error: ${err.message}`));
    if (!quiet) say(`opening ${url.href} in ${executablePath} (headless)`);
    try {
      await page.goto(url.href, { waitUntil: 'load', timeout: 60_000 });
      await page.waitForFunction(() => typeof (window as unknown as PetriWindow).petri?.state === 'function', null, { timeout: 30_000 });
    } catch (err) {
      say(`could not open the volunteer page at ${url.href}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)} (is the server running, and are its pages built with "npm run build"?)`);
      return 1;
    }

    let saidBackend = false;
    let lastNotice = '';
    const reported = new Set<string>();
    let announced = '';
    const poll = (options.pollSeconds ?? 1) * 1000;
    for (;;) {
      if (stopping === null && Date.now() >= options.deadline) stopping = 'the deadline (--max-hours)';
      if (stopping !== null || crashed) break;
      let s: PageView;
      try {
        s = (await page.evaluate(() => (window as unknown as PetriWindow).petri?.state())) as PageView;
      } catch (err) {
        if (stopping !== null) break;
        say(`the page stopped answering: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
        return 1;
      }
      if (!saidBackend && s.backend !== null) {
        saidBackend = true;
        if (!quiet) say(`training on ${describeBackend(s.backend)}`);
      }
      const noticeText = s.notice === null ? '' : `${s.notice.title} ${s.notice.detail}${s.notice.action ? ` ${s.notice.action}` : ''}`;
      if (noticeText !== lastNotice) {
        lastNotice = noticeText;
        if (noticeText !== '' && (!quiet || s.notice?.level === 'error')) say(`${s.notice?.level === 'error' ? 'error' : 'note'}: ${noticeText}`);
      }
      if (!quiet && s.lease !== null && announced !== s.lease.leaseId) {
        announced = s.lease.leaseId;
        const m = s.lease.mutations.map((x) => x.name).join('+') || 'initial model';
        say(`child ${s.lease.childId} of ${s.lease.parentId ?? '(initial)'}: ${m}, ${s.lease.steps} steps`);
      }
      for (const h of s.history) {
        const done = h.verdict !== undefined || h.status === 'failed' || h.status === 'stopped';
        if (!done || reported.has(h.leaseId)) continue;
        reported.add(h.leaseId);
        if (quiet) continue;
        if (h.verdict !== undefined) {
          const what = h.verdict.outcome === 'accepted' ? `accepted: fitness ${h.verdict.fitness.toFixed(4)} (computed by the server)` : 'diverged (recorded as failed)';
          say(`  ${h.childId} ${what}, ${h.stepsDone} steps on ${h.backend}`);
        } else say(`  ${h.childId} ${h.status === 'stopped' ? 'handed back' : 'failed on this worker'} after ${h.stepsDone} steps`);
      }
      if (s.phase === 'error' || s.engineError !== null) {
        say('the volunteer page stopped on an error; exiting');
        return 1;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, poll);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (crashed) {
      say('the browser tab crashed (out of memory?); exiting');
      return 1;
    }
    if (!quiet) say(`${stopping}: handing the lease back and stopping`);
    await Promise.race([page.evaluate(() => (window as unknown as PetriWindow).petri?.stop()), new Promise((resolve) => setTimeout(resolve, 10_000))]).catch(() => {});
    return 0;
  } catch (err) {
    say(`petri worker --browser: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    return 1;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await context?.close().catch(() => {});
    profile.release();
  }
}
