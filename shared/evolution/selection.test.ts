import { describe, expect, it } from 'vitest';
import { createRng } from './rng.ts';
import { aging, tournament, type Competitor } from './selection.ts';

const population: Competitor[] = [0.1, 0.5, 0.3, 0.9, 0.2].map((fitness, i) => ({ id: `i${i}`, fitness, order: i }));

describe('selection', () => {
  it('tournament: two distinct individuals, the worse removed, the better the parent', () => {
    const rng = createRng('t');
    const seenPairs = new Set<string>();
    for (let k = 0; k < 2000; k++) {
      const s = tournament(population, rng);
      expect(s).not.toBeNull();
      const parent = population.find((p) => p.id === s?.parentId) as Competitor;
      const removed = population.find((p) => p.id === s?.removeId) as Competitor;
      expect(parent.id).not.toBe(removed.id);
      expect(parent.fitness).toBeGreaterThan(removed.fitness);
      seenPairs.add([parent.id, removed.id].sort().join());
    }
    // Uniform over pairs: all 10 pairs of 5 occur.
    expect(seenPairs.size).toBe(10);
    expect(tournament(population.slice(0, 1), rng)).toBeNull();
  });

  it('tournament breaks ties at random', () => {
    const tied: Competitor[] = [{ id: 'a', fitness: 0.5, order: 0 }, { id: 'b', fitness: 0.5, order: 1 }];
    const rng = createRng('tie');
    const parents = new Set(Array.from({ length: 50 }, () => tournament(tied, rng)?.parentId));
    expect(parents).toEqual(new Set(['a', 'b']));
  });

  it('aging: the best of a sample is the parent and the oldest is removed', () => {
    const rng = createRng('a');
    for (let k = 0; k < 200; k++) {
      const s = aging(population, 5, rng);
      expect(s).toEqual({ parentId: 'i3', removeId: 'i0' });
    }
    const small = aging(population, 2, rng);
    expect(small?.removeId).toBe('i0');
  });
});
