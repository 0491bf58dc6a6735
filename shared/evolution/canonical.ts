/**
 * Canonical serialisation and content id of a DNA: the same DNA always gives
 * the same text, whatever the order of its arrays or object keys.
 */
import { sha256Hex } from '../util/sha256.ts';
import { idNumber, type Dna } from './dna.ts';

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
    return out;
  }
  return value;
}

const byId = (a: { id: string }, b: { id: string }) => idNumber(a.id) - idNumber(b.id);

/** Canonical JSON text of a DNA: keys sorted, vertices and edges by id number. */
export function canonicalDna(dna: Dna): string {
  return JSON.stringify(
    sortKeys({ ...dna, vertices: [...dna.vertices].sort(byId), edges: [...dna.edges].sort(byId) }),
  );
}

/** Stable content id of a DNA: `dna-` and the first 24 hex digits of SHA-256 of its canonical form. */
export function dnaId(dna: Dna): string {
  return `dna-${sha256Hex(canonicalDna(dna)).slice(0, 24)}`;
}
