/**
 * The eleven mutations of Real et al. 2017 (docs/SPEC.md, PAPER.md table).
 * Each is a pure function of (DNA, rng) that returns the mutated DNA, or
 * null when it cannot apply to this DNA; {@link mutate} then redraws.
 */
import { LIMITS, backboneEdges, backboneOrder, type Activation, type ConvEdge, type Dna, type Edge } from './dna.ts';
import type { Rng } from './rng.ts';
import { dnaFaults } from './validate.ts';

export const MUTATIONS = [
  'ALTER-LEARNING-RATE',
  'IDENTITY',
  'RESET-WEIGHTS',
  'INSERT-CONVOLUTION',
  'REMOVE-CONVOLUTION',
  'ALTER-STRIDE',
  'ALTER-NUMBER-OF-CHANNELS',
  'FILTER-SIZE',
  'INSERT-ONE-TO-ONE',
  'ADD-SKIP',
  'REMOVE-SKIP',
] as const;

export type MutationName = (typeof MUTATIONS)[number];

/** One applied mutation, with a human-readable account of what changed. */
export interface AppliedMutation {
  readonly name: MutationName;
  readonly detail: string;
}

export interface MutationOutcome {
  readonly child: Dna;
  readonly applied: readonly AppliedMutation[];
  /** True when RESET-WEIGHTS was among them: every tensor starts fresh. */
  readonly resetWeights: boolean;
}

type Result = { dna: Dna; detail: string } | null;
type Mutation = (dna: Dna, rng: Rng) => Result;

/** Learning rates are kept to 6 significant digits so every engine prints them alike. */
function roundRate(x: number): number {
  return Number(x.toPrecision(6));
}

function convEdges(dna: Dna): ConvEdge[] {
  return dna.edges.filter((e): e is ConvEdge => e.type === 'conv');
}

function replaceEdge(dna: Dna, edge: Edge): Dna {
  return { ...dna, edges: dna.edges.map((e) => (e.id === edge.id ? edge : e)) };
}

function insertOnBackbone(dna: Dna, rng: Rng, kind: 'conv' | 'identity'): Result {
  if (dna.vertices.length >= LIMITS.maxVertices) return null;
  const at = rng.pick(backboneEdges(dna));
  const activation: Activation = rng.chance(0.5) ? 'bn_relu' : 'linear';
  const w = `v${dna.nextId}`;
  const newEdgeId = `e${dna.nextId + 1}`;
  // The old edge now ends at the new vertex, which then feeds the old
  // target: the old edge keeps its id and so its weights.
  let edge: Edge;
  let detail: string;
  if (kind === 'conv') {
    const stride = rng.pick([1, 2]);
    const channels = outputChannels(dna, at);
    edge = { id: newEdgeId, from: w, to: at.to, role: 'backbone', type: 'conv', filterHeight: 3, filterWidth: 3, stride, channels };
    detail = `3x3 conv ${newEdgeId} (stride ${stride}, ${channels} channels) after new ${activation} vertex ${w} on ${at.id}`;
  } else {
    edge = { id: newEdgeId, from: w, to: at.to, role: 'backbone', type: 'identity' };
    detail = `identity ${newEdgeId} after new ${activation} vertex ${w} on ${at.id}`;
  }
  const vertices = [...dna.vertices, { id: w, activation }];
  const edges = [...dna.edges.map((e) => (e.id === at.id ? { ...e, to: w } : e)), edge];
  return { dna: { ...dna, vertices, edges, nextId: dna.nextId + 2 }, detail };
}

/** Channels of an edge's output. */
function outputChannels(dna: Dna, edge: Edge): number {
  if (edge.type === 'conv') return edge.channels;
  const byTarget = new Map(dna.edges.filter((e) => e.role === 'backbone').map((e) => [e.to, e]));
  let at: Edge | undefined = byTarget.get(edge.from);
  while (at !== undefined) {
    if (at.type === 'conv') return at.channels;
    at = byTarget.get(at.from);
  }
  return dna.inputShape[2];
}

