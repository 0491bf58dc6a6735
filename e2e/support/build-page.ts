/**
 * Builds a small test page with Vite from a TypeScript entry, so browser
 * tests run the project's real modules (shared/) as the browser gets them.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'vite';

/** Builds `entry` into a temp folder with an index.html and returns the folder. */
export async function buildTestPage(entry: string): Promise<string> {
  const root = mkdtempSync(join(tmpdir(), 'petri-page-'));
  writeFileSync(
    join(root, 'index.html'),
    `<!doctype html><html><head><meta charset="utf-8"><title>petri test</title></head>` +
      `<body><script type="module" src="/@fs${resolve(entry)}"></script></body></html>`,
  );
  const outDir = join(root, 'dist');
  await build({
    root,
    logLevel: 'warn',
    configFile: false,
    build: { outDir, emptyOutDir: true, target: 'es2022', minify: false, reportCompressedSize: false },
    server: { fs: { strict: false } },
  });
  return outDir;
}
