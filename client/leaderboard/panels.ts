/**
 * The smaller parts of the page: experiment status, the final result with
 * the operator's box, and the volunteers.
 */
import { api, modelUrl, weightsUrl, type ExperimentSummary, type FinalReport, type PublicIndividual, type Volunteer } from './api.ts';
import { fill, h } from './dom.ts';
import { fmtAgo, fmtCount, fmtDate, fmtFlops, fmtPct } from './format.ts';
import type { Remedy } from './series.ts';

export interface StatusFacts {
  readonly summary: ExperimentSummary;
  readonly stepsPerHour: number;
  readonly remedies: readonly Remedy[];
}

export function renderStatus(root: HTMLElement, { summary, stepsPerHour, remedies }: StatusFacts): void {
  const c = summary.counts;
  const cfg = summary.config;
  const backends = Object.entries(c.workersByBackend).sort((a, b) => b[1] - a[1]);
  const boosts = remedies.filter((r) => r.remedy === 'boost').length;
  const resets = remedies.filter((r) => r.remedy === 'reset').length;
  const card = (key: string, label: string, value: string | Node, note?: string | Node | null) =>
    h('div', { class: 'stat', 'data-stat': key }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value), note ? h('div', { class: 'stat-note' }, note) : null);
  fill(
    root,
    card('alive', 'individuals alive', fmtCount(c.alive), `population ${fmtCount(cfg.populationSize)}`),
    card('children', 'children trained', fmtCount(c.childrenTrained), cfg.maxChildren > 0 ? `of ${fmtCount(cfg.maxChildren)}` : `${fmtCount(c.leasesInFlight)} in training`),
    card('workers', 'workers online', fmtCount(c.workersOnline), backends.length === 0 ? 'none' : h('span', {}, ...backends.map(([b, n]) => h('span', { class: 'chip' }, `${b} ${n}`)))),
    card('rate', 'steps / hour', stepsPerHour >= 100 ? fmtCount(stepsPerHour) : stepsPerHour.toFixed(1), summary.status === 'running' ? 'last hour' : 'over the run'),
    card('compute', 'total compute', h('span', {}, fmtFlops(summary.totalFlops), h('span', { class: 'unit' }, ' FLOPs')), 'training + validation'),
    card('remedies', 'plateau remedies', String(remedies.length), remedies.length === 0 ? 'none applied' : `${boosts} boost · ${resets} reset`),
    card('best', 'best validation', fmtPct(summary.bestFitness, 2), summary.bestId ? h('code', {}, summary.bestId) : null),
  );
}

/** The token is kept for this tab only. */
const TOKEN_KEY = 'petri-admin-token';

export interface FinalContext {
  readonly summary: ExperimentSummary;
  readonly individual: (id: string) => PublicIndividual | undefined;
  readonly open: (id: string) => void;
  /** After a report was computed: re-read the summary and rows. */
  readonly refresh: (report: FinalReport) => void;
}

export class FinalPanel {
  private readonly result: HTMLElement;
  private readonly message: HTMLElement;
  private readonly tokenInput: HTMLInputElement;
  private readonly kInput: HTMLInputElement;
  private readonly button: HTMLButtonElement;
  private ctx: FinalContext | null = null;

  constructor(root: HTMLElement) {
    this.result = h('div', { class: 'final-result', 'aria-live': 'polite' });
    this.message = h('p', { class: 'admin-message muted small', 'aria-live': 'polite' });
    this.tokenInput = h('input', { type: 'password', id: 'admin-token', autocomplete: 'off', placeholder: 'paste the admin token', spellcheck: 'false' });
    this.tokenInput.value = sessionStorage.getItem(TOKEN_KEY) ?? '';
    this.tokenInput.addEventListener('input', () => {
      const v = this.tokenInput.value.trim();
      if (v === '') sessionStorage.removeItem(TOKEN_KEY);
      else sessionStorage.setItem(TOKEN_KEY, v);
    });
    this.kInput = h('input', { type: 'number', id: 'admin-k', min: 1, max: 25, value: 5, inputmode: 'numeric' });
    this.button = h('button', { type: 'submit', class: 'button primary', 'data-action': 'final-report' }, 'Compute final report');
    const admin = h(
      'details',
      { class: 'admin', open: this.tokenInput.value !== '' },
      h('summary', {}, 'Operator'),
      h('p', { class: 'muted small' }, 'The final report evaluates the best models on the test split, on the server. It needs the admin token (printed when the server starts, kept in <data-dir>/admin-token); the token stays in this tab only.'),
      h(
        'form',
        {
          onsubmit: (e: Event) => {
            e.preventDefault();
            void this.request();
          },
        },
        h('input', { type: 'text', name: 'username', value: 'petri-admin', autocomplete: 'username', hidden: true }),
        h('div', { class: 'admin-row' }, h('label', { for: 'admin-token' }, 'Token'), this.tokenInput),
        h('div', { class: 'admin-row' }, h('label', { for: 'admin-k' }, 'Ensemble of top'), this.kInput, this.button),
      ),
      this.message,
    );
    root.append(h('h2', {}, 'Final result'), this.result, admin);
  }

