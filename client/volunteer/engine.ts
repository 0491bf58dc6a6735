/**
 * The page's handle on its training Web Worker: starts it, forwards
 * messages both ways, notices when it dies or stops answering.
 */
import type { Backend } from '../../shared/protocol.ts';
import type { BackendReport, FromWorker, ToWorker } from '../train/messages.ts';

export class TrainingEngine {
  private readonly worker: Worker;
  private readonly listeners = new Set<(message: FromWorker) => void>();
  /** When the worker last spoke (any message). */
  lastHeard = Date.now();
  readonly ready: Promise<BackendReport>;

  constructor(forced: Backend | null, base: string) {
    this.worker = new Worker(new URL('../train/worker.ts', import.meta.url), { type: 'module', name: 'petri-training' });
    this.ready = new Promise<BackendReport>((resolve, reject) => {
      const off = this.on((message) => {
        if (message.type === 'ready') {
          off();
          resolve(message.report);
        } else if (message.type === 'fatal') {
          off();
          reject(new Error(message.message));
        }
      });
    });
    this.worker.onmessage = (event: MessageEvent<FromWorker>) => {
      this.lastHeard = Date.now();
      for (const listener of [...this.listeners]) listener(event.data);
    };
    this.worker.onerror = (event) => {
      event.preventDefault();
      const message = event.message || 'the training worker could not start (its script failed to load)';
      for (const listener of [...this.listeners]) listener({ type: 'fatal', message });
    };
    this.post({ type: 'init', forced, base });
  }

  post(message: ToWorker): void {
    this.worker.postMessage(message);
  }

  /** Listens to every message from the worker; returns the function that stops listening. */
  on(listener: (message: FromWorker) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  terminate(): void {
    this.worker.terminate();
  }
}
