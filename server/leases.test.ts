import { describe, expect, it } from 'vitest';
import { LeaseTable } from './leases.ts';

function table(ttl = 1000) {
  let n = 0;
  return new LeaseTable(ttl, () => `L${(n++).toString(16).padStart(16, '0')}`, () => 'ab'.repeat(16));
}

describe('leases (fake clock)', () => {
  it('expire without heartbeats, live on with them', () => {
    const t = table(1000);
    const a = t.issue('task-1', 'exp', 'w1', 0);
    const b = t.issue('task-2', 'exp', 'w2', 0);
    t.heartbeat(b, 5, 900);
    expect(t.expire(999)).toEqual([]);
    expect(t.expire(1000).map((l) => l.leaseId)).toEqual([a.leaseId]);
    expect(t.check(a.leaseId, 'w1', 1000)).toMatchObject({ ok: false, code: 'lease-expired' });
    expect(t.check(b.leaseId, 'w2', 1500)).toMatchObject({ ok: true });
    expect(t.expire(1900).map((l) => l.leaseId)).toEqual([b.leaseId]);
  });

  it('belong to one worker; a lease being verified does not expire', () => {
    const t = table(1000);
    const a = t.issue('task-1', 'exp', 'w1', 0);
    expect(t.check(a.leaseId, 'w2', 10)).toMatchObject({ ok: false, code: 'not-your-lease' });
    a.verifying = true;
    expect(t.expire(10_000)).toEqual([]);
    expect(t.check(a.leaseId, 'w1', 10_000)).toMatchObject({ ok: true });
    t.end(a.leaseId, 'completed');
    expect(t.check(a.leaseId, 'w1', 10_000)).toMatchObject({ ok: false, code: 'unknown-lease', message: expect.stringMatching(/completed/) });
  });

  it('rebind to a new connection only with the token and while alive', () => {
    const t = table(1000);
    const a = t.issue('task-1', 'exp', 'w1', 0);
    expect(t.rebind(a.leaseId, 'cd'.repeat(16), 'w9', 10)).toBeNull();
    expect(t.rebind(a.leaseId, a.token, 'w9', 10)?.workerId).toBe('w9');
    expect(t.rebind(a.leaseId, a.token, 'w8', 5000)).toBeNull();
  });
});
