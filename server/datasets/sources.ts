/**
 * Getting a dataset's official files and reading them into train and test
 * ImageSets: from a local copy (archive or folder), from a system package
 * folder, by download, or by generation (synthetic).
 */
import { access, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ImageSet } from '../../shared/data/image-set.ts';
import { readCifarBatch, type CifarRecordLayout } from './cifar-reader.ts';
import { downloadFile, DownloadError, type DownloadOptions } from './download.ts';
import { DatasetError } from './errors.ts';
import { hashFile } from './hash.ts';
import { idxToImageSet, maybeGunzip, readIdxImages, readIdxLabels } from './idx-reader.ts';
import type { CifarArchiveSpec, DatasetSpec, IdxFilesSpec } from './registry.ts';
import { concatImageSets } from './split.ts';
import { downloadsDir, tempSibling } from './store.ts';
import { SYNTHETIC_DEFAULTS, writeSyntheticCifar, type SyntheticOptions } from './synthetic.ts';
import { readTar } from './tar.ts';

/** A dataset's official splits as read, before Petri's own split. */
export interface RawDataset {
  readonly train: ImageSet;
  readonly test: ImageSet;
  /** Class names found in the files, when they carry any. */
  readonly classNames?: readonly string[];
  /** Where the data came from, for people. */
  readonly source: string;
}

/** How to obtain the files; every field is optional. */
export interface SourceOptions {
  /** A local archive or folder to read instead of downloading. */
  readonly importPath?: string;
  /** Full archive URL (CIFAR) or URL of the folder of the four .gz files (Fashion-MNIST). */
  readonly url?: string;
  /** Base URL replacing the official host; default: env PETRI_DATASET_MIRROR. */
  readonly mirror?: string;
  /**
   * Expected MD5 instead of the published one (tests, repackaged mirrors):
   * one string for an archive, or one per file name for multi-file datasets.
   */
  readonly md5?: string | Readonly<Record<string, string>>;
  /** Folder of Debian's Fashion-MNIST files; '' skips it. Default /usr/share/datasets/fashion-mnist. */
  readonly systemDir?: string;
  /** Size and seed of the synthetic dataset. */
  readonly synthetic?: SyntheticOptions;
  /** Passed to the downloader (progress, retries). */
  readonly download?: DownloadOptions;
}

/** Reads the official train and test data of `spec`, fetching or generating it as needed. */
export async function obtainRaw(dataDir: string, spec: DatasetSpec, options: SourceOptions): Promise<RawDataset> {
  const source = spec.source;
  if (source.kind === 'cifar') return obtainCifar(dataDir, spec, source, options);
  if (source.kind === 'idx') return obtainIdx(dataDir, spec, source, options);
  if (options.importPath !== undefined) {
    throw new DatasetError('the synthetic dataset is generated, not imported; use: npx petri data fetch synthetic');
  }
  return obtainSynthetic(dataDir, spec, options.synthetic);
}

async function obtainCifar(dataDir: string, spec: DatasetSpec, src: CifarArchiveSpec, options: SourceOptions): Promise<RawDataset> {
  let path: string;
  let origin: string;
  if (options.importPath !== undefined) {
    path = resolve(options.importPath);
    origin = `imported from ${path}`;
    if ((await stat(path).catch(() => undefined))?.isFile() === true) {
      // A local copy need not be the official file (users repack), so a
      // different MD5 is only noted; the readers check every byte count.
      const md5 = await hashFile(path, 'md5');
      origin += md5 === src.md5 ? ' (official MD5 matched)' : ` (MD5 ${md5}, not the official ${src.md5})`;
    }
  } else {
    const url = options.url ?? joinUrl(mirrorOf(options) ?? src.baseUrl, src.file);
    const expected = typeof options.md5 === 'string' ? options.md5 : (options.md5?.[src.file] ?? src.md5);
    path = join(downloadsDir(dataDir), src.file);
    await mkdir(downloadsDir(dataDir), { recursive: true });
    try {
      await downloadFile(url, path, { ...options.download, md5: expected });
    } catch (err) {
      if (err instanceof DownloadError) throw new DatasetError(howToProceed(spec, dataDir, err), { cause: err });
      throw err;
    }
    origin = `${url} (MD5 ${expected} verified)`;
  }
  const bag = await openBag(path);
  return readCifarLayout(bag, src, origin, `the official ${src.file} or its extracted folder ${src.dir}/`);
}

