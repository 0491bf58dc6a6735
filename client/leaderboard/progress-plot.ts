/**
 * The progress plot: a uPlot scatter (points-only series, paths disabled)
 * of every individual, the best-so-far step line, and plateau remedies as
 * vertical markers. Drag to zoom, double-click to zoom out, click a dot to
 * open its individual.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { fmtDuration, fmtFlops, fmtPct } from './format.ts';
import { nearestDot, type PlotSeries, type XMode } from './series.ts';

const COLORS = {
  alive: '#2563eb',
  aliveFill: 'rgba(37, 99, 235, 0.55)',
  removed: '#94a3b8',
  removedFill: 'rgba(148, 163, 184, 0.45)',
  best: '#ea580c',
  remedy: '#c026d3',
  selected: '#0f172a',
  axis: '#475569',
  grid: 'rgba(15, 23, 42, 0.07)',
};

/** Tick spacings for wall time, in seconds. */
const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800, 1_209_600, 2_592_000];

export class ProgressPlot {
  private plot: uPlot | null = null;
  private series: PlotSeries | null = null;
  private selectedId: string | null = null;
  private zoomed = false;
  private readonly resize: ResizeObserver;
  private readonly tooltip: HTMLDivElement;

  constructor(
    private readonly container: HTMLElement,
    private readonly onPick: (id: string) => void,
  ) {
    this.tooltip = document.createElement('div');
    this.tooltip.className = 'plot-tooltip';
    this.tooltip.hidden = true;
    this.resize = new ResizeObserver(() => {
      if (this.plot !== null) this.plot.setSize(this.size());
    });
    this.resize.observe(container);
  }

  private size(): { width: number; height: number } {
    const width = Math.max(260, Math.floor(this.container.clientWidth));
    return { width, height: width < 600 ? 260 : 360 };
  }

  /** Shows new data; keeps the zoom unless the x mode changed. */
  setData(series: PlotSeries): void {
    const modeChanged = this.series?.mode !== series.mode;
    this.series = series;
    const data: uPlot.AlignedData = [series.x, series.alive, series.removed, series.best];
    if (this.plot === null || modeChanged) {
      this.plot?.destroy();
      this.zoomed = false;
      this.plot = new uPlot(this.options(series.mode), data, this.container);
      this.plot.root.append(this.tooltip);
      this.plot.over.addEventListener('click', (e) => this.click(e));
      this.plot.over.addEventListener('dblclick', () => {
        this.zoomed = false;
      });
      this.plot.over.addEventListener('mouseleave', () => {
        this.tooltip.hidden = true;
      });
    } else {
      this.plot.setData(data, !this.zoomed);
    }
    const c = this.container;
    c.dataset.dots = String(series.aliveCount + series.removedCount);
    c.dataset.alive = String(series.aliveCount);
    c.dataset.removed = String(series.removedCount);
    c.dataset.remedies = String(series.remedies.length);
    c.dataset.mode = series.mode;
  }

  /** Rings the dot of this individual (null: none). */
  select(id: string | null): void {
    this.selectedId = id;
    this.plot?.redraw(false, false);
  }

  private toPx = (x: number, y: number): [number, number] => {
    const u = this.plot as uPlot;
    return [u.valToPos(x, 'x'), u.valToPos(y, 'y')];
  };

  private click(e: MouseEvent): void {
    if (this.series === null || this.plot === null) return;
    const i = nearestDot(this.series, this.toPx, e.offsetX, e.offsetY, 14);
    const id = i >= 0 ? this.series.ids[i] : undefined;
    if (id !== undefined) this.onPick(id);
  }

  private hover(u: uPlot): void {
    const series = this.series;
    const { left, top } = u.cursor;
    if (series === null || left === undefined || top === undefined || left < 0) {
      this.tooltip.hidden = true;
      return;
    }
    const i = nearestDot(series, this.toPx, left, top, 10);
    if (i < 0) {
      this.tooltip.hidden = true;
      u.over.style.cursor = '';
      return;
    }
    const alive = series.alive[i];
    const y = alive ?? series.removed[i] ?? 0;
    const x = series.x[i] as number;
    this.tooltip.textContent = `${series.ids[i]} · ${fmtPct(y)} · ${alive === null ? 'removed' : 'alive'} · ${series.mode === 'time' ? fmtDuration(x) : `${fmtFlops(x)} FLOPs`}`;
    const [px, py] = this.toPx(x, y);
    const plotLeft = u.bbox.left / uPlot.pxRatio;
    const plotTop = u.bbox.top / uPlot.pxRatio;
    this.tooltip.style.left = `${Math.min(px + plotLeft + 10, u.width - 220)}px`;
    this.tooltip.style.top = `${py + plotTop - 30}px`;
    this.tooltip.hidden = false;
    u.over.style.cursor = 'pointer';
  }

