/**
 * Builds the leaderboard page with Vite into a temp folder (what `vite build`
 * makes of client/leaderboard.html), to be served by a test server through
 * startPetriServer's `clientDir`. Only this page: the test neither needs nor
 * touches the volunteer page or dist/.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export async function buildLeaderboardPage(outDir = mkdtempSync(join(tmpdir(), 'petri-leaderboard-'))): Promise<string> {
  await build({
    configFile: false,
    root: join(ROOT, 'client'),
    publicDir: join(ROOT, 'public'),
    logLevel: 'warn',
    build: {
      outDir,
      emptyOutDir: true,
      target: 'es2022',
      reportCompressedSize: false,
      chunkSizeWarningLimit: 4096,
      rollupOptions: { input: { leaderboard: join(ROOT, 'client/leaderboard.html') } },
    },
    worker: { format: 'es' },
  });
  return outDir;
}
