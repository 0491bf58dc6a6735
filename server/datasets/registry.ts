/**
 * The datasets Petri knows: where each comes from, its official checksums,
 * its file layout, classes and how much of its training data validates.
 */
import { CIFAR10_RECORD, CIFAR100_RECORD, type CifarRecordLayout } from './cifar-reader.ts';
import { DatasetError } from './errors.ts';
import { SYNTHETIC_CLASSES } from './synthetic.ts';

/** Names accepted by the CLI and the API. */
export const DATASET_NAMES = ['cifar10', 'cifar100', 'fashion-mnist', 'synthetic'] as const;
export type DatasetName = (typeof DATASET_NAMES)[number];

/** A CIFAR-style tar.gz archive of fixed-size binary record files. */
export interface CifarArchiveSpec {
  readonly kind: 'cifar';
  /** Archive file name, also the last part of its official URL. */
  readonly file: string;
  readonly baseUrl: string;
  readonly md5: string;
  /** Top folder inside the archive, e.g. 'cifar-10-batches-bin'. */
  readonly dir: string;
  readonly trainFiles: readonly string[];
  readonly testFile: string;
  /** Records per train file and in the test file (checked, to catch truncation). */
  readonly trainRecords: number;
  readonly testRecords: number;
  /** Text file of class names, one per line, when the archive has one. */
  readonly metaFile: string;
  readonly record: CifarRecordLayout;
}

/** The four gzipped IDX files of (Fashion-)MNIST. */
export interface IdxFilesSpec {
  readonly kind: 'idx';
  readonly baseUrl: string;
  /** Folder of a distribution package holding the same files (Debian's dataset-fashion-mnist). */
  readonly systemDir: string;
  readonly files: { readonly trainImages: string; readonly trainLabels: string; readonly testImages: string; readonly testLabels: string };
  /** Official MD5 of each .gz file, by file name. */
  readonly md5: Readonly<Record<string, string>>;
  readonly trainCount: number;
  readonly testCount: number;
}

/** Everything fixed about one dataset. */
export interface DatasetSpec {
  readonly name: DatasetName;
  readonly description: string;
  readonly shape: readonly [number, number, number];
  readonly numClasses: number;
  readonly classNames: readonly string[];
  /** Validation images carved out of `trainCount` official training images. */
  readonly validationCount: (trainCount: number) => number;
  readonly source: CifarArchiveSpec | IdxFilesSpec | { readonly kind: 'synthetic' };
}

const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

// Alphabetical, as the labels of the CIFAR-100 binary release index them;
// the archive's fine_label_names.txt takes precedence when present.
const CIFAR100_CLASSES = (
  'apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can ' +
  'castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin ' +
  'elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster ' +
  'man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck ' +
  'pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk ' +
  'skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger ' +
  'tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm'
).split(' ');

const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

const TORONTO = 'https://www.cs.toronto.edu/~kriz/';

const SPECS: Record<DatasetName, DatasetSpec> = {
  cifar10: {
    name: 'cifar10',
    description: 'CIFAR-10, binary version (Krizhevsky 2009)',
    shape: [32, 32, 3],
    numClasses: 10,
    classNames: CIFAR10_CLASSES,
    validationCount: () => 5000,
    source: {
      kind: 'cifar',
      file: 'cifar-10-binary.tar.gz',
      baseUrl: TORONTO,
      md5: 'c32a1d4ab5d03f1284b67883e8d87530',
      dir: 'cifar-10-batches-bin',
      trainFiles: [1, 2, 3, 4, 5].map((n) => `data_batch_${n}.bin`),
      testFile: 'test_batch.bin',
      trainRecords: 10_000,
      testRecords: 10_000,
      metaFile: 'batches.meta.txt',
      record: CIFAR10_RECORD,
    },
  },
  cifar100: {
    name: 'cifar100',
    description: 'CIFAR-100, binary version, fine labels (Krizhevsky 2009)',
    shape: [32, 32, 3],
    numClasses: 100,
    classNames: CIFAR100_CLASSES,
    validationCount: () => 5000,
    source: {
      kind: 'cifar',
      file: 'cifar-100-binary.tar.gz',
      baseUrl: TORONTO,
      md5: '03b5dce01913d631647c71ecec9e9cb8',
      dir: 'cifar-100-binary',
      trainFiles: ['train.bin'],
      testFile: 'test.bin',
      trainRecords: 50_000,
      testRecords: 10_000,
      metaFile: 'fine_label_names.txt',
      record: CIFAR100_RECORD,
    },
  },
  'fashion-mnist': {
    name: 'fashion-mnist',
    description: 'Fashion-MNIST (Xiao, Rasul and Vollgraf 2017)',
    shape: [28, 28, 1],
    numClasses: 10,
    classNames: FASHION_CLASSES,
    validationCount: () => 5000,
    source: {
      kind: 'idx',
      baseUrl: 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
      systemDir: '/usr/share/datasets/fashion-mnist',
      files: {
        trainImages: 'train-images-idx3-ubyte.gz',
        trainLabels: 'train-labels-idx1-ubyte.gz',
        testImages: 't10k-images-idx3-ubyte.gz',
        testLabels: 't10k-labels-idx1-ubyte.gz',
      },
      md5: {
        'train-images-idx3-ubyte.gz': '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
        'train-labels-idx1-ubyte.gz': '25c81989df183df01b3e8a0aad5dffbe',
        't10k-images-idx3-ubyte.gz': 'bef4ecab320f06d8554ea6380940ec79',
        't10k-labels-idx1-ubyte.gz': 'bb300cfdad3c16e7a12a480ee83cd310',
      },
      trainCount: 60_000,
      testCount: 10_000,
    },
  },
  synthetic: {
    name: 'synthetic',
    description: 'Petri synthetic textures: 10 generated classes in CIFAR-10 binary layout (not CIFAR-10)',
    shape: [32, 32, 3],
    numClasses: 10,
    classNames: SYNTHETIC_CLASSES,
    // 10% of whatever size was generated, at least one image.
    validationCount: (n) => Math.max(1, Math.round(n * 0.1)),
    source: { kind: 'synthetic' },
  },
};

/** True when `name` is a dataset Petri knows. */
export function isDatasetName(name: string): name is DatasetName {
  return (DATASET_NAMES as readonly string[]).includes(name);
}

/**
 * The spec of a dataset by name.
 * @throws DatasetError listing the known names.
 */
export function getDatasetSpec(name: string): DatasetSpec {
  if (!isDatasetName(name)) {
    throw new DatasetError(`unknown dataset '${name}'; known datasets: ${DATASET_NAMES.join(', ')}`);
  }
  return SPECS[name];
}
