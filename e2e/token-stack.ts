/**
 * The servers behind e2e/tokens.spec.ts, started by Playwright's webServer: oidc-provider
 * with access tokens of a few seconds (so expiry and refresh happen during a test) that
 * revokes a bound refresh token only on a DPoP proof from its key (as atproto's does), and the
 * verifying API in jwt mode, which accepts only access tokens from that server bound to the
 * proof's key.
 */
import { startAuthServer } from '../demo/auth-server/server.ts'
import { startApiServer } from '../demo/api/server.ts'
import { PORTS } from './ports.ts'

export const TOKEN_STACK = {
  asPort: PORTS.as,
  apiPort: PORTS.api,
  vitePort: PORTS.vite,
  /** A second, stricter server: pushed authorization requests required, ES256 proofs only. */
  strictAsPort: PORTS.strictAs,
  /** A third: no default resource, so a login without `resource` gets a token UserInfo takes. */
  identityAsPort: PORTS.identityAs,
  /** Seconds; e2e/token-app.ts (ACCESS_TOKEN_TTL) restores it before each test. */
  accessTokenTtl: 6,
} as const

const app = `http://localhost:${TOKEN_STACK.vitePort}`
const apiOrigin = `http://localhost:${TOKEN_STACK.apiPort}`
const fail = (e: unknown): never => {
  console.error(`token stack: ${e instanceof Error ? e.message : String(e)}`)
  process.exit(1)
}
// Started first: the webServer's readiness URL is the first server's, so both are up by then.
const strict = await startAuthServer({
  port: TOKEN_STACK.strictAsPort,
  redirectUris: [`${app}/e2e/fixtures/client.html`],
  apiAudience: apiOrigin,
  dpopSigningAlgs: ['ES256'],
  requirePar: true,
}).catch(fail)
const as = await startAuthServer({
  port: TOKEN_STACK.asPort,
  redirectUris: [
    `${app}/e2e/fixtures/client.html`,
    `${app}/e2e/fixtures/react.html`,
    `${app}/e2e/fixtures/vue.html`,
  ],
  apiAudience: apiOrigin,
  accessTokenTtl: TOKEN_STACK.accessTokenTtl,
  // atproto's rule: a bound refresh token is revoked only on a proof from its key.
  requireRevocationProof: true,
}).catch(fail)
const identity = await startAuthServer({
  port: TOKEN_STACK.identityAsPort,
  redirectUris: [`${app}/e2e/fixtures/client.html`],
  apiAudience: apiOrigin,
  defaultResource: false,
  requireRevocationProof: true,
}).catch(fail)
const api = await startApiServer({
  port: TOKEN_STACK.apiPort,
  host: 'localhost',
  corsOrigins: [app],
  tokens: { jwt: { issuer: as.issuer, audience: apiOrigin } },
  // /__control/stats and reset: tests read what the API saw (the proofs' iat, for one).
  control: true,
}).catch(fail)
console.log(
  `token stack: ${as.issuer} ${api.url}, strict ${strict.issuer}, identity ${identity.issuer}`,
)
const stop = () => {
  void Promise.all([as.close(), api.close(), strict.close(), identity.close()]).finally(() =>
    process.exit(0),
  )
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