  private options(mode: XMode): uPlot.Options {
    const axisFont = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
    const dot = (stroke: string, fill: string, size: number): uPlot.Series => ({
      stroke,
      fill,
      width: 0,
      paths: () => null,
      points: { show: true, size, width: 1, stroke, fill },
    });
    return {
      ...this.size(),
      legend: { show: false },
      cursor: {
        points: { show: false },
        drag: { x: true, y: true, uni: 30 },
        focus: { prox: 16 },
      },
      scales: {
        x: { time: false },
        y: {
          range: (_u, min, max) => {
            if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
            const pad = Math.max(0.02, (max - min) * 0.08);
            return [Math.max(0, min - pad), Math.min(1, max + pad)];
          },
        },
      },
      axes: [
        {
          stroke: COLORS.axis,
          font: axisFont,
          labelFont: axisFont,
          label: mode === 'time' ? 'wall time since the start' : 'cumulative compute (FLOPs)',
          grid: { stroke: COLORS.grid, width: 1 },
          ticks: { stroke: COLORS.grid, width: 1 },
          space: mode === 'time' ? 70 : 80,
          ...(mode === 'time' ? { incrs: TIME_INCRS } : {}),
          values: (_u, splits) => splits.map((v) => (mode === 'time' ? fmtDuration(v) : fmtFlops(v))),
        },
        {
          stroke: COLORS.axis,
          font: axisFont,
          labelFont: axisFont,
          label: 'validation accuracy',
          grid: { stroke: COLORS.grid, width: 1 },
          ticks: { stroke: COLORS.grid, width: 1 },
          size: 54,
          values: (_u, splits) => {
            const digits = [0, 1, 2, 3].find((d) => splits.every((v) => Math.abs(Number((v * 100).toFixed(d)) - v * 100) < 1e-6)) ?? 3;
            return splits.map((v) => fmtPct(v, digits));
          },
        },
      ],
      series: [
        {},
        { label: 'alive', ...dot(COLORS.alive, COLORS.aliveFill, 6) },
        { label: 'removed', ...dot(COLORS.removed, COLORS.removedFill, 5) },
        { label: 'best so far', stroke: COLORS.best, width: 2, paths: uPlot.paths.stepped?.({ align: 1 }), points: { show: false } },
      ],
      hooks: {
        draw: [(u) => this.drawOverlay(u)],
        setSelect: [
          (u) => {
            if (u.select.width > 0) this.zoomed = true;
          },
        ],
        setCursor: [(u) => this.hover(u)],
      },
    };
  }

  /** Remedy markers and the selected individual's ring, on top of the series. */
  private drawOverlay(u: uPlot): void {
    const series = this.series;
    if (series === null) return;
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    const ratio = uPlot.pxRatio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.strokeStyle = COLORS.remedy;
    ctx.fillStyle = COLORS.remedy;
    ctx.lineWidth = 1.5 * ratio;
    ctx.setLineDash([5 * ratio, 4 * ratio]);
    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    ctx.textBaseline = 'top';
    for (const mark of series.remedies) {
      const x = Math.round(u.valToPos(mark.x, 'x', true));
      if (x < left || x > left + width) continue;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      const textWidth = ctx.measureText(mark.remedy).width;
      const tx = x + 4 * ratio + textWidth > left + width ? x - 4 * ratio - textWidth : x + 4 * ratio;
      ctx.fillText(mark.remedy, tx, top + 4 * ratio);
    }
    const i = this.selectedId === null ? -1 : series.ids.indexOf(this.selectedId);
    const y = i >= 0 ? (series.alive[i] ?? series.removed[i]) : null;
    if (i >= 0 && y !== null && y !== undefined) {
      ctx.setLineDash([]);
      ctx.strokeStyle = COLORS.selected;
      ctx.lineWidth = 2 * ratio;
      ctx.beginPath();
      ctx.arc(u.valToPos(series.x[i] as number, 'x', true), u.valToPos(y, 'y', true), 7 * ratio, 0, 2 * Math.PI);
      ctx.stroke();
    }
    ctx.restore();
  }

  destroy(): void {
    this.resize.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}
