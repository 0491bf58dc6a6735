/**
 * Training checkpoints in IndexedDB, so that a reloaded tab (or one whose
 * server restarted) continues a child where it was instead of from step 0.
 *
 * A checkpoint belongs to a child (the task), not to a lease: the work is
 * the same whichever lease carries it (same DNA, plan, seed and steps), so
 * a lease re-issued for the same child after a server restart resumes too.
 * The lease id and token are kept so a reloaded tab can ask the server for
 * its lease back.
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { Lease } from '../../shared/protocol.ts';
import type { WeightMap } from '../../shared/model/weights.ts';

export interface Checkpoint {
  readonly childId: string;
  readonly leaseId: string;
  readonly token: string;
  readonly seed: string;
  readonly steps: number;
  /** Steps done when saved. */
  readonly step: number;
  readonly weights: [string, Float32Array][];
  readonly savedAt: number;
}

interface CheckpointDb extends DBSchema {
  checkpoints: { key: string; value: Checkpoint };
}

export const CHECKPOINT_DB_NAME = 'petri-checkpoints';
/** Checkpoints older than this are of children long given to someone else. */
const MAX_AGE_MS = 24 * 3600 * 1000;
const KEEP = 4;

export class CheckpointStore {
  private constructor(private readonly db: IDBPDatabase<CheckpointDb>) {}

  static async open(name = CHECKPOINT_DB_NAME): Promise<CheckpointStore> {
    const db = await openDB<CheckpointDb>(name, 1, {
      upgrade(database) {
        database.createObjectStore('checkpoints', { keyPath: 'childId' });
      },
    });
    return new CheckpointStore(db);
  }

  async save(lease: Lease, step: number, weights: WeightMap, now = Date.now()): Promise<void> {
    await this.db.put('checkpoints', {
      childId: lease.childId,
      leaseId: lease.leaseId,
      token: lease.token,
      seed: lease.seed,
      steps: lease.steps,
      step,
      weights: [...weights.entries()],
      savedAt: now,
    });
  }

  /** The checkpoint to continue this lease from, if one fits it exactly. */
  async forLease(lease: Lease): Promise<{ step: number; weights: WeightMap } | null> {
    const saved = await this.db.get('checkpoints', lease.childId);
    if (saved === undefined || saved.seed !== lease.seed || saved.steps !== lease.steps || saved.step <= 0 || saved.step >= lease.steps) return null;
    const weights = new Map(saved.weights);
    // The tensors must be the child's, shape for shape.
    for (const t of lease.plan.tensors) {
      const values = weights.get(t.key);
      if (values === undefined || values.length !== t.shape.reduce((a, b) => a * b, 1)) return null;
    }
    if (weights.size !== lease.plan.tensors.length) return null;
    return { step: saved.step, weights };
  }

  async delete(childId: string): Promise<void> {
    await this.db.delete('checkpoints', childId);
  }

  /** Drops old checkpoints, keeping the newest few. */
  async prune(now = Date.now()): Promise<void> {
    const all = (await this.db.getAll('checkpoints')).sort((a, b) => b.savedAt - a.savedAt);
    for (const [i, c] of all.entries()) if (i >= KEEP || now - c.savedAt > MAX_AGE_MS) await this.db.delete('checkpoints', c.childId);
  }

  close(): void {
    this.db.close();
  }
}
