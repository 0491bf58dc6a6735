/** `GET /metrics` in the Prometheus text format. */
import type { Coordinator } from '../coordinator.ts';
import type { PopulationStore } from '../store/types.ts';

function line(name: string, help: string, type: 'counter' | 'gauge', samples: [Record<string, string>, number][]): string {
  const rows = samples.map(([labels, value]) => {
    const l = Object.entries(labels).map(([k, x]) => `${k}="${x.replace(/["\\\n]/g, '_')}"`).join(',');
    return `${name}${l ? `{${l}}` : ''} ${value}`;
  });
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${rows.join('\n')}\n`;
}

export function renderMetrics(store: PopulationStore, coordinator: Coordinator): string {
  const m = coordinator.metrics;
  const experiments = store.listExperiments();
  const byBackend = new Map<string, number>();
  for (const w of coordinator.onlineWorkers()) byBackend.set(w.hello.backend, (byBackend.get(w.hello.backend) ?? 0) + 1);
  return [
    line('petri_steps_total', 'Tournament steps issued since start', 'counter', [[{}, m.stepsIssued]]),
    line('petri_leases_total', 'Leases by outcome since start', 'counter', [
      [{ outcome: 'issued' }, m.leasesIssued],
      [{ outcome: 'expired' }, m.leasesExpired],
      [{ outcome: 'released' }, m.leasesReleased],
    ]),
    line('petri_results_total', 'Results by outcome since start', 'counter', [
      [{ outcome: 'accepted' }, m.resultsAccepted],
      [{ outcome: 'failed' }, m.resultsFailed],
      [{ outcome: 'refused' }, m.resultsRefused],
    ]),
    line('petri_verifications_total', 'Server verifications by outcome', 'counter', [
      [{ outcome: 'ok' }, m.verifications.ok],
      [{ outcome: 'bad_weights' }, m.verifications.badWeights],
      [{ outcome: 'error' }, m.verifications.error],
      [{ outcome: 'skipped' }, m.verifications.skipped],
    ]),
    line('petri_claim_mismatches_total', 'Worker accuracy claims that disagreed with the server', 'counter', [[{}, m.claimMismatches]]),
    line('petri_verification_backlog', 'Results waiting for verification', 'gauge', [[{}, coordinator.verificationBacklog]]),
    line('petri_workers_online', 'Connected workers by backend', 'gauge', [...byBackend].map(([backend, n]) => [{ backend }, n])),
    line('petri_leases_in_flight', 'Leases held by workers', 'gauge', [[{}, coordinator.leasesInFlight().length]]),
    line('petri_children_trained', 'Children in each experiment so far', 'gauge', experiments.map((e) => [{ experiment: e.id }, e.childrenTrained])),
    line('petri_total_flops', 'Compute per experiment (paper accounting)', 'gauge', experiments.map((e) => [{ experiment: e.id }, e.totalFlops])),
    line('petri_best_fitness', 'Best validation accuracy per experiment', 'gauge', experiments.map((e) => [{ experiment: e.id }, e.bestFitness ?? 0])),
  ].join('');
}
