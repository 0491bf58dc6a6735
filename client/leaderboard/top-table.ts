/**
 * The top individuals: ranked by validation accuracy (server-computed only),
 * sortable by any column, a click on a row opens the individual.
 */
import type { PublicIndividual } from './api.ts';
import { fill, h } from './dom.ts';
import { fmtCount, fmtDate, fmtDuration, fmtFlops, fmtPct } from './format.ts';

interface Column {
  readonly key: string;
  readonly label: string;
  readonly title?: string;
  readonly numeric: boolean;
  readonly value: (row: RankedRow, now: number) => number | string;
  readonly cell: (row: RankedRow, now: number) => string | Node;
}

export interface RankedRow {
  readonly rank: number;
  readonly ind: PublicIndividual;
}

const age = (r: RankedRow, now: number) => ((r.ind.removedAt ?? now) - r.ind.trainedAt) / 1000;

const COLUMNS: readonly Column[] = [
  { key: 'rank', label: '#', title: 'rank by validation accuracy', numeric: true, value: (r) => r.rank, cell: (r) => String(r.rank) },
  {
    key: 'id',
    label: 'individual',
    numeric: false,
    value: (r) => r.ind.id,
    cell: (r) => h('span', { class: 'id-cell' }, h('span', { class: `dot dot-${r.ind.status}`, title: r.ind.status }), h('code', {}, r.ind.id)),
  },
  { key: 'fitness', label: 'validation', title: 'validation accuracy, computed by the server', numeric: true, value: (r) => r.ind.fitness, cell: (r) => h('strong', {}, fmtPct(r.ind.fitness, 2)) },
  { key: 'test', label: 'test', title: 'test accuracy, where the final report evaluated it', numeric: true, value: (r) => r.ind.testAccuracy ?? -1, cell: (r) => fmtPct(r.ind.testAccuracy, 2) },
  { key: 'params', label: 'params', numeric: true, value: (r) => r.ind.params, cell: (r) => fmtCount(r.ind.params) },
  { key: 'flops', label: 'FLOPs', title: 'forward FLOPs per image', numeric: true, value: (r) => r.ind.flops, cell: (r) => fmtFlops(r.ind.flops) },
  { key: 'depth', label: 'depth', title: 'convolutions in the model', numeric: true, value: (r) => r.ind.depth, cell: (r) => String(r.ind.depth) },
  { key: 'age', label: 'age', title: 'time since it joined the population (until removal)', numeric: true, value: age, cell: (r, now) => fmtDuration(age(r, now)) },
  { key: 'ancestors', label: 'ancestors', numeric: true, value: (r) => r.ind.ancestors, cell: (r) => String(r.ind.ancestors) },
  { key: 'by', label: 'trained by', numeric: false, value: (r) => r.ind.trainedBy.nickname ?? '', cell: (r) => r.ind.trainedBy.nickname ?? h('span', { class: 'muted' }, 'anonymous') },
  { key: 'backend', label: 'backend', numeric: false, value: (r) => r.ind.trainedBy.backend, cell: (r) => h('span', { class: 'chip' }, r.ind.trainedBy.backend) },
];

export class TopTable {
  private sortKey = 'rank';
  private ascending = true;
  private rows: RankedRow[] = [];
  private selected: string | null = null;
  private readonly table: HTMLTableElement;
  private readonly tbody: HTMLTableSectionElement;
  private readonly headRow: HTMLTableRowElement;

  constructor(
    root: HTMLElement,
    private readonly onPick: (id: string) => void,
  ) {
    this.headRow = h('tr');
    this.tbody = h('tbody');
    this.table = h('table', { class: 'top-table' }, h('thead', {}, this.headRow), this.tbody);
    root.append(h('div', { class: 'table-scroll' }, this.table));
    this.tbody.addEventListener('click', (e) => {
      const tr = (e.target as Element).closest('tr');
      const id = tr?.dataset.id;
      if (id) this.onPick(id);
    });
    this.tbody.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter') return;
      const id = (e.target as HTMLElement).closest('tr')?.dataset.id;
      if (id) this.onPick(id);
    });
    this.renderHead();
  }

  private renderHead(): void {
    fill(
      this.headRow,
      ...COLUMNS.map((c) =>
        h(
          'th',
          {
            class: `${c.numeric ? 'num' : ''} sortable`,
            title: c.title ?? null,
            'data-key': c.key,
            'aria-sort': c.key === this.sortKey ? (this.ascending ? 'ascending' : 'descending') : 'none',
            scope: 'col',
          },
          h('button', { type: 'button', onclick: () => this.sortBy(c.key) }, c.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' }, c.key === this.sortKey ? (this.ascending ? '▲' : '▼') : '')),
        ),
      ),
    );
  }

  /** Click on a header: sort by it, or flip the order when it is already the key. */
  sortBy(key: string): void {
    if (key === this.sortKey) this.ascending = !this.ascending;
    else {
      this.sortKey = key;
      const column = COLUMNS.find((c) => c.key === key);
      // Numbers start with the largest (except rank); text alphabetically.
      this.ascending = column === undefined || !column.numeric || key === 'rank';
    }
    this.renderHead();
    this.render();
  }

  setRows(rows: RankedRow[]): void {
    this.rows = rows;
    this.render();
  }

  select(id: string | null): void {
    this.selected = id;
    for (const tr of this.tbody.rows) tr.classList.toggle('selected', tr.dataset.id === id);
  }

  render(now = Date.now()): void {
    const column = COLUMNS.find((c) => c.key === this.sortKey) ?? (COLUMNS[0] as Column);
    const dir = this.ascending ? 1 : -1;
    const sorted = [...this.rows].sort((a, b) => {
      const x = column.value(a, now);
      const y = column.value(b, now);
      const cmp = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return cmp * dir || a.rank - b.rank;
    });
    fill(
      this.tbody,
      ...sorted.map((r) =>
        h(
          'tr',
          { 'data-id': r.ind.id, tabindex: 0, class: r.ind.id === this.selected ? 'selected' : '', title: `trained ${fmtDate(r.ind.trainedAt)}` },
          ...COLUMNS.map((c) => h('td', { class: c.numeric ? 'num' : '', 'data-col': c.key }, c.cell(r, now))),
        ),
      ),
    );
    if (sorted.length === 0) this.tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: COLUMNS.length }, 'No individual has been trained and verified yet.')));
  }
}
