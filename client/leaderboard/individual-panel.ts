/**
 * One individual opened: its facts, its DNA drawn as a graph, its lineage
 * back to the initial linear model (mutation and fitness at each step), the
 * downloads of its tf.js export, and "try it" on training images or on an
 * image dropped on the page.
 */
import { api, ApiError, modelUrl, weightsUrl, type IndividualDetail } from './api.ts';
import { renderDnaGraph } from './dna-graph.ts';
import { fill, h, s } from './dom.ts';
import { fmtCount, fmtDate, fmtFlops, fmtPct } from './format.ts';
import { imageCanvas, imageToPixels, loadManifest, loadModel, loadTf, loadTrainingSample, predict } from './try-it.ts';

export interface PanelContext {
  /** The dataset of the experiment the individual belongs to. */
  readonly dataset: string;
  /** Opens another individual (from the lineage). */
  readonly open: (id: string) => void;
  readonly close: () => void;
}

export class IndividualPanel {
  private current: string | null = null;
  private ticket = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly ctx: PanelContext,
  ) {}

  get id(): string | null {
    return this.current;
  }

  hide(): void {
    this.current = null;
    this.ticket++;
    this.root.hidden = true;
    fill(this.root);
  }

  async show(id: string, scroll = true): Promise<void> {
    const ticket = ++this.ticket;
    this.current = id;
    this.root.hidden = false;
    this.root.dataset.id = id;
    fill(this.root, h('p', { class: 'muted' }, `Loading ${id}…`));
    if (scroll) this.root.scrollIntoView({ behavior: 'smooth', block: 'start' });
    let detail: IndividualDetail;
    try {
      detail = await api.individual(id);
    } catch (err) {
      if (ticket !== this.ticket) return;
      fill(this.root, this.header(id, null), h('p', { class: 'error' }, err instanceof Error ? err.message : String(err)));
      return;
    }
    if (ticket !== this.ticket) return;
    this.render(detail);
  }

  private header(id: string, d: IndividualDetail | null): HTMLElement {
    return h(
      'header',
      { class: 'panel-head' },
      h('h2', {}, 'Individual ', h('code', {}, id)),
      d === null ? null : h('span', { class: `badge badge-${d.failed ? 'failed' : d.status}` }, d.failed ? 'diverged' : d.status),
      d?.provisional ? h('span', { class: 'badge badge-provisional', title: 'fitness claimed by the worker, not yet computed by the server' }, 'provisional') : null,
      h('button', { class: 'icon-button close', type: 'button', 'aria-label': 'Close', title: 'Close', onclick: () => this.ctx.close() }, '×'),
    );
  }

  private render(d: IndividualDetail): void {
    const facts: [string, string | Node][] = [
      ['validation accuracy', fmtPct(d.fitness, 2)],
      ['test accuracy', d.testAccuracy === null ? 'not evaluated' : fmtPct(d.testAccuracy, 2)],
      ['parameters', fmtCount(d.params)],
      ['FLOPs / image', fmtFlops(d.flops)],
      ['depth (convolutions)', String(d.depth)],
      ['skip connections', String(d.skips)],
      ['learning rate', d.learningRate.toPrecision(3)],
      ['generation', String(d.generation)],
      ['trained by', `${d.trainedBy.nickname ?? 'anonymous'} (${d.trainedBy.backend})`],
      ['trained', fmtDate(d.trainedAt)],
      ['training cost', `${fmtFlops(d.costFlops)} FLOPs`],
    ];
    const exportable = d.hasWeights ?? (!d.provisional && !d.failed);
    fill(
      this.root,
      this.header(d.id, d),
      h('dl', { class: 'facts' }, ...facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))),
      h(
        'div',
        { class: 'individual-grid' },
        h('div', { class: 'graph-box' }, h('h3', {}, 'Architecture'), h('p', { class: 'legend-line' }, legendSwatch('backbone'), ' backbone ', legendSwatch('skip'), ' skip connection'), h('div', { class: 'graph-wrap' }, renderDnaGraph(d.dna))),
        h(
          'div',
          { class: 'side-box' },
          h('h3', {}, 'Lineage'),
          this.lineage(d),
          h('h3', {}, 'Model'),
          exportable
            ? h(
                'p',
                { class: 'downloads' },
                h('a', { class: 'button', href: modelUrl(d.id), download: `${d.id}.json`, 'data-download': 'model' }, 'model.json'),
                ' ',
                h('a', { class: 'button', href: weightsUrl(d.id), download: 'weights.bin', 'data-download': 'weights' }, 'weights.bin'),
                h('span', { class: 'muted small' }, ' A standard tf.js LayersModel: keep both files in one folder (model.json names weights.bin) and load it with tf.loadLayersModel. Input: raw pixels 0–255.'),
              )
            : h('p', { class: 'muted', 'data-no-export': '' }, d.failed ? 'Training diverged: there are no weights.' : d.provisional ? 'Not verified by the server yet: no export.' : 'Its weights were collected after it was removed from the population: no export.'),
          exportable ? this.tryIt(d) : null,
        ),
      ),
    );
  }

  private lineage(d: IndividualDetail): HTMLElement {
    // From the initial linear model down to this individual.
    const chain = [...d.lineage].reverse().map((a) => ({ ...a }));
    chain.push({ id: d.id, fitness: d.fitness, mutation: d.mutation, generation: d.generation });
    const list = h(
      'ol',
      { class: 'lineage' },
      ...chain.map((step, i) =>
        h(
          'li',
          { class: step.id === d.id ? 'current' : '', 'data-id': step.id },
          h('span', { class: 'gen' }, `g${step.generation}`),
          step.id === d.id ? h('code', {}, step.id) : h('a', { href: `#${step.id}`, onclick: (e: Event) => (e.preventDefault(), this.ctx.open(step.id)) }, h('code', {}, step.id)),
          h('span', { class: 'mutation' }, i === 0 && step.mutation === null ? 'initial linear model' : (step.mutation ?? '—').replaceAll('+', ' + ')),
          h('span', { class: 'fit' }, fmtPct(step.fitness)),
        ),
      ),
    );
    return h('div', { class: 'lineage-box' }, sparkline(chain.map((c) => c.fitness)), list);
  }

  private tryIt(d: IndividualDetail): HTMLElement {
    const status = h('p', { class: 'try-status muted', 'aria-live': 'polite' });
    const results = h('div', { class: 'try-results' });
    const countSelect = h('select', { 'aria-label': 'Number of training images' }, ...[16, 32, 64].map((n) => h('option', { value: n, selected: n === 32 }, `${n} images`)));
    const fileInput = h('input', { type: 'file', accept: 'image/*', class: 'visually-hidden', 'aria-label': 'Choose an image' });
    const drop = h('label', { class: 'dropzone', tabindex: 0 }, fileInput, h('strong', {}, 'Drop an image here'), h('span', {}, ' or click to choose one'));
    const fail = (err: unknown) => {
      const message = err instanceof ApiError || err instanceof Error ? err.message : String(err);
      status.textContent = `Could not run the model: ${message}`;
      status.className = 'try-status error';
    };
    const runTraining = async () => {
      const n = Number(countSelect.value);
      status.className = 'try-status muted';
      status.textContent = 'Loading tf.js, the model and a training shard…';
      try {
        const [model, manifest, sample, tf] = await Promise.all([loadModel(d.id), loadManifest(this.ctx.dataset), loadTrainingSample(this.ctx.dataset), loadTf()]);
        const count = Math.min(n, sample.count);
        const { classes } = await predict(model, sample.pixels, count, sample.shape);
        let correct = 0;
        const cells: HTMLElement[] = [];
        for (let i = 0; i < count; i++) {
          const truth = sample.labels[i] as number;
          const guess = classes[i] as number;
          if (guess === truth) correct++;
          const name = (c: number) => manifest.classNames[c] ?? String(c);
          cells.push(h('figure', { class: guess === truth ? 'right' : 'wrong', title: `predicted ${name(guess)}, label ${name(truth)}` }, imageCanvas(sample.pixels, i, sample.shape), h('figcaption', {}, name(guess))));
        }
        fill(
          results,
          h(
            'p',
            { class: 'try-summary', 'data-correct': correct, 'data-count': count, 'data-accuracy': correct / count, 'data-predictions': Array.from(classes).join(',') },
            h('strong', {}, `${correct} / ${count} correct (${fmtPct(correct / count)})`),
            ` on the first ${count} training images, in this browser (tf.js ${tf.getBackend()}). Green: right, red: wrong.`,
          ),
          h('div', { class: 'thumbs' }, ...cells),
        );
        status.textContent = '';
      } catch (err) {
        fail(err);
      }
    };
    const runImage = async (file: File) => {
      status.className = 'try-status muted';
      status.textContent = `Classifying ${file.name || 'the image'}…`;
      try {
        const manifest = await loadManifest(this.ctx.dataset);
        const [model, image] = await Promise.all([loadModel(d.id), imageToPixels(file, manifest.imageShape)]);
        const { probabilities } = await predict(model, image.pixels, 1, manifest.imageShape);
        const ranked = Array.from(probabilities, (p, c) => ({ p, c })).sort((a, b) => b.p - a.p).slice(0, 3);
        image.canvas.className = 'dropped-preview';
        fill(
          results,
          h(
            'div',
            { class: 'dropped', 'data-top-class': ranked[0]?.c ?? -1 },
            image.canvas,
            h(
              'ol',
              { class: 'top-classes' },
              ...ranked.map(({ p, c }) => h('li', {}, h('span', { class: 'bar', style: `width:${Math.round(p * 100)}%` }), h('span', { class: 'label' }, `${manifest.classNames[c] ?? c}`), h('span', { class: 'p' }, fmtPct(p)))),
            ),
            h('p', { class: 'muted small' }, `Resized to ${manifest.imageShape.join('×')}, the input of ${this.ctx.dataset}.`),
          ),
        );
        status.textContent = '';
      } catch (err) {
        fail(err);
      }
    };
    fileInput.addEventListener('change', () => {
      const file = fileInput.files?.[0];
      if (file) void runImage(file);
    });
    drop.addEventListener('dragover', (e) => {
      e.preventDefault();
      drop.classList.add('over');
    });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      const file = e.dataTransfer?.files[0];
      if (file) void runImage(file);
    });
    return h(
      'div',
      { class: 'try-it' },
      h('h3', {}, 'Try it'),
      h('div', { class: 'try-controls' }, h('button', { type: 'button', class: 'button primary', 'data-action': 'try-training', onclick: () => void runTraining() }, 'Classify training images'), countSelect),
      drop,
      status,
      results,
    );
  }
}

function legendSwatch(kind: 'backbone' | 'skip'): SVGSVGElement {
  return s('svg', { class: 'swatch', width: 26, height: 8, 'aria-hidden': 'true' }, s('line', { x1: 1, y1: 4, x2: 25, y2: 4, class: `dna-edge dna-edge-${kind}` }));
}

/** A small line of the fitness along the lineage. */
function sparkline(values: readonly number[]): SVGSVGElement {
  const w = 240;
  const hgt = 44;
  const pad = 4;
  const min = Math.min(...values);
  const max = Math.max(...values);
  const span = max - min || 1;
  const pts = values.map((v, i) => [pad + (values.length === 1 ? (w - 2 * pad) / 2 : (i * (w - 2 * pad)) / (values.length - 1)), hgt - pad - ((v - min) / span) * (hgt - 2 * pad)] as const);
  return s(
    'svg',
    { class: 'sparkline', viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': `fitness along the lineage, from ${fmtPct(values[0])} to ${fmtPct(values[values.length - 1])}` },
    s('polyline', { points: pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ') }),
    ...pts.map(([x, y]) => s('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 2.5 })),
  );
}
