/**
 * The data of the progress plot, as in the paper's Figure 1: every
 * individual ever trained at (time or cumulative compute, validation
 * accuracy), alive and removed apart, and the best accuracy so far.
 */

export type XMode = 'time' | 'flops';

/** What the plot needs of an individual. */
export interface PlotPoint {
  readonly id: string;
  readonly fitness: number;
  readonly trainedAt: number;
  readonly costFlops: number;
  readonly status: 'alive' | 'removed';
  readonly provisional: boolean;
  readonly failed: boolean;
}

export interface Remedy {
  readonly remedy: string;
  readonly at: number;
}

export interface PlotSeries {
  readonly mode: XMode;
  /** Ascending: seconds since the experiment started, or cumulative FLOPs. */
  readonly x: Float64Array;
  readonly alive: (number | null)[];
  readonly removed: (number | null)[];
  /** Best server-verified accuracy so far (a step line). */
  readonly best: (number | null)[];
  /** Individual id of each x index. */
  readonly ids: string[];
  /** x positions of the plateau remedies, with their kind. */
  readonly remedies: { x: number; remedy: string }[];
  readonly aliveCount: number;
  readonly removedCount: number;
}

/** Orders individuals as they were trained (trainedAt, then id). */
export function byTrainedAt(points: Iterable<PlotPoint>): PlotPoint[] {
  return [...points].sort((a, b) => a.trainedAt - b.trainedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Builds the plot's series from individuals sorted by {@link byTrainedAt}.
 * `startedAt` is the experiment's creation time (the origin of wall time).
 */
export function buildSeries(sorted: readonly PlotPoint[], mode: XMode, startedAt: number, remedies: readonly Remedy[]): PlotSeries {
  const n = sorted.length;
  const x = new Float64Array(n);
  const alive: (number | null)[] = new Array<number | null>(n);
  const removed: (number | null)[] = new Array<number | null>(n);
  const best: (number | null)[] = new Array<number | null>(n);
  const ids: string[] = new Array<string>(n);
  const cumulative = new Float64Array(n);
  let flops = 0;
  let top: number | null = null;
  let aliveCount = 0;
  for (let i = 0; i < n; i++) {
    const p = sorted[i] as PlotPoint;
    flops += Number.isFinite(p.costFlops) ? p.costFlops : 0;
    cumulative[i] = flops;
    x[i] = mode === 'time' ? Math.max(0, (p.trainedAt - startedAt) / 1000) : flops;
    const isAlive = p.status === 'alive';
    if (isAlive) aliveCount++;
    alive[i] = isAlive ? p.fitness : null;
    removed[i] = isAlive ? null : p.fitness;
    if (!p.provisional && !p.failed && (top === null || p.fitness > top)) top = p.fitness;
    best[i] = top;
    ids[i] = p.id;
  }
  const marks = remedies
    .map((r) => ({ remedy: r.remedy, x: mode === 'time' ? Math.max(0, (r.at - startedAt) / 1000) : flopsAt(sorted, cumulative, r.at) }))
    .sort((a, b) => a.x - b.x);
  return { mode, x, alive, removed, best, ids, remedies: marks, aliveCount, removedCount: n - aliveCount };
}

/** Cumulative FLOPs of the individuals trained up to time `at`. */
function flopsAt(sorted: readonly PlotPoint[], cumulative: Float64Array, at: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as PlotPoint).trainedAt <= at) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? 0 : (cumulative[lo - 1] as number);
}

/** Index of the dot nearest to a pixel position, within `radius` pixels; -1 when none. */
export function nearestDot(series: PlotSeries, toPx: (x: number, y: number) => [number, number], px: number, py: number, radius: number): number {
  let bestIdx = -1;
  let bestD = radius * radius;
  for (let i = 0; i < series.ids.length; i++) {
    const y = series.alive[i] ?? series.removed[i];
    if (y === null || y === undefined) continue;
    const [qx, qy] = toPx(series.x[i] as number, y);
    const d = (qx - px) ** 2 + (qy - py) ** 2;
    if (d <= bestD) {
      bestD = d;
      bestIdx = i;
    }
  }
  return bestIdx;
}

/**
 * Children trained per hour: over the last hour while the experiment runs
 * (or since its start when younger), over its whole run once it is over.
 */
export function stepsPerHour(sorted: readonly PlotPoint[], startedAt: number, now: number, running: boolean): number {
  if (sorted.length === 0) return 0;
  const last = (sorted[sorted.length - 1] as PlotPoint).trainedAt;
  const end = running ? Math.max(now, last) : last;
  const start = running ? Math.max(startedAt, end - 3_600_000) : startedAt;
  const span = end - start;
  if (span <= 0) return 0;
  let count = 0;
  for (let i = sorted.length - 1; i >= 0 && (sorted[i] as PlotPoint).trainedAt > start; i--) count++;
  return (count * 3_600_000) / span;
}
