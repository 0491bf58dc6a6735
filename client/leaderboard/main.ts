/**
 * The live leaderboard page (/leaderboard?experiment=ID): one experiment at
 * a time. Reads the public API once, then follows the experiment over
 * socket.io (`/live`): new individuals, removals, remedies and status
 * changes update the plot, the table and the numbers without a reload.
 */
import { io } from 'socket.io-client';
import { api, type ExperimentSummary, type PublicIndividual, type Volunteer } from './api.ts';
import { byId, fill, h } from './dom.ts';
import { fmtDate } from './format.ts';
import { IndividualPanel } from './individual-panel.ts';
import { FinalPanel, renderStatus, renderVolunteers } from './panels.ts';
import { ProgressPlot } from './progress-plot.ts';
import { buildSeries, byTrainedAt, stepsPerHour, type Remedy, type XMode } from './series.ts';
import { TopTable, type RankedRow } from './top-table.ts';
import './style.css';

const SELECTION_WORDS: Record<string, string> = {
  tournament: 'tournament selection',
  aging: 'aging evolution',
  random: 'random search (baseline)',
};

interface State {
  experimentId: string | null;
  summary: ExperimentSummary | null;
  individuals: Map<string, PublicIndividual>;
  remedies: Remedy[];
  volunteers: Volunteer[];
  xMode: XMode;
  topN: number;
  /** Bumped on every experiment switch; stale answers are dropped. */
  ticket: number;
}

const state: State = {
  experimentId: null,
  summary: null,
  individuals: new Map(),
  remedies: [],
  volunteers: [],
  xMode: new URLSearchParams(location.search).get('x') === 'flops' ? 'flops' : 'time',
  topN: 20,
  ticket: 0,
};

const picker = byId<HTMLSelectElement>('experiment-picker');
const liveBadge = byId('live');
const plot = new ProgressPlot(byId('plot'), (id) => void openIndividual(id));
const table = new TopTable(byId('top'), (id) => void openIndividual(id));
const finalPanel = new FinalPanel(byId('final'));
const panel = new IndividualPanel(byId('individual'), {
  get dataset() {
    return state.summary?.dataset ?? '';
  },
  open: (id) => void openIndividual(id),
  close: () => closeIndividual(),
});

// ---- rendering -----------------------------------------------------------------

let renderTimer: ReturnType<typeof setTimeout> | null = null;
const dirty = { plot: false, table: false, status: false };

function schedule(parts: Partial<typeof dirty>): void {
  Object.assign(dirty, parts);
  renderTimer ??= setTimeout(() => {
    renderTimer = null;
    render();
  }, 150);
}

function render(): void {
  const summary = state.summary;
  if (summary === null) return;
  const sorted = byTrainedAt(state.individuals.values());
  if (dirty.plot) plot.setData(buildSeries(sorted, state.xMode, summary.createdAt, state.remedies));
  if (dirty.table) table.setRows(topRows());
  if (dirty.status) {
    renderStatus(byId('status'), { summary, stepsPerHour: stepsPerHour(sorted, summary.createdAt, Date.now(), summary.status === 'running'), remedies: state.remedies });
    renderHeading(summary);
    finalPanel.render({ summary, individual: (id) => state.individuals.get(id), open: (id) => void openIndividual(id), refresh: () => void refreshSummary(true) });
    renderVolunteers(byId('volunteers'), state.volunteers, Date.now());
  }
  dirty.plot = dirty.table = dirty.status = false;
}

/** The top individuals by server-computed validation accuracy. */
function topRows(): RankedRow[] {
  return [...state.individuals.values()]
    .filter((i) => !i.provisional && !i.failed)
    .sort((a, b) => b.fitness - a.fitness || a.trainedAt - b.trainedAt)
    .slice(0, state.topN)
    .map((ind, i) => ({ rank: i + 1, ind }));
}

