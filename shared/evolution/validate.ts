/**
 * Validation of DNA crossing any boundary (wire, disk, user input).
 * Structure is checked by a valibot schema (unknown fields refused); the
 * graph rules are checked after, each fault named in the message.
 */
import * as v from 'valibot';
import { DNA_FORMAT, LIMITS, isPowerOfTwo, type Dna } from './dna.ts';

const id = v.pipe(v.string(), v.regex(/^[ve][0-9]{1,9}$/, 'ids look like v12 or e7'));
const count = (min: number, max: number) => v.pipe(v.number(), v.finite(), v.integer(), v.minValue(min), v.maxValue(max));

const vertexSchema = v.strictObject({ id, activation: v.picklist(['linear', 'bn_relu']) });
const role = v.picklist(['backbone', 'skip']);
const edgeSchema = v.variant('type', [
  v.strictObject({ id, from: id, to: id, role, type: v.literal('identity') }),
  v.strictObject({
    id,
    from: id,
    to: id,
    role,
    type: v.literal('conv'),
    filterHeight: v.pipe(v.number(), v.finite(), v.integer()),
    filterWidth: v.pipe(v.number(), v.finite(), v.integer()),
    stride: v.pipe(v.number(), v.finite(), v.integer()),
    channels: v.pipe(v.number(), v.finite(), v.integer()),
  }),
]);

/** The structural schema of a DNA; graph rules are checked by {@link dnaFaults}. */
export const dnaSchema = v.strictObject({
  format: v.literal(DNA_FORMAT),
  inputShape: v.tuple([
    count(1, LIMITS.maxInputSide),
    count(1, LIMITS.maxInputSide),
    count(1, LIMITS.maxInputChannels),
  ]),
  numClasses: count(2, LIMITS.maxClasses),
  learningRate: v.pipe(v.number(), v.finite()),
  vertices: v.pipe(v.array(vertexSchema), v.maxLength(LIMITS.maxVertices)),
  edges: v.pipe(v.array(edgeSchema), v.maxLength(LIMITS.maxEdges)),
  input: id,
  output: id,
  nextId: count(0, 1e9),
});

/** Thrown when a DNA is malformed; `faults` lists every problem found. */
export class DnaError extends Error {
  constructor(readonly faults: readonly string[]) {
    super(`invalid DNA: ${faults.join('; ')}`);
    this.name = 'DnaError';
  }
}

/**
 * Parses untrusted input into a DNA or throws a {@link DnaError} naming each
 * fault (unknown field, wrong type, cycle, dangling edge, even filter, ...).
 */
export function parseDna(input: unknown): Dna {
  const result = v.safeParse(dnaSchema, input);
  if (!result.success) {
    throw new DnaError(
      result.issues.map((issue) => {
        const path = v.getDotPath(issue);
        return `${path ?? 'dna'}: ${issue.message}`;
      }),
    );
  }
  const dna = result.output as Dna;
  const faults = dnaFaults(dna);
  if (faults.length > 0) throw new DnaError(faults);
  return dna;
}

/** Throws a {@link DnaError} if a structurally typed DNA breaks a graph rule. */
export function assertValidDna(dna: Dna): void {
  const faults = dnaFaults(dna);
  if (faults.length > 0) throw new DnaError(faults);
}

