/**
 * A worker's conversation with the coordinator, the same for a browser tab
 * and `petri worker`: hello, ask for work, train the lease (through a
 * Trainer), heartbeat, upload, report, and again. Reconnects resume the
 * lease in hand; a stop hands the lease back at once.
 */
import {
  PROTOCOL_VERSION,
  parseServerMessage,
  type ClientMessage,
  type Hello,
  type Lease,
  type ServerMessage,
} from '../protocol.ts';
import type { LeaseOutcome } from './run-lease.ts';

export interface Transport {
  send(message: ClientMessage): void;
  onMessage(handler: (payload: unknown) => void): void;
  /** Called with true on every (re)connect and false on every disconnect. */
  onConnection(handler: (connected: boolean) => void): void;
  close(): void;
}

export interface TrainHooks {
  onStep(step: number, total: number, imagesPerSecond: number): void;
  shouldStop(): boolean;
}

export interface Trainer {
  train(lease: Lease, hooks: TrainHooks): Promise<LeaseOutcome>;
}

export type SessionEvent =
  | { kind: 'connected' }
  | { kind: 'disconnected' }
  | { kind: 'lease'; lease: Lease }
  | { kind: 'progress'; lease: Lease; step: number; total: number; imagesPerSecond: number }
  | { kind: 'trained'; lease: Lease; outcome: LeaseOutcome }
  | { kind: 'verdict'; message: Extract<ServerMessage, { type: 'verdict' }> }
  | { kind: 'idle'; reason: string }
  | { kind: 'refused'; code: string; message: string }
  | { kind: 'error'; message: string };

export interface SessionOptions {
  readonly hello: Omit<Hello, 'type' | 'protocol' | 'resume'>;
  /**
   * A lease this worker held before it restarted (a browser tab reloaded):
   * offered in hellos until a lease arrives or the server refuses it. The
   * server re-sends the lease after its welcome when it can be continued.
   */
  readonly resume?: { leaseId: string; token: string };
  readonly now: () => number;
  readonly onEvent?: (event: SessionEvent) => void;
}

export class WorkerSession {
  private connected = false;
  private greeted = false;
  private stopped = false;
  private paused = false;
  private current: { lease: Lease; stop: boolean } | null = null;
  private lastBeat = 0;
  private lastStep = 0;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private beatTimer: ReturnType<typeof setTimeout> | null = null;
  private waitingForWork = false;
  private pendingResume: { leaseId: string; token: string } | undefined;

  constructor(
    private readonly transport: Transport,
    private readonly trainer: Trainer,
    private readonly options: SessionOptions,
  ) {
    this.pendingResume = options.resume;
    transport.onMessage((payload) => this.receive(payload));
    transport.onConnection((up) => {
      this.connected = up;
      this.greeted = false;
      // A request for work still unanswered went down with the connection (a server that closed
      // as it arrived never answers it): ask again after the next welcome.
      this.waitingForWork = false;
      this.emit(up ? { kind: 'connected' } : { kind: 'disconnected' });
      if (up) this.sayHello();
    });
  }

  private emit(event: SessionEvent): void {
    this.options.onEvent?.(event);
  }

  private sayHello(): void {
    const resume = this.current === null ? this.pendingResume : { leaseId: this.current.lease.leaseId, token: this.current.lease.token };
    this.transport.send({ type: 'hello', protocol: PROTOCOL_VERSION, ...this.options.hello, ...(resume ? { resume } : {}) });
  }

  private askForWork(): void {
    if (!this.connected || !this.greeted || this.stopped || this.paused || this.current !== null || this.waitingForWork) return;
    this.waitingForWork = true;
    this.transport.send({ type: 'ready' });
  }

  private receive(payload: unknown): void {
    const parsed = parseServerMessage(payload);
    if (!parsed.ok) {
      this.emit({ kind: 'error', message: `the server sent a message this worker does not understand: ${parsed.error}` });
      return;
    }
    const message = parsed.value;
    switch (message.type) {
      case 'welcome':
        this.greeted = true;
        this.askForWork();
        return;
      case 'lease':
        this.waitingForWork = false;
        if (this.current !== null) return; // a resumed lease re-announced: already training it
        void this.train(message.lease);
        return;
      case 'idle':
        this.waitingForWork = false;
        this.emit({ kind: 'idle', reason: message.reason });
        if (this.idleTimer !== null) clearTimeout(this.idleTimer);
        this.idleTimer = setTimeout(() => {
          this.idleTimer = null;
          this.askForWork();
        }, message.retryInMs);
        return;
      case 'verdict':
        this.emit({ kind: 'verdict', message });
        return;
      case 'refused':
        this.emit({ kind: 'refused', code: message.code, message: message.message });
        if (message.code === 'hello-first') this.sayHello();
        if (message.leaseId !== undefined && this.current?.lease.leaseId === message.leaseId) this.current.stop = true;
        if (message.leaseId !== undefined && this.pendingResume?.leaseId === message.leaseId) this.pendingResume = undefined;
        if (message.code === 'quarantined') this.stopped = true;
        this.waitingForWork = false;
        return;
    }
  }

