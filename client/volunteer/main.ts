/**
 * The volunteer page: one button to start, pause and resume; the session
 * with the server (shared WorkerSession over socket.io) on this thread; the
 * training in a dedicated Web Worker. `?autostart=1&nickname=NAME` starts
 * without a click, `&backend=wasm|webgl|cpu|webgpu` forces a backend,
 * `&experiment=ID` picks an experiment, `&duty=50` limits the training time.
 */
import * as v from 'valibot';
import { nicknameSchema } from '../../shared/protocol.ts';
import { WorkerSession, type SessionEvent } from '../../shared/worker/session.ts';
import { parseBackend } from '../train/backend-names.ts';
import { clampDuty } from '../train/duty-cycle.ts';
import type { FromWorker } from '../train/messages.ts';
import { TrainingEngine } from './engine.ts';
import { addToTotals, loadHeldLease, loadNickname, loadSettings, loadSpeed, loadTotals, saveHeldLease, saveNickname, saveSettings, saveSpeed } from './storage.ts';
import { childView, initialState, snapshot, type Notice, type PageState } from './state.ts';
import { WorkerTrainer } from './trainer.ts';
import { socketTransport, type SocketTransport } from './transport.ts';
import { render } from './ui.ts';

/** A paused tab keeps its child this long (a short pause loses nothing), then hands it back. */
const HOLD_MS = 60_000;
/** A disconnection shorter than this is not worth a notice. */
const QUIET_DISCONNECT_MS = 2_500;

export interface PetriHook {
  /** A JSON copy of everything the page shows. */
  state(): PageState;
  /** Starts contributing (as the button does). */
  start(): Promise<void>;
  pause(): void;
  resume(): void;
  /** Stops at once: the lease in hand is handed back, then the connection closes. */
  stop(): Promise<void>;
}

declare global {
  interface Window {
    petri: PetriHook;
  }
}

const params = new URLSearchParams(location.search);
const forced = parseBackend(params.get('backend'));
const base = location.origin;
const storedSettings = loadSettings();
const dutyParam = params.get('duty');
const settings = { ...storedSettings, dutyPercent: clampDuty(dutyParam === null ? storedSettings.dutyPercent : Number(dutyParam)) };
const checkpointParam = Number(params.get('checkpointEvery'));
const checkpointEvery = Number.isInteger(checkpointParam) && checkpointParam > 0 ? checkpointParam : null;

const state: PageState = initialState({
  experimentId: params.get('experiment')?.trim() || null,
  nickname: params.get('nickname')?.trim() ?? loadNickname(),
  forcedBackend: forced,
  settings,
  totals: loadTotals(),
});

let renderQueued = false;
function update(change?: (s: PageState) => void): void {
  change?.(state);
  if (renderQueued) return;
  renderQueued = true;
  // rAF does not run in hidden tabs; a timeout does (slowly), so the DOM catches up either way.
  const flush = () => {
    if (!renderQueued) return;
    renderQueued = false;
    render(state);
  };
  requestAnimationFrame(flush);
  setTimeout(flush, 250);
}

/** The phase of a running tab between children. */
function between(s: PageState): PageState['phase'] {
  if (!s.running) return s.phase === 'error' ? 'error' : 'stopped';
  if (s.pausedBy !== null) return 'paused';
  return s.connected ? 'waiting' : 'connecting';
}

function setNotice(notice: Notice | null): void {
  update((s) => {
    s.notice = notice;
  });
}

function clearNotice(key: string): void {
  if (state.notice?.key === key) setNotice(null);
}

// ---- the training engine (Web Worker) ---------------------------------------------------

const engine = new TrainingEngine(forced, base);
engine.post({ type: 'duty', percent: settings.dutyPercent });
engine.ready.then(
  (report) => update((s) => void (s.backend = report)),
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    update((s) => {
      s.engineError = message;
      s.phase = s.running ? 'error' : s.phase;
      s.running = false;
    });
    setNotice({
      key: 'engine',
      level: 'error',
      title: 'This browser cannot train networks here.',
      detail: forced !== null ? `The backend chosen in the address (${forced}) does not work: ${message}` : `None of WebGPU, WebGL, WebAssembly or plain JavaScript worked: ${message}`,
      action: forced !== null ? 'Remove “backend=…” from the address and reload, to let the page pick what works.' : 'Try an up-to-date Chrome, Edge or Firefox, or another device.',
    });
  },
);

