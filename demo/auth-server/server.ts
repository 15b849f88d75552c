/**
 * The authorization server of the demo and the end-to-end tests: a real oidc-provider 9 on
 * loopback. This file is the entry point that wires the parts:
 * - provider.ts: oidc-provider's configuration, the part an app author copies, with the
 *   reason for each setting in its header;
 * - recorder.ts: what the server saw, so tests count at the server what the SDK did;
 * - control.ts: `/__control/*` (stats, reset, settings changed while it runs), on
 *   loopback for tests only; it never returns token values;
 * - test-switches.ts: the test-only switches inside the provider (nonce modes, a strict
 *   `iat` window, `token_type` rewrites, slow revocations, lost refresh answers, atproto's
 *   revocation rule), reached through the provider's one seam (`ProviderHooks`).
 *
 * Run it: `npx tsx demo/auth-server/server.ts [--port 5310] [--access-token-ttl 60]
 *   [--redirect-uri URL]... [--api-audience URL] [--answer-bearer]`
 * (environment: DPOP_DEMO_AS_PORT, DPOP_DEMO_AS_REDIRECT_URIS, DPOP_DEMO_AS_API_AUDIENCE,
 * DPOP_DEMO_AS_ACCESS_TOKEN_TTL).
 */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { closeServer, listen } from '../api/listen.ts'
import {
  applyConfig,
  CONTROL_PREFIX,
  createControl,
  rotation,
  seconds,
  send,
  type AuthServerConfig,
} from './control.ts'
import { createProvider, type ProviderSettings, type RefreshRotation } from './provider.ts'
import { createRecorder, type AuthServerStats } from './recorder.ts'
import { boundRevocationCheck, testSwitches } from './test-switches.ts'

/** Environment variables the CLI reads. */
export const AUTH_SERVER_ENV = {
  port: 'DPOP_DEMO_AS_PORT',
  redirectUris: 'DPOP_DEMO_AS_REDIRECT_URIS',
  apiAudience: 'DPOP_DEMO_AS_API_AUDIENCE',
  accessTokenTtl: 'DPOP_DEMO_AS_ACCESS_TOKEN_TTL',
} as const

/** Options of {@link startAuthServer}; every one has a default in {@link AUTH_SERVER_DEFAULTS}. */
export interface AuthServerOptions {
  /** Port; 0 picks a free one. The issuer is `http://localhost:<port>`. @default 5310 */
  port?: number
  /** Interface to bind (loopback only). @default 'localhost' */
  host?: string
  /** The public SPA client's id. @default 'dpop-spa-demo' */
  clientId?: string
  /**
   * Registered `redirect_uris` (exact match, RFC 6749 §3.1.2).
   * @default ['http://localhost:5173/', 'http://localhost:5199/e2e/fixtures/callback.html']
   */
  redirectUris?: readonly string[]
  /** Registered `post_logout_redirect_uris`. @default the redirect URIs and their origins with `/` */
  postLogoutRedirectUris?: readonly string[]
  /** Page origins allowed by CORS on the token and revocation endpoints. @default the origins of the redirect URIs */
  corsOrigins?: readonly string[]
  /** Resource indicator (RFC 8707) of the API; the `aud` of the JWT access tokens. @default 'http://localhost:5301' */
  apiAudience?: string
  /** Scope the API knows; request it to see it in the access token's `scope`. @default 'api' */
  apiScope?: string
  /** Access token lifetime, seconds. @default 60 */
  accessTokenTtl?: number
  /** Refresh token lifetime, seconds. @default 86400 */
  refreshTokenTtl?: number
  /** Answer `token_type: "Bearer"` on successful token responses (the token stays DPoP-bound). @default false */
  answerBearer?: boolean
  /** DPoP proof algorithms accepted (`dpop_signing_alg_values_supported`). @default ['ES256', 'EdDSA'] */
  dpopSigningAlgs?: readonly string[]
  /** Require pushed authorization requests (RFC 9126): `require_pushed_authorization_requests`. @default false */
  requirePar?: boolean
  /**
   * Revoke a DPoP-bound refresh token only on a DPoP proof from the key it is bound to (the
   * rule of atproto's server): anything else is refused (`invalid_dpop_proof`, or
   * `use_dpop_nonce` without a current nonce) and nothing is revoked.
   * @default false
   */
  requireRevocationProof?: boolean
  /**
   * Make the API the resource of a request that names none (`defaultResource`). Off, such a
   * request gets oidc-provider's own opaque access token, which its UserInfo endpoint takes
   * (with a DPoP proof): what a client that asks for profile claims there needs.
   * @default true
   */
  defaultResource?: boolean
  /** When a refresh token is rotated: see {@link RefreshRotation}. @default 'always' */
  refreshRotation?: RefreshRotation
  /** Receives one line per recorded event (never a token); omit for silence. */
  log?: ((line: string) => void) | undefined
}

