/**
 * The same seed and parent give the same child, bit for bit, in Node and in
 * Chromium: the evolution core is the same code and the same arithmetic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { canonicalDna, createRng, dnaId, initialDna, mutate, type Dna } from '../shared/evolution/index.ts';
import { referenceDnas } from '../shared/evolution/fixtures.ts';
import { launchChromium } from './support/browser.ts';
import { buildTestPage } from './support/build-page.ts';
import { serveStatic } from './support/static-server.ts';

let browser: Browser;
let site: Awaited<ReturnType<typeof serveStatic>>;

beforeAll(async () => {
  site = await serveStatic(await buildTestPage('e2e/pages/determinism.ts'));
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await site?.close();
});

describe('determinism across Node and Chromium', () => {
  it('gives the same child DNA and content id from the same seed and parent', async () => {
    // Parents: the references and a few evolved ones, so every mutation has material.
    const parents: Dna[] = referenceDnas().map((r) => r.dna);
    let evolved = initialDna([32, 32, 3], 10);
    const rng = createRng('parents');
    for (let i = 0; i < 40; i++) {
      evolved = mutate(evolved, rng).child;
      if (i % 10 === 9) parents.push(evolved);
    }
    const cases = [];
    for (let i = 0; i < 400; i++) cases.push({ seed: `case-${i}`, parent: parents[i % parents.length] as Dna, k: i % 5 === 0 ? 5 : 1 });

    const page = await browser.newPage();
    await page.goto(site.url);
    await page.waitForFunction(() => document.title === 'ready');
    const fromBrowser = await page.evaluate((c) => window.petriMutate(c), cases);
    await page.close();

    const fromNode = cases.map(({ seed, parent, k }) => {
      const outcome = mutate(parent, createRng(seed), k);
      return { id: dnaId(outcome.child), text: canonicalDna(outcome.child), applied: outcome.applied.map((m) => m.name) };
    });
    expect(fromBrowser).toHaveLength(400);
    expect(fromBrowser).toEqual(fromNode);
    // The cases really exercise the mutations (not 400 IDENTITY children).
    expect(new Set(fromNode.flatMap((r) => r.applied)).size).toBe(11);
  });
});