const mutations: Record<MutationName, Mutation> = {
  'ALTER-LEARNING-RATE': (dna, rng) => {
    const factor = Math.pow(2, 2 * rng.next() - 1); // log-uniform in [1/2, 2)
    const rate = roundRate(
      Math.min(LIMITS.maxLearningRate, Math.max(LIMITS.minLearningRate, dna.learningRate * factor)),
    );
    if (rate === dna.learningRate) return null;
    return { dna: { ...dna, learningRate: rate }, detail: `learning rate ${dna.learningRate} -> ${rate}` };
  },
  IDENTITY: (dna) => ({ dna, detail: 'no change: train longer' }),
  'RESET-WEIGHTS': (dna) => ({ dna, detail: 'every weight re-initialised' }),
  'INSERT-CONVOLUTION': (dna, rng) => insertOnBackbone(dna, rng, 'conv'),
  'INSERT-ONE-TO-ONE': (dna, rng) => insertOnBackbone(dna, rng, 'identity'),
  'REMOVE-CONVOLUTION': (dna, rng) => {
    // Removing conv u->v merges v into u: v's other edges now start or end
    // at u; a skip made redundant (a duplicate, or u->u) is dropped.
    const candidates = convEdges(dna).filter((e) => !(e.from === dna.input && e.to === dna.output));
    if (candidates.length === 0) return null;
    const gone = rng.pick(candidates);
    const u = gone.from;
    const v = gone.to;
    const edges: Edge[] = [];
    const skipPairs = new Set<string>();
    for (const e of dna.edges) {
      if (e.id === gone.id) continue;
      const moved = { ...e, from: e.from === v ? u : e.from, to: e.to === v ? u : e.to };
      if (moved.from === moved.to) continue;
      if (moved.role === 'skip') {
        const pair = `${moved.from}->${moved.to}`;
        if (skipPairs.has(pair)) continue;
        skipPairs.add(pair);
      }
      edges.push(moved);
    }
    const vertices = dna.vertices.filter((x) => x.id !== v);
    const output = dna.output === v ? u : dna.output;
    return { dna: { ...dna, vertices, edges, output }, detail: `removed conv ${gone.id}, merging ${v} into ${u}` };
  },
  'ALTER-STRIDE': (dna, rng) => {
    const convs = convEdges(dna);
    if (convs.length === 0) return null;
    const e = rng.pick(convs);
    const options = [e.stride / 2, e.stride * 2].filter((s) => s >= 1 && s <= LIMITS.maxStride);
    const stride = rng.pick(options);
    return { dna: replaceEdge(dna, { ...e, stride }), detail: `${e.id} stride ${e.stride} -> ${stride}` };
  },
  'ALTER-NUMBER-OF-CHANNELS': (dna, rng) => {
    const convs = convEdges(dna);
    if (convs.length === 0) return null;
    const e = rng.pick(convs);
    const lo = Math.max(1, Math.ceil(e.channels / 2));
    const hi = Math.min(LIMITS.maxChannels, 2 * e.channels);
    if (hi <= lo) return null;
    // Uniform over [lo, hi] without the old value.
    let channels = rng.int(lo, hi - 1);
    if (channels >= e.channels) channels += 1;
    return { dna: replaceEdge(dna, { ...e, channels }), detail: `${e.id} channels ${e.channels} -> ${channels}` };
  },
  'FILTER-SIZE': (dna, rng) => {
    const convs = convEdges(dna);
    if (convs.length === 0) return null;
    const e = rng.pick(convs);
    const axis = rng.chance(0.5) ? 'filterHeight' : 'filterWidth';
    const old = e[axis];
    const size = rng.pick([old - 2, old + 2].filter((s) => s >= 1 && s <= LIMITS.maxFilter));
    const name = axis === 'filterHeight' ? 'height' : 'width';
    return { dna: replaceEdge(dna, { ...e, [axis]: size }), detail: `${e.id} filter ${name} ${old} -> ${size}` };
  },
  'ADD-SKIP': (dna, rng) => {
    if (dna.edges.length >= LIMITS.maxEdges) return null;
    const order = backboneOrder(dna);
    const taken = new Set(
      dna.edges.filter((e) => e.role === 'skip' || e.type === 'identity').map((e) => `${e.from}->${e.to}`),
    );
    const pairs: [string, string][] = [];
    for (let i = 0; i < order.length; i++) {
      for (let j = i + 1; j < order.length; j++) {
        const a = (order[i] as { id: string }).id;
        const b = (order[j] as { id: string }).id;
        if (!taken.has(`${a}->${b}`)) pairs.push([a, b]);
      }
    }
    if (pairs.length === 0) return null;
    const [from, to] = rng.pick(pairs);
    const id = `e${dna.nextId}`;
    const edge: Edge = { id, from, to, role: 'skip', type: 'identity' };
    return { dna: { ...dna, edges: [...dna.edges, edge], nextId: dna.nextId + 1 }, detail: `skip ${id} from ${from} to ${to}` };
  },
  'REMOVE-SKIP': (dna, rng) => {
    const skips = dna.edges.filter((e) => e.role === 'skip');
    if (skips.length === 0) return null;
    const gone = rng.pick(skips);
    return {
      dna: { ...dna, edges: dna.edges.filter((e) => e.id !== gone.id) },
      detail: `removed skip ${gone.id} from ${gone.from} to ${gone.to}`,
    };
  },
};

/**
 * Applies one named mutation, or returns null when it cannot apply to this
 * DNA (or would break a limit). Never substitutes another mutation.
 */
export function applyMutation(dna: Dna, name: MutationName, rng: Rng): AppliedMutation & { dna: Dna } | null {
  const result = mutations[name](dna, rng);
  if (result === null) return null;
  if (dnaFaults(result.dna).length > 0) return null;
  return { name, detail: result.detail, dna: result.dna };
}

/**
 * Draws `k` mutations uniformly from the eleven (the paper's sampling) and
 * applies them in turn. A mutation that cannot apply is redrawn from the
 * ones not yet found inapplicable; IDENTITY always applies, so this ends.
 */
export function mutate(parent: Dna, rng: Rng, k = 1): MutationOutcome {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`mutations per child must be a positive integer, got ${k}`);
  let dna = parent;
  const applied: AppliedMutation[] = [];
  for (let i = 0; i < k; i++) {
    const excluded = new Set<MutationName>();
    for (;;) {
      const choices = MUTATIONS.filter((m) => !excluded.has(m));
      const name = rng.pick(choices);
      const result = applyMutation(dna, name, rng);
      if (result === null) {
        excluded.add(name);
        continue;
      }
      dna = result.dna;
      applied.push({ name: result.name, detail: result.detail });
      break;
    }
  }
  return { child: dna, applied, resetWeights: applied.some((m) => m.name === 'RESET-WEIGHTS') };
}
