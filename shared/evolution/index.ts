/** The pure, seeded evolution core: no clock, no Math.random, no I/O. */
export * from './dna.ts';
export * from './rng.ts';
export * from './validate.ts';
export * from './canonical.ts';
export * from './tensors.ts';
export * from './flops.ts';
export * from './mutations.ts';
export * from './inheritance.ts';
export * from './selection.ts';
