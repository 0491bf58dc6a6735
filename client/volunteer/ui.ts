/** Renders the page state into the DOM of client/index.html. */
import { BACKEND_LABELS } from '../train/backend-names.ts';
import { formatBytes, formatCredit, formatDuration, formatFlops, formatPercent, formatRate } from './format.ts';
import type { PageState } from './state.ts';

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

function setText(id: string, text: string): void {
  const node = el(id);
  if (node.textContent !== text) node.textContent = text;
}

function show(id: string, visible: boolean): void {
  el(id).hidden = !visible;
}

const PILL: Record<PageState['phase'], [string, string]> = {
  idle: ['Idle', ''],
  starting: ['Starting', 'active'],
  connecting: ['Connecting', 'active'],
  waiting: ['Waiting', 'active'],
  'loading-data': ['Data', 'active'],
  preparing: ['Preparing', 'active'],
  training: ['Training', 'active'],
  judging: ['Judging', 'active'],
  paused: ['Paused', 'paused'],
  stopped: ['Stopped', ''],
  error: ['Problem', 'error'],
};

function statusText(s: PageState): string {
  switch (s.phase) {
    case 'idle':
      return s.engineError === null ? 'Press “Start contributing” when you are ready.' : 'This browser cannot train networks.';
    case 'starting':
      return 'Starting the training engine…';
    case 'connecting':
      return s.reconnects > 0 ? 'Reconnecting to the server…' : 'Connecting to the server…';
    case 'waiting':
      return s.idleReason === null ? 'Asking the server for a child to train…' : `No work right now (${s.idleReason}). Asking again shortly.`;
    case 'loading-data':
      return 'Getting the training data…';
    case 'preparing':
      if (s.resumedFrom > 0) return `Continuing from the checkpoint at step ${s.resumedFrom}…`;
      return s.backend?.backend === 'webgpu' || s.backend?.backend === 'webgl'
        ? 'Preparing the network; the first child on a GPU compiles its shaders, which can take a minute…'
        : 'Preparing the network…';
    case 'training':
      return s.resumedFrom > 0 ? `Training (continued from the checkpoint at step ${s.resumedFrom}).` : 'Training.';
    case 'judging':
      return 'Weights sent; the server is measuring the child’s accuracy…';
    case 'paused':
      return s.pausedBy === 'hidden' ? 'Paused while this tab is hidden (see the settings below).' : 'Paused. The child in hand is kept for a minute, then handed back.';
    case 'stopped':
      return 'Stopped. Thank you for your help!';
    case 'error':
      return 'Stopped by a problem (see above).';
  }
}

