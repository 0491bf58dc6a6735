/**
 * The dataset API of the server.
 *
 * A data directory (default ./petri-data) holds prepared datasets: a public
 * train split cut into content-addressed shards described by a manifest
 * (served to browsers by {@link createDatasetRouter}), and private
 * validation and test splits that only server code reads, through
 * {@link loadSplit}. Evolution sees train and validation; the test split is
 * for final reports only.
 *
 * @example
 *   const ds = await ensureDataset('petri-data', 'cifar10');   // downloads on first use
 *   const validation = await loadSplit('petri-data', 'cifar10', 'validation');
 *   app.use(createDatasetRouter('petri-data'));
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { decodeShard } from '../../shared/data/shard-format.ts';
import { DatasetError } from './errors.ts';
import { sha256Hex } from './hash.ts';
import { buildDataset, DEFAULT_SHARD_SIZE, DEFAULT_SPLIT_SEED } from './prepare.ts';
import { getDatasetSpec } from './registry.ts';
import { obtainRaw, type SourceOptions } from './sources.ts';
import { concatImageSets } from './split.ts';
import { listPrepared, readPrepared, type PreparedDataset } from './store.ts';
import { SYNTHETIC_DEFAULTS, type SyntheticOptions } from './synthetic.ts';

export { createDatasetRouter } from './router.ts';
export { DatasetError } from './errors.ts';
export { DATASET_NAMES, isDatasetName, type DatasetName } from './registry.ts';
export { DEFAULT_SHARD_SIZE, DEFAULT_SPLIT_SEED } from './prepare.ts';
export type { PreparedDataset, PreparedInfo } from './store.ts';
export type { DownloadProgress } from './download.ts';
export type { SyntheticOptions } from './synthetic.ts';

/** The three splits of a prepared dataset. */
export type SplitName = 'train' | 'validation' | 'test';

/** Options of {@link ensureDataset} and {@link prepareDataset}; all optional. */
export interface EnsureDatasetOptions extends Omit<SourceOptions, 'synthetic'> {
  /** Seed of the train/validation shuffle (default 2017). */
  readonly splitSeed?: number;
  /** Images per train shard (default 5,000). */
  readonly shardSize?: number;
  /** Synthetic dataset size and seed (defaults 5,000 train, 1,000 test, seed 1). */
  readonly synthetic?: Partial<SyntheticOptions>;
  /** Prepare again even when a prepared copy exists. */
  readonly force?: boolean;
  /** Receives one line per step, for logs. */
  readonly log?: (line: string) => void;
}

const inFlight = new Map<string, Promise<PreparedDataset>>();

/**
 * Returns the prepared dataset, preparing it first when it is missing or was
 * prepared with other parameters (split seed, shard size, synthetic size)
 * than those given. Preparing means: synthetic is generated; fashion-mnist
 * is read from Debian's package folder when installed, else downloaded;
 * cifar10/cifar100 are downloaded (resumable, MD5-checked) unless
 * `importPath` names a local copy. Concurrent calls for one dataset share
 * one preparation.
 *
 * @throws DatasetError with a message for people (what was tried, how to proceed).
 */
export async function ensureDataset(
  dataDir: string,
  name: string,
  options: EnsureDatasetOptions = {},
): Promise<PreparedDataset> {
  getDatasetSpec(name); // fail early on unknown names
  const key = `${resolve(dataDir)}\0${name}`;
  const running = inFlight.get(key);
  if (running !== undefined) return running;
  const job = (async () => {
    const existing = await readPrepared(dataDir, name).catch((err: unknown) => {
      if (err instanceof DatasetError) return undefined; // corrupt: prepare again
      throw err;
    });
    if (existing !== undefined && !options.force && options.importPath === undefined && matches(existing, name, options)) {
      options.log?.(`${name} is already prepared in ${existing.dir} (use --force to prepare it again)`);
      return existing;
    }
    return prepareDataset(dataDir, name, options);
  })();
  inFlight.set(key, job);
  try {
    return await job;
  } finally {
    inFlight.delete(key);
  }
}

/**
 * Prepares a dataset unconditionally, replacing any prepared copy once the
 * new one is complete. Prefer {@link ensureDataset}.
 */
