/**
 * The on-disk layout of a data directory, and reading what is prepared in it.
 *
 *   <dataDir>/downloads/<archive>[.part]        official archives (kept for re-preparing)
 *   <dataDir>/shards/<sha256>.bin               public train shards, content-addressed
 *   <dataDir>/datasets/<name>/manifest.json     public manifest of the train split
 *   <dataDir>/datasets/<name>/private/validation.bin, test.bin   never served
 *   <dataDir>/datasets/<name>/prepared.json     written last: its presence marks completion
 *
 * A dataset is built in a hidden sibling folder and renamed into place, so a
 * reader sees either the previous complete dataset, none, or the new complete
 * one; never a half-written one.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import * as v from 'valibot';
import { DATASET_NAME, type Manifest, parseManifest } from '../../shared/data/manifest.ts';
import { DatasetError } from './errors.ts';

const SHA256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));
const PrivateSplitSchema = v.object({
  /** Path relative to the dataset folder. */
  file: v.picklist(['private/validation.bin', 'private/test.bin']),
  sha256: SHA256,
  count: v.pipe(v.number(), v.integer(), v.minValue(0)),
  bytes: v.pipe(v.number(), v.integer(), v.minValue(1)),
});

/** Server-side record of a prepared dataset (never served). */
export const PreparedInfoSchema = v.object({
  formatVersion: v.literal(1),
  dataset: v.pipe(v.string(), v.regex(DATASET_NAME)),
  /** Equals the manifest's version. */
  version: v.string(),
  preparedAt: v.string(),
  /** Where the data came from, for people: URL, imported path, package folder. */
  source: v.string(),
  /** Parameters that shaped the content; a request with other values re-prepares. */
  params: v.object({
    splitSeed: v.number(),
    shardSize: v.number(),
    synthetic: v.optional(v.object({ train: v.number(), test: v.number(), seed: v.number() })),
  }),
  validation: PrivateSplitSchema,
  test: PrivateSplitSchema,
});
export type PreparedInfo = v.InferOutput<typeof PreparedInfoSchema>;

/** A complete dataset as found on disk. */
export interface PreparedDataset {
  readonly name: string;
  /** `<dataDir>/datasets/<name>`. */
  readonly dir: string;
  readonly manifest: Manifest;
  readonly info: PreparedInfo;
  /** Files of the train shards, in manifest order. */
  readonly shardPaths: readonly string[];
  readonly validationPath: string;
  readonly testPath: string;
}

/** Folder of downloaded archives. */
export const downloadsDir = (dataDir: string): string => join(dataDir, 'downloads');
/** Folder of content-addressed train shards. */
export const shardsDir = (dataDir: string): string => join(dataDir, 'shards');
/** Folder holding one folder per prepared dataset. */
export const datasetsDir = (dataDir: string): string => join(dataDir, 'datasets');
/** File of a train shard. */
export const shardPath = (dataDir: string, sha256: string): string => join(shardsDir(dataDir), `${sha256}.bin`);

/** A fresh hidden temp name beside `path`: same filesystem, so rename is atomic. */
export function tempSibling(path: string): string {
  return join(dirname(path), `.tmp-${process.pid}-${randomBytes(6).toString('hex')}-${path.split(/[\\/]/).pop() ?? ''}`);
}

/** Writes a file through a temp file and rename, so readers never see part of it. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempSibling(path);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Replaces `<dataDir>/datasets/<name>` by the finished build folder. The old
 * folder is first moved aside (rename cannot replace a non-empty folder).
 */
export async function installDatasetDir(dataDir: string, name: string, buildDir: string): Promise<string> {
  const final = join(datasetsDir(dataDir), name);
  const old = tempSibling(final);
  let moved = false;
  try {
    await rename(final, old);
    moved = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await rename(buildDir, final);
  if (moved) await rm(old, { recursive: true, force: true });
  return final;
}

/**
 * Reads a prepared dataset, or undefined when it is absent or incomplete.
 * @throws DatasetError when the files exist but do not parse (corrupt).
 */
export async function readPrepared(dataDir: string, name: string): Promise<PreparedDataset | undefined> {
  if (!DATASET_NAME.test(name)) return undefined;
  const dir = join(datasetsDir(dataDir), name);
  let infoText: string;
  try {
    infoText = await readFile(join(dir, 'prepared.json'), 'utf8');
  } catch {
    return undefined; // no completion mark: not prepared
  }
  const infoFile = join(dir, 'prepared.json');
  const manifestFile = join(dir, 'manifest.json');
  let info: PreparedInfo;
  let manifest: Manifest;
  try {
    info = v.parse(PreparedInfoSchema, JSON.parse(infoText));
  } catch (err) {
    throw new DatasetError(`${infoFile}: corrupt (${(err as Error).message}); prepare the dataset again with --force`);
  }
  try {
    manifest = parseManifest(JSON.parse(await readFile(manifestFile, 'utf8')));
  } catch (err) {
    throw new DatasetError(`${manifestFile}: corrupt (${(err as Error).message}); prepare the dataset again with --force`);
  }
  if (manifest.dataset !== name || info.version !== manifest.version) {
    throw new DatasetError(`${dir}: manifest and prepared.json disagree; prepare the dataset again with --force`);
  }
  return {
    name,
    dir,
    manifest,
    info,
    shardPaths: manifest.shards.map((s) => shardPath(dataDir, s.sha256)),
    validationPath: join(dir, info.validation.file),
    testPath: join(dir, info.test.file),
  };
}

/**
 * All complete datasets in a data directory, by name. Hidden build folders
 * are skipped; a corrupt dataset is skipped too and reported to `onCorrupt`,
 * so one bad folder does not hide the others.
 */
export async function listPrepared(
  dataDir: string,
  onCorrupt?: (name: string, err: DatasetError) => void,
): Promise<PreparedDataset[]> {
  let names: string[];
  try {
    names = await readdir(datasetsDir(dataDir));
  } catch {
    return [];
  }
  const out: PreparedDataset[] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue;
    try {
      const prepared = await readPrepared(dataDir, name);
      if (prepared !== undefined) out.push(prepared);
    } catch (err) {
      if (!(err instanceof DatasetError)) throw err;
      onCorrupt?.(name, err);
    }
  }
  return out;
}
