/**
 * Assembles a Petri server: the population store, weight files, verifier,
 * coordinator, HTTP API, dataset routes, the built pages and socket.io.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { Server } from 'socket.io';
import { MAX_FRAME_BYTES, type ServerMessage } from '../shared/protocol.ts';
import { Coordinator, type DatasetInfo } from './coordinator.ts';
import { createDatasetRouter, ensureDataset, loadSplit, type EnsureDatasetOptions } from './datasets/index.ts';
import { createFinalReporter } from './final-report.ts';
import { loadOrCreateAdminToken } from './http/admin.ts';
import { createApiRouter } from './http/api.ts';
import { setCrossOriginIsolation } from './http/isolation.ts';
import { attachSockets } from './socket.ts';
import { SqliteStore } from './store/sqlite-store.ts';
import type { ExperimentConfig, PopulationStore } from './store/types.ts';
import { ThreadVerifier } from './verify-pool.ts';
import type { Verifier } from './verifier.ts';
import { WeightsFiles } from './weights-files.ts';

export interface PetriServerOptions {
  readonly dataDir: string;
  readonly port?: number;
  readonly host?: string;
  /** Created when the data directory holds no experiment yet. */
  readonly initialExperiment?: ExperimentConfig;
  readonly leaseTtlMs?: number;
  readonly heartbeatMs?: number;
  readonly datasetOptions?: EnsureDatasetOptions;
  /** Folder of the built pages (vite build); default dist/client. */
  readonly clientDir?: string;
  readonly verifier?: Verifier;
  /**
   * Per-address limits (per minute) on hellos, results and uploads. The
   * defaults suit volunteers on the internet; a lab behind one NAT address,
   * or a load test, raises them (env PETRI_HELLOS_PER_MINUTE, PETRI_RESULTS_PER_MINUTE,
   * PETRI_UPLOADS_PER_MINUTE).
   */
  readonly limits?: { readonly hellosPerMinute?: number; readonly resultsPerMinute?: number; readonly uploadsPerMinute?: number };
  readonly log?: (line: string) => void;
}

export interface PetriServer {
  readonly url: string;
  readonly port: number;
  readonly adminToken: string;
  readonly coordinator: Coordinator;
  readonly store: PopulationStore;
  readonly http: HttpServer;
  close(): Promise<void>;
}

export const DEFAULT_CLIENT_DIR = resolve(fileURLToPath(new URL('../dist/client', import.meta.url)));

export async function startPetriServer(options: PetriServerOptions): Promise<PetriServer> {
  const log = options.log ?? ((line: string) => console.log(line));
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const store = SqliteStore.open(join(dataDir, 'petri.db'));
  const weights = new WeightsFiles(join(dataDir, 'weights'));
  const adminToken = loadOrCreateAdminToken(dataDir);
  const verifier = options.verifier ?? new ThreadVerifier(dataDir);

  const datasetInfo = async (name: string): Promise<DatasetInfo> => {
    const prepared = await ensureDataset(dataDir, name, { log: (line) => log(`[data] ${line}`), ...options.datasetOptions });
    return {
      name,
      shape: prepared.manifest.imageShape,
      numClasses: prepared.manifest.numClasses,
      manifestUrl: `/data/${name}/manifest.json`,
      version: prepared.manifest.version,
      validationCount: prepared.manifest.splits.validation,
    };
  };

  let send: (workerId: string, message: ServerMessage) => void = () => {};
  const coordinator = new Coordinator({
    store,
    weights,
    verifier,
    dataset: datasetInfo,
    clock: Date.now,
    randomHex: (n) => randomBytes(n).toString('hex'),
    send: (id, m) => send(id, m),
    leaseTtlMs: options.leaseTtlMs,
    heartbeatMs: options.heartbeatMs,
    log,
  });
  const recovered = await coordinator.recover();
  if (recovered.requeued > 0 || recovered.weightsDeleted > 0) {
    log(`recovered: ${recovered.requeued} leases re-queued, ${recovered.weightsDeleted} orphaned weight files deleted`);
  }
  if (store.listExperiments().length === 0 && options.initialExperiment !== undefined) {
    await coordinator.createExperiment(options.initialExperiment);
  }

  // The final report (test split): on request, and by itself when an experiment finishes or stops.
  const finalReports = createFinalReporter({
    store,
    verifier,
    weights,
    testLabels: async (name) => (await loadSplit(dataDir, name, 'test')).labels,
    log,
    onReport: (r) => io.of('/live').to(`exp:${r.experimentId}`).emit('status', { experimentId: r.experimentId }),
  });

  const app = express();
  app.disable('x-powered-by');
  app.use(createApiRouter({ store, coordinator, weights, adminToken, finalReport: finalReports.compute, uploadsPerMinute: options.limits?.uploadsPerMinute }));
  app.use(createDatasetRouter(dataDir));
  const clientDir = options.clientDir ?? DEFAULT_CLIENT_DIR;
  if (existsSync(clientDir)) {
    // Cross-origin isolated, so the training worker can run tf.js wasm on several threads.
    app.use(express.static(clientDir, { index: 'index.html', extensions: ['html'], setHeaders: setCrossOriginIsolation }));
  } else {
    app.get('/', (_req, res) => {
      res.status(503).type('text/plain').send(`The pages are not built: run "npm run build" (looked in ${clientDir}).`);
    });
  }

  const http = createServer(app);
  const io = new Server(http, { maxHttpBufferSize: MAX_FRAME_BYTES, serveClient: false, cors: { origin: false } });
  send = attachSockets(io, coordinator, { hellosPerMinute: options.limits?.hellosPerMinute, resultsPerMinute: options.limits?.resultsPerMinute }).sendTo;
  finalReports.whenDone(coordinator);
  const ticker = setInterval(() => coordinator.tick(), 1000);
  ticker.unref();

  await new Promise<void>((ok, fail) => {
    http.once('error', fail);
    http.listen(options.port ?? 3000, options.host ?? '0.0.0.0', () => ok());
  });
  const address = http.address();
  const port = typeof address === 'object' && address !== null ? address.port : (options.port ?? 3000);
  const shownHost = options.host === undefined || options.host === '0.0.0.0' ? 'localhost' : options.host;

  return {
    url: `http://${shownHost}:${port}`,
    port,
    adminToken,
    coordinator,
    store,
    http,
    async close() {
      clearInterval(ticker);
      await new Promise<void>((ok) => io.close(() => ok()));
      await new Promise<void>((ok) => http.close(() => ok()));
      await coordinator.drained();
      await finalReports.settled();
      await verifier.close();
      store.close();
    },
  };
}
