/**
 * The preparation pipeline, the same for every dataset once its official
 * train and test data are read: seeded train/validation split, train split
 * cut into content-addressed public shards, validation and test stored as
 * private shards, manifest, and finally the completion mark.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sliceImageSet } from '../../shared/data/image-set.ts';
import { MANIFEST_FORMAT_VERSION, parseManifest, shardUrl, type Manifest } from '../../shared/data/manifest.ts';
import { encodeShard } from '../../shared/data/shard-format.ts';
import { DatasetError } from './errors.ts';
import { sha256Hex } from './hash.ts';
import type { DatasetSpec } from './registry.ts';
import type { RawDataset } from './sources.ts';
import { splitIndices, takeImages } from './split.ts';
import {
  datasetsDir,
  installDatasetDir,
  listPrepared,
  readPrepared,
  shardPath,
  shardsDir,
  tempSibling,
  writeFileAtomic,
  type PreparedDataset,
  type PreparedInfo,
} from './store.ts';
import type { SyntheticOptions } from './synthetic.ts';

/** Seed of the train/validation shuffle unless told otherwise. */
export const DEFAULT_SPLIT_SEED = 2017;
/** Images per train shard unless told otherwise (about 15 MB of CIFAR). */
export const DEFAULT_SHARD_SIZE = 5000;

/** Parameters that shape a prepared dataset's content. */
export interface PrepareParams {
  readonly splitSeed: number;
  readonly shardSize: number;
  readonly synthetic?: SyntheticOptions;
}

/** Leftovers of interrupted runs older than this are removed. */
const STALE_MS = 60 * 60 * 1000;

/**
 * Splits, shards and installs a dataset from its raw data.
 * Everything is written to a hidden build folder that replaces
 * `<dataDir>/datasets/<name>` only once complete.
 */
export async function buildDataset(
  dataDir: string,
  spec: DatasetSpec,
  raw: RawDataset,
  params: PrepareParams,
  log: (line: string) => void = () => {},
): Promise<PreparedDataset> {
  checkRaw(spec, raw);
  if (!Number.isInteger(params.shardSize) || params.shardSize < 1) {
    throw new DatasetError(`shard size must be a positive integer, not ${params.shardSize}`);
  }
  await removeStale(datasetsDir(dataDir));
  const split = splitIndices(raw.train.count, spec.validationCount(raw.train.count), params.splitSeed);
  const train = takeImages(raw.train, split.train);
  const validation = takeImages(raw.train, split.validation);
  log(`split ${raw.train.count} training images into ${train.count} train / ${validation.count} validation (seed ${params.splitSeed}); ${raw.test.count} test kept apart`);

  await mkdir(shardsDir(dataDir), { recursive: true });
  const shards: Manifest['shards'] = [];
  for (let start = 0; start < train.count; start += params.shardSize) {
    const slice = sliceImageSet(train, start, Math.min(train.count, start + params.shardSize));
    const bytes = encodeShard(slice, spec.numClasses);
    const sha256 = sha256Hex(bytes);
    // Content-addressed: rewriting an existing shard gives identical bytes, and repairs a damaged one.
    await writeFileAtomic(shardPath(dataDir, sha256), bytes);
    shards.push({ url: shardUrl(sha256), bytes: bytes.length, count: slice.count, sha256 });
  }
  log(`wrote ${shards.length} train shards of up to ${params.shardSize} images to ${shardsDir(dataDir)}`);

  const build = tempSibling(join(datasetsDir(dataDir), spec.name));
  try {
    await mkdir(join(build, 'private'), { recursive: true });
    const privateSplit = async (name: 'validation' | 'test', set: typeof train): Promise<PreparedInfo['test']> => {
      const bytes = encodeShard(set, spec.numClasses);
      const file = `private/${name}.bin` as const;
      await writeFileAtomic(join(build, file), bytes);
      return { file, sha256: sha256Hex(bytes), count: set.count, bytes: bytes.length };
    };
    const validationInfo = await privateSplit('validation', validation);
    const testInfo = await privateSplit('test', raw.test);
    const classNames = [...(raw.classNames ?? spec.classNames)];
    const version = sha256Hex(
      new TextEncoder().encode(
        JSON.stringify([spec.name, spec.shape, classNames, shards.map((s) => s.sha256), validationInfo.sha256, testInfo.sha256]),
      ),
    ).slice(0, 16);
    const manifest = parseManifest({
      formatVersion: MANIFEST_FORMAT_VERSION,
      dataset: spec.name,
      version,
      description: spec.description,
      imageShape: [...spec.shape],
      numClasses: spec.numClasses,
      classNames,
      splits: { train: train.count, validation: validation.count, test: raw.test.count },
      shards,
    });
    await writeFileAtomic(join(build, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const info: PreparedInfo = {
      formatVersion: 1,
      dataset: spec.name,
      version,
      preparedAt: new Date().toISOString(),
      source: raw.source,
      params: { splitSeed: params.splitSeed, shardSize: params.shardSize, ...(params.synthetic ? { synthetic: { ...params.synthetic } } : {}) },
      validation: validationInfo,
      test: testInfo,
    };
    // Written last: its presence is what makes the dataset count as prepared.
    await writeFileAtomic(join(build, 'prepared.json'), `${JSON.stringify(info, null, 2)}\n`);
    await installDatasetDir(dataDir, spec.name, build);
  } catch (err) {
    await rm(build, { recursive: true, force: true });
    throw err;
  }
  await pruneShards(dataDir);
  const prepared = await readPrepared(dataDir, spec.name);
  if (prepared === undefined) throw new DatasetError(`${spec.name}: vanished right after preparation`);
  log(`prepared ${spec.name} version ${prepared.manifest.version} in ${prepared.dir}`);
  return prepared;
}

function checkRaw(spec: DatasetSpec, raw: RawDataset): void {
  for (const [name, set] of [['train', raw.train], ['test', raw.test]] as const) {
    if (set.shape.some((d, i) => d !== spec.shape[i])) {
      throw new DatasetError(`${spec.name} ${name} images are ${set.shape.join('x')}, expected ${spec.shape.join('x')}`);
    }
  }
  if (raw.classNames !== undefined && raw.classNames.length !== spec.numClasses) {
    throw new DatasetError(`${spec.name}: ${raw.classNames.length} class names, expected ${spec.numClasses}`);
  }
}

/** Removes hidden build and temp leftovers of runs that died (older than an hour). */
async function removeStale(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.filter((n) => n.startsWith('.tmp-'))) {
    const info = await stat(join(dir, name)).catch(() => undefined);
    if (info !== undefined && Date.now() - info.mtimeMs > STALE_MS) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/**
 * Deletes shards no prepared dataset refers to any more (after re-preparing
 * with other parameters). Only old ones: a concurrent preparation may have
 * written shards it has not installed yet.
 */
async function pruneShards(dataDir: string): Promise<void> {
  const used = new Set((await listPrepared(dataDir)).flatMap((d) => d.manifest.shards.map((s) => `${s.sha256}.bin`)));
  const names = await readdir(shardsDir(dataDir)).catch(() => [] as string[]);
  for (const name of names) {
    if (used.has(name)) continue;
    const path = join(shardsDir(dataDir), name);
    const info = await stat(path).catch(() => undefined);
    if (info !== undefined && Date.now() - info.mtimeMs > STALE_MS) await rm(path, { force: true });
  }
}