/** What a CIFAR-layout reader needs; record counts left out are not checked (synthetic). */
interface CifarLayout {
  readonly dir: string;
  readonly trainFiles: readonly string[];
  readonly testFile: string;
  readonly metaFile: string;
  readonly record: CifarRecordLayout;
  readonly trainRecords?: number;
  readonly testRecords?: number;
}

async function readCifarLayout(bag: FileBag, layout: CifarLayout, source: string, expected: string): Promise<RawDataset> {
  const read = async (file: string): Promise<{ name: string; bytes: Uint8Array }> => {
    const found = await bag.read([`${layout.dir}/${file}`, file]);
    if (found === undefined) {
      throw new DatasetError(`${bag.path}: has no ${layout.dir}/${file}; expected ${expected}`);
    }
    return found;
  };
  const batches: ImageSet[] = [];
  for (const file of layout.trainFiles) {
    const { name, bytes } = await read(file);
    batches.push(readCifarBatch(bytes, layout.record, name, layout.trainRecords));
  }
  const testFile = await read(layout.testFile);
  const test = readCifarBatch(testFile.bytes, layout.record, testFile.name, layout.testRecords);
  const meta = await bag.read([`${layout.dir}/${layout.metaFile}`, layout.metaFile]);
  const names = meta === undefined ? undefined : linesOf(meta.bytes);
  return {
    train: concatImageSets(batches),
    test,
    source,
    ...(names?.length === layout.record.numClasses ? { classNames: names } : {}),
  };
}

async function obtainIdx(dataDir: string, spec: DatasetSpec, src: IdxFilesSpec, options: SourceOptions): Promise<RawDataset> {
  const names = Object.values(src.files);
  let folder: string;
  let origin: string;
  const systemDir = options.systemDir ?? src.systemDir;
  if (options.importPath !== undefined) {
    folder = resolve(options.importPath);
    origin = `imported from ${folder}`;
  } else if (systemDir !== '' && options.url === undefined && (await allExist(systemDir, names))) {
    folder = systemDir;
    origin = `${systemDir} (Debian package dataset-fashion-mnist)`;
  } else {
    const base = options.url ?? mirrorOf(options) ?? src.baseUrl;
    folder = join(downloadsDir(dataDir), spec.name);
    await mkdir(folder, { recursive: true });
    for (const name of names) {
      try {
        const md5 = typeof options.md5 === 'object' ? (options.md5[name] ?? src.md5[name]) : src.md5[name];
        await downloadFile(joinUrl(base, name), join(folder, name), { ...options.download, ...(md5 ? { md5 } : {}) });
      } catch (err) {
        if (err instanceof DownloadError) throw new DatasetError(howToProceed(spec, dataDir, err), { cause: err });
        throw err;
      }
    }
    origin = `${base} (official MD5s verified)`;
  }
  const bag = await openBag(folder);
  const read = async (file: string): Promise<{ name: string; bytes: Uint8Array }> => {
    const found = await bag.read([file, file.replace(/\.gz$/, '')]);
    if (found === undefined) throw new DatasetError(`${folder}: has no ${file}; expected the four IDX files ${names.join(', ')}`);
    return { name: found.name, bytes: await maybeGunzip(found.bytes, found.name) };
  };
  const load = async (images: string, labels: string, count: number): Promise<ImageSet> => {
    const img = await read(images);
    const lab = await read(labels);
    const set = idxToImageSet(readIdxImages(img.bytes, img.name), readIdxLabels(lab.bytes, lab.name, spec.numClasses), img.name);
    if (set.count !== count || set.shape.some((d, i) => d !== spec.shape[i])) {
      throw new DatasetError(`${img.name}: holds ${set.count} images of ${set.shape.join('x')}, expected ${count} of ${spec.shape.join('x')}`);
    }
    return set;
  };
  return {
    train: await load(src.files.trainImages, src.files.trainLabels, src.trainCount),
    test: await load(src.files.testImages, src.files.testLabels, src.testCount),
    source: origin,
  };
}

