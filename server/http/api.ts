/**
 * The HTTP API (docs/API.md): read-only public routes, the weights routes
 * workers use, and admin routes behind the bearer token.
 */
import { readFile } from 'node:fs/promises';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import * as v from 'valibot';
import { exportModel, type ExportedModel } from '../export.ts';
import { resolveConfig } from '../experiments/config.ts';
import type { Coordinator } from '../coordinator.ts';
import { KeyedLimiter } from '../rate-limit.ts';
import type { PopulationStore } from '../store/types.ts';
import type { WeightsFiles } from '../weights-files.ts';
import { requireAdmin } from './admin.ts';
import { renderMetrics } from './metrics.ts';
import { publicExperiment, publicIndividual } from './views.ts';

export interface ApiDeps {
  readonly store: PopulationStore;
  readonly coordinator: Coordinator;
  readonly weights: WeightsFiles;
  readonly adminToken: string;
  /** Computes the final test-set report of an experiment (best model and top-k ensemble). */
  readonly finalReport?: (experimentId: string, k: number) => Promise<unknown>;
  /** Weights uploads per minute per address (burst as many); default 240. */
  readonly uploadsPerMinute?: number;
}

const SHA = /^[0-9a-f]{64}$/;
const ID = /^[a-z0-9][a-z0-9-]{0,95}$/;

function fail(res: Response, status: number, error: string, message: string): void {
  res.status(status).json({ error, message });
}

