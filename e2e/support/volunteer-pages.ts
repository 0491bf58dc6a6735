/**
 * Builds the volunteer page (client/index.html and everything it loads)
 * with the project's Vite config, once per content: the output goes to
 * .cache/volunteer-pages/<hash of the sources>, so test files in one run,
 * and later runs with unchanged sources, share one build. Only the
 * volunteer page is built (the leaderboard is another page's business).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'vite';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const SOURCES = ['client', 'shared', 'public', 'vite.config.ts', 'package-lock.json'];

function walk(path: string, out: string[]): void {
  if (!existsSync(path)) return;
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) if (!name.startsWith('.') && name !== 'node_modules') walk(join(path, name), out);
  } else if (!path.endsWith('.test.ts')) out.push(path);
}

/** SHA-256 over the paths and contents of everything the page is built from. */
export function volunteerSourceHash(): string {
  const files: string[] = [];
  for (const s of SOURCES) walk(join(ROOT, s), files);
  const hash = createHash('sha256');
  for (const f of files) hash.update(relative(ROOT, f)).update('\0').update(readFileSync(f)).update('\0');
  return hash.digest('hex').slice(0, 16);
}

/** Only the volunteer page as the build input. */
function volunteerOnly(): Plugin {
  return {
    name: 'petri-volunteer-only',
    config(config) {
      const options = (config.build ??= {});
      const rollup = (options.rollupOptions ??= {});
      rollup.input = { volunteer: join(ROOT, 'client/index.html') };
    },
  };
}

/** Keeps the newest few builds, so .cache does not grow with every change of the sources. */
function prune(parent: string, keep: number): void {
  const builds = readdirSync(parent)
    .filter((name) => /^[0-9a-f]{16}$/.test(name))
    .map((name) => ({ path: join(parent, name), at: statSync(join(parent, name)).mtimeMs }))
    .sort((a, b) => b.at - a.at);
  for (const old of builds.slice(keep)) rmSync(old.path, { recursive: true, force: true });
}

let pending: Promise<string> | null = null;

/** The folder of the built volunteer page (building it if its sources changed). */
export function buildVolunteerPages(): Promise<string> {
  pending ??= (async () => {
    const out = join(ROOT, '.cache', 'volunteer-pages', volunteerSourceHash());
    if (existsSync(join(out, 'index.html'))) {
      prune(join(ROOT, '.cache', 'volunteer-pages'), 3);
      return out;
    }
    const tmp = `${out}.${process.pid}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(join(ROOT, '.cache', 'volunteer-pages'), { recursive: true });
    await build({
      configFile: join(ROOT, 'vite.config.ts'),
      logLevel: 'warn',
      build: { outDir: tmp, emptyOutDir: true, reportCompressedSize: false },
      plugins: [volunteerOnly()],
    });
    if (!existsSync(join(out, 'index.html'))) {
      rmSync(out, { recursive: true, force: true });
      renameSync(tmp, out);
    } else rmSync(tmp, { recursive: true, force: true });
    prune(join(ROOT, '.cache', 'volunteer-pages'), 3);
    return out;
  })();
  return pending;
}
