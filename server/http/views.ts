/** Public JSON views of the store's records (what the API and live pages show). */
import type { Coordinator } from '../coordinator.ts';
import type { ExperimentRecord, IndividualRecord, PopulationStore } from '../store/types.ts';

export function publicIndividual(ind: IndividualRecord) {
  const convs = ind.dna.edges.filter((e) => e.type === 'conv').length;
  const skips = ind.dna.edges.filter((e) => e.role === 'skip').length;
  return {
    id: ind.id,
    experimentId: ind.experimentId,
    status: ind.status,
    fitness: ind.fitness,
    provisional: ind.provisional,
    failed: ind.failed,
    testAccuracy: ind.testAccuracy,
    params: ind.params,
    flops: ind.forwardFlops,
    costFlops: ind.costFlops,
    depth: convs,
    skips,
    learningRate: ind.dna.learningRate,
    generation: ind.generation,
    ancestors: ind.generation,
    parentId: ind.parentId,
    mutation: ind.mutations.map((m) => m.name).join('+') || null,
    mutations: ind.mutations,
    dnaId: ind.dnaId,
    createdAt: ind.createdAt,
    trainedAt: ind.trainedAt,
    removedAt: ind.removedAt,
    trainedBy: { nickname: ind.trainedBy.nickname, backend: ind.trainedBy.backend },
  };
}

export function publicExperiment(exp: ExperimentRecord, store: PopulationStore, coordinator: Coordinator) {
  const online = coordinator.onlineWorkers(exp.id);
  const byBackend: Record<string, number> = {};
  for (const w of online) byBackend[w.hello.backend] = (byBackend[w.hello.backend] ?? 0) + 1;
  const leases = coordinator.leasesInFlight(exp.id);
  const best = store.leaderboard(exp.id, 50).find((i) => !i.provisional && !i.failed) ?? null;
  return {
    id: exp.id,
    name: exp.name,
    dataset: exp.config.dataset,
    status: exp.status,
    config: exp.config,
    createdAt: exp.createdAt,
    counts: {
      alive: store.aliveIndividuals(exp.id).length,
      childrenTrained: exp.childrenTrained,
      workersOnline: online.length,
      workersByBackend: byBackend,
      leasesInFlight: leases.length,
      steps: exp.stepCounter,
    },
    totalFlops: exp.totalFlops,
    bestFitness: exp.bestFitness,
    bestId: best?.id ?? null,
    boostRemaining: exp.boostRemaining,
    finalResult: exp.finalResult,
  };
}
