/**
 * Coordinator load: 100, 500 and 1,000 simulated workers against one
 * `petri serve` process with a population of 1,000. The workers' "training"
 * is instant (weights of the right shapes, all small values), so what is
 * measured is the server: leases, uploads, verification, the store.
 *
 *   npx tsx bench/load.ts [--workers 100,500,1000] [--seconds 20] [--out bench/out/load.json]
 *
 * Prints JSON and a table: children per second, lease latency p50/p99 (from
 * "ready" to the lease), and the server's resident memory.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { io, type Socket } from 'socket.io-client';
import { parseDna } from '../shared/evolution/validate.ts';
import { encodeWeights } from '../shared/model/weights-codec.ts';
import type { WeightMap } from '../shared/model/weights.ts';
import { MESSAGE_EVENT, PROTOCOL_VERSION, type Lease, type ServerMessage } from '../shared/protocol.ts';
import { startServer, type RunningProcess } from '../e2e/support/processes.ts';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '100,500,1000' },
    seconds: { type: 'string', default: '20' },
    population: { type: 'string', default: '1000' },
    out: { type: 'string' },
  },
});
const counts = (values.workers ?? '').split(',').map(Number);
const seconds = Number(values.seconds);
const population = Number(values.population);

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

function instantWeights(lease: Lease): Uint8Array {
  const map: WeightMap = new Map();
  for (const t of lease.plan.tensors) map.set(t.key, new Float32Array(t.shape.reduce((a, b) => a * b, 1)).fill(0.01));
  return encodeWeights(parseDna(lease.dna), map);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

interface Row {
  workers: number;
  seconds: number;
  childrenPerSecond: number;
  leases: number;
  leaseLatencyP50Ms: number;
  leaseLatencyP99Ms: number;
  idleAnswers: number;
  uploadFailures: number;
  serverRssMb: number;
  verificationBacklogAtEnd: number;
}

async function runOnce(server: RunningProcess & { url: string }, workers: number): Promise<Row> {
  const latencies: number[] = [];
  let accepted = 0;
  let idle = 0;
  let uploadFailures = 0;
  let running = true;
  const sockets: Socket[] = [];
  const started = Date.now();
  await Promise.all(
    Array.from({ length: workers }, (_, i) =>
      new Promise<void>((ready) => {
        const socket = io(server.url, { transports: ['websocket'], forceNew: true, reconnection: false });
        sockets.push(socket);
        let askedAt = 0;
        const ask = () => {
          if (!running) return;
          askedAt = performance.now();
          socket.emit(MESSAGE_EVENT, { type: 'ready' });
        };
        socket.on(MESSAGE_EVENT, async (m: ServerMessage) => {
          if (m.type === 'welcome') {
            ready();
            ask();
          } else if (m.type === 'idle') {
            idle++;
            setTimeout(ask, Math.min(m.retryInMs, 500));
          } else if (m.type === 'lease') {
            latencies.push(performance.now() - askedAt);
            const bytes = instantWeights(m.lease);
            let body: { sha256?: string };
            try {
              const res = await fetch(`${server.url}${m.lease.uploadUrl}`, { method: 'PUT', headers: { 'x-petri-lease-token': m.lease.token }, body: new Blob([bytes as Uint8Array<ArrayBuffer>]) });
              body = (await res.json()) as { sha256?: string };
            } catch {
              // An upload the overloaded server did not take: the lease will expire.
              uploadFailures++;
              setTimeout(ask, 500);
              return;
            }
            socket.emit(MESSAGE_EVENT, { type: 'result', leaseId: m.lease.leaseId, status: 'ok', weightsSha256: body.sha256, stepsDone: m.lease.steps, trainSeconds: 0, backend: 'cpu' });
            ask();
          } else if (m.type === 'verdict') {
            accepted++;
          }
        });
        socket.on('connect', () => socket.emit(MESSAGE_EVENT, { type: 'hello', protocol: PROTOCOL_VERSION, backend: 'cpu', adapter: 'bench', speed: 0, client: 'node', nickname: `sim${i % 50}` }));
      }),
    ),
  );
  const t0 = Date.now();
  const accepted0 = accepted;
  latencies.length = 0;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const elapsed = (Date.now() - t0) / 1000;
  const done = accepted - accepted0;
  const rss = rssMb(server.proc.pid as number);
  running = false;
  for (const s of sockets) s.close();
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const backlog = Number(/petri_verification_backlog (\d+)/.exec(metrics)?.[1] ?? Number.NaN);
  const sorted = [...latencies].sort((a, b) => a - b);
  void started;
  return {
    workers,
    seconds: elapsed,
    childrenPerSecond: done / elapsed,
    leases: latencies.length,
    leaseLatencyP50Ms: percentile(sorted, 50),
    leaseLatencyP99Ms: percentile(sorted, 99),
    idleAnswers: idle,
    uploadFailures,
    serverRssMb: rss,
    verificationBacklogAtEnd: backlog,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'petri-load-'));
const rows: Row[] = [];
try {
  for (const n of counts) {
    // A fresh server and population per size, so each run starts alike.
    // Every simulated worker comes from 127.0.0.1: lift the per-address limits meant for the internet.
    const unlimited = { PETRI_HELLOS_PER_MINUTE: '1000000', PETRI_RESULTS_PER_MINUTE: '1000000', PETRI_UPLOADS_PER_MINUTE: '1000000' };
    const server = await startServer(join(dir, `data-${n}`), ['--preset', 'quick', '--population', String(population), '--steps', '1', '--batch-size', '1', '--max-children', '0', '--lease-ttl', '60'], unlimited);
    try {
      rows.push(await runOnce(server, n));
    } finally {
      server.kill('SIGTERM');
      await server.exited;
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const report = { bench: 'coordinator-load', date: new Date().toISOString(), population, secondsPerRun: seconds, rows };
const json = JSON.stringify(report, null, 2);
if (values.out) {
  await mkdir(dirname(values.out), { recursive: true });
  await writeFile(values.out, json);
}
console.log(json);
console.log('\nworkers  children/s  lease p50 ms  lease p99 ms  server RSS MB  verify backlog  failed uploads');
for (const r of rows) {
  console.log(
    `${String(r.workers).padStart(7)}  ${r.childrenPerSecond.toFixed(1).padStart(10)}  ${r.leaseLatencyP50Ms.toFixed(1).padStart(12)}  ${r.leaseLatencyP99Ms.toFixed(1).padStart(12)}  ${r.serverRssMb.toFixed(0).padStart(13)}  ${String(r.verificationBacklogAtEnd).padStart(14)}  ${String(r.uploadFailures).padStart(14)}`,
  );
}
