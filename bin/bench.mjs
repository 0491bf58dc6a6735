#!/usr/bin/env node
// `npm run bench -- <name> [args...]`: runs bench/<name>.ts through tsx with the remaining arguments.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [name, ...args] = process.argv.slice(2);
const available = () =>
  readdirSync(join(root, 'bench'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3))
    .join(', ');
if (name === undefined || name.startsWith('-')) {
  console.error(`usage: npm run bench -- <name> [args...]\nbenchmarks: ${available()}`);
  process.exit(2);
}
const script = join(root, 'bench', `${name}.ts`);
if (!/^[\w.-]+$/.test(name) || !existsSync(script)) {
  console.error(`no benchmark bench/${name}.ts; benchmarks: ${available()}`);
  process.exit(2);
}
const run = spawnSync('npx', ['tsx', script, ...args], { cwd: root, stdio: 'inherit' });
process.exit(run.status ?? 1);
