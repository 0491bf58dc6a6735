/**
 * Smoke test of the search benchmark (bench/search.ts): the synthetic
 * dataset, a tiny budget, all four runs; checks only that the run completes
 * and writes a sane report.json and progress.svg. Search quality is measured
 * by the real runs in docs/RESULTS.md, not here.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'petri-search-smoke-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('bench/search.ts --smoke', () => {
  it('runs evolution, random, no-inherit and hand on synthetic data and writes its report', () => {
    const out = join(work, 'out');
    const run = spawnSync(
      process.execPath,
      ['--import', 'tsx', 'bench/search.ts', '--smoke', '--dataset', 'synthetic', '--data-dir', join(work, 'data'), '--seeds', '1', '--runs', 'evolution,random,no-inherit,hand', '--out', out, '--quiet'],
      { cwd: root, encoding: 'utf8', timeout: 100_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('| evolution');

    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as {
      format: string;
      dataset: string;
      runs: { kind: string; seed: number; trainings: number; totalFlops: number; bestValidation: number; bestTest: number; trace: { flops: number; best: number }[] }[];
      summary: { kind: string }[];
    };
    expect(report.format).toBe('petri-search-report/1');
    expect(report.dataset).toBe('synthetic');
    expect(report.runs.map((r) => r.kind).sort()).toEqual(['evolution', 'hand', 'no-inherit', 'random']);
    expect(report.summary.map((s) => s.kind).sort()).toEqual(['evolution', 'hand', 'no-inherit', 'random']);
    const evolution = report.runs.find((r) => r.kind === 'evolution');
    const hand = report.runs.find((r) => r.kind === 'hand');
    for (const r of report.runs) {
      expect(r.seed).toBe(1);
      expect(r.trainings).toBeGreaterThan(0);
      expect(r.totalFlops).toBeGreaterThan(0);
      expect(r.bestValidation).toBeGreaterThanOrEqual(0);
      expect(r.bestValidation).toBeLessThanOrEqual(1);
      expect(r.bestTest).toBeGreaterThanOrEqual(0);
      expect(r.bestTest).toBeLessThanOrEqual(1);
      expect(r.trace.length).toBe(r.trainings);
      // The curve: cumulative FLOPs grow, the best so far never falls.
      for (let i = 1; i < r.trace.length; i++) {
        expect(r.trace[i]!.flops).toBeGreaterThan(r.trace[i - 1]!.flops);
        expect(r.trace[i]!.best).toBeGreaterThanOrEqual(r.trace[i - 1]!.best);
      }
    }
    // Equal budgets: as many trainings for the searches; the hand CNN gets the evolution run's FLOPs.
    expect(report.runs.filter((r) => r.kind !== 'hand').every((r) => r.trainings === evolution!.trainings)).toBe(true);
    expect(hand!.totalFlops).toBeGreaterThan(0);

    const svg = readFileSync(join(out, 'progress.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect((svg.match(/<polyline /g) ?? []).length).toBeGreaterThanOrEqual(4);
    for (const kind of ['evolution', 'random', 'no-inherit', 'hand']) expect(svg).toContain(kind);
  });
});
