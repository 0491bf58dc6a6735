/**
 * Weight inheritance (docs/SPEC.md): for every tensor of a child, whether it
 * is copied from the parent (same owner, same shape), reshaped from the
 * parent's (same owner, new shape: channels truncated or padded, filters
 * cropped or padded around their centre), or initialised fresh (He). The
 * plan is plain data, so the server can send it with a lease and any worker
 * apply it.
 */
import type { Dna } from './dna.ts';
import { tensorSpecs, type TensorSpec } from './tensors.ts';

export type TensorSource =
  | { readonly kind: 'copy' }
  | { readonly kind: 'reshape'; readonly fromShape: readonly number[] }
  | { readonly kind: 'init' };

export interface PlannedTensor extends TensorSpec {
  readonly source: TensorSource;
}

export interface InheritancePlan {
  /** Every tensor of the child, in canonical order. */
  readonly tensors: readonly PlannedTensor[];
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * The inheritance plan from a parent to its child. With `resetWeights`
 * (RESET-WEIGHTS, or the plateau remedy) every tensor is initialised fresh.
 */
export function planInheritance(parent: Dna | null, child: Dna, resetWeights = false): InheritancePlan {
  const parentSpecs = new Map((parent === null ? [] : tensorSpecs(parent)).map((s) => [s.key, s]));
  const tensors = tensorSpecs(child).map((spec): PlannedTensor => {
    const old = resetWeights ? undefined : parentSpecs.get(spec.key);
    if (old === undefined) return { ...spec, source: { kind: 'init' } };
    if (sameShape(old.shape, spec.shape)) return { ...spec, source: { kind: 'copy' } };
    return { ...spec, source: { kind: 'reshape', fromShape: old.shape } };
  });
  return { tensors };
}

/** Counts of copied, reshaped and fresh tensors, for logs and the leaderboard. */
export function summarisePlan(plan: InheritancePlan): { copy: number; reshape: number; init: number } {
  const counts = { copy: 0, reshape: 0, init: 0 };
  for (const t of plan.tensors) counts[t.source.kind] += 1;
  return counts;
}
