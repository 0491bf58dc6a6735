import { resolve } from 'node:path';
import { defineConfig } from 'vite';

/**
 * The browser pages: the volunteer page (/) and the live leaderboard
 * (/leaderboard). Built into dist/client, which the server serves. In
 * development, `npx vite` proxies the API and sockets to a running server.
 */
export default defineConfig({
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
  worker: { format: 'es' },
  server: {
    proxy: {
      '/api': 'http://localhost:3000',
      '/data': 'http://localhost:3000',
      '/socket.io': { target: 'http://localhost:3000', ws: true },
    },
  },
});
