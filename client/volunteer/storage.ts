/**
 * What the page remembers: the nickname, settings and this browser's
 * totals in localStorage (shared by the browser's tabs), and the lease a
 * tab is working on in sessionStorage (per tab, survives a reload), so a
 * reloaded tab can ask for its lease back.
 */
export interface Totals {
  /** Children trained and accepted by the server. */
  readonly children: number;
  /** Training FLOPs the server credited (verdict.creditFlops). */
  readonly flops: number;
  /** Credit points: 1 per GFLOP, rounded like the server's volunteer table. */
  readonly credit: number;
}

export interface Settings {
  readonly pauseWhenHidden: boolean;
  /** Train at most this share of the time (10-100). */
  readonly dutyPercent: number;
}

const KEYS = {
  nickname: 'petri.nickname',
  totals: 'petri.totals.v1',
  settings: 'petri.settings.v1',
  speed: 'petri.speed.v1',
  lease: 'petri.lease.v1',
} as const;

export const EMPTY_TOTALS: Totals = { children: 0, flops: 0, credit: 0 };
export const DEFAULT_SETTINGS: Settings = { pauseWhenHidden: false, dutyPercent: 100 };

function read<T>(storage: Storage | undefined, key: string): Partial<T> | null {
  try {
    const text = storage?.getItem(key);
    if (text === null || text === undefined) return null;
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Partial<T>) : null;
  } catch {
    return null;
  }
}

function write(storage: Storage | undefined, key: string, value: unknown): void {
  try {
    if (value === null) storage?.removeItem(key);
    else storage?.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or blocked: the page works, it only forgets.
  }
}

const local = (): Storage | undefined => (typeof localStorage === 'undefined' ? undefined : localStorage);
const session = (): Storage | undefined => (typeof sessionStorage === 'undefined' ? undefined : sessionStorage);
const num = (x: unknown, fallback: number): number => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : fallback);

export function loadNickname(): string {
  try {
    return local()?.getItem(KEYS.nickname) ?? '';
  } catch {
    return '';
  }
}

export function saveNickname(nickname: string): void {
  try {
    if (nickname === '') local()?.removeItem(KEYS.nickname);
    else local()?.setItem(KEYS.nickname, nickname);
  } catch {
    // ignore
  }
}

export function loadTotals(): Totals {
  const t = read<Totals>(local(), KEYS.totals);
  return { children: num(t?.children, 0), flops: num(t?.flops, 0), credit: num(t?.credit, 0) };
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Adds a verdict's credit to the stored totals (read fresh: other tabs add too). */
export function addToTotals(creditFlops: number): Totals {
  const before = loadTotals();
  const after: Totals = {
    children: before.children + 1,
    flops: before.flops + creditFlops,
    credit: round3(before.credit + round3(creditFlops / 1e9)),
  };
  write(local(), KEYS.totals, after);
  return after;
}

export function loadSettings(): Settings {
  const s = read<Settings>(local(), KEYS.settings);
  return {
    pauseWhenHidden: typeof s?.pauseWhenHidden === 'boolean' ? s.pauseWhenHidden : DEFAULT_SETTINGS.pauseWhenHidden,
    dutyPercent: num(s?.dutyPercent, DEFAULT_SETTINGS.dutyPercent),
  };
}

export function saveSettings(settings: Settings): void {
  write(local(), KEYS.settings, settings);
}

/** The last training speed seen with a backend, sent in hello as a hint for scheduling. */
export function loadSpeed(backend: string): number {
  return num(read<Record<string, number>>(local(), KEYS.speed)?.[backend], 0);
}

export function saveSpeed(backend: string, imagesPerSecond: number): void {
  write(local(), KEYS.speed, { ...read<Record<string, number>>(local(), KEYS.speed), [backend]: Math.round(imagesPerSecond * 10) / 10 });
}

export interface HeldLease {
  readonly leaseId: string;
  readonly token: string;
  readonly childId: string;
}

export function loadHeldLease(): HeldLease | null {
  const l = read<HeldLease>(session(), KEYS.lease);
  return typeof l?.leaseId === 'string' && typeof l.token === 'string' && typeof l.childId === 'string' ? { leaseId: l.leaseId, token: l.token, childId: l.childId } : null;
}

export function saveHeldLease(lease: HeldLease | null): void {
  write(session(), KEYS.lease, lease);
}
