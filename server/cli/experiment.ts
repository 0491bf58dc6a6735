/**
 * `petri experiment create|list|pause|resume|stop|remedy`: the operator's
 * controls over the admin API, so an experiment runs without editing files.
 */
import { parseArgs } from 'node:util';
import { EXPERIMENT_FLAGS, overridesFromFlags } from '../experiments/flags.ts';
import { adminTarget, api } from './admin-client.ts';

const HELP = `Usage: petri experiment <action> [options]

  list                          experiments on the server
  create [--preset P] [--dataset D] [--population N] [--steps N] [--batch-size N]
         [--mutations N] [--selection tournament|aging|random] [--max-children N] [--no-inherit]
         [--boost off|manual|auto] [--reset off|manual|auto] [--patience N]
         [--boost-children N] [--seed S] [--name TEXT]
  pause ID | resume ID | stop ID
  remedy ID boost|reset         apply a plateau remedy now

  --server URL     (default http://localhost:3000, or PETRI_SERVER)
  --token TOKEN    admin token (or PETRI_ADMIN_TOKEN, or read from --data-dir DIR/admin-token)
  --json           print JSON`;

interface ExperimentView {
  id: string;
  name: string;
  dataset: string;
  status: string;
  counts: { alive: number; childrenTrained: number; workersOnline: number };
  bestFitness: number | null;
  totalFlops: number;
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      server: { type: 'string' },
      token: { type: 'string' },
      'data-dir': { type: 'string' },
      json: { type: 'boolean' },
      ...EXPERIMENT_FLAGS,
      name: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [action, id, extra] = positionals;
  if (values.help || action === undefined) {
    console.log(HELP);
    return action === undefined && !values.help ? 2 : 0;
  }
  const target = adminTarget(values);
  const show = (e: ExperimentView) =>
    `${e.id}  ${e.status.padEnd(8)} ${e.dataset.padEnd(13)} alive ${e.counts.alive}, children ${e.counts.childrenTrained}, workers ${e.counts.workersOnline}, best ${e.bestFitness === null ? '-' : e.bestFitness.toFixed(4)}, ${e.totalFlops.toExponential(2)} FLOPs  (${e.name})`;
  const print = (x: ExperimentView | ExperimentView[]) => {
    if (values.json) console.log(JSON.stringify(x, null, 2));
    else for (const e of Array.isArray(x) ? x : [x]) console.log(show(e));
  };
  const needId = () => {
    if (id === undefined) throw new Error(`petri experiment ${action} needs an experiment id (see: petri experiment list)`);
    return encodeURIComponent(id);
  };
  switch (action) {
    case 'list':
      print(await api<ExperimentView[]>(target, 'GET', '/api/experiments'));
      return 0;
    case 'create': {
      const config = overridesFromFlags(values);
      print(await api<ExperimentView>(target, 'POST', '/api/experiments', { config, ...(values.name ? { name: values.name } : {}) }, true));
      return 0;
    }
    case 'pause':
    case 'resume':
    case 'stop':
      print(await api<ExperimentView>(target, 'POST', `/api/experiments/${needId()}/${action}`, {}, true));
      return 0;
    case 'remedy':
      if (extra !== 'boost' && extra !== 'reset') throw new Error('petri experiment remedy ID boost|reset');
      print(await api<ExperimentView>(target, 'POST', `/api/experiments/${needId()}/remedy`, { remedy: extra }, true));
      return 0;
    default:
      console.error(`petri experiment: unknown action '${action}'\n\n${HELP}`);
      return 2;
  }
}