/** Defaults of {@link AuthServerOptions}. */
export const AUTH_SERVER_DEFAULTS = {
  port: 5310,
  host: 'localhost',
  clientId: 'dpop-spa-demo',
  redirectUris: ['http://localhost:5173/', 'http://localhost:5199/e2e/fixtures/callback.html'],
  apiAudience: 'http://localhost:5301',
  apiScope: 'api',
  accessTokenTtl: 60,
  refreshTokenTtl: 86_400,
  answerBearer: false,
  dpopSigningAlgs: ['ES256', 'EdDSA'],
  requirePar: false,
  requireRevocationProof: false,
  defaultResource: true,
  refreshRotation: 'always',
} as const

/** A running authorization server. */
export interface AuthServerHandle {
  /** `http://localhost:<port>`, also the server's origin. */
  issuer: string
  port: number
  clientId: string
  apiAudience: string
  /** A copy of the recorded stats. */
  stats(): AuthServerStats
  /** Forgets the recorded stats (not the sessions, grants or tokens). */
  reset(): void
  /** Changes settings for the following requests; returns the settings now in force. @throws {TypeError} on a bad value */
  configure(change: Partial<AuthServerConfig>): AuthServerConfig
  /** Stops the server and drops open connections. */
  close(): Promise<void>
}

/**
 * Starts the authorization server on loopback.
 *
 * @throws {Error} with `code: 'EADDRINUSE'` and "port N is in use; set DPOP_DEMO_AS_PORT to
 *   another port" when the port is taken; {@link TypeError} for an invalid option (named).
 * @example
 * ```ts
 * const as = await startAuthServer({ port: 0, accessTokenTtl: 5 })
 * console.log(as.issuer, as.stats().tokenRequests)
 * await as.close()
 * ```
 */
export async function startAuthServer(options: AuthServerOptions = {}): Promise<AuthServerHandle> {
  const o = normalize(options)
  const config: AuthServerConfig = {
    answerBearer: o.answerBearer,
    accessTokenTtl: o.accessTokenTtl,
    revocationDelayMs: 0,
    nonces: 'always',
    iatWindowSec: 0,
    tokenType: '',
    refreshRotation: o.refreshRotation,
    refreshFault: null,
  }
  const recorder = createRecorder(o.log)

  // The issuer must name the bound port, and port 0 is only known after listen(): bind
  // first, then build the provider, and answer 503 in between (nobody knows the URL yet).
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined
  const server: Server = createServer((req, res) => {
    if (handler) handler(req, res)
    else send(res, 503, { error: 'starting' })
  })
  const port = await listen(server, o.port, o.host, AUTH_SERVER_ENV.port)
  const issuer = `http://localhost:${port}`

  try {
    // One secret for the provider's nonces and for the revocation check, which accepts them.
    const nonceSecret = randomBytes(32)
    const mayRevoke = o.requireRevocationProof
      ? boundRevocationCheck(issuer, nonceSecret, o.dpopSigningAlgs, recorder)
      : undefined
    const settings: ProviderSettings = {
      clientId: o.clientId,
      redirectUris: o.redirectUris,
      postLogoutRedirectUris: o.postLogoutRedirectUris,
      corsOrigins: o.corsOrigins,
      apiAudience: o.apiAudience,
      apiScope: o.apiScope,
      accessTokenTtl: o.accessTokenTtl,
      refreshTokenTtl: o.refreshTokenTtl,
      dpopSigningAlgs: o.dpopSigningAlgs,
      requirePar: o.requirePar,
      defaultResource: o.defaultResource,
      refreshRotation: o.refreshRotation,
      nonceSecret,
    }
    const provider = await createProvider(
      issuer,
      settings,
      testSwitches(config, recorder, o.corsOrigins, mayRevoke),
    )
    recorder.attach(provider)
    const oidc = provider.callback()
    const control = createControl(recorder, config, o.corsOrigins)
    handler = (req, res) => {
      if ((req.url ?? '').startsWith(CONTROL_PREFIX)) control(req, res)
      else oidc(req, res)
    }
  } catch (error) {
    await closeServer(server)
    throw error
  }

  return {
    issuer,
    port,
    clientId: o.clientId,
    apiAudience: o.apiAudience,
    stats: () => recorder.stats(),
    reset: () => recorder.reset(),
    configure: (change) => applyConfig(config, change),
    close: () => closeServer(server),
  }
}

