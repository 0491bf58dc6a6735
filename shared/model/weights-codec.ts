/**
 * The weights binary that travels between workers and the server: a small
 * header, then every tensor of the DNA as float32 little-endian, in the
 * canonical order of evolution/tensors.ts. Shapes are not stored: the DNA
 * implies them, so a binary that does not fit its DNA is refused.
 *
 * Layout: "PTRW" | u32 version (1) | u32 tensor count | u32 total floats | floats...
 */
import type { Dna } from '../evolution/dna.ts';
import { sizeOf, tensorSpecs } from '../evolution/tensors.ts';
import type { WeightMap } from './weights.ts';

const MAGIC = 0x57525450; // "PTRW" read as little-endian u32
const VERSION = 1;
const HEADER_BYTES = 16;

export class WeightsFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WeightsFormatError';
  }
}

/** Bytes of the weights binary of a DNA. */
export function weightsByteLength(dna: Dna): number {
  let floats = 0;
  for (const spec of tensorSpecs(dna)) floats += sizeOf(spec.shape);
  return HEADER_BYTES + floats * 4;
}

/** Encodes a complete weight map of a DNA. */
export function encodeWeights(dna: Dna, weights: WeightMap): Uint8Array {
  const specs = tensorSpecs(dna);
  const bytes = new Uint8Array(weightsByteLength(dna));
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, specs.length, true);
  view.setUint32(12, (bytes.length - HEADER_BYTES) / 4, true);
  let offset = HEADER_BYTES;
  for (const spec of specs) {
    const values = weights.get(spec.key);
    if (values === undefined) throw new WeightsFormatError(`missing tensor ${spec.key}`);
    if (values.length !== sizeOf(spec.shape)) throw new WeightsFormatError(`tensor ${spec.key} has the wrong size`);
    for (let i = 0; i < values.length; i++, offset += 4) view.setFloat32(offset, values[i] as number, true);
  }
  return bytes;
}

/**
 * Decodes and checks a weights binary against the DNA it claims to fit:
 * header, exact length, tensor count, and every value finite.
 */
export function decodeWeights(dna: Dna, bytes: Uint8Array): WeightMap {
  const specs = tensorSpecs(dna);
  const expected = weightsByteLength(dna);
  if (bytes.length !== expected) {
    throw new WeightsFormatError(`weights are ${bytes.length} bytes; this DNA's tensors need exactly ${expected}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new WeightsFormatError('not a Petri weights binary (bad magic)');
  if (view.getUint32(4, true) !== VERSION) throw new WeightsFormatError(`unsupported weights version ${view.getUint32(4, true)}`);
  if (view.getUint32(8, true) !== specs.length) {
    throw new WeightsFormatError(`weights hold ${view.getUint32(8, true)} tensors; this DNA has ${specs.length}`);
  }
  const map: WeightMap = new Map();
  let offset = HEADER_BYTES;
  for (const spec of specs) {
    const values = new Float32Array(sizeOf(spec.shape));
    for (let i = 0; i < values.length; i++, offset += 4) {
      const x = view.getFloat32(offset, true);
      if (!Number.isFinite(x)) throw new WeightsFormatError(`tensor ${spec.key} holds a non-finite value at index ${i}`);
      values[i] = x;
    }
    map.set(spec.key, values);
  }
  return map;
}
