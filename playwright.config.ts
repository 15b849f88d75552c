import { existsSync } from 'node:fs'
import { defineConfig } from '@playwright/test'

/** Port of the Vite dev server that serves test fixtures (and /src) on localhost. */
export const VITE_PORT = Number(process.env.DPOP_TEST_VITE_PORT ?? 5199)
/** Port of the verifying resource server (demo/api/server.ts) the signed-fetch tests talk to. */
export const API_PORT = Number(process.env.DPOP_TEST_FETCH_API_PORT ?? 5301)
/** Port of the "other origin" recording server (127.0.0.1) that must never see a token or proof. */
export const OTHER_PORT = Number(process.env.DPOP_TEST_FETCH_OTHER_PORT ?? 5302)
/** Ports of the demo (demo/run.ts) that e2e/demo.spec.ts drives: SPA, authorization server, API. */
export const DEMO_PORTS = {
  spa: Number(process.env.DPOP_TEST_DEMO_PORT ?? 5273),
  as: Number(process.env.DPOP_TEST_DEMO_AS_PORT ?? 5510),
  api: Number(process.env.DPOP_TEST_DEMO_API_PORT ?? 5501),
} as const
/** First of the four ports of e2e/interop-servers.ts (issuer, then one per verifier). */
export const INTEROP_PORT = Number(process.env.DPOP_TEST_INTEROP_PORT ?? 5600)
/** Access token lifetime of the demo under test, seconds: short enough that a refresh happens during the test, long enough that none starts before the reload step (a reload during a refresh loses the rotated refresh token). */
export const DEMO_ACCESS_TTL = 15

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
    {
      // Test mode: tokens minted through /__control/token, nonces required, CORS for the Vite origin.
      command: `npx tsx demo/api/server.ts --port ${API_PORT} --other-port ${OTHER_PORT} --cors-origin http://localhost:${VITE_PORT}`,
      url: `http://127.0.0.1:${API_PORT}/__control/health`,
      reuseExistingServer: !process.env.CI,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
    {
      // oidc-provider with 6 s access tokens + the API in jwt mode, for e2e/tokens.spec.ts.
      command: 'npx tsx e2e/token-stack.ts',
      url: `http://localhost:${process.env.DPOP_TEST_AS_PORT ?? 5420}/.well-known/openid-configuration`,
      reuseExistingServer: !process.env.CI,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
    {
      // Other people's DPoP verifiers (e2e/interop-servers.ts) for e2e/interop.spec.ts: issuer on
      // DPOP_TEST_INTEROP_PORT, then auth0, oauth4webapi and solid on the next three ports.
      command: 'npx tsx e2e/interop-servers.ts',
      url: `http://127.0.0.1:${INTEROP_PORT}/__control/health`,
      reuseExistingServer: !process.env.CI,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
    {
      // The whole demo, as `npm run demo` starts it, on test ports and with short-lived access tokens.
      command: 'npx tsx demo/run.ts',
      env: {
        DPOP_DEMO_PORT: String(DEMO_PORTS.spa),
        DPOP_DEMO_AS_PORT: String(DEMO_PORTS.as),
        DPOP_DEMO_API_PORT: String(DEMO_PORTS.api),
        DPOP_DEMO_ACCESS_TTL: String(DEMO_ACCESS_TTL),
      },
      url: `http://localhost:${DEMO_PORTS.spa}/`,
      reuseExistingServer: !process.env.CI,
      timeout: 60_000,
      stdout: 'ignore',
      stderr: 'pipe',
    },
  ],
})
