import { describe, expect, it } from 'vitest';
import { dnaId } from './canonical.ts';
import { initialDna, type Dna } from './dna.ts';
import { convChain, referenceDnas } from './fixtures.ts';
import { planInheritance, summarisePlan } from './inheritance.ts';
import { MUTATIONS, applyMutation, mutate, type MutationName } from './mutations.ts';
import { createRng } from './rng.ts';
import { tensorSpecs } from './tensors.ts';
import { parseDna } from './validate.ts';

/** Random mutation chains from the initial DNA, deterministic per seed. */
function* chains(count: number, length: number, shape: [number, number, number] = [32, 32, 3]) {
  for (let c = 0; c < count; c++) {
    const rng = createRng(`chain-${c}`);
    let dna = initialDna(shape, 10);
    for (let i = 0; i < length; i++) {
      const outcome = mutate(dna, rng, c % 7 === 0 ? 5 : 1);
      yield { parent: dna, ...outcome, seed: `chain-${c}`, step: i };
      dna = outcome.child;
    }
  }
}

describe('mutations', () => {
  it('property: thousands of random chains give only valid children, and every mutation occurs', () => {
    const seen = new Map<MutationName, number>();
    let children = 0;
    for (const { child, applied, seed, step } of chains(150, 30)) {
      children++;
      try {
        parseDna(JSON.parse(JSON.stringify(child)));
      } catch (err) {
        throw new Error(`seed ${seed} step ${step} (${applied.map((m) => m.name).join(', ')}): ${String(err)}`);
      }
      for (const m of applied) seen.set(m.name, (seen.get(m.name) ?? 0) + 1);
    }
    expect(children).toBe(4500);
    for (const name of MUTATIONS) expect(seen.get(name) ?? 0, name).toBeGreaterThan(20);
  });

  it('is deterministic: the same seed and parent give the same child', () => {
    const parent = referenceDnas()[2]?.dna as Dna;
    for (let s = 0; s < 50; s++) {
      const a = mutate(parent, createRng(`s${s}`), 3);
      const b = mutate(parent, createRng(`s${s}`), 3);
      expect(dnaId(a.child)).toBe(dnaId(b.child));
      expect(a.applied).toEqual(b.applied);
    }
  });

  it('applies k mutations per child', () => {
    const outcome = mutate(initialDna([32, 32, 3], 10), createRng(1), 5);
    expect(outcome.applied).toHaveLength(5);
    expect(() => mutate(initialDna([32, 32, 3], 10), createRng(1), 0)).toThrow(RangeError);
  });

  it('never turns an inapplicable mutation into another', () => {
    const linear = initialDna([32, 32, 3], 10);
    const rng = createRng(3);
    expect(applyMutation(linear, 'REMOVE-SKIP', rng)).toBeNull();
    expect(applyMutation(linear, 'REMOVE-CONVOLUTION', rng)).toBeNull();
    expect(applyMutation(linear, 'ALTER-STRIDE', rng)).toBeNull();
    expect(applyMutation(linear, 'FILTER-SIZE', rng)).toBeNull();
    // The linear DNA has no conv: over many draws, the redraw never records a conv mutation.
    for (let s = 0; s < 300; s++) {
      const { applied } = mutate(linear, createRng(`r${s}`));
      expect(['REMOVE-SKIP', 'REMOVE-CONVOLUTION', 'ALTER-STRIDE', 'FILTER-SIZE', 'ALTER-NUMBER-OF-CHANNELS']).not.toContain(applied[0]?.name);
    }
  });

  it('does what each mutation says', () => {
    const parent = convChain([32, 32, 3], 10, [{ channels: 16 }, { channels: 32, stride: 2 }], [[0, 2]]);
    const rng = createRng(11);
    const lr = applyMutation(parent, 'ALTER-LEARNING-RATE', rng);
    expect(lr?.dna.learningRate).toBeGreaterThanOrEqual(0.05);
    expect(lr?.dna.learningRate).toBeLessThanOrEqual(0.2);
    expect(lr?.dna.learningRate).not.toBe(0.1);

    const conv = applyMutation(parent, 'INSERT-CONVOLUTION', rng);
    expect(conv?.dna.edges.filter((e) => e.type === 'conv')).toHaveLength(3);
    const inserted = conv?.dna.edges.find((e) => !parent.edges.some((p) => p.id === e.id));
    expect(inserted).toMatchObject({ type: 'conv', filterHeight: 3, filterWidth: 3 });

    const removed = applyMutation(parent, 'REMOVE-CONVOLUTION', rng);
    expect(removed?.dna.edges.filter((e) => e.type === 'conv')).toHaveLength(1);
    expect(removed?.dna.vertices).toHaveLength(2);

    const channels = applyMutation(parent, 'ALTER-NUMBER-OF-CHANNELS', rng);
    const changed = channels?.dna.edges.find((e, i) => e.type === 'conv' && e.channels !== (parent.edges[i] as { channels: number }).channels);
    expect(changed).toBeDefined();

    const stride = applyMutation(parent, 'ALTER-STRIDE', rng);
    const strides = stride?.dna.edges.flatMap((e) => (e.type === 'conv' ? [e.stride] : []));
    expect(strides).not.toEqual([1, 2]);

    const filter = applyMutation(parent, 'FILTER-SIZE', rng);
    const sizes = filter?.dna.edges.flatMap((e) => (e.type === 'conv' ? [e.filterHeight, e.filterWidth] : []));
    expect(sizes?.filter((s) => s !== 3)).toHaveLength(1);
    expect(sizes?.every((s) => s % 2 === 1)).toBe(true);

    const skip = applyMutation(parent, 'ADD-SKIP', rng);
    expect(skip?.dna.edges.filter((e) => e.role === 'skip')).toHaveLength(2);
    const noSkip = applyMutation(parent, 'REMOVE-SKIP', rng);
    expect(noSkip?.dna.edges.filter((e) => e.role === 'skip')).toHaveLength(0);

    const one = applyMutation(parent, 'INSERT-ONE-TO-ONE', rng);
    expect(one?.dna.vertices).toHaveLength(4);
    expect(one?.dna.edges.filter((e) => e.type === 'identity' && e.role === 'backbone')).toHaveLength(1);

    expect(applyMutation(parent, 'IDENTITY', rng)?.dna).toBe(parent);
    expect(applyMutation(parent, 'RESET-WEIGHTS', rng)?.dna).toBe(parent);
  });
});

