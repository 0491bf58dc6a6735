/**
 * The progress plot, drawn by hand as SVG (no library): best validation
 * accuracy so far against cumulative FLOPs (log scale), one polyline per run
 * and seed, in the style of the paper's progress figures. A second panel
 * shows the best accuracy among the alive members of the population, where
 * the weight reset's dip and the boost are visible. A square marks the end
 * of each run; a dot, where a boost or reset began.
 */
import type { RunKind, RunResult } from './core.ts';

export const COLOURS: Record<RunKind, string> = {
  evolution: '#1f77b4',
  random: '#ff7f0e',
  'no-inherit': '#2ca02c',
  hand: '#d62728',
  pop2: '#9467bd',
  boost: '#8c564b',
  reset: '#e377c2',
};

const DASH: Partial<Record<RunKind, string>> = { pop2: '6 3', boost: '2 2', reset: '8 3 2 3' };

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

interface Panel {
  readonly title: string;
  readonly runs: readonly RunResult[];
  readonly value: (p: RunResult['trace'][number]) => number;
}

function panel(p: Panel, x0: number, y0: number, width: number, height: number, xMin: number, xMax: number, yMax: number): string {
  const left = x0 + 60;
  const right = x0 + width - 15;
  const top = y0 + 30;
  const bottom = y0 + height - 45;
  const lx0 = Math.log10(xMin);
  const lx1 = Math.log10(xMax);
  const sx = (f: number): number => left + ((Math.log10(Math.max(f, xMin)) - lx0) / Math.max(1e-9, lx1 - lx0)) * (right - left);
  const sy = (a: number): number => bottom - (a / yMax) * (bottom - top);
  const out: string[] = [];
  out.push(`<text x="${(left + right) / 2}" y="${y0 + 18}" text-anchor="middle" font-size="14" font-weight="bold">${esc(p.title)}</text>`);
  // Axes, grid and ticks.
  out.push(`<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#333"/>`);
  for (let k = Math.ceil(lx0); k <= Math.floor(lx1); k++) {
    const x = sx(10 ** k);
    out.push(`<line x1="${x}" y1="${top}" x2="${x}" y2="${bottom}" stroke="#ddd"/>`);
    out.push(`<text x="${x}" y="${bottom + 16}" text-anchor="middle" font-size="11">1e${k}</text>`);
  }
  const yStep = yMax > 0.5 ? 0.1 : 0.05;
  for (let a = 0; a <= yMax + 1e-9; a += yStep) {
    const y = sy(a);
    out.push(`<line x1="${left}" y1="${y}" x2="${right}" y2="${y}" stroke="#eee"/>`);
    out.push(`<text x="${left - 6}" y="${y + 4}" text-anchor="end" font-size="11">${(a * 100).toFixed(0)}%</text>`);
  }
  out.push(`<text x="${(left + right) / 2}" y="${bottom + 34}" text-anchor="middle" font-size="12">cumulative compute (FLOPs, paper's accounting; log scale)</text>`);
  out.push(
    `<text x="${x0 + 16}" y="${(top + bottom) / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 ${x0 + 16} ${(top + bottom) / 2})">validation accuracy</text>`,
  );
  for (const run of p.runs) {
    if (run.trace.length === 0) continue;
    // A step curve: the value holds until the next training ends.
    const pts: string[] = [];
    let prev: number | null = null;
    for (const t of run.trace) {
      const x = sx(t.flops).toFixed(1);
      const v = p.value(t);
      if (prev !== null) pts.push(`${x},${sy(prev).toFixed(1)}`);
      pts.push(`${x},${sy(v).toFixed(1)}`);
      prev = v;
    }
    const dash = DASH[run.kind] === undefined ? '' : ` stroke-dasharray="${DASH[run.kind]}"`;
    out.push(
      `<polyline fill="none" stroke="${COLOURS[run.kind]}" stroke-width="1.6" stroke-opacity="0.85"${dash} points="${pts.join(' ')}"><title>${esc(`${run.kind} seed ${run.seed}`)}</title></polyline>`,
    );
    // The run's end point (and the only mark of a one-point curve, e.g. a hand CNN with one validation).
    const last = run.trace[run.trace.length - 1] as RunResult['trace'][number];
    out.push(`<rect x="${(sx(last.flops) - 2.5).toFixed(1)}" y="${(sy(p.value(last)) - 2.5).toFixed(1)}" width="5" height="5" fill="${COLOURS[run.kind]}"><title>${esc(`${run.kind} seed ${run.seed}: end`)}</title></rect>`);
    for (const r of run.remedies) {
      const at = run.trace[r.atTraining];
      if (at === undefined) continue;
      out.push(`<circle cx="${sx(at.flops).toFixed(1)}" cy="${sy(p.value(at)).toFixed(1)}" r="3.5" fill="${COLOURS[run.kind]}"><title>${r.kind}</title></circle>`);
    }
  }
  return out.join('\n');
}

/** The whole figure: two panels and a legend. */
export function progressSvg(runs: readonly RunResult[], title: string): string {
  const width = 1000;
  const height = 460;
  const points = runs.flatMap((r) => r.trace);
  const xMin = Math.max(1, Math.min(...points.map((t) => t.flops)));
  const xMax = Math.max(xMin * 10, ...points.map((t) => t.flops));
  const yTop = Math.max(0.1, ...points.map((t) => t.best));
  const yMax = Math.min(1, Math.ceil((yTop + 0.02) * 10) / 10);
  const main = runs.filter((r) => r.kind === 'evolution' || r.kind === 'random' || r.kind === 'no-inherit' || r.kind === 'hand');
  const analyses = runs.filter((r) => r.kind === 'evolution' || r.kind === 'pop2' || r.kind === 'boost' || r.kind === 'reset');
  const kinds = [...new Set(runs.map((r) => r.kind))];
  const legend = kinds
    .map((k, i) => {
      const x = 70 + i * 130;
      const dash = DASH[k] === undefined ? '' : ` stroke-dasharray="${DASH[k]}"`;
      return `<line x1="${x}" y1="${height + 16}" x2="${x + 26}" y2="${height + 16}" stroke="${COLOURS[k]}" stroke-width="2.5"${dash}/><text x="${x + 32}" y="${height + 20}" font-size="12">${esc(k)}</text>`;
    })
    .join('\n');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 34}" viewBox="0 0 ${width} ${height + 34}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="16" text-anchor="middle" font-size="13">${esc(title)}</text>`,
    panel({ title: 'Best validation accuracy so far (all seeds)', runs: main, value: (t) => t.best }, 0, 14, width / 2, height - 10, xMin, xMax, yMax),
    panel(
      { title: 'Best alive in the population (dots: boost / reset)', runs: analyses, value: (t) => t.bestAlive },
      width / 2,
      14,
      width / 2,
      height - 10,
      xMin,
      xMax,
      yMax,
    ),
    legend,
    '</svg>',
    '',
  ].join('\n');
}
