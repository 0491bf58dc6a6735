/** Numbers for people: FLOPs, bytes, durations, rates. */

export function formatFlops(flops: number): string {
  const units: [number, string][] = [
    [1e18, 'EFLOP'],
    [1e15, 'PFLOP'],
    [1e12, 'TFLOP'],
    [1e9, 'GFLOP'],
    [1e6, 'MFLOP'],
  ];
  for (const [size, unit] of units) if (flops >= size) return `${(flops / size).toFixed(flops >= size * 100 ? 0 : flops >= size * 10 ? 1 : 2)} ${unit}`;
  return `${Math.round(flops)} FLOP`;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(0)} kB`;
  return `${bytes} B`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '…';
  if (seconds < 1) return 'under a second';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes - hours * 60} min`;
}

export function formatRate(imagesPerSecond: number): string {
  if (!(imagesPerSecond > 0)) return '…';
  return imagesPerSecond >= 100 ? `${Math.round(imagesPerSecond)} images/s` : `${imagesPerSecond.toFixed(1)} images/s`;
}

export function formatCredit(credit: number): string {
  return credit >= 100 ? credit.toFixed(0) : credit >= 1 ? credit.toFixed(1) : credit.toFixed(3);
}

export function formatPercent(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`;
}
