/**
 * The read-only HTTP API the page uses (server/http/api.ts), typed from the
 * server's own view functions so that the two cannot drift apart.
 */
import type { Dna } from '../../shared/evolution/dna.ts';
import type { publicExperiment, publicIndividual } from '../../server/http/views.ts';
import type { FinalReport } from '../../server/final-report.ts';
import type { EventRecord, VolunteerRecord } from '../../server/store/types.ts';

export type PublicIndividual = ReturnType<typeof publicIndividual>;
export type ExperimentSummary = ReturnType<typeof publicExperiment>;
export type Volunteer = VolunteerRecord;
export type ExperimentEvent = EventRecord;
export type { FinalReport };

export interface LineageStep {
  readonly id: string;
  readonly fitness: number;
  readonly mutation: string | null;
  readonly generation: number;
}

export interface IndividualDetail extends PublicIndividual {
  readonly dna: Dna;
  /** From the parent back to the initial individual. */
  readonly lineage: readonly LineageStep[];
  /** Whether the weights are still stored (verified, not collected): the export works. */
  readonly hasWeights?: boolean;
}

/** An HTTP error with the server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { headers: { accept: 'application/json' } });
  if (!response.ok) throw await apiError(response);
  return (await response.json()) as T;
}

async function apiError(response: Response): Promise<ApiError> {
  const body = (await response.json().catch(() => null)) as { message?: string } | null;
  return new ApiError(response.status, body?.message ?? `HTTP ${response.status} ${response.statusText}`);
}

const enc = encodeURIComponent;

export const api = {
  experiments: () => getJson<ExperimentSummary[]>('/api/experiments'),
  experiment: (id: string) => getJson<ExperimentSummary>(`/api/experiments/${enc(id)}`),
  individuals: (id: string) => getJson<PublicIndividual[]>(`/api/experiments/${enc(id)}/individuals`),
  leaderboard: (id: string, limit: number) => getJson<PublicIndividual[]>(`/api/experiments/${enc(id)}/leaderboard?limit=${limit}`),
  individual: (id: string) => getJson<IndividualDetail>(`/api/individuals/${enc(id)}`),
  volunteers: () => getJson<Volunteer[]>('/api/volunteers'),

  /** Every event of an experiment of the given kinds, read page by page. */
  async events(id: string, kinds: ReadonlySet<string>): Promise<ExperimentEvent[]> {
    const out: ExperimentEvent[] = [];
    let after = 0;
    for (let page = 0; page < 1000; page++) {
      const batch = await getJson<ExperimentEvent[]>(`/api/experiments/${enc(id)}/events?after=${after}`);
      for (const e of batch) if (kinds.has(e.kind)) out.push(e);
      const last = batch[batch.length - 1];
      if (last === undefined || batch.length < 1000) break;
      after = last.id;
    }
    return out;
  },

  /** Admin: the final report (test split) of an experiment. */
  async finalReport(id: string, k: number, token: string): Promise<FinalReport> {
    const response = await fetch(`/api/experiments/${enc(id)}/final`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ k }),
    });
    if (!response.ok) throw await apiError(response);
    return (await response.json()) as FinalReport;
  },
};

/** Where an individual's standard tf.js export lives. */
export function modelUrl(id: string): string {
  return `/api/individuals/${enc(id)}/model.json`;
}

export function weightsUrl(id: string): string {
  return `/api/individuals/${enc(id)}/weights.bin`;
}
