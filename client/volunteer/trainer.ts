/**
 * The session's Trainer for a browser tab: hands the lease to the training
 * Web Worker and relays its steps, a stop request, and the outcome.
 */
import type { Lease } from '../../shared/protocol.ts';
import type { LeaseOutcome } from '../../shared/worker/run-lease.ts';
import type { TrainHooks, Trainer } from '../../shared/worker/session.ts';
import type { FailureKind } from '../train/messages.ts';
import type { TrainingEngine } from './engine.ts';

/** The worker has not said a word for this long: treat it as hung. */
export const WATCHDOG_MS = 120_000;

export class TrainingFailure extends Error {
  override readonly name = 'TrainingFailure';
  constructor(
    readonly kind: FailureKind | 'unresponsive',
    message: string,
  ) {
    super(message);
  }
}

export class WorkerTrainer implements Trainer {
  /** What went wrong the last time a lease failed (for the page's explanation). */
  lastFailure: FailureKind | 'unresponsive' = 'training';

  constructor(
    private readonly engine: TrainingEngine,
    private readonly checkpointEvery: () => number | null,
  ) {}

  train(lease: Lease, hooks: TrainHooks): Promise<LeaseOutcome> {
    return new Promise<LeaseOutcome>((resolve, reject) => {
      let stopSent = false;
      const finish = () => {
        off();
        clearInterval(poll);
      };
      const fail = (failure: TrainingFailure) => {
        finish();
        this.lastFailure = failure.kind;
        reject(failure);
      };
      const off = this.engine.on((message) => {
        if (!('leaseId' in message) || message.leaseId !== lease.leaseId) {
          if (message.type === 'fatal') fail(new TrainingFailure('training', message.message));
          return;
        }
        switch (message.type) {
          case 'step':
            hooks.onStep(message.step, message.total, message.imagesPerSecond);
            return;
          case 'done':
            finish();
            resolve(message.outcome);
            return;
          case 'failed':
            fail(new TrainingFailure(message.kind, message.message));
            return;
          default:
            return;
        }
      });
      const poll = setInterval(() => {
        if (!stopSent && hooks.shouldStop()) {
          stopSent = true;
          this.engine.post({ type: 'stop', leaseId: lease.leaseId });
        }
        if (Date.now() - this.engine.lastHeard > WATCHDOG_MS) {
          fail(new TrainingFailure('unresponsive', `the training worker has not answered for ${WATCHDOG_MS / 1000} s`));
        }
      }, 250);
      this.engine.post({ type: 'train', lease, checkpointEvery: this.checkpointEvery() });
    });
  }
}
