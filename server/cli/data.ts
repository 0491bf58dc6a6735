/**
 * `petri data`: fetch, import and list datasets in a data directory.
 * A thin layer over server/datasets; errors are DatasetErrors whose
 * messages already say what to do, printed by the dispatcher.
 */
import { parseArgs } from 'node:util';
import {
  DATASET_NAMES,
  DatasetError,
  ensureDataset,
  importDataset,
  isDatasetName,
  listDatasets,
  type DownloadProgress,
  type EnsureDatasetOptions,
  type PreparedDataset,
} from '../datasets/index.ts';
import { createProgressBar, formatBytes } from '../datasets/progress.ts';

const USAGE = `Usage: petri data <command> [options]

Commands:
  fetch <dataset>           prepare a dataset (no-op when already prepared):
                              cifar10, cifar100  download the official binary archive (resumable, MD5-checked)
                              fashion-mnist      read Debian's dataset-fashion-mnist files, else download
                              synthetic          generate 10 texture classes (CIFAR-10 binary layout)
  import <dataset> <path>   prepare from a local copy: the .tar.gz or its extracted folder
                            (cifar-10-batches-bin/, cifar-100-binary/), or for fashion-mnist
                            a folder holding the four IDX .gz files
  list                      show the prepared datasets

Options:
  --data-dir DIR            data directory (default ./petri-data)
  --url URL                 download from URL: the archive (cifar) or the folder of the .gz files
                            (fashion-mnist). PETRI_DATASET_MIRROR=BASE_URL replaces the official host.
  --force                   prepare again even when prepared
  --shard-size N            images per train shard (default 5000)
  --split-seed N            seed of the train/validation split (default 2017)
  --train N, --test N       synthetic: training and test images (default 5000, 1000)
  --seed N                  synthetic: generator seed (default 1)
  --json                    list: print JSON

Splits: the official training data is split into train (served to browsers as shards)
and validation (server only); the official test set is kept apart, for final reports.`;

/** Runs `petri data <args>`; returns the exit code. */
export async function run(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        'data-dir': { type: 'string', default: 'petri-data' },
        url: { type: 'string' },
        force: { type: 'boolean', default: false },
        'shard-size': { type: 'string' },
        'split-seed': { type: 'string' },
        train: { type: 'string' },
        test: { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    console.error(`petri data: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, name, path, ...extra] = positionals;
  if (values.help || command === undefined || command === 'help') {
    console.log(USAGE);
    return command === undefined && !values.help ? 1 : 0;
  }
  const dataDir = values['data-dir'];
  if (command === 'list') return list(dataDir, values.json);
  if (command !== 'fetch' && command !== 'import') return usage(`unknown command '${command}'`);
  if (name === undefined) return usage(`'${command}' needs a dataset name (${DATASET_NAMES.join(', ')})`);
  if (!isDatasetName(name)) return usage(`unknown dataset '${name}'; known datasets: ${DATASET_NAMES.join(', ')}`);
  if (command === 'import' && path === undefined) return usage(`'import' needs the path of a local copy`);
  if ((command === 'fetch' && path !== undefined) || extra.length > 0) return usage(`unexpected argument '${path ?? extra[0]}'`);

  const options: EnsureDatasetOptions = {
    ...(values.url !== undefined ? { url: values.url } : {}),
    ...(values['shard-size'] !== undefined ? { shardSize: int(values['shard-size'], '--shard-size') } : {}),
    ...(values['split-seed'] !== undefined ? { splitSeed: int(values['split-seed'], '--split-seed') } : {}),
    ...syntheticOptions(values),
    force: values.force,
    log: (line) => console.error(line),
    download: { onProgress: progressPrinter() },
  };
  const prepared =
    command === 'import' ? await importDataset(dataDir, name, path as string, options) : await ensureDataset(dataDir, name, options);
  console.log(summary(prepared));
  return 0;
}

async function list(dataDir: string, json: boolean): Promise<number> {
  const prepared = await listDatasets(dataDir);
  if (json) {
    console.log(JSON.stringify(prepared.map((d) => ({ ...d, shardPaths: undefined })), null, 2));
    return 0;
  }
  console.log(`Datasets in ${dataDir}:`);
  for (const name of DATASET_NAMES) {
    const d = prepared.find((p) => p.name === name);
    console.log(d === undefined ? `  ${name.padEnd(14)} not prepared (npx petri data fetch ${name})` : `  ${summary(d)}`);
  }
  return 0;
}

function summary(d: PreparedDataset): string {
  const m = d.manifest;
  const bytes = m.shards.reduce((n, s) => n + s.bytes, 0);
  return (
    `${d.name.padEnd(14)} version ${m.version}  ${m.imageShape.join('x')}, ${m.numClasses} classes  ` +
    `train ${m.splits.train} (${m.shards.length} shards, ${formatBytes(bytes)}) / validation ${m.splits.validation} / test ${m.splits.test}  ` +
    `from ${d.info.source}, prepared ${d.info.preparedAt}`
  );
}

/** One progress bar per downloaded file. */
function progressPrinter(): (p: DownloadProgress) => void {
  let url: string | undefined;
  let bar: ReturnType<typeof createProgressBar> | undefined;
  return (p) => {
    if (p.url !== url) {
      bar?.finish();
      url = p.url;
      bar = createProgressBar(p.url.split('/').pop() ?? p.url);
    }
    bar?.update(p);
    if (p.total !== undefined && p.received >= p.total) {
      bar?.finish();
      bar = undefined;
    }
  };
}

function syntheticOptions(values: { train?: string; test?: string; seed?: string }): Pick<EnsureDatasetOptions, 'synthetic'> {
  const s = {
    ...(values.train !== undefined ? { train: int(values.train, '--train') } : {}),
    ...(values.test !== undefined ? { test: int(values.test, '--test') } : {}),
    ...(values.seed !== undefined ? { seed: int(values.seed, '--seed') } : {}),
  };
  return Object.keys(s).length > 0 ? { synthetic: s } : {};
}

function int(text: string, flag: string): number {
  if (!/^-?\d+$/.test(text)) throw new DatasetError(`${flag} needs an integer, not '${text}'`);
  return Number(text);
}

function usage(problem: string): number {
  console.error(`petri data: ${problem}\n\n${USAGE}`);
  return 2;
}
