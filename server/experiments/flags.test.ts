import { describe, expect, it } from 'vitest';
import { resolveConfig } from './config.ts';
import { overridesFromFlags } from './flags.ts';

describe('experiment flags', () => {
  it('turn into a config: plateau settings merge into the preset, random search is a selection', () => {
    const config = resolveConfig(
      overridesFromFlags({ preset: 'lab', dataset: 'fashion-mnist', selection: 'random', mutations: '12', reset: 'manual', patience: '30', 'boost-children': '20' }),
    );
    expect(config).toMatchObject({ dataset: 'fashion-mnist', selection: 'random', mutationsPerChild: 12 });
    expect(config.plateau).toEqual({ boost: 'auto', reset: 'manual', patience: 30, boostChildren: 20, boostMutations: 5 });
  });

  it('name the flag that is wrong', () => {
    expect(() => overridesFromFlags({ patience: 'soon' })).toThrow(/--patience needs a number, got "soon"/);
    expect(() => resolveConfig(overridesFromFlags({ 'boost-children': '0' }))).toThrow(/plateau\.boostChildren/);
    expect(() => resolveConfig(overridesFromFlags({ selection: 'greedy' }))).toThrow(/selection/);
  });
});
