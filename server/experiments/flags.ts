/**
 * The command-line flags that shape an experiment, shared by `petri serve`
 * and `petri experiment create`, and their translation into config
 * overrides (checked by resolveConfig's schema).
 */
import type { ConfigOverrides } from './config.ts';

export const EXPERIMENT_FLAGS = {
  preset: { type: 'string' },
  dataset: { type: 'string' },
  population: { type: 'string' },
  steps: { type: 'string' },
  'batch-size': { type: 'string' },
  mutations: { type: 'string' },
  selection: { type: 'string' },
  'max-children': { type: 'string' },
  'no-inherit': { type: 'boolean' },
  boost: { type: 'string' },
  reset: { type: 'string' },
  patience: { type: 'string' },
  'boost-children': { type: 'string' },
  seed: { type: 'string' },
} as const;

export type ExperimentFlagValues = { [K in keyof typeof EXPERIMENT_FLAGS]?: (typeof EXPERIMENT_FLAGS)[K]['type'] extends 'boolean' ? boolean : string };

/** A flag's number, or a clear error naming the flag. */
export function flagNumber(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new Error(`--${name} needs a number, got "${text}"`);
  return n;
}

/** The overrides the flags ask for (unset flags left out, so the preset decides). */
export function overridesFromFlags(values: ExperimentFlagValues): Record<string, unknown> {
  const plateau = {
    ...(values.boost !== undefined ? { boost: values.boost } : {}),
    ...(values.reset !== undefined ? { reset: values.reset } : {}),
    ...(values.patience !== undefined ? { patience: flagNumber('patience', values.patience) } : {}),
    ...(values['boost-children'] !== undefined ? { boostChildren: flagNumber('boost-children', values['boost-children']) } : {}),
  };
  const overrides: Record<string, unknown> = {
    preset: values.preset,
    dataset: values.dataset,
    populationSize: flagNumber('population', values.population),
    stepsPerChild: flagNumber('steps', values.steps),
    batchSize: flagNumber('batch-size', values['batch-size']),
    mutationsPerChild: flagNumber('mutations', values.mutations),
    selection: values.selection,
    maxChildren: flagNumber('max-children', values['max-children']),
    inheritWeights: values['no-inherit'] ? false : undefined,
    plateau: Object.keys(plateau).length > 0 ? plateau : undefined,
    seed: values.seed,
  };
  return Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) satisfies Partial<Record<keyof ConfigOverrides, unknown>>;
}