async function obtainSynthetic(dataDir: string, spec: DatasetSpec, options: SyntheticOptions | undefined): Promise<RawDataset> {
  const params = options ?? SYNTHETIC_DEFAULTS;
  // Written to disk in the CIFAR-10 layout and read back by the CIFAR reader on purpose.
  const dir = tempSibling(join(downloadsDir(dataDir), 'synthetic-batches-bin'));
  try {
    const trainFiles = await writeSyntheticCifar(dir, params);
    const bag = await openBag(dir);
    const layout: CifarLayout = {
      dir: 'synthetic-batches-bin',
      trainFiles,
      testFile: 'test_batch.bin',
      metaFile: 'batches.meta.txt',
      record: { labelBytes: 1, labelIndex: 0, numClasses: spec.numClasses },
    };
    const raw = await readCifarLayout(bag, layout, '', 'the generated files');
    return { ...raw, source: `generated (seed ${params.seed}, ${params.train} train, ${params.test} test)` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Read access to the files of an archive (.tar, .tar.gz) or a folder. */
interface FileBag {
  readonly path: string;
  /** The first of `names` present, with a name for messages, or undefined. */
  read(names: readonly string[]): Promise<{ name: string; bytes: Uint8Array } | undefined>;
}

async function openBag(path: string): Promise<FileBag> {
  const info = await stat(path).catch(() => undefined);
  if (info === undefined) throw new DatasetError(`${path}: no such file or folder`);
  if (info.isDirectory()) {
    return {
      path,
      async read(names) {
        for (const name of names) {
          const file = join(path, name);
          try {
            return { name: file, bytes: new Uint8Array(await readFile(file)) };
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          }
        }
        return undefined;
      },
    };
  }
  const bytes = await maybeGunzip(new Uint8Array(await readFile(path)), path);
  const entries = new Map(readTar(bytes, path).filter((e) => e.type === 'file').map((e) => [e.name, e.data]));
  return {
    path,
    async read(names) {
      for (const name of names) {
        const data = entries.get(name);
        if (data !== undefined) return { name: `${path}:${name}`, bytes: data };
      }
      return undefined;
    },
  };
}

/** The message for a failed download: what was tried and the ways forward. */
function howToProceed(spec: DatasetSpec, dataDir: string, err: DownloadError): string {
  const dirFlag = dataDir === 'petri-data' || dataDir === './petri-data' ? '' : ` --data-dir ${dataDir}`;
  const local =
    spec.source.kind === 'cifar'
      ? [
          `download ${spec.source.file} on a machine with internet access (${joinUrl(spec.source.baseUrl, spec.source.file)}), copy it here and run:`,
          `      npx petri data import ${spec.name} /path/to/${spec.source.file}${dirFlag}`,
          `    (the extracted folder ${spec.source.dir}/ works too)`,
        ]
      : [
          `install Debian's dataset-fashion-mnist package (apt install dataset-fashion-mnist), or copy the four .gz files into a folder and run:`,
          `      npx petri data import ${spec.name} /path/to/folder${dirFlag}`,
        ];
  return [
    `could not get ${spec.description}: ${err.message}`,
    'To proceed, either:',
    `  - ${local.join('\n')}`,
    '  - or point at a reachable copy: --url URL or the environment variable PETRI_DATASET_MIRROR=BASE_URL',
    `  - or use a dataset that needs no download: npx petri data fetch synthetic${dirFlag}` +
      (spec.name === 'fashion-mnist' ? '' : ` (or fashion-mnist, read from Debian's package when installed)`),
  ].join('\n');
}

function mirrorOf(options: SourceOptions): string | undefined {
  const mirror = options.mirror ?? process.env.PETRI_DATASET_MIRROR;
  return mirror === undefined || mirror === '' ? undefined : mirror;
}

function joinUrl(base: string, file: string): string {
  return `${base.replace(/\/+$/, '')}/${file}`;
}

async function allExist(dir: string, names: readonly string[]): Promise<boolean> {
  try {
    await Promise.all(names.map((n) => access(join(dir, n))));
    return true;
  } catch {
    return false;
  }
}

function linesOf(bytes: Uint8Array): string[] {
  return new TextDecoder()
    .decode(bytes)
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

