/**
 * Test page: runs the evolution core in the browser and publishes, for each
 * case the test passes in, the child DNA's content id and canonical text.
 */
import { canonicalDna, createRng, dnaId, mutate, parseDna } from '../../shared/evolution/index.ts';

declare global {
  interface Window {
    petriMutate: (cases: { seed: string; parent: unknown; k: number }[]) => { id: string; text: string; applied: string[] }[];
  }
}

window.petriMutate = (cases) =>
  cases.map(({ seed, parent, k }) => {
    const outcome = mutate(parseDna(parent), createRng(seed), k);
    return { id: dnaId(outcome.child), text: canonicalDna(outcome.child), applied: outcome.applied.map((m) => m.name) };
  });
document.title = 'ready';
