/**
 * `petri serve` (= `npm start`): starts the coordinator. With no experiment
 * in the data directory it creates one from the flags; otherwise it resumes
 * what is there.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { resolveConfig } from '../experiments/config.ts';
import { EXPERIMENT_FLAGS, flagNumber, overridesFromFlags } from '../experiments/flags.ts';
import { DEFAULT_CLIENT_DIR, startPetriServer } from '../app.ts';

const HELP = `Usage: petri serve [options]

  --port N             port (default 3000, or PETRI_PORT)
  --host ADDR          address to listen on (default 0.0.0.0)
  --data-dir DIR       where the population, weights and datasets live (default ./petri-data)
  --preset NAME        paper | lab | quick (default lab)
  --dataset NAME       cifar10 | cifar100 | fashion-mnist | synthetic (default: the preset's)
  --population N       population size
  --steps N            training steps per child
  --batch-size N       batch size
  --mutations N        mutations per child
  --selection NAME     tournament (the paper's) | aging | random (random-search
                       baseline: the initial DNA + 1..--mutations mutations, from scratch)
  --max-children N     stop after N children (0 = never)
  --no-inherit         train every child from scratch
  --boost MODE         mutation-rate boost at a plateau: off | manual | auto
  --reset MODE         weight reset at a plateau: off | manual | auto
  --patience N         children without a new best that make a plateau (auto remedies)
  --boost-children N   children that get the boosted mutation count
  --seed TEXT          experiment seed
  --lease-ttl SECONDS  a lease without heartbeat expires after this (default 60)

The flags shape the experiment created on first start; later starts resume it.`;

/** Builds the volunteer page and leaderboard on first start (needs the dev dependency vite). */
async function buildPages(): Promise<void> {
  try {
    const { build } = await import('vite');
    console.log('building the volunteer page and leaderboard (first start)…');
    await build({ configFile: fileURLToPath(new URL('../../vite.config.ts', import.meta.url)), logLevel: 'warn' });
  } catch (err) {
    console.error(`note: the pages could not be built (${err instanceof Error ? err.message : String(err)}); run "npm run build". The API and workers still work.`);
  }
}

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'data-dir': { type: 'string' },
      ...EXPERIMENT_FLAGS,
      'lease-ttl': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const num = flagNumber;
  const config = resolveConfig(overridesFromFlags(values));
  const port = num('port', values.port ?? process.env.PETRI_PORT) ?? 3000;
  const dataDir = values['data-dir'] ?? process.env.PETRI_DATA_DIR ?? './petri-data';
  if (!existsSync(DEFAULT_CLIENT_DIR)) await buildPages();
  const leaseTtl = num('lease-ttl', values['lease-ttl']);
  const server = await startPetriServer({
    dataDir,
    port,
    host: values.host,
    initialExperiment: config,
    leaseTtlMs: leaseTtl === undefined ? undefined : leaseTtl * 1000,
    limits: {
      hellosPerMinute: num('PETRI_HELLOS_PER_MINUTE', process.env.PETRI_HELLOS_PER_MINUTE),
      resultsPerMinute: num('PETRI_RESULTS_PER_MINUTE', process.env.PETRI_RESULTS_PER_MINUTE),
      uploadsPerMinute: num('PETRI_UPLOADS_PER_MINUTE', process.env.PETRI_UPLOADS_PER_MINUTE),
    },
  });
  const experiments = server.store.listExperiments();
  console.log(`
Petri is running.
  volunteer page  ${server.url}/
  leaderboard     ${server.url}/leaderboard
  API             ${server.url}/api/experiments
  admin token     ${server.adminToken}
  data directory  ${dataDir}
  experiments     ${experiments.map((e) => `${e.id} (${e.status}, ${e.config.dataset})`).join(', ') || 'none'}
`);
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      console.log(`\n${signal}: stopping`);
      resolveStop();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await server.close();
  return 0;
}
