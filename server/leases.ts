/**
 * Lease bookkeeping, pure: the clock and id source are passed in. A lease
 * binds one task to one worker connection until it is completed, released,
 * or expires for lack of heartbeats.
 */
export interface LeaseEntry {
  readonly leaseId: string;
  readonly token: string;
  readonly taskId: string;
  readonly experimentId: string;
  workerId: string;
  expiresAt: number;
  /** Last progress step reported. */
  step: number;
  /** SHA-256 of the weights uploaded for this lease, once uploaded. */
  uploadedSha256: string | null;
  /** While the server verifies the result the lease cannot expire. */
  verifying: boolean;
}

export type LeaseCheck =
  | { ok: true; lease: LeaseEntry }
  | { ok: false; code: 'unknown-lease' | 'not-your-lease' | 'lease-expired'; message: string };

export class LeaseTable {
  private readonly leases = new Map<string, LeaseEntry>();
  /** Lease ids that expired or were released, kept so late results get a clear reason. */
  private readonly ended = new Map<string, 'expired' | 'released' | 'completed'>();

  constructor(
    private readonly ttlMs: number,
    private readonly newId: () => string,
    private readonly newToken: () => string,
  ) {}

  issue(taskId: string, experimentId: string, workerId: string, now: number): LeaseEntry {
    const lease: LeaseEntry = {
      leaseId: this.newId(),
      token: this.newToken(),
      taskId,
      experimentId,
      workerId,
      expiresAt: now + this.ttlMs,
      step: 0,
      uploadedSha256: null,
      verifying: false,
    };
    this.leases.set(lease.leaseId, lease);
    return lease;
  }

  /** Checks that `workerId` holds a live lease `leaseId`. */
  check(leaseId: string, workerId: string, now: number): LeaseCheck {
    const lease = this.leases.get(leaseId);
    if (lease === undefined) {
      const ended = this.ended.get(leaseId);
      if (ended === 'expired') return { ok: false, code: 'lease-expired', message: `lease ${leaseId} expired; its work went to another worker` };
      if (ended !== undefined) return { ok: false, code: 'unknown-lease', message: `lease ${leaseId} is already ${ended}` };
      return { ok: false, code: 'unknown-lease', message: `no lease ${leaseId} here (the server restarted since it was given, or it never existed)` };
    }
    if (lease.workerId !== workerId) return { ok: false, code: 'not-your-lease', message: `lease ${leaseId} belongs to another worker` };
    if (!lease.verifying && lease.expiresAt <= now) return { ok: false, code: 'lease-expired', message: `lease ${leaseId} expired` };
    return { ok: true, lease };
  }

  get(leaseId: string): LeaseEntry | undefined {
    return this.leases.get(leaseId);
  }

  /** Extends a live lease on a heartbeat. */
  heartbeat(lease: LeaseEntry, step: number, now: number): void {
    lease.step = Math.max(lease.step, step);
    lease.expiresAt = now + this.ttlMs;
  }

  /** Moves a lease to another connection of the same worker (reload, reconnect) given its token. */
  rebind(leaseId: string, token: string, workerId: string, now: number): LeaseEntry | null {
    const lease = this.leases.get(leaseId);
    if (lease === undefined || lease.token !== token || lease.expiresAt <= now) return null;
    lease.workerId = workerId;
    lease.expiresAt = now + this.ttlMs;
    return lease;
  }

  end(leaseId: string, how: 'expired' | 'released' | 'completed'): LeaseEntry | undefined {
    const lease = this.leases.get(leaseId);
    this.leases.delete(leaseId);
    this.ended.set(leaseId, how);
    if (this.ended.size > 100_000) {
      const oldest = this.ended.keys().next().value;
      if (oldest !== undefined) this.ended.delete(oldest);
    }
    return lease;
  }

  /** Leases past their expiry (not those being verified), removed from the table. */
  expire(now: number): LeaseEntry[] {
    const gone: LeaseEntry[] = [];
    for (const lease of this.leases.values()) {
      if (!lease.verifying && lease.expiresAt <= now) gone.push(lease);
    }
    for (const lease of gone) this.end(lease.leaseId, 'expired');
    return gone;
  }

  byWorker(workerId: string): LeaseEntry[] {
    return [...this.leases.values()].filter((l) => l.workerId === workerId);
  }

  byTask(taskId: string): LeaseEntry | undefined {
    for (const lease of this.leases.values()) if (lease.taskId === taskId) return lease;
    return undefined;
  }

  all(): LeaseEntry[] {
    return [...this.leases.values()];
  }
}
