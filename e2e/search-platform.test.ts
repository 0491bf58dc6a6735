/**
 * Smoke run of the platform search benchmark (bench/search-platform.ts):
 * synthetic data, a tiny budget; every run is a real `petri serve` with
 * local `petri worker` processes. Checks that the runs complete through the
 * platform (equal trainings, the server's compute accounting, random search
 * without parents, the reset applied through the admin API) and that the
 * report is written. Search quality is measured by the runs in
 * docs/RESULTS.md, not here.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'petri-search-platform-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Run {
  kind: string;
  trainings: number;
  totalFlops: number;
  bestValidation: number;
  bestTest: number;
  remedies: { kind: string; atTraining: number }[];
  trace: { flops: number; best: number; event: string }[];
}

describe('bench/search-platform.ts --smoke', () => {
  it('runs evolution, random search and a reset through petri serve + petri worker and writes the report', () => {
    const out = join(work, 'out');
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'bench/search-platform.ts', '--smoke', '--dataset', 'synthetic', '--data-dir', join(work, 'data'), '--runs', 'evolution,random,reset', '--patience', '1', '--any-plateau', '--out', out],
      { cwd: root, encoding: 'utf8', timeout: 240_000 },
    );
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toMatch(/\[evolution seed 1\] server http:\/\/127\.0\.0\.1:\d+/);

    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as { format: string; options: { via: string }; runs: Run[] };
    expect(report.format).toBe('petri-search-report/1');
    expect(report.options.via).toMatch(/petri serve/);
    expect(report.runs.map((r) => r.kind)).toEqual(['evolution', 'random', 'reset']);
    for (const r of report.runs) {
      // --max-children 8: every run trains exactly its budget, the initial population included.
      expect(r.trainings).toBe(8);
      expect(r.trace).toHaveLength(8);
      expect(r.totalFlops).toBe(r.trace.at(-1)?.flops);
      expect(r.bestValidation).toBeGreaterThan(0);
      expect(r.bestTest).toBeGreaterThan(0);
      for (let i = 1; i < r.trace.length; i++) expect(r.trace[i]!.best).toBeGreaterThanOrEqual(r.trace[i - 1]!.best);
      expect(r.trace.slice(0, 3).every((t) => t.event === 'initial')).toBe(true);
    }
    const [evolution, random] = report.runs;
    expect(evolution!.trace.slice(3).every((t) => t.event === 'child')).toBe(true);
    expect(random!.trace.slice(3).every((t) => t.event === 'random')).toBe(true);
    // The reset went through the admin API at the first plateau: every member retrained from fresh weights.
    const reset = report.runs[2]!;
    expect(reset.remedies).toHaveLength(1);
    expect(reset.remedies[0]?.kind).toBe('reset');
    expect(reset.trace.filter((t) => t.event === 'reset').length).toBeGreaterThanOrEqual(1);
    expect(existsSync(join(out, 'progress.svg'))).toBe(true);
    expect(existsSync(join(out, 'reset-seed1.csv'))).toBe(true);
  });
});
