/**
 * The WebGPU training path submits each training step to the GPU queue as
 * one batch of commands (issue 9), where tf.js alone submits every 15
 * dispatches. Counted on Chromium's WebGPU (SwiftShader on this machine).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium } from './support/browser.ts';
import { buildTestPage } from './support/build-page.ts';
import { serveStatic } from './support/static-server.ts';

let browser: Browser;
let site: Awaited<ReturnType<typeof serveStatic>>;

beforeAll(async () => {
  site = await serveStatic(await buildTestPage('e2e/pages/webgpu-submit.ts'));
  browser = await launchChromium({ webgpu: true });
});

afterAll(async () => {
  await browser?.close();
  await site?.close();
});

async function submitsPerStep(petriSetting: boolean) {
  const page = await browser.newPage();
  try {
    await page.goto(site.url);
    await page.waitForFunction(() => document.title === 'ready');
    return await page.evaluate((p) => window.petriSubmitsPerStep(p), petriSetting);
  } finally {
    await page.close();
  }
}

describe('WebGPU training submissions', () => {
  it('are one per training step with Petri\'s setting, several with tf.js\'s default', async () => {
    const petri = await submitsPerStep(true);
    const stock = await submitsPerStep(false);
    for (const r of [petri, stock]) {
      expect(r.backend).toBe('webgpu');
      expect(r.perStep).toHaveLength(6);
      expect(Number.isFinite(r.lastLoss)).toBe(true);
    }
    console.log(`GPU queue submissions per training step: Petri ${petri.perStep.join(', ')}; tf.js default ${stock.perStep.join(', ')}`);
    // Steps 1-5 read nothing back; step 6 reads the loss, which submits what it needs.
    expect(petri.perStep.slice(0, 5)).toEqual([1, 1, 1, 1, 1]);
    for (const n of stock.perStep.slice(0, 5)) expect(n).toBeGreaterThan(1);
  }, 240_000);
});
