/**
 * Cross-origin isolation for the pages and their scripts. With these two
 * headers on the page and on its worker script, the browser allows
 * SharedArrayBuffer, and tf.js's WebAssembly backend can run its threaded
 * build (XNNPACK on several cores: client/train/backend.ts). The pages load
 * nothing from other origins (API, data, sockets and assets are all on this
 * server), so `require-corp` blocks nothing they use.
 */
import type { ServerResponse } from 'node:http';

export const CROSS_ORIGIN_ISOLATION_HEADERS: Readonly<Record<string, string>> = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

/** Sets both headers on a response (an `express.static` `setHeaders` hook). */
export function setCrossOriginIsolation(res: ServerResponse): void {
  for (const [name, value] of Object.entries(CROSS_ORIGIN_ISOLATION_HEADERS)) res.setHeader(name, value);
}
