/**
 * `petri export ID --out DIR [--ensemble K]`: writes the best model of an
 * experiment (or one individual) as a standard tf.js model (model.json +
 * weights.bin), or the top K as an ensemble (one model per member and an
 * ensemble.json that says how they vote: majority, as in the paper).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { adminTarget, api, type AdminTarget } from './admin-client.ts';

const HELP = `Usage: petri export ID --out DIR [--ensemble K] [--server URL]

  ID             an experiment id (exports its best verified model) or an individual id
  --out DIR      where to write model.json and weights.bin
  --ensemble K   export the top K individuals (majority vote) instead of the best one`;

interface LeaderboardItem {
  id: string;
  fitness: number;
  testAccuracy: number | null;
  params: number;
  mutation: string | null;
}

async function download(target: AdminTarget, individualId: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const model = await api<Record<string, unknown>>(target, 'GET', `/api/individuals/${encodeURIComponent(individualId)}/model.json`);
  const response = await fetch(`${target.server}/api/individuals/${encodeURIComponent(individualId)}/weights.bin`);
  if (!response.ok) throw new Error(`GET weights of ${individualId}: HTTP ${response.status}`);
  writeFileSync(join(dir, 'weights.bin'), new Uint8Array(await response.arrayBuffer()));
  writeFileSync(join(dir, 'model.json'), JSON.stringify(model));
}

export async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { out: { type: 'string' }, ensemble: { type: 'string' }, server: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [id] = positionals;
  if (values.help || id === undefined || values.out === undefined) {
    console.log(HELP);
    return values.help ? 0 : 2;
  }
  const target = adminTarget(values);
  const out = resolve(values.out);
  const k = values.ensemble === undefined ? 0 : Number(values.ensemble);
  if (values.ensemble !== undefined && (!Number.isInteger(k) || k < 1 || k > 50)) throw new Error('--ensemble needs a whole number from 1 to 50');

  const experiments = await api<{ id: string }[]>(target, 'GET', '/api/experiments');
  const isExperiment = experiments.some((e) => e.id === id);
  if (!isExperiment) {
    if (k > 0) throw new Error(`--ensemble needs an experiment id; ${id} is not one`);
    await download(target, id, out);
    console.log(`wrote ${id} to ${out}/model.json (load with tf.loadLayersModel)`);
    return 0;
  }
  const top = await api<LeaderboardItem[]>(target, 'GET', `/api/experiments/${encodeURIComponent(id)}/leaderboard?limit=${Math.max(1, k)}`);
  if (top.length === 0) throw new Error(`experiment ${id} has no verified individual yet`);
  if (k === 0) {
    const best = top[0] as LeaderboardItem;
    await download(target, best.id, out);
    console.log(`wrote the best model of ${id}, ${best.id} (validation accuracy ${best.fitness.toFixed(4)}), to ${out}/model.json`);
    return 0;
  }
  const members = top.slice(0, k);
  for (const [i, m] of members.entries()) await download(target, m.id, join(out, `member-${i + 1}`));
  writeFileSync(
    join(out, 'ensemble.json'),
    JSON.stringify(
      {
        experiment: id,
        vote: 'majority',
        tieBreak: 'the higher-ranked member',
        input: 'raw pixel values 0..255, shape [height, width, channels]',
        members: members.map((m, i) => ({ id: m.id, path: `member-${i + 1}/model.json`, validationAccuracy: m.fitness, testAccuracy: m.testAccuracy })),
      },
      null,
      2,
    ),
  );
  console.log(`wrote an ensemble of ${members.length} models of ${id} to ${out} (ensemble.json; each member-N/model.json loads with tf.loadLayersModel)`);
  return 0;
}
