/**
 * The public description of a prepared dataset's training split, served as
 * `/data/<dataset>/manifest.json` and read by browsers before they fetch
 * shards. It deliberately says nothing about where the validation and test
 * splits live: those never leave the server.
 */
import * as v from 'valibot';

/** Version of the manifest layout itself (not of the dataset content). */
export const MANIFEST_FORMAT_VERSION = 1;

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Dataset names double as URL path segments, so keep them to a safe alphabet. */
export const DATASET_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

const positiveInt = v.pipe(v.number(), v.integer(), v.minValue(1));
const nonNegativeInt = v.pipe(v.number(), v.integer(), v.minValue(0));

/** One shard of the training split. */
export const ShardEntrySchema = v.object({
  /** Content-addressed URL: `/data/shards/<sha256>.bin`. */
  url: v.pipe(v.string(), v.regex(/^\/data\/shards\/[0-9a-f]{64}\.bin$/, 'shard url must be /data/shards/<sha256>.bin')),
  /** Size of the shard file in bytes. */
  bytes: positiveInt,
  /** Number of images in the shard. */
  count: positiveInt,
  /** SHA-256 of the shard bytes, lowercase hex. */
  sha256: v.pipe(v.string(), v.regex(SHA256_HEX, 'sha256 must be 64 lowercase hex digits')),
});

/** valibot schema of the manifest; {@link parseManifest} applies it. */
export const ManifestSchema = v.pipe(
  v.object({
    formatVersion: v.literal(MANIFEST_FORMAT_VERSION),
    /** Dataset name, e.g. 'cifar10', 'synthetic'. */
    dataset: v.pipe(v.string(), v.regex(DATASET_NAME, 'dataset name must be lowercase letters, digits and dashes')),
    /** Content-derived version: changes whenever any shard, the shape or the classes change. */
    version: v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/, 'version must be 16 hex digits')),
    /** Human-readable origin, e.g. 'CIFAR-10 binary (Krizhevsky 2009)'. */
    description: v.string(),
    /** [height, width, channels] of every image. */
    imageShape: v.tuple([positiveInt, positiveInt, positiveInt]),
    numClasses: v.pipe(positiveInt, v.maxValue(256)),
    classNames: v.array(v.string()),
    /** Image counts of each split; only the train split is downloadable. */
    splits: v.object({ train: positiveInt, validation: nonNegativeInt, test: nonNegativeInt }),
    shards: v.pipe(v.array(ShardEntrySchema), v.minLength(1)),
  }),
  v.check((m) => m.classNames.length === m.numClasses, 'classNames must have numClasses entries'),
  v.check((m) => m.shards.every((s) => s.url === shardUrl(s.sha256)), 'each shard url must name its sha256'),
  v.check(
    (m) => m.shards.reduce((n, s) => n + s.count, 0) === m.splits.train,
    'shard image counts must add up to splits.train',
  ),
);

/** A validated dataset manifest. */
export type Manifest = v.InferOutput<typeof ManifestSchema>;
/** One shard entry of a manifest. */
export type ShardEntry = v.InferOutput<typeof ShardEntrySchema>;

/** The content-addressed URL of a shard. */
export function shardUrl(sha256: string): string {
  return `/data/shards/${sha256}.bin`;
}

/**
 * Validates parsed JSON as a manifest.
 * @throws Error listing every problem found, with its path in the object.
 */
export function parseManifest(input: unknown): Manifest {
  const result = v.safeParse(ManifestSchema, input);
  if (result.success) return result.output;
  const problems = result.issues.map((issue) => {
    const path = v.getDotPath(issue);
    return path === null ? issue.message : `${path}: ${issue.message}`;
  });
  throw new Error(`invalid dataset manifest: ${problems.join('; ')}`);
}
