// Debian's Chromium, headless, driven by playwright-core (never a downloaded browser), and the
// project's own static server. Shared by the browser tests and the benchmark.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../../scripts/serve.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** `faults`: startServer's hook for faulty responses (scripts/serve.mjs). */
export async function withBrowser(fn, { webgpu = false, isolated = true, faults } = {}) {
  const { server, url } = await startServer({ port: 0, extraMounts: { '/tests/': 'tests/browser' }, isolated, faults });
  const profile = mkdtempSync(join(tmpdir(), 'edgellm-chromium-'));
  const args = [
    '--headless=new', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`,
    ...(webgpu ? ['--enable-unsafe-webgpu'] : []),
  ];
  // launchPersistentContext takes the profile directory itself instead of a flag.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: args.filter((a) => !a.startsWith('--user-data-dir') && a !== '--headless=new'),
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  try {
    return await fn({ page, url, logs, context });
  } finally {
    await context.close();
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