  /**
   * Heartbeats on a timer while a lease is held, not only on steps: getting
   * the dataset or warming up WebGPU shaders can take longer than a lease
   * lives without a word.
   */
  private keepAlive(job: { lease: Lease }): void {
    const period = Math.max(250, job.lease.heartbeatMs / 2);
    const beat = () => {
      this.beatTimer = null;
      if (this.current !== job || this.stopped) return;
      const now = this.options.now();
      if (now - this.lastBeat >= period && this.connected) {
        this.lastBeat = now;
        this.transport.send({ type: 'progress', leaseId: job.lease.leaseId, step: this.lastStep });
      }
      this.beatTimer = setTimeout(beat, period);
    };
    this.beatTimer = setTimeout(beat, period);
  }

  private async train(lease: Lease): Promise<void> {
    const job = { lease, stop: false };
    this.current = job;
    this.pendingResume = undefined;
    this.lastBeat = this.options.now();
    this.lastStep = 0;
    this.keepAlive(job);
    this.emit({ kind: 'lease', lease });
    let outcome: LeaseOutcome;
    try {
      outcome = await this.trainer.train(lease, {
        onStep: (step, total, imagesPerSecond) => {
          this.lastStep = step;
          const now = this.options.now();
          if (now - this.lastBeat >= lease.heartbeatMs / 2) {
            this.lastBeat = now;
            if (this.connected) this.transport.send({ type: 'progress', leaseId: lease.leaseId, step, imagesPerSecond });
          }
          this.emit({ kind: 'progress', lease, step, total, imagesPerSecond });
        },
        shouldStop: () => job.stop || this.stopped,
      });
    } catch (err) {
      this.clearBeat();
      this.emit({ kind: 'error', message: `training failed: ${err instanceof Error ? err.message : String(err)}` });
      if (this.connected) this.transport.send({ type: 'release', leaseId: lease.leaseId, reason: 'training failed on this worker' });
      this.current = null;
      this.askForWork();
      return;
    }
    this.current = null;
    this.clearBeat();
    this.emit({ kind: 'trained', lease, outcome });
    if (outcome.status === 'stopped') {
      if (!job.stop && this.connected) this.transport.send({ type: 'release', leaseId: lease.leaseId, reason: 'the worker stopped' });
    } else if (outcome.status === 'ok') {
      this.transport.send({
        type: 'result',
        leaseId: lease.leaseId,
        status: 'ok',
        weightsSha256: outcome.weightsSha256,
        stepsDone: outcome.stepsDone,
        claimedAccuracy: outcome.claimedAccuracy,
        trainSeconds: outcome.trainSeconds,
        backend: outcome.backend,
      });
    } else {
      this.transport.send({ type: 'result', leaseId: lease.leaseId, status: 'diverged', stepsDone: outcome.stepsDone, trainSeconds: outcome.trainSeconds, backend: outcome.backend });
    }
    this.askForWork();
  }

  private clearBeat(): void {
    if (this.beatTimer !== null) clearTimeout(this.beatTimer);
    this.beatTimer = null;
  }

  /** The lease in hand, if any, and the last step reported. */
  get working(): { lease: Lease; step: number } | null {
    return this.current === null ? null : { lease: this.current.lease, step: this.lastStep };
  }

  /** Stops asking for work after the current child (pause) or resumes. */
  setPaused(paused: boolean): void {
    this.paused = paused;
    if (!paused) this.askForWork();
  }

  /** Stops at once: the lease in hand goes back to the server, then the connection closes. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.clearBeat();
    const job = this.current;
    if (job !== null) {
      job.stop = true;
      if (this.connected) this.transport.send({ type: 'release', leaseId: job.lease.leaseId, reason: 'the worker is shutting down' });
    }
  }
}
