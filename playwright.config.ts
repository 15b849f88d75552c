import { existsSync } from 'node:fs'
import { defineConfig } from '@playwright/test'

/** Port of the Vite dev server that serves test fixtures (and /src) on localhost. */
export const VITE_PORT = Number(process.env.DPOP_TEST_VITE_PORT ?? 5199)

// Debian's Chromium where it is installed (this machine and CI); Playwright's own
// browser on machines that have one. The flags keep a headless Chromium from
// reaching for the network, which this sandbox refuses.
const systemChromium = '/usr/bin/chromium'
const executablePath = process.env.CHROMIUM_PATH ?? (existsSync(systemChromium) ? systemChromium : undefined)

export default defineConfig({
  testDir: 'e2e',
  testMatch: '**/*.spec.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  reporter: process.env.CI ? [['list']] : [['list']],
  outputDir: 'test-results',
  use: {
    baseURL: `http://localhost:${VITE_PORT}`,
    browserName: 'chromium',
    headless: true,
    trace: 'retain-on-failure',
    launchOptions: {
      ...(executablePath ? { executablePath } : {}),
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        // Nothing but loopback resolves: pages that @import web fonts fail fast.
        '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
      ],
    },
  },
  webServer: [
    {
      command: `npx vite --port ${VITE_PORT} --strictPort`,
      url: `http://localhost:${VITE_PORT}/e2e/fixtures/harness.html`,
      reuseExistingServer: !process.env.CI,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
  ],
})
