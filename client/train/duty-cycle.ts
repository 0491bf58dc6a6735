/**
 * The "train at most N% of the time" limit: after a stretch of work that
 * took `busyMs`, rest long enough that work is at most `percent` of the
 * wall time. Pure arithmetic, so it is tested without a browser.
 */
export const MIN_DUTY_PERCENT = 10;

/** Clamps a requested share to [MIN_DUTY_PERCENT, 100]; junk gives 100. */
export function clampDuty(percent: number): number {
  if (!Number.isFinite(percent)) return 100;
  return Math.min(100, Math.max(MIN_DUTY_PERCENT, Math.round(percent)));
}

/** Milliseconds to rest after `busyMs` of work to stay at `percent`. */
export function restAfter(busyMs: number, percent: number): number {
  const p = clampDuty(percent);
  if (p >= 100 || busyMs <= 0) return 0;
  return (busyMs * (100 - p)) / p;
}

/**
 * Tracks work and rest so short steps add up: rests shorter than a few
 * milliseconds are carried over (timers cannot sleep that precisely)
 * instead of being dropped.
 */
export class DutyCycle {
  private owed = 0;

  constructor(
    public percent: number,
    private readonly minRestMs = 20,
  ) {}

  /** Records `busyMs` of work; returns how long to rest now (0 while the debt is small). */
  afterWork(busyMs: number): number {
    this.owed += restAfter(busyMs, this.percent);
    if (this.owed < this.minRestMs) return 0;
    const rest = this.owed;
    this.owed = 0;
    return rest;
  }
}
