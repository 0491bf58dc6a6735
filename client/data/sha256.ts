/**
 * SHA-256 of bytes as lowercase hex: SubtleCrypto where the page is a secure
 * context (https, localhost), else the project's plain TypeScript hash, so
 * a Petri server on a LAN address over http still works.
 */
import { sha256Hex } from '../../shared/util/sha256.ts';

export async function sha256(bytes: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) return sha256Hex(bytes);
  const digest = new Uint8Array(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  let hex = '';
  for (const b of digest) hex += b.toString(16).padStart(2, '0');
  return hex;
}