function renderHeading(s: ExperimentSummary): void {
  document.title = `${s.name} · Petri leaderboard`;
  for (const option of picker.options) if (option.value === s.id) option.textContent = `${s.name} (${s.status})`;
  fill(byId('exp-title'), s.name, ' ', h('span', { class: `badge badge-${s.status}`, 'data-status': s.status }, s.status));
  fill(
    byId('exp-sub'),
    h('code', {}, s.id),
    ` · ${s.dataset} · ${s.config.preset} preset · population ${s.config.populationSize} · ${SELECTION_WORDS[s.config.selection] ?? s.config.selection} · ${s.config.stepsPerChild.toLocaleString()} steps per child · started ${fmtDate(s.createdAt)}`,
  );
}

// ---- data ----------------------------------------------------------------------

/** Keeps the newer state of an individual (a removal is never undone). */
function upsert(ind: PublicIndividual): boolean {
  const known = state.individuals.get(ind.id);
  if (known !== undefined && known.status === 'removed' && ind.status === 'alive') {
    state.individuals.set(ind.id, { ...ind, status: 'removed', removedAt: known.removedAt });
  } else {
    state.individuals.set(ind.id, ind);
  }
  return known === undefined;
}

async function loadExperiment(id: string): Promise<void> {
  const ticket = ++state.ticket;
  state.experimentId = id;
  state.summary = null;
  state.individuals = new Map();
  state.remedies = [];
  picker.value = id;
  setUrl({ experiment: id });
  socket.emit('watch', id);
  document.body.dataset.loading = 'true';
  try {
    const [summary, individuals, remedies, volunteers] = await Promise.all([api.experiment(id), api.individuals(id), api.events(id, new Set(['remedy'])), api.volunteers()]);
    if (ticket !== state.ticket) return;
    state.summary = summary;
    for (const ind of individuals) upsert(ind);
    const seen = new Set(state.remedies.map((r) => `${r.remedy}@${r.at}`));
    for (const e of remedies) {
      const r = { remedy: String(e.data.remedy ?? 'remedy'), at: e.at };
      if (!seen.has(`${r.remedy}@${r.at}`)) state.remedies.push(r);
    }
    state.volunteers = volunteers;
    schedule({ plot: true, table: true, status: true });
    render();
    document.body.dataset.loading = 'false';
    const wanted = new URLSearchParams(location.search).get('individual');
    if (wanted !== null && panel.id !== wanted) void openIndividual(wanted, false);
  } catch (err) {
    if (ticket !== state.ticket) return;
    showError(`Could not load experiment ${id}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

let lastFinal: number | null = null;

/** Re-reads the summary and volunteers (after a 'status' message); the rows too when test accuracies changed. */
async function refreshSummary(rows = false): Promise<void> {
  const id = state.experimentId;
  const ticket = state.ticket;
  if (id === null) return;
  try {
    const [summary, volunteers] = await Promise.all([api.experiment(id), api.volunteers()]);
    if (ticket !== state.ticket) return;
    state.summary = summary;
    state.volunteers = volunteers;
    const computed = summary.finalResult?.computedAt ?? null;
    if (rows || computed !== lastFinal) {
      lastFinal = computed;
      const top = await api.leaderboard(id, Math.max(50, state.topN));
      if (ticket !== state.ticket) return;
      for (const ind of top) upsert(ind);
      schedule({ table: true, plot: true });
    }
    schedule({ status: true });
  } catch {
    // The next status message or the periodic refresh tries again.
  }
}

async function refreshExperiments(): Promise<ExperimentSummary[]> {
  const list = await api.experiments();
  const current = picker.value;
  fill(picker, ...list.map((e) => h('option', { value: e.id }, `${e.name} (${e.status})`)));
  if (current !== '') picker.value = current;
  return list;
}

// ---- individuals ---------------------------------------------------------------

async function openIndividual(id: string, scroll = true): Promise<void> {
  setUrl({ individual: id });
  plot.select(id);
  table.select(id);
  await panel.show(id, scroll);
}

function closeIndividual(): void {
  panel.hide();
  plot.select(null);
  table.select(null);
  setUrl({ individual: null });
}

function setUrl(patch: Record<string, string | null>): void {
  const url = new URL(location.href);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) url.searchParams.delete(k);
    else url.searchParams.set(k, v);
  }
  history.replaceState(null, '', url);
}

function showError(message: string): void {
  const box = byId('page-error');
  box.textContent = message;
  box.hidden = false;
}

// ---- live updates --------------------------------------------------------------

const socket = io('/live', { transports: ['websocket', 'polling'] });
let connectedOnce = false;
socket.on('connect', () => {
  liveBadge.dataset.state = 'live';
  liveBadge.textContent = 'live';
  if (state.experimentId !== null) {
    socket.emit('watch', state.experimentId);
    // Back after a disconnection: catch up on what was missed.
    if (connectedOnce) void loadExperiment(state.experimentId);
  }
  connectedOnce = true;
});
socket.on('disconnect', () => {
  liveBadge.dataset.state = 'offline';
  liveBadge.textContent = 'reconnecting';
});
socket.on('individual', (ind: PublicIndividual) => {
  if (ind.experimentId !== state.experimentId || state.summary === null) return;
  upsert(ind);
  schedule({ plot: true, table: true, status: true });
});
socket.on('removed', (msg: { id: string }) => {
  const known = state.individuals.get(msg.id);
  if (known === undefined || known.status === 'removed') return;
  state.individuals.set(msg.id, { ...known, status: 'removed', removedAt: Date.now() });
  schedule({ plot: true, table: true });
});
socket.on('remedy', (msg: { remedy: string; at: number }) => {
  if (state.remedies.some((r) => r.remedy === msg.remedy && r.at === msg.at)) return;
  state.remedies.push({ remedy: msg.remedy, at: msg.at });
  schedule({ plot: true, status: true });
});
socket.on('status', (msg: { experimentId: string }) => {
  if (msg.experimentId === state.experimentId) void refreshSummary();
});

// ---- controls ------------------------------------------------------------------

picker.addEventListener('change', () => {
  closeIndividual();
  void loadExperiment(picker.value);
});

for (const button of document.querySelectorAll<HTMLButtonElement>('[data-x]')) {
  button.addEventListener('click', () => {
    state.xMode = button.dataset.x === 'flops' ? 'flops' : 'time';
    for (const b of document.querySelectorAll<HTMLButtonElement>('[data-x]')) b.setAttribute('aria-pressed', String(b === button));
    setUrl({ x: state.xMode === 'flops' ? 'flops' : null });
    schedule({ plot: true });
  });
  button.setAttribute('aria-pressed', String(button.dataset.x === state.xMode));
}

const topSelect = byId<HTMLSelectElement>('top-n');
topSelect.addEventListener('change', () => {
  state.topN = Number(topSelect.value) || 20;
  schedule({ table: true });
  void refreshSummary(true);
});

// Workers come and go without individual events; ages grow.
setInterval(() => void refreshSummary(), 15_000);
setInterval(() => schedule({ table: true, status: true }), 30_000);
setInterval(() => void refreshExperiments().catch(() => undefined), 60_000);

// ---- start ---------------------------------------------------------------------

async function start(): Promise<void> {
  let list: ExperimentSummary[];
  try {
    list = await refreshExperiments();
  } catch (err) {
    showError(`Could not reach the server: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  if (list.length === 0) {
    showError('This server has no experiment yet.');
    return;
  }
  const asked = new URLSearchParams(location.search).get('experiment');
  const chosen = list.find((e) => e.id === asked) ?? list.find((e) => e.status === 'running') ?? list[list.length - 1];
  if (asked !== null && chosen?.id !== asked) showError(`No experiment ${asked}; showing ${chosen?.id}.`);
  if (chosen !== undefined) await loadExperiment(chosen.id);
}

void start();