export async function prepareDataset(
  dataDir: string,
  name: string,
  options: EnsureDatasetOptions = {},
): Promise<PreparedDataset> {
  const spec = getDatasetSpec(name);
  const synthetic = spec.source.kind === 'synthetic' ? syntheticParams(options.synthetic) : undefined;
  const log = options.log ?? (() => {});
  const started = Date.now();
  const { synthetic: _partial, ...sourceOptions } = options;
  const raw = await obtainRaw(dataDir, spec, { ...sourceOptions, ...(synthetic ? { synthetic } : {}) });
  log(`read ${raw.train.count} training and ${raw.test.count} test images from ${raw.source} in ${seconds(started)}`);
  const prepared = await buildDataset(
    dataDir,
    spec,
    raw,
    {
      splitSeed: options.splitSeed ?? DEFAULT_SPLIT_SEED,
      shardSize: options.shardSize ?? DEFAULT_SHARD_SIZE,
      ...(synthetic ? { synthetic } : {}),
    },
    log,
  );
  log(`done in ${seconds(started)}`);
  return prepared;
}

/**
 * Prepares `name` from a local copy: the official archive (.tar.gz) or its
 * extracted folder for CIFAR, the folder of the four .gz IDX files for
 * Fashion-MNIST.
 */
export function importDataset(
  dataDir: string,
  name: string,
  path: string,
  options: Omit<EnsureDatasetOptions, 'importPath'> = {},
): Promise<PreparedDataset> {
  return prepareDataset(dataDir, name, { ...options, importPath: path });
}

/** The prepared dataset, or undefined when it is not (completely) prepared. */
export function getDataset(dataDir: string, name: string): Promise<PreparedDataset | undefined> {
  return readPrepared(dataDir, name);
}

/** Every completely prepared dataset of the data directory, by name. */
export function listDatasets(dataDir: string): Promise<PreparedDataset[]> {
  return listPrepared(dataDir);
}

/**
 * Reads one split of a prepared dataset into memory, checking each file's
 * SHA-256 and decoding it strictly. Server-side only: validation and test
 * are never served.
 *
 * @throws DatasetError when the dataset is not prepared or a file is corrupt.
 */
export async function loadSplit(dataDir: string, name: string, split: SplitName): Promise<ImageSet> {
  const prepared = await readPrepared(dataDir, name);
  if (prepared === undefined) {
    throw new DatasetError(
      `dataset '${name}' is not prepared in ${dataDir}; run: npx petri data fetch ${name} --data-dir ${dataDir}`,
    );
  }
  const { manifest, info } = prepared;
  const expect = { shape: manifest.imageShape, numClasses: manifest.numClasses };
  const read = async (path: string, sha256: string, count: number): Promise<ImageSet> => {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(path));
    } catch (err) {
      throw new DatasetError(`${path}: cannot read (${(err as Error).message}); prepare again: npx petri data fetch ${name} --force`);
    }
    const actual = sha256Hex(bytes);
    if (actual !== sha256) {
      throw new DatasetError(`${path}: corrupt (SHA-256 ${actual}, expected ${sha256}); prepare again: npx petri data fetch ${name} --force`);
    }
    return decodeShard(bytes, { ...expect, count, source: path }).images;
  };
  if (split === 'validation') return read(prepared.validationPath, info.validation.sha256, info.validation.count);
  if (split === 'test') return read(prepared.testPath, info.test.sha256, info.test.count);
  const sets: ImageSet[] = [];
  for (const [i, shard] of manifest.shards.entries()) {
    sets.push(await read(prepared.shardPaths[i] as string, shard.sha256, shard.count));
  }
  return concatImageSets(sets);
}

function matches(existing: PreparedDataset, name: string, options: EnsureDatasetOptions): boolean {
  const p = existing.info.params;
  if (options.splitSeed !== undefined && options.splitSeed !== p.splitSeed) return false;
  if (options.shardSize !== undefined && options.shardSize !== p.shardSize) return false;
  if (getDatasetSpec(name).source.kind === 'synthetic' && options.synthetic !== undefined) {
    const want = syntheticParams(options.synthetic);
    const have = p.synthetic;
    return have !== undefined && have.train === want.train && have.test === want.test && have.seed === want.seed;
  }
  return true;
}

function syntheticParams(partial: Partial<SyntheticOptions> | undefined): SyntheticOptions {
  const params = { ...SYNTHETIC_DEFAULTS, ...partial };
  for (const [key, value] of Object.entries(params)) {
    if (!Number.isInteger(value) || (key !== 'seed' && value < 1)) {
      throw new DatasetError(`synthetic ${key} must be ${key === 'seed' ? 'an integer' : 'a positive integer'}, not ${value}`);
    }
  }
  if (params.train < 10) throw new DatasetError(`synthetic train size must be at least 10, not ${params.train}`);
  return params;
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}
