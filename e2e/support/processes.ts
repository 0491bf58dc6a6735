/**
 * Real Petri processes for end-to-end tests: `petri serve` and `petri worker`
 * as child processes (so tests can SIGKILL and SIGTERM them), with their
 * output collected and waitable.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const PETRI_BIN = fileURLToPath(new URL('../../bin/petri.mjs', import.meta.url));

export interface RunningProcess {
  readonly proc: ChildProcess;
  /** Everything printed so far (stdout and stderr). */
  output(): string;
  /** Resolves with the first match of `pattern` in the output (waits for it). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

export function startPetri(args: string[], env: Record<string, string> = {}): RunningProcess {
  const proc = spawn(process.execPath, [PETRI_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    for (const w of waiters) w();
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  return {
    proc,
    output: () => text,
    exited,
    kill: (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = text.match(pattern);
          if (m) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${pattern} in:\n${text.slice(-3000)}`));
        }, timeoutMs);
        waiters.add(check);
        void exited.then(() => {
          if (waiters.has(check)) {
            check();
            if (waiters.has(check)) {
              waiters.delete(check);
              clearTimeout(timer);
              reject(new Error(`process exited before ${pattern} appeared:\n${text.slice(-3000)}`));
            }
          }
        });
        check();
      });
    },
  };
}

/** Starts `petri serve` on a free port and resolves once it prints its URL. */
export async function startServer(dataDir: string, flags: string[] = [], env: Record<string, string> = {}): Promise<RunningProcess & { url: string }> {
  const server = startPetri(['serve', '--data-dir', dataDir, '--port', '0', '--host', '127.0.0.1', ...flags], env);
  const m = await server.waitFor(/volunteer page\s+(http:\/\/\S+?)\/\s/, 120_000);
  return Object.assign(server, { url: m[1] as string });
}

/** Polls `fn` until it returns a truthy value (no fixed sleeps racing the system). */
export async function until<T>(fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, what: string, timeoutMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function getJson<T = unknown>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return (await res.json()) as T;
}