engine.on((message: FromWorker) => {
  switch (message.type) {
    case 'dataset':
      update((s) => {
        s.dataset = message.progress;
        if (!message.progress.done && (s.phase === 'preparing' || s.phase === 'waiting')) s.phase = 'loading-data';
      });
      if (message.progress.cacheWarning !== undefined) {
        setNotice({
          key: 'quota',
          level: 'warning',
          title: 'The training data could not be kept for your next visit.',
          detail: `${message.progress.cacheWarning}. Training goes on; the next visit downloads the data again.`,
          action: 'Free some disk space, or allow this site to store data (browser settings → site data).',
        });
      }
      return;
    case 'started':
      update((s) => {
        s.resumedFrom = message.resumedFrom;
        s.step = message.resumedFrom;
        if (s.phase !== 'paused') s.phase = 'preparing';
      });
      return;
    case 'step':
      update((s) => {
        s.step = message.step;
        s.total = message.total;
        s.imagesPerSecond = message.imagesPerSecond;
        s.etaSeconds = message.etaSeconds;
        if (s.phase !== 'paused') s.phase = message.step >= message.total ? 'judging' : 'training';
      });
      return;
    case 'checkpoint':
      update((s) => void (s.lastCheckpoint = message.step));
      return;
    case 'warning':
      setNotice({ key: 'warning', level: 'warning', title: 'Heads up', detail: message.message });
      return;
    case 'done':
      update((s) => {
        s.memory = [...s.memory.slice(-49), message.memory];
      });
      return;
    case 'fatal':
      if (state.backend !== null) {
        setNotice({
          key: 'engine',
          level: 'error',
          title: 'The training engine stopped.',
          detail: `${message.message}. The browser may have run out of memory.`,
          action: 'Reload the page to start again; the child in hand continues from its last checkpoint.',
        });
      }
      return;
    default:
      return;
  }
});

// ---- the session with the server -----------------------------------------------------

let transport: SocketTransport | null = null;
let session: WorkerSession | null = null;
let trainer: WorkerTrainer | null = null;
let holdTimer: ReturnType<typeof setTimeout> | null = null;
let disconnectTimer: ReturnType<typeof setTimeout> | null = null;
let failures = 0;
let backoffTimer: ReturnType<typeof setTimeout> | null = null;

function refusalNotice(code: string, message: string): Notice | null {
  switch (code) {
    case 'protocol-mismatch':
      return { key: 'refused', level: 'error', title: 'This page is older than the server.', detail: message, action: 'Reload the page (Ctrl+Shift+R) to get the current version.' };
    case 'quarantined':
      return {
        key: 'refused',
        level: 'error',
        title: 'The server no longer sends work to this browser.',
        detail: `${message}. This happens when results disagree with the server's own check, which can mean a faulty GPU driver.`,
        action: 'Try another browser or device, or force WebAssembly by adding “&backend=wasm” to the address.',
      };
    case 'bad-message':
      if (/no experiment/.test(message)) {
        return {
          key: 'refused',
          level: 'error',
          title: `There is no experiment “${state.experimentId ?? ''}” on this server.`,
          detail: message,
          action: 'Remove “experiment=…” from the address to help whichever experiment needs it, or pick one on the leaderboard.',
        };
      }
      return { key: 'refused', level: 'warning', title: 'The server did not understand this page.', detail: message, action: 'Reload the page.' };
    case 'lease-expired':
      return { key: 'refused', level: 'info', title: 'A child took too long and went to another volunteer.', detail: message };
    case 'unknown-lease':
      return { key: 'refused', level: 'info', title: 'The child in hand was no longer this tab’s to finish.', detail: `${message}. This tab moves on to the next one.` };
    case 'rate-limited':
      return { key: 'refused', level: 'warning', title: 'The server asks this tab to slow down.', detail: message };
    case 'server-error':
      return { key: 'refused', level: 'info', title: 'The server could not judge the last child.', detail: `${message}. It will be trained again; this is not your browser's fault.` };
    default:
      return { key: 'refused', level: 'warning', title: 'The server refused a message.', detail: `${code}: ${message}` };
  }
}

