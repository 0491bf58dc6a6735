/**
 * A download progress bar for a terminal: bytes, percent and speed on one
 * line redrawn in place. When stderr is not a terminal (logs, CI) it prints a
 * plain line every 10% instead, so logs stay readable.
 */
import type { DownloadProgress } from './download.ts';

/** Formats a byte count with a binary-ish unit for humans. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** The text of one progress line (no newline), e.g. "[####----]  50.0%  8.0/16.0 MiB  2.0 MiB/s". */
export function formatProgress(p: DownloadProgress, width = 30): string {
  const speed = `${formatBytes(Math.round(p.bytesPerSecond))}/s`;
  if (p.total === undefined || p.total === 0) return `${formatBytes(p.received)}  ${speed}`;
  const fraction = Math.min(1, p.received / p.total);
  const filled = Math.round(fraction * width);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  const percent = `${(fraction * 100).toFixed(1).padStart(5)}%`;
  return `${bar} ${percent}  ${formatBytes(p.received)} / ${formatBytes(p.total)}  ${speed}`;
}

/** A progress sink writing to `out`; call `finish()` once the download ends. */
export function createProgressBar(
  label: string,
  out: NodeJS.WriteStream = process.stderr,
): { update: (p: DownloadProgress) => void; finish: () => void } {
  const tty = out.isTTY === true;
  let lastDecile = -1;
  let drawn = false;
  let lastDraw = 0;
  return {
    update(p) {
      if (tty) {
        // Redraw at most 10 times a second (chunks arrive far more often), and at the end.
        const now = Date.now();
        if (now - lastDraw < 100 && p.received !== p.total) return;
        lastDraw = now;
        out.write(`\r${label} ${formatProgress(p)}\x1b[K`);
        drawn = true;
        return;
      }
      const decile = p.total ? Math.floor((p.received / p.total) * 10) : -1;
      if (decile > lastDecile) {
        lastDecile = decile;
        out.write(`${label} ${formatProgress(p)}\n`);
      }
    },
    finish() {
      if (tty && drawn) out.write('\n');
    },
  };
}
