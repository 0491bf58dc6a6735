import { describe, expect, it } from 'vitest';
import { isBusy, othersBusyShare, sampleCpu } from './idle.ts';

describe('--when-idle decisions', () => {
  it('counts only the CPU time of other processes', () => {
    const a = { busy: 100, total: 400, self: 10 };
    // 2 s on 2 cores = 4 s of CPU: 3 s busy, of which 2 s were ours.
    expect(othersBusyShare(a, { busy: 103, total: 404, self: 12 })).toBeCloseTo(0.25, 6);
    // All the busy time was ours: the machine is idle for others.
    expect(othersBusyShare(a, { busy: 102, total: 404, self: 12 })).toBe(0);
    expect(othersBusyShare(a, a)).toBe(0);
  });

  it('pauses for a busy machine or a recent key press, not otherwise', () => {
    expect(isBusy(0.6, 0.25, null, 60_000)).toBe(true);
    expect(isBusy(0.1, 0.25, null, 60_000)).toBe(false);
    expect(isBusy(0.1, 0.25, 5_000, 60_000)).toBe(true);
    expect(isBusy(0.1, 0.25, 600_000, 60_000)).toBe(false);
  });

  it('reads real samples on Linux', () => {
    const s = sampleCpu();
    expect(s).not.toBeNull();
    expect(s?.total).toBeGreaterThan(s?.busy ?? Infinity);
  });
});
