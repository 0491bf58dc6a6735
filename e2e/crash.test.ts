/**
 * Crash safety: `kill -9` of the server at any moment, then a restart, gives
 * exactly the last committed population, no orphaned or missing weight
 * files, and the experiment carries on; leases in flight are re-issued.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../server/store/sqlite-store.ts';
import { getJson, startPetri, startServer, until, type RunningProcess } from './support/processes.ts';

const dir = mkdtempSync(join(tmpdir(), 'petri-crash-'));
const running: RunningProcess[] = [];

afterAll(async () => {
  for (const p of running) p.kill('SIGKILL');
  await Promise.all(running.map((p) => p.exited));
  rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** The committed state, read straight from the database file (WAL included). */
function snapshot(dataDir: string) {
  const db = new Database(join(dataDir, 'petri.db'), { readonly: true });
  try {
    const individuals = db.prepare('SELECT * FROM individuals ORDER BY id').all();
    const experiments = db.prepare('SELECT * FROM experiments ORDER BY id').all();
    return { individuals, experiments };
  } finally {
    db.close();
  }
}

/** The weights files on disk and the ones the committed state references. */
function weightFiles(dataDir: string): { files: Set<string>; referenced: Set<string>; alive: string[] } {
  const store = SqliteStore.open(join(dataDir, 'petri.db'));
  try {
    const files = new Set(readdirSync(join(dataDir, 'weights')).filter((f) => f.endsWith('.bin')).map((f) => f.slice(0, -4)));
    const alive = store.listExperiments().flatMap((e) => store.aliveIndividuals(e.id).flatMap((i) => (i.weightsSha256 === null ? [] : [i.weightsSha256])));
    return { files, referenced: store.referencedWeights(10), alive };
  } finally {
    store.close();
  }
}

describe('crash safety of the coordinator', () => {
  it('keeps exactly the committed population through repeated kill -9, and the experiment carries on', async () => {
    const dataDir = join(dir, 'data');
    const port = await freePort();
    const flags = ['--port', String(port), '--preset', 'quick', '--population', '4', '--steps', '60', '--max-children', '20', '--lease-ttl', '5'];
    let server = await startServer(dataDir, flags);
    let orphansSeen = 0;
    running.push(server);
    const url = `http://127.0.0.1:${port}`;
    const [exp] = await getJson<{ id: string }[]>(`${url}/api/experiments`);
    const workers = [1, 2].map((i) => startPetri(['worker', '--server', url, '--nickname', `w${i}`, '--cache-dir', join(dir, 'cache'), '--threads', '1']));
    running.push(...workers);

    const trained = async () => (await getJson<{ counts: { childrenTrained: number } }>(`${url}/api/experiments/${exp?.id}`)).counts.childrenTrained;
    for (let round = 0; round < 3; round++) {
      const before = await until(() => trained().catch(() => 0), 'the server answers');
      await until(async () => (await trained()) >= before + 2 || null, `two more children (round ${round})`, 120_000);
      server.kill('SIGKILL');
      expect(await server.exited).toBe('SIGKILL');

      const committed = snapshot(dataDir);
      expect(committed.individuals.length).toBeGreaterThanOrEqual(before + 2);
      const atCrash = weightFiles(dataDir);
      // Every alive individual's weights are on disk: the file is written before the row commits.
      for (const sha of atCrash.alive) expect(atCrash.files.has(sha), `weights ${sha} of an alive individual`).toBe(true);
      const orphans = [...atCrash.files].filter((f) => !atCrash.referenced.has(f));

      server = await startServer(dataDir, flags);
      running.push(server);
      // Recovery keeps every committed individual exactly as it was.
      expect(snapshot(dataDir).individuals).toEqual(committed.individuals);
      expect(server.output()).not.toMatch(/experiment \S+ created/);
      // Recovery deleted every file the committed state does not need (uploads cut off by the crash).
      const after = weightFiles(dataDir);
      for (const sha of orphans) expect(after.files.has(sha) && !after.referenced.has(sha), `orphaned weights ${sha} survived the restart`).toBe(false);
      for (const sha of after.alive) expect(after.files.has(sha), `weights ${sha} of an alive individual`).toBe(true);
      orphansSeen += orphans.length;
    }

    const done = await until(async () => {
      const e = await getJson<{ status: string; counts: { childrenTrained: number } }>(`${url}/api/experiments/${exp?.id}`);
      return e.status === 'finished' ? e : null;
    }, 'the experiment finishes after the crashes', 240_000, 500);
    expect(done.counts.childrenTrained).toBe(20);
    const final = snapshot(dataDir);
    expect(final.individuals).toHaveLength(20);
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    server.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    const end = weightFiles(dataDir);
    for (const sha of end.alive) expect(end.files.has(sha)).toBe(true);
    console.log(`crash test: ${orphansSeen} weight files orphaned by the kills were collected at restart`);
    expect(existsSync(join(dataDir, 'admin-token'))).toBe(true);
  });
});
