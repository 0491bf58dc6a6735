/**
 * The DNA of an individual, as in Real et al. 2017 (see docs/SPEC.md):
 * a DAG whose vertices are rank-3 activation tensors (linear, or batch-norm
 * followed by ReLU) and whose edges are identity connections or convolutions
 * (no bias, odd filter sizes, power-of-two stride, a channel count), plus the
 * learning rate.
 *
 * Every vertex lies on the backbone, a chain of `backbone` edges from the
 * input vertex to the output vertex; a backbone edge is the primary input of
 * its target and sets the target's shape. `skip` edges are identity
 * connections that are adapted to that shape (striding for space, truncation
 * or zero-padding for channels) and summed in. After the output vertex come
 * global average pooling and a linear softmax classifier.
 *
 * Vertex and edge ids are stable across mutations: a tensor keeps its id from
 * parent to child, which is what weight inheritance keys on.
 */

/** The activation of a vertex, applied to the sum of its inputs. */
export type Activation = 'linear' | 'bn_relu';

export interface Vertex {
  readonly id: string;
  readonly activation: Activation;
}

/** `backbone`: the primary input of its target; `skip`: an extra, adapted input. */
export type EdgeRole = 'backbone' | 'skip';

export interface IdentityEdge {
  readonly id: string;
  readonly from: string;
  readonly to: string;
  readonly role: EdgeRole;
  readonly type: 'identity';
}

export interface ConvEdge {
  readonly id: string;
  readonly from: string;
  readonly to: string;
  readonly role: EdgeRole;
  readonly type: 'conv';
  /** Odd, in [1, MAX_FILTER]. */
  readonly filterHeight: number;
  /** Odd, in [1, MAX_FILTER]. */
  readonly filterWidth: number;
  /** A power of two in [1, MAX_STRIDE], the same along both spatial axes. */
  readonly stride: number;
  /** Output channels, in [1, MAX_CHANNELS]. */
  readonly channels: number;
}

export type Edge = IdentityEdge | ConvEdge;

export interface Dna {
  readonly format: typeof DNA_FORMAT;
  /** [height, width, channels] of the input images. */
  readonly inputShape: readonly [number, number, number];
  readonly numClasses: number;
  readonly learningRate: number;
  readonly vertices: readonly Vertex[];
  readonly edges: readonly Edge[];
  /** Id of the input vertex (the image). */
  readonly input: string;
  /** Id of the output vertex (then pooling and the classifier). */
  readonly output: string;
  /** The next free number for a new vertex (`v<n>`) or edge (`e<n>`) id. */
  readonly nextId: number;
}

export const DNA_FORMAT = 'petri-dna/1';

/** Limits that keep every DNA trainable in a browser tab. */
export const LIMITS = {
  maxVertices: 64,
  maxEdges: 256,
  maxChannels: 1024,
  maxFilter: 15,
  maxStride: 16,
  minLearningRate: 1e-6,
  maxLearningRate: 10,
  maxInputSide: 512,
  maxInputChannels: 16,
  maxClasses: 1000,
} as const;

/** The learning rate of every initial individual (the paper's 0.1). */
export const INITIAL_LEARNING_RATE = 0.1;

/**
 * The paper's initial individual: no convolutions, the input goes straight
 * to global pooling and the linear classifier.
 */
export function initialDna(inputShape: readonly [number, number, number], numClasses: number): Dna {
  return {
    format: DNA_FORMAT,
    inputShape: [inputShape[0], inputShape[1], inputShape[2]],
    numClasses,
    learningRate: INITIAL_LEARNING_RATE,
    vertices: [
      { id: 'v0', activation: 'linear' },
      { id: 'v1', activation: 'linear' },
    ],
    edges: [{ id: 'e2', from: 'v0', to: 'v1', role: 'backbone', type: 'identity' }],
    input: 'v0',
    output: 'v1',
    nextId: 3,
  };
}

/** True for 1, 2, 4, 8, ... */
export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

/** The vertices in backbone order, input first (assumes a valid DNA). */
export function backboneOrder(dna: Dna): Vertex[] {
  const byId = new Map(dna.vertices.map((v) => [v.id, v]));
  const next = new Map<string, string>();
  for (const e of dna.edges) if (e.role === 'backbone') next.set(e.from, e.to);
  const order: Vertex[] = [];
  let at: string | undefined = dna.input;
  while (at !== undefined && order.length <= dna.vertices.length) {
    const v = byId.get(at);
    if (v === undefined) break;
    order.push(v);
    at = next.get(at);
  }
  return order;
}

/** The backbone edges in order from the input (assumes a valid DNA). */
export function backboneEdges(dna: Dna): Edge[] {
  const out = new Map<string, Edge>();
  for (const e of dna.edges) if (e.role === 'backbone') out.set(e.from, e);
  const edges: Edge[] = [];
  let at = dna.input;
  for (let e = out.get(at); e !== undefined; e = out.get(at)) {
    edges.push(e);
    at = e.to;
    if (edges.length > dna.edges.length) break;
  }
  return edges;
}

/** Shape [height, width, channels] of every vertex, from the backbone. */
export function vertexShapes(dna: Dna): Map<string, [number, number, number]> {
  const shapes = new Map<string, [number, number, number]>();
  shapes.set(dna.input, [dna.inputShape[0], dna.inputShape[1], dna.inputShape[2]]);
  for (const e of backboneEdges(dna)) {
    const s = shapes.get(e.from);
    if (s === undefined) break;
    shapes.set(e.to, edgeOutputShape(e, s));
  }
  return shapes;
}

/** Output shape of an edge given its input shape ('same' padding). */
export function edgeOutputShape(e: Edge, input: readonly [number, number, number]): [number, number, number] {
  if (e.type === 'identity') return [input[0], input[1], input[2]];
  return [Math.ceil(input[0] / e.stride), Math.ceil(input[1] / e.stride), e.channels];
}

/**
 * How a skip input of shape `from` is adapted to a vertex of shape `to`:
 * spatial striding by a power of two and channel truncation or zero-padding.
 * Returns null when no adaptation is needed.
 */
export function skipAdapter(
  from: readonly [number, number, number],
  to: readonly [number, number, number],
): { stride: number; inChannels: number; outChannels: number } | null {
  let stride = 1;
  while (Math.ceil(from[0] / stride) > to[0] || Math.ceil(from[1] / stride) > to[1]) stride *= 2;
  if (Math.ceil(from[0] / stride) !== to[0] || Math.ceil(from[1] / stride) !== to[1]) {
    throw new Error(`cannot adapt a skip of spatial size ${from[0]}x${from[1]} to ${to[0]}x${to[1]}`);
  }
  if (stride === 1 && from[2] === to[2]) return null;
  return { stride, inChannels: from[2], outChannels: to[2] };
}

/** Numeric part of an id like `v12` or `e7`. */
export function idNumber(id: string): number {
  return Number.parseInt(id.slice(1), 10);
}