/** Every graph-rule fault of a DNA, as messages; empty when valid. */
export function dnaFaults(dna: Dna): string[] {
  const faults: string[] = [];
  if (!(dna.learningRate >= LIMITS.minLearningRate && dna.learningRate <= LIMITS.maxLearningRate)) {
    faults.push(`learning rate ${dna.learningRate} is outside [${LIMITS.minLearningRate}, ${LIMITS.maxLearningRate}]`);
  }
  const vertexIds = new Set<string>();
  for (const vx of dna.vertices) {
    if (!vx.id.startsWith('v')) faults.push(`vertex id ${vx.id} must start with "v"`);
    if (vertexIds.has(vx.id)) faults.push(`duplicate vertex id ${vx.id}`);
    vertexIds.add(vx.id);
  }
  if (!vertexIds.has(dna.input)) faults.push(`missing input vertex ${dna.input}`);
  const inputVertex = dna.vertices.find((vx) => vx.id === dna.input);
  if (inputVertex !== undefined && inputVertex.activation !== 'linear') {
    faults.push(`the input vertex ${dna.input} must be linear (it is the image)`);
  }
  if (!vertexIds.has(dna.output)) faults.push(`missing output vertex ${dna.output}`);
  if (dna.input === dna.output) faults.push('the input vertex cannot be the output vertex');

  const edgeIds = new Set<string>();
  const skipPairs = new Set<string>();
  const backboneIn = new Map<string, number>();
  const backboneOut = new Map<string, number>();
  for (const e of dna.edges) {
    if (!e.id.startsWith('e')) faults.push(`edge id ${e.id} must start with "e"`);
    if (edgeIds.has(e.id) || vertexIds.has(e.id)) faults.push(`duplicate id ${e.id}`);
    edgeIds.add(e.id);
    if (!vertexIds.has(e.from)) faults.push(`dangling edge ${e.id}: no vertex ${e.from}`);
    if (!vertexIds.has(e.to)) faults.push(`dangling edge ${e.id}: no vertex ${e.to}`);
    if (e.from === e.to) faults.push(`edge ${e.id} is a self-loop on ${e.from}, a cycle`);
    if (e.to === dna.input) faults.push(`edge ${e.id} enters the input vertex ${dna.input}`);
    if (e.from === dna.output) faults.push(`edge ${e.id} leaves the output vertex ${dna.output}`);
    if (e.type === 'conv') {
      for (const [name, size] of [['height', e.filterHeight], ['width', e.filterWidth]] as const) {
        if (size % 2 === 0) faults.push(`edge ${e.id}: even filter ${name} ${size} (must be odd)`);
        if (size < 1 || size > LIMITS.maxFilter) {
          faults.push(`edge ${e.id}: filter ${name} ${size} outside [1, ${LIMITS.maxFilter}]`);
        }
      }
      if (!isPowerOfTwo(e.stride) || e.stride > LIMITS.maxStride) {
        faults.push(`edge ${e.id}: stride ${e.stride} is not a power of two in [1, ${LIMITS.maxStride}]`);
      }
      if (e.channels < 1 || e.channels > LIMITS.maxChannels) {
        faults.push(`edge ${e.id}: channels ${e.channels} out of range [1, ${LIMITS.maxChannels}]`);
      }
    }
    if (e.role === 'backbone') {
      backboneIn.set(e.to, (backboneIn.get(e.to) ?? 0) + 1);
      backboneOut.set(e.from, (backboneOut.get(e.from) ?? 0) + 1);
    } else {
      if (e.type !== 'identity') faults.push(`skip edge ${e.id} must be an identity connection`);
      const pair = `${e.from}->${e.to}`;
      if (skipPairs.has(pair)) faults.push(`duplicate skip edge ${e.id} from ${e.from} to ${e.to}`);
      skipPairs.add(pair);
    }
  }
  if (dna.nextId <= maxIdNumber(dna)) faults.push(`nextId ${dna.nextId} is not above every id in use`);
  if (faults.length > 0) return faults;

  const cycle = findCycle(dna);
  if (cycle !== null) return [`cycle through ${cycle.join(' -> ')}`];

  for (const vx of dna.vertices) {
    const ins = backboneIn.get(vx.id) ?? 0;
    const outs = backboneOut.get(vx.id) ?? 0;
    if (vx.id !== dna.input && ins !== 1) faults.push(`vertex ${vx.id} has ${ins} backbone inputs (needs exactly 1)`);
    if (vx.id !== dna.output && outs !== 1) faults.push(`vertex ${vx.id} has ${outs} backbone outputs (needs exactly 1)`);
  }
  if (faults.length > 0) return faults;
  // With one backbone edge in and out of each vertex and no cycle, the
  // backbone is one chain from the input; check it reaches every vertex.
  const next = new Map<string, string>();
  for (const e of dna.edges) if (e.role === 'backbone') next.set(e.from, e.to);
  let at: string | undefined = dna.input;
  const seen = new Set<string>();
  while (at !== undefined && !seen.has(at)) {
    seen.add(at);
    at = next.get(at);
  }
  for (const vx of dna.vertices) {
    if (!seen.has(vx.id)) faults.push(`vertex ${vx.id} is not on the backbone from the input`);
  }
  if (!seen.has(dna.output)) faults.push(`the backbone does not reach the output vertex ${dna.output}`);
  return faults;
}

function maxIdNumber(dna: Dna): number {
  let max = -1;
  for (const x of [...dna.vertices, ...dna.edges]) max = Math.max(max, Number.parseInt(x.id.slice(1), 10));
  return max;
}

/** A cycle as a list of vertex ids, or null (iterative DFS with colours). */
function findCycle(dna: Dna): string[] | null {
  const outs = new Map<string, string[]>();
  for (const e of dna.edges) outs.set(e.from, [...(outs.get(e.from) ?? []), e.to]);
  const colour = new Map<string, 1 | 2>();
  for (const start of dna.vertices) {
    if (colour.has(start.id)) continue;
    const stack: { id: string; i: number }[] = [{ id: start.id, i: 0 }];
    const path: string[] = [start.id];
    colour.set(start.id, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as { id: string; i: number };
      const children = outs.get(top.id) ?? [];
      if (top.i >= children.length) {
        colour.set(top.id, 2);
        stack.pop();
        path.pop();
        continue;
      }
      const child = children[top.i++] as string;
      const c = colour.get(child);
      if (c === 1) return [...path.slice(path.indexOf(child)), child];
      if (c === undefined) {
        colour.set(child, 1);
        stack.push({ id: child, i: 0 });
        path.push(child);
      }
    }
  }
  return null;
}
