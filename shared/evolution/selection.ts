/**
 * Selection strategies, pure and seeded. The paper's tournament: two
 * distinct individuals drawn uniformly at random; the worse is removed and
 * the better becomes the parent. Aging (Real et al. 2019): a sample of S,
 * the best is the parent, the oldest of the population is removed.
 */
import type { Rng } from './rng.ts';

export interface Competitor {
  readonly id: string;
  readonly fitness: number;
  /** Insertion order: smaller is older. */
  readonly order: number;
}

export interface Selection {
  readonly parentId: string;
  readonly removeId: string;
}

/** The paper's step; null with fewer than two individuals. Ties are broken at random. */
export function tournament(population: readonly Competitor[], rng: Rng): Selection | null {
  if (population.length < 2) return null;
  const i = rng.int(0, population.length - 1);
  let j = rng.int(0, population.length - 2);
  if (j >= i) j += 1;
  const a = population[i] as Competitor;
  const b = population[j] as Competitor;
  const aWins = a.fitness > b.fitness || (a.fitness === b.fitness && rng.chance(0.5));
  return aWins ? { parentId: a.id, removeId: b.id } : { parentId: b.id, removeId: a.id };
}

/** Aging evolution's step; null with fewer than two individuals. */
export function aging(population: readonly Competitor[], sampleSize: number, rng: Rng): Selection | null {
  if (population.length < 2) return null;
  const s = Math.max(1, Math.min(sampleSize, population.length));
  const pool = [...population];
  const sample: Competitor[] = [];
  for (let k = 0; k < s; k++) sample.push(pool.splice(rng.int(0, pool.length - 1), 1)[0] as Competitor);
  let best = sample[0] as Competitor;
  for (const c of sample) if (c.fitness > best.fitness) best = c;
  let oldest = population[0] as Competitor;
  for (const c of population) if (c.order < oldest.order) oldest = c;
  // As in the 2019 paper the oldest goes even when it is the parent: its
  // weights stay with the child's task until the child is trained.
  return { parentId: best.id, removeId: oldest.id };
}