function failureNotice(err: string, kind: string): Notice {
  switch (kind) {
    case 'network':
      return {
        key: 'failure',
        level: 'warning',
        title: 'Could not download what the child needs.',
        detail: `${err}. The child went back to the server.`,
        action: 'Check the network connection; the page tries again by itself.',
      };
    case 'data':
      return { key: 'failure', level: 'warning', title: 'The training data arrived damaged.', detail: `${err}.`, action: 'The page tries again by itself; if it keeps happening, tell the server’s operator.' };
    case 'upload':
      return { key: 'failure', level: 'warning', title: 'The trained weights could not be delivered.', detail: `${err}.`, action: 'The page moves on to the next child.' };
    case 'unresponsive':
      return { key: 'failure', level: 'error', title: 'The training engine stopped responding.', detail: err, action: 'Reload the page.' };
    default:
      return { key: 'failure', level: 'warning', title: 'Training failed on this device.', detail: `${err}. The child went back to the server.`, action: 'The page tries the next child by itself.' };
  }
}

/** The child this tab could not finish while the connection was down (how it failed), until it is back. */
let lostToOutage: 'upload' | 'network' | null = null;

function disconnectedNotice(): Notice {
  const lost =
    lostToOutage === 'upload'
      ? 'The child this tab trained could not be delivered; '
      : 'The child in hand could not get what it needed from the server; ';
  return {
    key: 'disconnected',
    level: 'warning',
    title: 'Lost contact with the Petri server.',
    detail:
      state.lease !== null
        ? 'Training goes on; the page reconnects by itself and continues the child. If the server restarted, the child resumes from its last checkpoint.'
        : lostToOutage !== null
          ? `${lost}the page reconnects by itself, and the child is trained again, from this tab’s last checkpoint if it comes back here.`
          : 'The page reconnects by itself, waiting a little longer between tries.',
    action: 'Nothing to do: keep this tab open. If it lasts, the server may be down for maintenance.',
  };
}

