/**
 * Launches Debian's Chromium through playwright-core with the flags this
 * machine needs (see ../shared/MACHINE-FACTS.md): headless, no sandbox (root), no
 * background networking, and WebGPU on SwiftShader when asked. The finding
 * and the flags live in server/worker/browser-worker.ts, which
 * `petri worker --browser` uses too.
 */
import { chromium, type Browser, type LaunchOptions } from 'playwright-core';
import { CHROMIUM_CANDIDATES, CHROMIUM_FLAGS, chromiumLaunchOptions, findChromium } from '../../server/worker/browser-worker.ts';

export { CHROMIUM_CANDIDATES, CHROMIUM_FLAGS, findChromium };

export async function launchChromium(options: { webgpu?: boolean; executablePath?: string } & LaunchOptions = {}): Promise<Browser> {
  return chromium.launch(chromiumLaunchOptions(options));
}
