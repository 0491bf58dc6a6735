import { resolve } from 'node:path';
import { defineConfig, type Plugin } from 'vite';
import { CROSS_ORIGIN_ISOLATION_HEADERS } from './server/http/isolation.ts';

/**
 * The browser pages: the volunteer page (/) and the live leaderboard
 * (/leaderboard). Built into dist/client, which the server serves. In
 * development, `npx vite` proxies the API and sockets to a running server.
 * Both the dev server and `vite preview` send the same cross-origin
 * isolation headers as the Petri server (server/http/isolation.ts), so that
 * tf.js wasm runs multi-threaded there too.
 */
/**
 * tfjs-backend-wasm starts its pthread workers with the source text of its
 * threaded module factory (`factory.toString()`), evaluated there on its
 * own. The factory reads one variable of its enclosing closure,
 * `_scriptDir`, behind a `typeof` guard; minified, the variable gets a short
 * name and the guard is dropped (the minifier knows it is declared), so every
 * pthread worker dies with "ReferenceError: e is not defined" and the
 * threaded backend never starts. Turning that variable into a property of
 * globalThis keeps the text self-contained (it is undefined in the workers,
 * which is what the guard meant; the wasm paths come from setWasmPaths).
 */
function selfContainedWasmThreadFactory(): Plugin {
  return {
    name: 'petri-tfjs-wasm-thread-factory',
    transform(code, id) {
      if (!/tfjs-backend-wasm[\\/]wasm-out[\\/]tfjs-backend-wasm-threaded-simd\.js$/.test(id)) return null;
      const declared = /var _scriptDir = [^\n]*\n[^\n]*_scriptDir = _scriptDir \|\| __filename;\n/;
      if (!declared.test(code)) throw new Error(`${id}: tfjs-backend-wasm changed; revisit selfContainedWasmThreadFactory in vite.config.ts`);
      const out = code
        .replace(declared, '')
        .replace(/typeof _scriptDir !== "undefined" && _scriptDir/g, 'globalThis.__petriWasmScriptDir')
        .replace(/\b_scriptDir\b/g, 'globalThis.__petriWasmScriptDir');
      return { code: out, map: null };
    },
  };
}

export default defineConfig({
  plugins: [selfContainedWasmThreadFactory()],
  root: 'client',
  publicDir: resolve(import.meta.dirname, 'public'),
  build: {
    outDir: resolve(import.meta.dirname, 'dist/client'),
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: {
      input: {
        volunteer: resolve(import.meta.dirname, 'client/index.html'),
        leaderboard: resolve(import.meta.dirname, 'client/leaderboard.html'),
      },
    },
  },
  worker: { format: 'es', plugins: () => [selfContainedWasmThreadFactory()] },
  preview: { headers: { ...CROSS_ORIGIN_ISOLATION_HEADERS } },
  server: {
    headers: { ...CROSS_ORIGIN_ISOLATION_HEADERS },
    proxy: {
      '/api': 'http://localhost:3000',
      '/data': 'http://localhost:3000',
      '/socket.io': { target: 'http://localhost:3000', ws: true },
    },
  },
});