export function createApiRouter(deps: ApiDeps): Router {
  const { store, coordinator, weights } = deps;
  const router = express.Router();
  const admin = requireAdmin(deps.adminToken);
  const parseJson = express.json({ limit: '64kb', strict: true });
  // A body that is not JSON is refused, never taken for an empty one.
  const json = (req: Request, res: Response, next: NextFunction): void => {
    if (req.is('application/json') === false) fail(res, 415, 'unsupported-media-type', 'send the body as application/json');
    else parseJson(req, res, next);
  };
  const exports = new Map<string, Promise<ExportedModel>>();
  const uploadsPerMinute = deps.uploadsPerMinute ?? 240;
  const uploadLimiter = new KeyedLimiter(uploadsPerMinute, uploadsPerMinute / 60);

  router.get('/healthz', (_req, res) => {
    res.json({ ok: true });
  });

  router.get('/metrics', (_req, res) => {
    res.type('text/plain; version=0.0.4').send(renderMetrics(store, coordinator));
  });

  router.get('/api/experiments', (_req, res) => {
    res.json(store.listExperiments().map((e) => publicExperiment(e, store, coordinator)));
  });

  const experiment = (req: Request, res: Response) => {
    const id = String(req.params.id);
    const exp = ID.test(id) ? store.getExperiment(id) : null;
    if (exp === null) fail(res, 404, 'not-found', `no experiment ${id}`);
    return exp;
  };

  router.get('/api/experiments/:id', (req, res) => {
    const exp = experiment(req, res);
    if (exp) res.json(publicExperiment(exp, store, coordinator));
  });

  router.get('/api/experiments/:id/leaderboard', (req, res) => {
    const exp = experiment(req, res);
    if (!exp) return;
    const limit = Math.min(1000, Math.max(1, Number.parseInt(String(req.query.limit ?? '20'), 10) || 20));
    // Only numbers the server computed: provisional individuals are left out.
    const rows = store.leaderboard(exp.id, limit * 4 + 50).filter((i) => !i.provisional).slice(0, limit);
    res.json(rows.map(publicIndividual));
  });

  router.get('/api/experiments/:id/individuals', (req, res) => {
    const exp = experiment(req, res);
    if (!exp) return;
    res.json(store.allIndividuals(exp.id).map(publicIndividual));
  });

  router.get('/api/experiments/:id/events', (req, res) => {
    const exp = experiment(req, res);
    if (!exp) return;
    const after = Number.parseInt(String(req.query.after ?? '0'), 10) || 0;
    res.json(store.events(exp.id, after, 1000));
  });

  router.get('/api/volunteers', (_req, res) => {
    res.json(store.volunteers(200));
  });

  const individual = (req: Request, res: Response) => {
    const id = String(req.params.id);
    const ind = ID.test(id) ? store.getIndividual(id) : null;
    if (ind === null) fail(res, 404, 'not-found', `no individual ${id}`);
    return ind;
  };

  router.get('/api/individuals/:id', (req, res) => {
    const ind = individual(req, res);
    if (!ind) return;
    const lineage = store.lineage(ind.id).map((a) => ({ id: a.id, fitness: a.fitness, mutation: a.mutations.map((m) => m.name).join('+') || null, generation: a.generation }));
    // hasWeights: whether model.json / weights.bin can be exported (removed individuals' weights are collected).
    const hasWeights = !ind.provisional && ind.weightsSha256 !== null && weights.has(ind.weightsSha256);
    res.json({ ...publicIndividual(ind), dna: ind.dna, lineage, hasWeights });
  });

  const exported = async (req: Request, res: Response): Promise<ExportedModel | null> => {
    const ind = individual(req, res);
    if (!ind) return null;
    if (ind.provisional) {
      fail(res, 409, 'provisional', `individual ${ind.id} is not verified by the server yet; it cannot be exported`);
      return null;
    }
    if (ind.weightsSha256 === null || !weights.has(ind.weightsSha256)) {
      fail(res, 410, 'no-weights', `individual ${ind.id} has no stored weights (failed, or removed and collected)`);
      return null;
    }
    let job = exports.get(ind.id);
    if (job === undefined) {
      job = readFile(weights.path(ind.weightsSha256)).then((bytes) => exportModel(ind.dna, new Uint8Array(bytes), 'weights.bin'));
      exports.set(ind.id, job);
      if (exports.size > 50) exports.delete(exports.keys().next().value as string);
      job.catch(() => exports.delete(ind.id));
    }
    return job;
  };

  router.get('/api/individuals/:id/model.json', async (req, res, next) => {
    try {
      const model = await exported(req, res);
      if (model) res.json(model.modelJson);
    } catch (err) {
      next(err);
    }
  });

  router.get('/api/individuals/:id/weights.bin', async (req, res, next) => {
    try {
      const model = await exported(req, res);
      if (model) res.type('application/octet-stream').send(Buffer.from(model.weightData));
    } catch (err) {
      next(err);
    }
  });

  router.get('/api/weights/:sha', (req, res) => {
    const sha = String(req.params.sha);
    if (!SHA.test(sha) || !weights.has(sha)) {
      fail(res, 404, 'not-found', 'no such weights');
      return;
    }
    res.set('cache-control', 'public, max-age=31536000, immutable');
    res.sendFile(weights.path(sha));
  });

  router.put('/api/leases/:leaseId/weights', async (req, res, next) => {
    try {
      if (!uploadLimiter.take(req.socket.remoteAddress ?? '', Date.now())) {
        res.set('connection', 'close').set('retry-after', '5');
        fail(res, 429, 'rate-limited', 'too many uploads from this address');
        return;
      }
      const leaseId = String(req.params.leaseId);
      const token = req.get('x-petri-lease-token') ?? '';
      if (!/^L[0-9a-f]{16,32}$/.test(leaseId) || !/^[0-9a-f]{32,64}$/.test(token)) {
        fail(res, 400, 'bad-message', 'a lease id and its x-petri-lease-token header are required');
        return;
      }
      const result = await coordinator.acceptUpload(leaseId, token, req);
      if (result.ok) res.json({ sha256: result.sha256 });
      else {
        // Stop reading a refused body; the client learns why from the status.
        res.set('connection', 'close');
        fail(res, result.status, result.code, result.message);
      }
    } catch (err) {
      next(err);
    }
  });

  // ---- admin ------------------------------------------------------------------

  router.post('/api/experiments', admin, json, async (req, res, next) => {
    try {
      const body = v.safeParse(v.strictObject({ name: v.optional(v.pipe(v.string(), v.maxLength(100))), config: v.optional(v.unknown()) }), req.body ?? {});
      if (!body.success) {
        fail(res, 400, 'bad-request', 'expected {"name"?: string, "config"?: {...}}');
        return;
      }
      let config;
      try {
        config = resolveConfig(body.output.config ?? {});
      } catch (err) {
        fail(res, 400, 'bad-config', err instanceof Error ? err.message : String(err));
        return;
      }
      const exp = await coordinator.createExperiment(config, body.output.name);
      res.status(201).json(publicExperiment(exp, store, coordinator));
    } catch (err) {
      next(err);
    }
  });

  for (const [action, status] of [['pause', 'paused'], ['resume', 'running'], ['stop', 'stopped']] as const) {
    router.post(`/api/experiments/:id/${action}`, admin, (req, res) => {
      const exp = experiment(req, res);
      if (!exp) return;
      try {
        res.json(publicExperiment(coordinator.setStatus(exp.id, status), store, coordinator));
      } catch (err) {
        fail(res, 409, 'bad-state', err instanceof Error ? err.message : String(err));
      }
    });
  }

  router.post('/api/experiments/:id/remedy', admin, json, (req, res) => {
    const exp = experiment(req, res);
    if (!exp) return;
    const body = v.safeParse(v.strictObject({ remedy: v.picklist(['boost', 'reset']) }), req.body ?? {});
    if (!body.success) {
      fail(res, 400, 'bad-request', 'expected {"remedy": "boost" | "reset"}');
      return;
    }
    res.json(publicExperiment(coordinator.applyRemedy(exp.id, body.output.remedy), store, coordinator));
  });

  router.post('/api/experiments/:id/final', admin, json, async (req, res, next) => {
    const exp = experiment(req, res);
    if (!exp) return;
    const body = v.safeParse(v.strictObject({ k: v.optional(v.pipe(v.number(), v.integer())) }), req.body ?? {});
    if (!body.success) {
      fail(res, 400, 'bad-request', 'expected {"k"?: integer}');
      return;
    }
    if (deps.finalReport === undefined) {
      fail(res, 501, 'unavailable', 'this server computes no final report');
      return;
    }
    try {
      const k = Math.min(25, Math.max(1, body.output.k ?? 5));
      res.json(await deps.finalReport(exp.id, k));
    } catch (err) {
      next(err);
    }
  });

  router.use('/api', (_req, res) => fail(res, 404, 'not-found', 'no such API route'));

  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    const status = typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number' ? err.status : 500;
    const message = status === 500 ? 'internal error' : err instanceof Error ? err.message : String(err);
    if (status === 500) console.error(err);
    fail(res, status, status === 413 ? 'too-large' : status === 400 ? 'bad-request' : 'error', message);
  });
  return router;
}
