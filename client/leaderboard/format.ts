/** Number and time formats of the leaderboard page. */

/** FLOPs in the paper's style: "3.2e15". */
export function fmtFlops(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return '0';
  if (n < 1000) return n.toFixed(0);
  const [mantissa, exponent] = n.toExponential(1).split('e');
  return `${mantissa}e${Number(exponent)}`;
}

/** Parameter counts: 812, 34.5k, 1.2M. */
export function fmtCount(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const abs = Math.abs(n);
  if (abs < 1000) return String(Math.round(n));
  if (abs < 1e6) return `${(n / 1e3).toFixed(abs < 1e4 ? 1 : 0)}k`;
  if (abs < 1e9) return `${(n / 1e6).toFixed(abs < 1e7 ? 1 : 0)}M`;
  return `${(n / 1e9).toFixed(1)}G`;
}

/** An accuracy in [0, 1] as a percentage; null as a dash. */
export function fmtPct(x: number | null | undefined, digits = 1): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  return `${(x * 100).toFixed(digits)}%`;
}

/** A duration in seconds: "45s", "12m", "3h 05m", "2d 4h". */
export function fmtDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) {
    const m = Math.floor(s / 60);
    const r = s % 60;
    return r === 0 || m >= 10 ? `${m}m` : `${m}m ${String(r).padStart(2, '0')}s`;
  }
  if (s < 86_400) {
    const hours = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return m === 0 ? `${hours}h` : `${hours}h ${String(m).padStart(2, '0')}m`;
  }
  const d = Math.floor(s / 86_400);
  const hours = Math.floor((s % 86_400) / 3600);
  return hours === 0 ? `${d}d` : `${d}d ${hours}h`;
}

/** "3m ago", "just now". */
export function fmtAgo(at: number, now: number): string {
  const seconds = (now - at) / 1000;
  if (seconds < 5) return 'just now';
  return `${fmtDuration(seconds)} ago`;
}

/** Local date and time, for titles. */
export function fmtDate(at: number): string {
  return new Date(at).toLocaleString();
}
