/**
 * Launches Debian's Chromium through playwright-core with the flags this
 * machine needs (see docs/TESTING.md): headless, no sandbox (root), no
 * background networking, and WebGPU on SwiftShader when asked.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type LaunchOptions } from 'playwright-core';

export const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The first Chromium/Chrome binary found, or a clear error saying how to install one. */
export function findChromium(explicit?: string): string {
  const candidates = explicit ? [explicit] : [process.env.PETRI_CHROME, ...CHROMIUM_CANDIDATES].filter((x): x is string => !!x);
  for (const path of candidates) if (existsSync(path)) return path;
  throw new Error(
    `no Chromium or Chrome found (tried ${candidates.join(', ')}); install one (Debian: apt-get install -y chromium) or pass its path`,
  );
}

export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

export async function launchChromium(options: { webgpu?: boolean; executablePath?: string } & LaunchOptions = {}): Promise<Browser> {
  const { webgpu = false, executablePath, ...rest } = options;
  return chromium.launch({
    executablePath: findChromium(executablePath),
    headless: true,
    args: [...CHROMIUM_FLAGS, ...(webgpu ? ['--enable-unsafe-webgpu', '--enable-features=Vulkan'] : [])],
    ...rest,
  });
}
