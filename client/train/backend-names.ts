/** Backend names for people and for the address bar; no tf.js here (the page imports it). */
import { BACKENDS, type Backend } from '../../shared/protocol.ts';

export const BACKEND_LABELS: Record<Backend, string> = {
  webgpu: 'WebGPU',
  webgl: 'WebGL',
  wasm: 'WebAssembly',
  cpu: 'JavaScript (CPU)',
};

/** `?backend=wasm` and the like; null for anything else. */
export function parseBackend(text: string | null | undefined): Backend | null {
  const t = (text ?? '').trim().toLowerCase();
  return (BACKENDS as readonly string[]).includes(t) ? (t as Backend) : null;
}