interface Normalized {
  port: number
  host: string
  clientId: string
  redirectUris: string[]
  postLogoutRedirectUris: string[]
  corsOrigins: Set<string>
  apiAudience: string
  apiScope: string
  accessTokenTtl: number
  refreshTokenTtl: number
  answerBearer: boolean
  dpopSigningAlgs: string[]
  requirePar: boolean
  requireRevocationProof: boolean
  defaultResource: boolean
  refreshRotation: RefreshRotation
  log: ((line: string) => void) | undefined
}

function normalize(options: AuthServerOptions): Normalized {
  const d = AUTH_SERVER_DEFAULTS
  const port = options.port ?? d.port
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new TypeError('"options.port" must be an integer from 0 to 65535')
  const redirectUris = urls(options.redirectUris ?? d.redirectUris, 'options.redirectUris')
  const origins = [...new Set(redirectUris.map((u) => new URL(u).origin))]
  const postLogoutRedirectUris = urls(
    options.postLogoutRedirectUris ?? [
      ...new Set([...redirectUris, ...origins.map((origin) => `${origin}/`)]),
    ],
    'options.postLogoutRedirectUris',
  )
  const corsOrigins = urls(options.corsOrigins ?? origins, 'options.corsOrigins').map(
    (u) => new URL(u).origin,
  )
  const [apiAudience] = urls([options.apiAudience ?? d.apiAudience], 'options.apiAudience')
  const apiScope = options.apiScope ?? d.apiScope
  if (typeof apiScope !== 'string' || !/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(apiScope)) {
    throw new TypeError('"options.apiScope" must be one scope token (RFC 6749 §3.3)')
  }
  return {
    port,
    host: options.host ?? d.host,
    clientId: options.clientId ?? d.clientId,
    redirectUris,
    postLogoutRedirectUris,
    corsOrigins: new Set(corsOrigins),
    apiAudience: apiAudience ?? d.apiAudience,
    apiScope,
    accessTokenTtl: seconds(options.accessTokenTtl ?? d.accessTokenTtl, 'options.accessTokenTtl'),
    refreshTokenTtl: seconds(
      options.refreshTokenTtl ?? d.refreshTokenTtl,
      'options.refreshTokenTtl',
    ),
    answerBearer: options.answerBearer ?? d.answerBearer,
    dpopSigningAlgs: [...(options.dpopSigningAlgs ?? d.dpopSigningAlgs)],
    requirePar: options.requirePar ?? d.requirePar,
    requireRevocationProof: options.requireRevocationProof ?? d.requireRevocationProof,
    defaultResource: options.defaultResource ?? d.defaultResource,
    refreshRotation: rotation(
      options.refreshRotation ?? d.refreshRotation,
      'options.refreshRotation',
    ),
    log: options.log,
  }
}

function urls(value: unknown, name: string): string[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new TypeError(`"${name}" must be a non-empty array of http(s) URLs`)
  return value.map((u: unknown) => {
    const url = typeof u === 'string' ? URL.parse(u) : null
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hash) {
      throw new TypeError(
        `"${name}" must hold absolute http(s) URLs without a fragment; got ${JSON.stringify(u)}`,
      )
    }
    return u as string
  })
}

// ---------------------------------------------------------------------------------------
// CLI

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'api-audience': { type: 'string' },
      'access-token-ttl': { type: 'string' },
      'answer-bearer': { type: 'boolean' },
    },
  })
  const env = process.env
  const numeric = (text: string | undefined): number | undefined =>
    text === undefined || text === '' ? undefined : Number(text)
  const redirectUris =
    values['redirect-uri'] ??
    env[AUTH_SERVER_ENV.redirectUris]
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean)
  const apiAudience = values['api-audience'] ?? env[AUTH_SERVER_ENV.apiAudience]
  const port = numeric(values.port ?? env[AUTH_SERVER_ENV.port])
  const accessTokenTtl = numeric(values['access-token-ttl'] ?? env[AUTH_SERVER_ENV.accessTokenTtl])

  let handle: AuthServerHandle
  try {
    handle = await startAuthServer({
      ...(port !== undefined ? { port } : {}),
      ...(redirectUris?.length ? { redirectUris } : {}),
      ...(apiAudience ? { apiAudience } : {}),
      ...(accessTokenTtl !== undefined ? { accessTokenTtl } : {}),
      ...(values['answer-bearer'] ? { answerBearer: true } : {}),
      log: (line) => console.log(line),
    })
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error))
    process.exit(1)
  }
  console.log(
    `authorization server: ${handle.issuer} (client_id ${handle.clientId}, API audience ${handle.apiAudience})`,
  )
  console.log(`  discovery: ${handle.issuer}/.well-known/openid-configuration`)
  console.log(`  stats:     ${handle.issuer}${CONTROL_PREFIX}stats`)
  const stop = (): void => {
    handle.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main()
}