  render(ctx: FinalContext): void {
    this.ctx = ctx;
    const r = ctx.summary.finalResult;
    if (r === null) {
      fill(this.result, h('p', { class: 'muted' }, ctx.summary.status === 'running' || ctx.summary.status === 'paused' ? 'Computed on the test split when the experiment finishes or is stopped, or when the operator asks for it.' : 'Not computed yet.'));
      this.result.dataset.state = 'none';
      return;
    }
    this.result.dataset.state = 'done';
    const members = r.ensembleIds.map((id, i) => ({ rank: i + 1, id, ind: ctx.individual(id) }));
    const openLink = (id: string) => h('a', { href: `#${id}`, onclick: (e: Event) => (e.preventDefault(), ctx.open(id)) }, h('code', {}, id));
    fill(
      this.result,
      h(
        'div',
        { class: 'final-numbers' },
        h(
          'div',
          { class: 'final-number', 'data-final': 'best' },
          h('div', { class: 'stat-label' }, 'best model, test accuracy'),
          h('div', { class: 'big' }, fmtPct(r.bestTestAccuracy, 2)),
          h('div', { class: 'small' }, openLink(r.bestId), ' ', h('a', { href: modelUrl(r.bestId), download: `${r.bestId}.json` }, 'model.json'), ' · ', h('a', { href: weightsUrl(r.bestId), download: 'weights.bin' }, 'weights.bin')),
        ),
        h(
          'div',
          { class: 'final-number', 'data-final': 'ensemble' },
          h('div', { class: 'stat-label' }, `ensemble of top ${r.ensembleIds.length}, majority vote`),
          h('div', { class: 'big' }, fmtPct(r.ensembleTestAccuracy, 2)),
          h('div', { class: 'small' }, h('a', { href: '#', 'data-download': 'ensemble', onclick: (e: Event) => (e.preventDefault(), downloadEnsemble(ctx.summary, members)) }, 'ensemble.json'), ' (the members\u2019 model URLs)'),
        ),
      ),
      h(
        'ol',
        { class: 'members' },
        ...members.map((m) =>
          h(
            'li',
            { 'data-id': m.id },
            h('span', { class: 'member-id' }, openLink(m.id)),
            h('span', { class: 'member-acc' }, `val ${fmtPct(m.ind?.fitness, 1)} · test `, h('strong', {}, fmtPct(m.ind?.testAccuracy, 1))),
            h('span', { class: 'member-dl' }, h('a', { href: modelUrl(m.id), download: `${m.id}.json`, title: 'model.json' }, 'model'), ' · ', h('a', { href: weightsUrl(m.id), download: 'weights.bin', title: 'weights.bin' }, 'weights')),
          ),
        ),
      ),
      h('p', { class: 'muted small' }, `Computed ${fmtDate(r.computedAt)} on the test split, never seen during evolution.`),
    );
  }

  private async request(): Promise<void> {
    const ctx = this.ctx;
    if (ctx === null) return;
    const token = this.tokenInput.value.trim();
    if (token === '') {
      this.say('Paste the admin token first.', true);
      return;
    }
    const k = Math.min(25, Math.max(1, Math.round(Number(this.kInput.value) || 5)));
    this.button.disabled = true;
    this.say('Evaluating on the test split…', false);
    try {
      const report = await api.finalReport(ctx.summary.id, k, token);
      this.say(report.computed ? `Done: ${report.k} models evaluated on ${report.testImages} test images.` : 'These models were already evaluated; here is the stored result.', false);
      this.result.dataset.computed = String(report.computedAt);
      ctx.refresh(report);
    } catch (err) {
      this.say(err instanceof Error ? err.message : String(err), true);
    } finally {
      this.button.disabled = false;
    }
  }

  private say(text: string, error: boolean): void {
    this.message.textContent = text;
    this.message.className = `admin-message small ${error ? 'error' : 'muted'}`;
  }
}

function downloadEnsemble(summary: ExperimentSummary, members: { rank: number; id: string; ind: PublicIndividual | undefined }[]): void {
  const r = summary.finalResult;
  if (r === null) return;
  const abs = (path: string) => new URL(path, location.origin).href;
  const doc = {
    format: 'petri-ensemble/1',
    experiment: summary.id,
    dataset: summary.dataset,
    vote: 'majority of the members\u2019 top classes; ties go to the better-ranked member among the tied classes',
    testAccuracy: r.ensembleTestAccuracy,
    computedAt: new Date(r.computedAt).toISOString(),
    members: members.map((m) => ({
      rank: m.rank,
      id: m.id,
      validationAccuracy: m.ind?.fitness ?? null,
      testAccuracy: m.ind?.testAccuracy ?? null,
      modelJson: abs(modelUrl(m.id)),
      weightsBin: abs(weightsUrl(m.id)),
    })),
  };
  const url = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: 'application/json' }));
  const a = h('a', { href: url, download: `${summary.id}-ensemble.json` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function renderVolunteers(root: HTMLElement, volunteers: readonly Volunteer[], now: number): void {
  if (volunteers.length === 0) {
    fill(root, h('p', { class: 'muted' }, 'No verified work yet. Credit counts only children the server verified.'));
    return;
  }
  fill(
    root,
    h(
      'div',
      { class: 'table-scroll' },
      h(
        'table',
        { class: 'volunteers-table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'volunteer'), h('th', { class: 'num', scope: 'col' }, 'children trained'), h('th', { class: 'num', scope: 'col' }, 'compute donated'), h('th', { scope: 'col' }, 'backends'), h('th', { scope: 'col' }, 'last seen'))),
        h(
          'tbody',
          {},
          ...volunteers.map((v) =>
            h(
              'tr',
              { 'data-nickname': v.nickname },
              h('td', {}, v.nickname),
              h('td', { class: 'num' }, fmtCount(v.childrenTrained)),
              h('td', { class: 'num' }, `${fmtFlops(v.flopsDonated)} FLOPs`),
              h('td', {}, ...Object.keys(v.backends).map((b) => h('span', { class: 'chip' }, b))),
              h('td', { title: fmtDate(v.lastSeen) }, fmtAgo(v.lastSeen, now)),
            ),
          ),
        ),
      ),
    ),
  );
}
