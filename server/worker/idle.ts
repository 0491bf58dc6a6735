/**
 * "Is someone else using this machine?" for `petri worker --when-idle`.
 * CPU time of everything but this process, from /proc/stat between two
 * samples a couple of seconds apart (so a pause comes within seconds, not
 * after a one-minute load average catches up), and, on a desktop with
 * `xprintidle`, the time since the last key press or mouse move.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface CpuSample {
  /** Busy and total CPU time of the whole machine, in seconds (all cores). */
  readonly busy: number;
  readonly total: number;
  /** CPU seconds this process (and its threads) used. */
  readonly self: number;
}

/** Share of the whole machine that other processes kept busy between two samples, in [0, 1]. */
export function othersBusyShare(a: CpuSample, b: CpuSample): number {
  const total = b.total - a.total;
  if (total <= 0) return 0;
  const others = b.busy - a.busy - (b.self - a.self);
  return Math.min(1, Math.max(0, others / total));
}

/** Busy when others use more than `threshold` of the machine, or someone touched the desktop within `desktopIdleMs`. */
export function isBusy(share: number, threshold: number, desktopIdleMs: number | null, minDesktopIdleMs: number): boolean {
  return share > threshold || (desktopIdleMs !== null && desktopIdleMs < minDesktopIdleMs);
}

const USER_HZ = 100;

/** Reads /proc/stat and this process's CPU time (Linux); null elsewhere. */
export function sampleCpu(): CpuSample | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
    const busy = user + nice + system + irq + softirq + steal;
    const usage = process.cpuUsage();
    return { busy: busy / USER_HZ, total: (busy + idle + iowait) / USER_HZ, self: (usage.user + usage.system) / 1e6 };
  } catch {
    return null;
  }
}

/** Milliseconds since the last desktop input, where `xprintidle` and a display exist. */
export function desktopIdleMs(): number | null {
  if (!process.env.DISPLAY) return null;
  try {
    return Number(execFileSync('xprintidle', { encoding: 'utf8', timeout: 1000 }).trim());
  } catch {
    return null;
  }
}

export interface IdleOptions {
  /** Share of the machine others may use before the worker pauses (default 0.25, env PETRI_IDLE_THRESHOLD). */
  readonly threshold?: number;
  /** Desktop input within this long counts as "someone is working" (default 60 s). */
  readonly minDesktopIdleMs?: number;
}

/** Call `update()` every second or two; `busy` says whether to pause. */
export class IdleWatch {
  private last: CpuSample | null = sampleCpu();
  private state = false;
  readonly threshold: number;
  private readonly minDesktopIdleMs: number;

  constructor(options: IdleOptions = {}) {
    this.threshold = options.threshold ?? Number(process.env.PETRI_IDLE_THRESHOLD ?? 0.25);
    this.minDesktopIdleMs = options.minDesktopIdleMs ?? 60_000;
  }

  update(): boolean {
    const now = sampleCpu();
    if (now !== null && this.last !== null && now.total - this.last.total >= 1) {
      this.state = isBusy(othersBusyShare(this.last, now), this.threshold, desktopIdleMs(), this.minDesktopIdleMs);
      this.last = now;
    } else if (this.last === null) {
      this.last = now;
    }
    return this.state;
  }

  get busy(): boolean {
    return this.state;
  }
}
