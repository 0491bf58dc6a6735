/**
 * Experiment configuration: presets and flags, parsed through one schema.
 *
 * - `paper`: everything as in Real et al. 2017 (population 1000, 25,600 steps per child).
 * - `lab`: the default, sized for a lab's idle workstations overnight.
 * - `quick`: small and fast, for a demo on one machine and for tests.
 */
import * as v from 'valibot';
import type { ExperimentConfig } from '../store/types.ts';

export const PRESETS = {
  paper: {
    preset: 'paper',
    dataset: 'cifar10',
    populationSize: 1000,
    stepsPerChild: 25_600,
    batchSize: 50,
    mutationsPerChild: 1,
    selection: 'tournament',
    sampleSize: 25,
    maxChildren: 0,
    inheritWeights: true,
    augment: true,
    verifyFraction: 1,
    plateau: { boost: 'manual', reset: 'manual', patience: 2000, boostChildren: 1000, boostMutations: 5 },
    seed: 'petri',
  },
  lab: {
    preset: 'lab',
    dataset: 'cifar10',
    populationSize: 100,
    stepsPerChild: 2_000,
    batchSize: 50,
    mutationsPerChild: 1,
    selection: 'tournament',
    sampleSize: 25,
    maxChildren: 0,
    inheritWeights: true,
    augment: true,
    verifyFraction: 1,
    plateau: { boost: 'auto', reset: 'manual', patience: 400, boostChildren: 100, boostMutations: 5 },
    seed: 'petri',
  },
  quick: {
    preset: 'quick',
    dataset: 'synthetic',
    populationSize: 6,
    stepsPerChild: 40,
    batchSize: 25,
    mutationsPerChild: 1,
    selection: 'tournament',
    sampleSize: 3,
    maxChildren: 40,
    inheritWeights: true,
    augment: true,
    verifyFraction: 1,
    plateau: { boost: 'manual', reset: 'manual', patience: 20, boostChildren: 6, boostMutations: 5 },
    seed: 'petri',
  },
} as const satisfies Record<string, ExperimentConfig>;

export type PresetName = keyof typeof PRESETS;
export const DATASETS = ['cifar10', 'cifar100', 'fashion-mnist', 'synthetic'] as const;

const int = (min: number, max: number) => v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));
const remedy = v.picklist(['off', 'manual', 'auto']);

/** Every field an operator may override (all optional). */
export const configOverridesSchema = v.strictObject({
  preset: v.optional(v.picklist(Object.keys(PRESETS) as [PresetName, ...PresetName[]])),
  dataset: v.optional(v.picklist(DATASETS)),
  populationSize: v.optional(int(2, 100_000)),
  stepsPerChild: v.optional(int(1, 10_000_000)),
  batchSize: v.optional(int(1, 1024)),
  mutationsPerChild: v.optional(int(1, 20)),
  selection: v.optional(v.picklist(['tournament', 'aging', 'random'])),
  sampleSize: v.optional(int(1, 100_000)),
  maxChildren: v.optional(int(0, 100_000_000)),
  inheritWeights: v.optional(v.boolean()),
  augment: v.optional(v.boolean()),
  verifyFraction: v.optional(v.pipe(v.number(), v.minValue(0.01), v.maxValue(1))),
  plateau: v.optional(
    v.strictObject({
      boost: v.optional(remedy),
      reset: v.optional(remedy),
      patience: v.optional(int(1, 10_000_000)),
      boostChildren: v.optional(int(1, 10_000_000)),
      boostMutations: v.optional(int(1, 20)),
    }),
  ),
  seed: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(100))),
});
export type ConfigOverrides = v.InferOutput<typeof configOverridesSchema>;

/** Builds a full config from a preset and overrides; throws a clear error on bad input. */
export function resolveConfig(input: unknown): ExperimentConfig {
  const parsed = v.safeParse(configOverridesSchema, input);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    throw new Error(`bad experiment setting ${issue ? (v.getDotPath(issue) ?? '') : ''}: ${issue?.message ?? 'invalid'}`);
  }
  const o = parsed.output;
  const base = PRESETS[o.preset ?? 'lab'];
  return {
    ...base,
    ...Object.fromEntries(Object.entries(o).filter(([k, x]) => x !== undefined && k !== 'plateau')),
    plateau: { ...base.plateau, ...Object.fromEntries(Object.entries(o.plateau ?? {}).filter(([, x]) => x !== undefined)) },
  } as ExperimentConfig;
}