function onSessionEvent(event: SessionEvent): void {
  switch (event.kind) {
    case 'connected':
      if (disconnectTimer !== null) clearTimeout(disconnectTimer);
      disconnectTimer = null;
      lostToOutage = null;
      clearNotice('disconnected');
      update((s) => {
        s.connected = true;
        if (s.phase === 'connecting') s.phase = between(s);
        // A verdict owed from before the outage may never come: a server that restarted judged the
        // result (or queued the child again) but could not say so. The history keeps the child, and
        // a verdict that does come still lands there; the tab stops showing 'Judging' for it.
        if (s.phase === 'judging') {
          s.lease = null;
          s.phase = between(s);
        }
      });
      return;
    case 'disconnected':
      update((s) => {
        s.connected = false;
        s.reconnects++;
        if (s.lease === null && s.running && s.pausedBy === null) s.phase = 'connecting';
      });
      if (disconnectTimer === null && state.running) {
        disconnectTimer = setTimeout(() => {
          disconnectTimer = null;
          if (state.connected || !state.running) return;
          setNotice(disconnectedNotice());
        }, QUIET_DISCONNECT_MS);
      }
      return;
    case 'lease':
      saveHeldLease({ leaseId: event.lease.leaseId, token: event.lease.token, childId: event.lease.childId });
      clearNotice('refused');
      update((s) => {
        s.lease = childView(event.lease);
        s.step = 0;
        s.total = event.lease.steps;
        s.imagesPerSecond = 0;
        s.etaSeconds = null;
        s.resumedFrom = 0;
        s.lastCheckpoint = 0;
        s.idleReason = null;
        if (s.phase !== 'paused') s.phase = 'preparing';
      });
      return;
    case 'progress':
      return;
    case 'trained': {
      const o = event.outcome;
      saveHeldLease(null);
      if (o.status === 'ok' && state.imagesPerSecond > 0 && state.backend !== null) saveSpeed(state.backend.backend, state.imagesPerSecond);
      update((s) => {
        s.history = [
          ...s.history.slice(-99),
          {
            leaseId: event.lease.leaseId,
            childId: event.lease.childId,
            status: o.status,
            stepsDone: o.stepsDone,
            resumedFrom: s.resumedFrom,
            backend: o.status === 'stopped' ? (s.backend?.backend ?? '') : o.backend,
          },
        ];
        if (o.status !== 'stopped') {
          s.phase = s.phase === 'paused' ? 'paused' : 'judging';
          s.step = o.stepsDone;
        } else {
          s.lease = null;
          s.phase = between(s);
        }
      });
      if (o.status !== 'stopped') failures = 0;
      return;
    }
    case 'verdict': {
      const m = event.message;
      if (m.outcome === 'accepted' && !m.provisional) update((s) => void (s.totals = addToTotals(m.creditFlops)));
      update((s) => {
        const entry = [...s.history].reverse().find((h) => h.leaseId === m.leaseId);
        if (entry !== undefined) entry.verdict = { outcome: m.outcome, fitness: m.fitness, provisional: m.provisional, creditFlops: m.creditFlops };
        if (m.outcome === 'accepted') s.sessionChildren++;
        if (s.lease?.leaseId === m.leaseId) {
          s.lease = null;
          if (s.phase === 'judging') s.phase = between(s);
        }
      });
      return;
    }
    case 'idle':
      update((s) => {
        s.idleReason = event.reason;
        if (s.lease === null) s.phase = between(s);
      });
      return;
    case 'refused': {
      const held = loadHeldLease();
      if (event.code === 'unknown-lease' && held !== null && event.message.includes(held.leaseId)) saveHeldLease(null);
      const notice = refusalNotice(event.code, event.message);
      if (notice !== null) setNotice(notice);
      if (event.code === 'quarantined' || event.code === 'protocol-mismatch' || (event.code === 'bad-message' && /no experiment/.test(event.message))) {
        update((s) => {
          s.running = false;
          s.phase = 'error';
        });
        void session?.stop();
        transport?.close();
      }
      // A refused lease is not waiting for a verdict any more.
      update((s) => {
        if (s.phase === 'judging' && s.lease !== null && event.message.includes(s.lease.leaseId)) {
          s.lease = null;
          s.phase = between(s);
        }
      });
      return;
    }
    case 'error': {
      saveHeldLease(null);
      const kind = /training failed: /.test(event.message) ? 'training' : 'other';
      update((s) => {
        const last = s.lease;
        if (last !== null) s.history = [...s.history.slice(-99), { leaseId: last.leaseId, childId: last.childId, status: 'failed', stepsDone: s.step, resumedFrom: s.resumedFrom, backend: s.backend?.backend ?? '' }];
        s.lease = null;
        // A download cut short is not "in progress" any more.
        if (s.dataset !== null && !s.dataset.done) s.dataset = null;
        s.phase = between(s);
      });
      if (kind === 'other') {
        setNotice({ key: 'failure', level: 'warning', title: 'Something went wrong talking to the server.', detail: event.message });
        return;
      }
      const failure = trainer?.lastFailure ?? 'training';
      if (!state.connected && (failure === 'upload' || failure === 'network')) {
        // The connection is down: weights that could not be sent (or a download cut off) are the
        // outage's doing, not this device's. The 'Lost contact' notice stays (it says what happens
        // next) instead of giving way to a failure notice that would outlive the reconnection, and
        // the back-off below is for broken setups, not for outages.
        lostToOutage = failure;
        if (state.notice?.key === 'disconnected') setNotice(disconnectedNotice());
        return;
      }
      // Back off before the next child, so a broken setup does not spin.
      failures++;
      const message = event.message.replace(/^training failed: /, '');
      setNotice(failureNotice(message, failure));
      if (failures >= 2 && session !== null && state.pausedBy === null) {
        const wait = Math.min(60_000, 2_000 * 2 ** (failures - 2));
        session.setPaused(true);
        if (backoffTimer !== null) clearTimeout(backoffTimer);
        backoffTimer = setTimeout(() => {
          backoffTimer = null;
          if (state.pausedBy === null && state.running) session?.setPaused(false);
        }, wait);
      }
      return;
    }
  }
}

function checkNickname(): string | null {
  const input = document.getElementById('nickname') as HTMLInputElement;
  const text = input.value.trim();
  const error = document.getElementById('nickname-error') as HTMLElement;
  if (text === '') {
    error.hidden = true;
    return '';
  }
  const parsed = v.safeParse(nicknameSchema, text);
  if (!parsed.success) {
    error.textContent = 'A nickname has 1 to 32 letters, digits, spaces or _ . - (or leave it empty).';
    error.hidden = false;
    return null;
  }
  error.hidden = true;
  return parsed.output;
}

