/**
 * Every port the browser tests and their servers use, in one place. Each can be moved
 * with its environment variable (two checkouts testing at once, or a port taken).
 * None is a port `npm run demo` uses (5173, 5310, 5301), so a demo left running never
 * makes `npm test` fail with "port in use".
 */
const variables = new Map<string, number>()
const port = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value < 1 || value > 65535)
    throw new Error(`${name} must be a port number, got ${process.env[name]}`)
  variables.set(name, value)
  return value
}

/** The test ports, by what listens on them. */
export const PORTS = {
  /** The Vite dev server that serves test fixtures (and /src) on localhost. */
  vite: port('DPOP_TEST_VITE_PORT', 5199),
  /** The verifying resource server (demo/api/server.ts) of the signed-fetch tests. */
  fetchApi: port('DPOP_TEST_FETCH_API_PORT', 5401),
  /** The "other origin" recording server (127.0.0.1) that must never see a token or proof. */
  fetchOther: port('DPOP_TEST_FETCH_OTHER_PORT', 5402),
  /** oidc-provider of the token stack (e2e/token-stack.ts). */
  as: port('DPOP_TEST_AS_PORT', 5420),
  /** The verifying API of the token stack, in jwt mode. */
  api: port('DPOP_TEST_API_PORT', 5421),
  /** The stricter oidc-provider of the token stack (PAR required, ES256 only). */
  strictAs: port('DPOP_TEST_STRICT_AS_PORT', 5610),
  /** The token stack's oidc-provider for identity: opaque access tokens that its UserInfo endpoint takes. */
  identityAs: port('DPOP_TEST_IDENTITY_AS_PORT', 5612),
  /** First of the four ports of e2e/interop-servers.ts (issuer, then one per verifier). */
  interop: port('DPOP_TEST_INTEROP_PORT', 5600),
  /** The demo under test (demo/run.ts): SPA, authorization server, API. */
  demo: {
    spa: port('DPOP_TEST_DEMO_PORT', 5273),
    as: port('DPOP_TEST_DEMO_AS_PORT', 5510),
    api: port('DPOP_TEST_DEMO_API_PORT', 5501),
  },
  /** atproto's OAuth server (e2e/atproto/server.ts) and its resource server, each its own origin. */
  atproto: {
    as: port('DPOP_TEST_ATPROTO_PORT', 5630),
    api: port('DPOP_TEST_ATPROTO_API_PORT', 5631),
  },
  /** WebKitWebDriver while the WebKit project runs (one per worker: this + worker index). */
  webdriver: port('DPOP_TEST_WEBDRIVER_PORT', 5744),
  /** WebKitWebDriver of `npm run bench`'s per-engine section. */
  benchWebdriver: port('DPOP_BENCH_WEBDRIVER_PORT', 5754),
} as const

/** Every test port's environment variable and its value in this process (e2e/run-engines.ts moves them all). */
export const PORT_VARIABLES: ReadonlyMap<string, number> = variables