describe('inheritance plans', () => {
  const parent = convChain([32, 32, 3], 10, [{ channels: 16 }, { channels: 32, stride: 2 }], [[0, 2]]);

  it('copies every tensor after IDENTITY and ALTER-LEARNING-RATE', () => {
    for (const name of ['IDENTITY', 'ALTER-LEARNING-RATE'] as const) {
      const child = applyMutation(parent, name, createRng(5))?.dna as Dna;
      const plan = planInheritance(parent, child);
      expect(plan.tensors.every((t) => t.source.kind === 'copy')).toBe(true);
      expect(plan.tensors.length).toBe(tensorSpecs(parent).length);
    }
  });

  it('initialises everything after RESET-WEIGHTS', () => {
    const outcome = mutate(parent, createRng('reset'), 1);
    const plan = planInheritance(parent, parent, true);
    expect(summarisePlan(plan)).toEqual({ copy: 0, reshape: 0, init: plan.tensors.length });
    expect(outcome.child).toBeDefined();
  });

  it('keeps every untouched tensor after INSERT-CONVOLUTION and ADD-SKIP', () => {
    for (const name of ['INSERT-CONVOLUTION', 'ADD-SKIP', 'INSERT-ONE-TO-ONE'] as const) {
      const child = applyMutation(parent, name, createRng(9))?.dna as Dna;
      const plan = planInheritance(parent, child);
      const parentKeys = new Set(tensorSpecs(parent).map((s) => s.key));
      for (const t of plan.tensors) {
        expect(t.source.kind === 'copy' || t.source.kind === 'init', `${name} ${t.key}`).toBe(true);
        if (parentKeys.has(t.key)) expect(t.source.kind, `${name} ${t.key}`).toBe('copy');
      }
    }
  });

  it('reshapes the tensors whose shape ALTER-NUMBER-OF-CHANNELS changed, and only those', () => {
    const child = applyMutation(parent, 'ALTER-NUMBER-OF-CHANNELS', createRng(2))?.dna as Dna;
    const plan = planInheritance(parent, child);
    const before = new Map(tensorSpecs(parent).map((s) => [s.key, s.shape]));
    for (const t of plan.tensors) {
      const old = before.get(t.key);
      expect(old).toBeDefined();
      if (JSON.stringify(old) === JSON.stringify(t.shape)) expect(t.source.kind).toBe('copy');
      else expect(t.source).toEqual({ kind: 'reshape', fromShape: old });
    }
    expect(summarisePlan(plan).reshape).toBeGreaterThan(0);
  });
});
