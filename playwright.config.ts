import { defineConfig, type PlaywrightTestProject } from '@playwright/test'
import { chromiumPath, firefoxPath, selectedEngines } from './e2e/engines.ts'
import type { DriverOptions } from './e2e/driver.ts'
import { PORTS } from './e2e/ports.ts'
import { atprotoRuntime } from './e2e/atproto/runtime.ts'

/** Port of the Vite dev server that serves test fixtures (and /src) on localhost. */
export const VITE_PORT = PORTS.vite
/** Port of the verifying resource server (demo/api/server.ts) the signed-fetch tests talk to. */
export const API_PORT = PORTS.fetchApi
/** Port of the "other origin" recording server (127.0.0.1) that must never see a token or proof. */
export const OTHER_PORT = PORTS.fetchOther
/** Ports of the demo (demo/run.ts) that e2e/demo.spec.ts drives: SPA, authorization server, API. */
export const DEMO_PORTS = PORTS.demo
/** First of the four ports of e2e/interop-servers.ts (issuer, then one per verifier). */
export const INTEROP_PORT = PORTS.interop
/** Access token lifetime of the demo under test, seconds: short enough that a refresh happens during the test, long enough that none starts before the reload step (a reload during a refresh loses the rotated refresh token). */
export const DEMO_ACCESS_TTL = 15

/** Specs that use Playwright's page directly, so WebKit (driven by WebDriver) does not run them yet. */
export const PLAYWRIGHT_ONLY_SPECS = ['**/interop.spec.ts']

/** Port of WebKitWebDriver while the WebKit project runs (one per worker: this + worker index). */
export const WEBDRIVER_PORT = PORTS.webdriver

// One project per engine installed here (e2e/engines.ts; DPOP_TEST_ENGINES narrows it).
// The same specs run in each: they talk to the browser through e2e/driver.ts, which is
// Playwright for Chromium and Firefox and W3C WebDriver for WebKitGTK.
const engines = selectedEngines()
const chromium = chromiumPath()
const firefox = firefoxPath()
const projects: PlaywrightTestProject<DriverOptions>[] = []
if (engines.includes('chromium')) {
  projects.push({
    name: 'chromium',
    use: {
      browserName: 'chromium',
      launchOptions: {
        ...(chromium ? { executablePath: chromium } : {}),
        // The flags keep a headless Chromium from reaching for the network, which this sandbox refuses.
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
  })
}
if (engines.includes('firefox') && firefox) {
  projects.push({
    name: 'firefox',
    use: {
      // Debian's Firefox ESR over WebDriver BiDi. Needs @playwright/test 1.64.x: 1.65 sends
      // `emulation.setMediaFeaturesOverride`, which ESR 153 does not know (see package.json).
      browserName: 'firefox',
      channel: 'moz-firefox',
      launchOptions: { executablePath: firefox },
    },
  })
}
if (engines.includes('webkit')) {
  // WebKitGTK through WebKitWebDriver + MiniBrowser under Xvfb; no Playwright browser is launched.
  projects.push({
    name: 'webkit',
    use: { driverKind: 'webdriver', webdriverPort: WEBDRIVER_PORT },
    // Specs still written against Playwright's own page (request interception, locators):
    // they run in the Playwright engines only until they move to e2e/driver.ts.
    testIgnore: PLAYWRIGHT_ONLY_SPECS,
  })
}

// atproto's OAuth server needs Node >= 22.19 (e2e/atproto/runtime.ts): started only when one is
// found; otherwise e2e/atproto.spec.ts skips its tests and says why.
const atproto = atprotoRuntime()

export default defineConfig<DriverOptions>({
  testDir: 'e2e',
  testMatch: '**/*.spec.ts',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  reporter: process.env.CI ? [['list']] : [['list']],
  // A second concurrent run (e2e/run-engines.ts) keeps its artifacts apart: Playwright empties this folder when it starts.
  outputDir: process.env.DPOP_TEST_OUTPUT_DIR ?? 'test-results',
  use: {
    baseURL: `http://localhost:${VITE_PORT}`,
    headless: true,
    trace: 'retain-on-failure',
  },
  projects,
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
      url: `http://localhost:${PORTS.as}/.well-known/openid-configuration`,
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
    ...('node' in atproto
      ? [
          {
            // atproto's OAuth server + its resource server, under Node >= 22.19, for e2e/atproto.spec.ts.
            command: `"${atproto.node}" e2e/atproto/server.ts`,
            url: `http://localhost:${PORTS.atproto.as}/__control/health`,
            reuseExistingServer: !process.env.CI,
            timeout: 60_000,
            stdout: 'ignore' as const,
            stderr: 'pipe' as const,
          },
        ]
      : []),
  ],
})