async function start(): Promise<void> {
  if (state.running || state.engineError !== null) return;
  const nickname = checkNickname();
  if (nickname === null) return;
  saveNickname(nickname);
  update((s) => {
    s.nickname = nickname;
    s.running = true;
    s.pausedBy = null;
    s.phase = 'starting';
    if (s.notice?.level !== 'error') s.notice = null;
  });
  let report;
  try {
    report = await engine.ready;
  } catch {
    return; // the engine's own handler explained it
  }
  if (!state.running) return;
  update((s) => void (s.phase = 'connecting'));
  engine.post({ type: 'hold', hold: false });
  const held = loadHeldLease();
  transport = socketTransport(base);
  trainer = new WorkerTrainer(engine, () => checkpointEvery);
  session = new WorkerSession(transport, trainer, {
    hello: {
      backend: report.backend,
      adapter: report.adapter,
      ...(report.fallbackReason !== undefined ? { fallbackReason: report.fallbackReason } : {}),
      speed: loadSpeed(report.backend),
      client: 'browser',
      ...(nickname !== '' ? { nickname } : {}),
      ...(state.experimentId !== null ? { experimentId: state.experimentId } : {}),
    },
    ...(held !== null ? { resume: { leaseId: held.leaseId, token: held.token } } : {}),
    now: Date.now,
    onEvent: onSessionEvent,
  });
  if (settings.pauseWhenHidden && document.visibilityState === 'hidden') pause('hidden');
}

function pause(by: 'user' | 'hidden'): void {
  if (!state.running || state.pausedBy === 'user') return;
  update((s) => {
    s.pausedBy = by;
    s.phase = 'paused';
  });
  engine.post({ type: 'hold', hold: true });
  session?.setPaused(true);
  if (holdTimer !== null) clearTimeout(holdTimer);
  holdTimer = setTimeout(() => {
    holdTimer = null;
    // Still paused: hand the child back so it does not wait on this tab.
    const working = session?.working;
    if (state.pausedBy !== null && working !== null && working !== undefined) engine.post({ type: 'stop', leaseId: working.lease.leaseId });
  }, HOLD_MS);
}

function resume(): void {
  if (!state.running || state.pausedBy === null) return;
  if (holdTimer !== null) clearTimeout(holdTimer);
  holdTimer = null;
  update((s) => {
    s.pausedBy = null;
    s.phase = s.lease !== null ? (s.step > 0 ? 'training' : 'preparing') : s.connected ? 'waiting' : 'connecting';
  });
  engine.post({ type: 'hold', hold: false });
  session?.setPaused(false);
}

async function stop(): Promise<void> {
  const current = session;
  const socket = transport;
  if (holdTimer !== null) clearTimeout(holdTimer);
  if (backoffTimer !== null) clearTimeout(backoffTimer);
  const working = current?.working ?? null;
  update((s) => {
    s.running = false;
    s.pausedBy = null;
    s.phase = 'stopped';
  });
  if (current === null || socket === null) return;
  session = null;
  transport = null;
  await current.stop();
  if (working !== null) engine.post({ type: 'stop', leaseId: working.lease.leaseId });
  saveHeldLease(null);
  // Give the release frame a moment to leave before the socket closes.
  if (socket.socket.connected) await new Promise<void>((resolve) => setTimeout(resolve, 300));
  socket.close();
  update((s) => {
    s.connected = false;
    s.lease = null;
  });
}

// ---- the page's controls -------------------------------------------------------------

(document.getElementById('nickname') as HTMLInputElement).value = state.nickname;
document.getElementById('controls')?.addEventListener('submit', (event) => {
  event.preventDefault();
  if (!state.running) void start();
  else if (state.pausedBy !== null) resume();
  else pause('user');
});

document.getElementById('duty')?.addEventListener('input', (event) => {
  const percent = clampDuty(Number((event.target as HTMLInputElement).value));
  update((s) => void (s.settings = { ...s.settings, dutyPercent: percent }));
  saveSettings(state.settings);
  engine.post({ type: 'duty', percent });
});

document.getElementById('pause-hidden')?.addEventListener('change', (event) => {
  const on = (event.target as HTMLInputElement).checked;
  update((s) => void (s.settings = { ...s.settings, pauseWhenHidden: on }));
  saveSettings(state.settings);
  if (on && document.visibilityState === 'hidden') pause('hidden');
  if (!on && state.pausedBy === 'hidden') resume();
});

document.addEventListener('visibilitychange', () => {
  if (!state.settings.pauseWhenHidden) return;
  if (document.visibilityState === 'hidden') pause('hidden');
  else if (state.pausedBy === 'hidden') resume();
});

window.addEventListener('storage', (event) => {
  if (event.key === 'petri.totals.v1') update((s) => void (s.totals = loadTotals()));
});

window.petri = {
  state: () => snapshot(state),
  start,
  pause: () => pause('user'),
  resume,
  stop,
};

render(state);
if (params.get('autostart') === '1') void start();