function backendLine(s: PageState): { text: string; kind: string } {
  if (s.engineError !== null) return { text: `No way to train here: ${s.engineError}`, kind: 'broken' };
  const b = s.backend;
  if (b === null) return { text: 'Checking what this device can train on…', kind: '' };
  const label = BACKEND_LABELS[b.backend];
  if (b.backend === 'webgpu') {
    return { text: `This tab trains on <strong>WebGPU</strong> · ${escape(b.adapter)}${b.software ? ' <em>(a software GPU: correct, but slow)</em>' : ''}`, kind: b.software ? 'fallback' : 'gpu' };
  }
  const why = b.fallbackReason === undefined ? '' : ` — not WebGPU: ${escape(b.fallbackReason)}`;
  return { text: `This tab trains on <strong>${label}</strong> · ${escape(b.adapter)}${why}`, kind: b.backend === 'webgl' ? 'gpu' : 'fallback' };
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function render(s: PageState): void {
  // Start / pause / resume: one button.
  const toggle = el<HTMLButtonElement>('toggle');
  const label = !s.running ? (s.phase === 'stopped' ? 'Start again' : 'Start contributing') : s.pausedBy !== null ? 'Resume' : 'Pause';
  if (toggle.textContent !== label) toggle.textContent = label;
  toggle.classList.toggle('secondary', s.running && s.pausedBy === null);
  toggle.disabled = s.engineError !== null || s.phase === 'starting';
  el<HTMLInputElement>('nickname').disabled = s.running;

  const line = backendLine(s);
  const backendText = el('backend-text');
  if (backendText.innerHTML !== line.text) backendText.innerHTML = line.text;
  el('backend-line').className = `backend ${line.kind}`;

  // The notice: errors and warnings in plain words.
  const notice = s.notice;
  show('notice', notice !== null);
  if (notice !== null) {
    el('notice').className = `notice ${notice.level}`;
    setText('notice-title', notice.title);
    setText('notice-detail', notice.detail);
    setText('notice-action', notice.action ?? '');
    show('notice-action', notice.action !== undefined);
  }

  const [pill, pillClass] = PILL[s.phase];
  setText('status-pill', pill);
  el('status-pill').className = `pill ${pillClass}`;
  setText('status-text', statusText(s));

  // Dataset download (first visit) or cache read (later visits).
  const d = s.dataset;
  const showData = d !== null && (!d.done || s.phase === 'loading-data');
  show('dataset-box', showData);
  if (d !== null && showData) {
    setText('dataset-title', `Training data: ${d.dataset}`);
    const fraction = d.bytesTotal > 0 ? d.bytesDone / d.bytesTotal : 0;
    const source =
      d.bytesDownloaded > 0
        ? `downloading ${formatBytes(d.bytesDone)} of ${formatBytes(d.bytesTotal)}`
        : d.shardsDone > 0
          ? `reading ${formatBytes(d.bytesTotal)} from this browser's cache`
          : `checking this browser's cache`;
    setText('dataset-text', d.done ? 'ready' : `${source} (${Math.round(fraction * 100)}%)`);
    el('dataset-bar').style.width = `${Math.round(fraction * 100)}%`;
  }

  // The child in hand.
  const c = s.lease;
  show('child-box', c !== null);
  if (c !== null) {
    setText('child-id', c.childId);
    setText('child-parent', c.parentId ?? 'none: a member of the initial population');
    const mutation = el('child-mutation');
    const html =
      c.mutations.length === 0
        ? 'none (the initial linear model)'
        : c.mutations.map((m) => `<strong>${escape(m.name)}</strong> <span class="detail">${escape(m.detail)}</span>`).join('<br>');
    if (mutation.innerHTML !== html) mutation.innerHTML = html;
    setText('child-experiment', `${c.experimentId} · ${c.dataset} · ${c.steps} steps of ${c.batchSize} images`);
    const total = s.total || c.steps;
    const fraction = total > 0 ? s.step / total : 0;
    const progress = el('step-progress');
    progress.setAttribute('aria-valuemax', String(total));
    progress.setAttribute('aria-valuenow', String(s.step));
    progress.classList.toggle('indeterminate', s.phase === 'preparing' || s.phase === 'loading-data');
    el('step-bar').style.width = `${(fraction * 100).toFixed(1)}%`;
    setText('step-text', `step ${s.step} of ${total}`);
    setText('rate-text', s.step > 0 ? formatRate(s.imagesPerSecond) : '');
    const eta = s.etaSeconds === null ? '' : s.etaSeconds < 1 ? 'almost done' : `about ${formatDuration(s.etaSeconds)} left`;
    setText('eta-text', s.phase === 'training' ? eta : s.phase === 'judging' ? 'trained' : s.phase === 'paused' ? 'paused' : '');
  }

  // The server's verdict on the last child.
  const last = [...s.history].reverse().find((h) => h.verdict !== undefined);
  show('verdict-box', last !== undefined);
  if (last?.verdict !== undefined) {
    const v = last.verdict;
    const box = el('verdict-box');
    box.className = `verdict ${v.outcome === 'accepted' ? '' : 'failed'}`;
    const html =
      v.outcome === 'accepted'
        ? `Last child <code>${escape(last.childId)}</code>: fitness <strong>${formatPercent(v.fitness)}</strong> validation accuracy, measured by the server${v.provisional ? ' (provisional: not re-checked yet)' : ''}.`
        : `Last child <code>${escape(last.childId)}</code> diverged during training (its loss blew up); the server recorded it as failed. That is part of evolution.`;
    if (box.innerHTML !== html) box.innerHTML = html;
  }

  setText('total-children', String(s.totals.children));
  setText('total-flops', formatFlops(s.totals.flops));
  setText('total-credit', formatCredit(s.totals.credit));

  const recent = el('recent');
  const items = s.history
    .filter((h) => h.verdict !== undefined || h.status === 'failed')
    .slice(-5)
    .reverse()
    .map((h) => {
      const result = h.verdict === undefined ? 'failed here' : h.verdict.outcome === 'accepted' ? `fitness ${formatPercent(h.verdict.fitness)}` : 'diverged';
      return `<li><code>${escape(h.childId)}</code><span>${result} · ${escape(h.backend)}</span></li>`;
    })
    .join('');
  if (recent.innerHTML !== items) recent.innerHTML = items;

  const duty = el<HTMLInputElement>('duty');
  if (document.activeElement !== duty) duty.value = String(s.settings.dutyPercent);
  setText('duty-out', `${s.settings.dutyPercent}%`);
  el<HTMLInputElement>('pause-hidden').checked = s.settings.pauseWhenHidden;
}
