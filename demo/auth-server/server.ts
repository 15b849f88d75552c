/**
 * The authorization server of the demo and the end-to-end tests: a real oidc-provider 9 on
 * loopback, configured the way a DPoP deployment should be, plus a recorder so tests can
 * count at the server what the SDK did.
 *
 * Run it: `npx tsx demo/auth-server/server.ts [--port 5310] [--access-token-ttl 60]
 *   [--redirect-uri URL]... [--api-audience URL] [--answer-bearer]`
 * (environment: DPOP_DEMO_AS_PORT, DPOP_DEMO_AS_REDIRECT_URIS, DPOP_DEMO_AS_API_AUDIENCE,
 * DPOP_DEMO_AS_ACCESS_TOKEN_TTL).
 *
 * Configuration choices, and why:
 * - One public client (`token_endpoint_auth_method: 'none'`) with
 *   `dpop_bound_access_tokens: true`: a token request without a DPoP proof is refused
 *   (RFC 9449 §5.2), so the SDK cannot silently fall back to bearer tokens.
 * - `features.dPoP` with a `nonceSecret` and `requireNonce` always true: every token
 *   request first meets `use_dpop_nonce` (RFC 9449 §8), so the SDK's nonce retry runs on
 *   every login and every refresh, not only in a dedicated test. Nonces are stateless
 *   (HMAC of time) and change every minute.
 * - PKCE required, S256 only (oidc-provider 9 supports no other method); `response_types`
 *   is `code` only: the SPA uses the authorization code flow and nothing else.
 * - `features.resourceIndicators`: the API (`apiAudience`) is the default resource and
 *   `useGrantedResource` is on, so the code exchange and every refresh (which send no
 *   `resource`) yield an ES256 JWT access token for the API carrying `cnf.jkt`, which the
 *   demo API verifies with jose. Without `useGrantedResource`, `openid` in scope would
 *   turn the access token into an opaque userinfo token.
 * - `issueRefreshToken` returns true for any client allowed the refresh_token grant:
 *   public clients get no refresh token by default unless `offline_access` survives, and
 *   it only does with `prompt=consent`.
 * - `rotateRefreshToken: true`: oidc-provider does not rotate DPoP-bound refresh tokens of
 *   public clients until 70% of their life has passed. Always rotating makes uncoordinated
 *   refreshes visible: reusing a rotated refresh token revokes the whole grant, exactly
 *   the failure two racing tabs cause.
 * - `expiresWithSession` false: refresh tokens live by their TTL and die by revocation,
 *   not with the login cookie; RP-initiated logout then does NOT revoke them, so a test of
 *   "logout revokes the refresh token" proves the SDK called the revocation endpoint.
 * - `loadExistingGrant` grants whatever was requested (scopes, claims, resource scopes):
 *   a test user only submits the dev login form, never a consent page.
 * - `logoutSource` submits the sign-out confirmation by itself (a form with a button for
 *   pages without script): tests see logout end at `post_logout_redirect_uri`.
 * - `clientBasedCORS` allows exactly the configured SPA origins. oidc-provider already
 *   exposes `DPoP-Nonce` and `WWW-Authenticate` on the token endpoint (checked by
 *   test/auth-server.test.ts), so the browser can read the nonce from a cross-origin 400.
 * - Signing keys are generated at start-up (ES256 for access tokens, RS256 because it is
 *   the default `id_token_signed_response_alg`) and never written to disk. Cookie keys
 *   too: a restart logs everyone out, which is what a test server should do.
 * - Cookies on plain http: oidc-provider marks cookies `secure` only when the request is
 *   secure, so http://localhost works without `proxy` tricks.
 * - Recording: provider events (grant.success/error, authorization.success, token saves,
 *   refresh_token.consumed, grant.revoked, end_session.success, server_error) plus one Koa
 *   middleware for what has no event (a successful revocation). Tests read
 *   `GET /__control/stats` and count at the server instead of trusting client logs.
 * - `answerBearer` rewrites `token_type` of successful token responses to `Bearer` while
 *   the token stays bound: the shape of a misconfigured server, for the SDK's
 *   ERR_TOKEN_TYPE_MISMATCH test.
 * - `requireRevocationProof` revokes a DPoP-bound refresh token only on a DPoP proof from the
 *   key it is bound to, checked with jose (atproto's rule; oidc-provider itself checks no proof
 *   at revocation). Refused requests fail (`invalid_dpop_proof`, `use_dpop_nonce`) and revoke
 *   nothing; `stats().revocationProofs` says which key signed and what happened.
 * - `defaultResource: false` leaves a request without `resource` to oidc-provider's own opaque
 *   access token, which its UserInfo endpoint takes (DPoP-bound: proof, `ath`, nonce); UserInfo
 *   requests are recorded with the proof's key.
 * - `revocationDelayMs` (control only) holds revocation answers back: a slow server, asserted
 *   at the server, so a test needs no request interception (WebKit's driver has none).
 * - `refreshRotation` (option and control): `'always'` rotates every refresh token (and a
 *   reused one revokes the grant); `'near-expiry'` is oidc-provider's own default for a
 *   DPoP-bound refresh token of a public client, which RFC 9700 §4.14.2 allows: the same
 *   refresh token keeps working until 70% of its life has passed, then it rotates. The
 *   demo runs `'near-expiry'`, as the docs recommend (docs: lost refresh answers).
 * - `refreshFault` (control only) injects a lost answer AT THE SERVER, after the refresh
 *   token was rotated: `hold` keeps the answer back for `ms` (a reload or a closed tab in the
 *   meantime loses it in the browser), `drop` destroys the connection without answering (a
 *   dropped mobile connection). It applies to the next `count` successful refresh_token
 *   grants, so the nonce round trip before them is not counted.
 * - `/__control/*` exists for tests on loopback only; it never returns token values.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { EmbeddedJWK, calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, type JWK, type JWTPayload } from 'jose'
import Provider, { errors, type Grant, type KoaContextWithOIDC, type TokenModel } from 'oidc-provider'
import ServerChallenge from 'oidc-provider/lib/helpers/challenge.js'
import { closeServer, listen } from '../api/listen.ts'

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

/**
 * When the server rotates a refresh token. `'always'`: on every refresh, and presenting a
 * rotated one again revokes the grant (reuse detection). `'near-expiry'`: oidc-provider's
 * default for a DPoP-bound refresh token of a public client (RFC 9700 §4.14.2 lets a
 * sender-constrained refresh token stay unrotated): the same token keeps working until 70%
 * of its life has passed.
 */
export type RefreshRotation = 'always' | 'near-expiry'

/** A lost refresh answer, injected after the server rotated (see `AuthServerConfig.refreshFault`). */
export interface RefreshFault {
  /** `hold`: answer after `ms`; `drop`: destroy the connection without answering. */
  mode: 'hold' | 'drop'
  /** How long `hold` keeps the answer back, ms (0 to 30000). */
  ms: number
  /** How many successful refresh_token grants it applies to (1 to 10); counts down. */
  count: number
}

/** Token requests of one `grant_type`. */
export interface GrantTypeCount {
  succeeded: number
  failed: number
}

/** One recorded event, in order. Never holds a token value. */
export interface AuthServerEvent {
  /** 1, 2, 3, ... since start or the last reset. */
  seq: number
  /** Server time, ms since the epoch. */
  at: number
  /**
   * `authorization.success`, `authorization.error`, `grant.success`, `grant.error`,
   * `token.issued`, `refresh_token.consumed`, `grant.revoked`, `revocation.success`,
   * `revocation.error`, `end_session.success`, `server_error`, `bearer.answered`,
   * `fault.hold`, `fault.drop` (a refresh answer lost on purpose, after the rotation).
   */
  type: string
  grantType?: string
  /** OAuth `error` code. */
  error?: string
  errorDescription?: string
  /** oidc-provider's server-side reason (`error_detail`), e.g. "refresh token already used". */
  errorDetail?: string
  /** `dpop_jkt` of an authorization request, or `cnf.jkt` of an issued token. */
  jkt?: string | null
  /** `AccessToken` or `RefreshToken` for `token.issued`. */
  kind?: string
  grantId?: string
}

/** What the server saw since start or the last reset (JSON of `GET /__control/stats`). */
export interface AuthServerStats {
  /** Token endpoint requests per `grant_type` (`unknown` when it was missing). */
  tokenRequests: Record<string, GrantTypeCount>
  /** Failed token requests per OAuth `error` code (`use_dpop_nonce`, `invalid_grant`, ...). */
  tokenErrors: Record<string, number>
  /** Codes issued by the authorization endpoint, with the `dpop_jkt` the request carried. */
  authorizations: { at: number; clientId: string | null; dpopJkt: string | null }[]
  /** Pushed authorization requests (RFC 9126) accepted: their `dpop_jkt` and the thumbprint of their DPoP proof's key. */
  pushedRequests: { at: number; dpopJkt: string | null; proofJkt: string | null }[]
  /** Pushed authorization requests refused, per OAuth `error` code (`use_dpop_nonce`, ...). */
  pushedRequestErrors: Record<string, number>
  /** Tokens issued, with the key thumbprint they are bound to (`cnf.jkt`). */
  issuedTokens: { at: number; kind: 'AccessToken' | 'RefreshToken'; grantType: string | null; jkt: string | null; grantId: string | null }[]
  /** Refresh tokens consumed by rotation. */
  refreshTokensRotated: number
  /** Refresh requests that presented an already rotated refresh token (the grant is then revoked). */
  refreshTokenReuse: number
  /** Revocation endpoint requests (RFC 7009). */
  revocations: { succeeded: number; failed: number }
  /**
   * With `requireRevocationProof`: each revocation of a bound refresh token, the thumbprint of
   * its proof's key (null without a proof), the token's `cnf.jkt`, and the verdict
   * (`revoked`, or the error code it was refused with).
   */
  revocationProofs: { at: number; proofJkt: string | null; tokenJkt: string | null; outcome: string }[]
  /** UserInfo requests: the HTTP status, the authorization scheme and the thumbprint of the DPoP proof's key (null without one). */
  userinfo: { at: number; status: number; scheme: string | null; proofJkt: string | null }[]
  /** Grants revoked, by id, for any reason (revocation, refresh token reuse, logout). */
  grantsRevoked: string[]
  /** Completed RP-initiated logouts. */
  endSessions: number
  /** Successful token responses whose `token_type` was rewritten to `Bearer`. */
  bearerAnswers: number
  /** Token and PAR requests refused because the proof's `iat` was outside `iatWindowSec`. */
  proofWindowRefusals: number
  /** Internal errors; a test should expect none. */
  serverErrors: { at: number; route: string | null; message: string }[]
  /** Everything above, in order (the last 1000). */
  events: AuthServerEvent[]
}

/** Settings tests may change while the server runs (`POST /__control/config`). */
export interface AuthServerConfig {
  answerBearer: boolean
  accessTokenTtl: number
  /** Revocation answers wait this long (0 to 10000 ms): a slow server. */
  revocationDelayMs: number
  /**
   * Quirks of real servers, reproduced here (docs/servers.md):
   * `'always'` demands a nonce on the first request of every client (Auth0, Okta, and
   * oidc-provider as configured here); `'never'` uses no nonces at all (Keycloak): none is
   * required and no `DPoP-Nonce` header is ever sent.
   */
  nonces: 'always' | 'never'
  /**
   * When above 0, token and PAR requests whose proof's `iat` is more than this many seconds
   * from the server's clock are refused with `invalid_dpop_proof`, nonce or not (Keycloak and
   * Curity allow 10–15 s; oidc-provider skips the check when a nonce is used).
   */
  iatWindowSec: number
  /** Rewrites `token_type` of successful DPoP token responses to this value (`dpop`, `DPOP`, ...); empty: as issued. */
  tokenType: string
  /** When refresh tokens rotate. */
  refreshRotation: RefreshRotation
  /** The next successful refresh answers are held or dropped after the rotation; `null` for none. */
  refreshFault: RefreshFault | null
}

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

const MAX_EVENTS = 1000
const CONTROL_PREFIX = '/__control/'

// Fixed routes (oidc-provider's defaults, spelled out) so the middleware can match them.
const ROUTES = {
  authorization: '/auth',
  token: '/token',
  revocation: '/token/revocation',
  end_session: '/session/end',
  jwks: '/jwks',
  userinfo: '/me',
  pushed_authorization_request: '/request',
} as const

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
  const config: AuthServerConfig = { answerBearer: o.answerBearer, accessTokenTtl: o.accessTokenTtl, revocationDelayMs: 0, nonces: 'always', iatWindowSec: 0, tokenType: '', refreshRotation: o.refreshRotation, refreshFault: null }
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
    const provider = await createProvider(issuer, o, config, recorder)
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
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new TypeError('"options.port" must be an integer from 0 to 65535')
  const redirectUris = urls(options.redirectUris ?? d.redirectUris, 'options.redirectUris')
  const origins = [...new Set(redirectUris.map((u) => new URL(u).origin))]
  const postLogoutRedirectUris = urls(
    options.postLogoutRedirectUris ?? [...new Set([...redirectUris, ...origins.map((origin) => `${origin}/`)])],
    'options.postLogoutRedirectUris',
  )
  const corsOrigins = urls(options.corsOrigins ?? origins, 'options.corsOrigins').map((u) => new URL(u).origin)
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
    refreshTokenTtl: seconds(options.refreshTokenTtl ?? d.refreshTokenTtl, 'options.refreshTokenTtl'),
    answerBearer: options.answerBearer ?? d.answerBearer,
    dpopSigningAlgs: [...(options.dpopSigningAlgs ?? d.dpopSigningAlgs)],
    requirePar: options.requirePar ?? d.requirePar,
    requireRevocationProof: options.requireRevocationProof ?? d.requireRevocationProof,
    defaultResource: options.defaultResource ?? d.defaultResource,
    refreshRotation: rotation(options.refreshRotation ?? d.refreshRotation, 'options.refreshRotation'),
    log: options.log,
  }
}

function urls(value: unknown, name: string): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new TypeError(`"${name}" must be a non-empty array of http(s) URLs`)
  return value.map((u: unknown) => {
    const url = typeof u === 'string' ? URL.parse(u) : null
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hash) {
      throw new TypeError(`"${name}" must hold absolute http(s) URLs without a fragment; got ${JSON.stringify(u)}`)
    }
    return u as string
  })
}

function seconds(value: unknown, name: string): number {
  if (!Number.isInteger(value) || (value as number) < 1) throw new TypeError(`"${name}" must be a positive integer (seconds)`)
  return value as number
}

function rotation(value: unknown, name: string): RefreshRotation {
  if (value !== 'always' && value !== 'near-expiry') throw new TypeError(`"${name}" must be 'always' or 'near-expiry'`)
  return value
}

function refreshFault(value: unknown): RefreshFault | null {
  if (value === null) return null
  const { mode, ms, count } = (typeof value === 'object' ? value : {}) as Record<string, unknown>
  const int = (v: unknown, min: number, max: number) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max
  if ((mode !== 'hold' && mode !== 'drop') || !int(ms ?? 0, 0, 30_000) || !int(count ?? 1, 1, 10)) {
    throw new TypeError('"refreshFault" must be null or { mode: "hold" | "drop", ms: 0..30000, count: 1..10 }')
  }
  return { mode, ms: (ms as number | undefined) ?? 0, count: (count as number | undefined) ?? 1 }
}

function applyConfig(config: AuthServerConfig, change: unknown): AuthServerConfig {
  if (typeof change !== 'object' || change === null) throw new TypeError('the config change must be an object')
  const { answerBearer, accessTokenTtl, revocationDelayMs, nonces, iatWindowSec, tokenType, refreshRotation, refreshFault: fault } = change as Record<string, unknown>
  if (nonces !== undefined && nonces !== 'always' && nonces !== 'never') throw new TypeError('"nonces" must be "always" or "never"')
  if (iatWindowSec !== undefined && !(Number.isInteger(iatWindowSec) && (iatWindowSec as number) >= 0)) throw new TypeError('"iatWindowSec" must be an integer >= 0')
  if (tokenType !== undefined && !(typeof tokenType === 'string' && /^[A-Za-z]{0,20}$/.test(tokenType))) throw new TypeError('"tokenType" must be letters only (or empty)')
  if (answerBearer !== undefined && typeof answerBearer !== 'boolean') throw new TypeError('"answerBearer" must be a boolean')
  if (accessTokenTtl !== undefined) seconds(accessTokenTtl, 'accessTokenTtl')
  if (revocationDelayMs !== undefined && !(Number.isInteger(revocationDelayMs) && (revocationDelayMs as number) >= 0 && (revocationDelayMs as number) <= 10_000)) {
    throw new TypeError('"revocationDelayMs" must be an integer from 0 to 10000')
  }
  const nextRotation = refreshRotation === undefined ? undefined : rotation(refreshRotation, 'refreshRotation')
  const nextFault = fault === undefined ? undefined : refreshFault(fault)
  // Validate everything before changing anything.
  if (nextRotation) config.refreshRotation = nextRotation
  if (nextFault !== undefined) config.refreshFault = nextFault
  if (typeof answerBearer === 'boolean') config.answerBearer = answerBearer
  if (typeof accessTokenTtl === 'number') config.accessTokenTtl = accessTokenTtl
  if (typeof revocationDelayMs === 'number') config.revocationDelayMs = revocationDelayMs
  if (nonces === 'always' || nonces === 'never') config.nonces = nonces
  if (typeof iatWindowSec === 'number') config.iatWindowSec = iatWindowSec
  if (typeof tokenType === 'string') config.tokenType = tokenType
  return { ...config }
}

// ---------------------------------------------------------------------------------------
// The provider

async function signingKeys(): Promise<JWK[]> {
  const make = async (alg: 'ES256' | 'RS256'): Promise<JWK> => {
    const { privateKey } = await generateKeyPair(alg, { extractable: true })
    const jwk = await exportJWK(privateKey)
    return { ...jwk, alg, use: 'sig', kid: await calculateJwkThumbprint(jwk) }
  }
  return Promise.all([make('ES256'), make('RS256')])
}

async function createProvider(issuer: string, o: Normalized, config: AuthServerConfig, recorder: Recorder): Promise<Provider> {
  const nonceSecret = randomBytes(32)
  const revocationProof = o.requireRevocationProof ? boundRevocationCheck(issuer, nonceSecret, o.dpopSigningAlgs, recorder) : undefined
  const resourceServer = () => ({
    audience: o.apiAudience,
    scope: o.apiScope,
    accessTokenFormat: 'jwt',
    accessTokenTTL: config.accessTokenTtl,
    jwt: { sign: { alg: 'ES256' } },
  })

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: o.clientId,
        application_type: 'web',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: o.redirectUris,
        post_logout_redirect_uris: o.postLogoutRedirectUris,
        dpop_bound_access_tokens: true,
      },
    ],
    jwks: { keys: await signingKeys() },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    routes: ROUTES,
    responseTypes: ['code'],
    scopes: ['openid', 'offline_access', 'profile'],
    claims: { openid: ['sub'], profile: ['name'] },
    pkce: { required: () => true },
    enabledJWA: { dPoPSigningAlgValues: o.dpopSigningAlgs },
    findAccount: (_ctx: unknown, sub: string) => ({ accountId: sub, claims: () => ({ sub, name: sub }) }),
    clientBasedCORS: (_ctx: unknown, origin: string) => o.corsOrigins.has(origin),
    issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    // 'near-expiry' is oidc-provider's own rule for sender-constrained refresh tokens of public clients.
    rotateRefreshToken: (ctx: KoaContextWithOIDC) => config.refreshRotation === 'always' || (ctx.oidc.entities.RefreshToken?.ttlPercentagePassed() ?? 100) >= 70,
    expiresWithSession: () => false,
    loadExistingGrant,
    renderError: (ctx: KoaContextWithOIDC, out: { error?: string; error_description?: string }) => {
      ctx.body = `<!DOCTYPE html><title>Error</title><h1>${escapeHtml(out.error ?? 'error')}</h1><p>${escapeHtml(out.error_description ?? '')}</p>`
    },
    ttl: {
      AccessToken: () => config.accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: o.refreshTokenTtl,
      Interaction: 600,
      Session: 86_400,
      Grant: 86_400,
    },
    features: {
      devInteractions: { enabled: true },
      dPoP: { enabled: true, nonceSecret, requireNonce: () => config.nonces === 'always' },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: o.requirePar },
      revocation: {
        enabled: true,
        // The default policy, spelled out: a public client may revoke only its own tokens.
        // With requireRevocationProof, a bound refresh token also needs a proof from its key.
        allowedPolicy: async (ctx: KoaContextWithOIDC, client: { clientId: string }, token: TokenModel) =>
          token.clientId === client.clientId && (await revocationProof?.(ctx, token) ?? true),
      },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string[]) => oneOf ?? (o.defaultResource ? o.apiAudience : undefined),
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => {
          if (resourceIndicator !== o.apiAudience) throw new errors.InvalidTarget('unknown resource indicator')
          return resourceServer()
        },
      },
    },
  })

  // What has no provider event (a successful revocation), and the Bearer rewrite.
  provider.use(async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path === ROUTES.revocation && config.revocationDelayMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, config.revocationDelayMs))
    }
    if (ctx.method === 'POST' && config.iatWindowSec > 0 && (ctx.path === ROUTES.token || ctx.path === ROUTES.pushed_authorization_request)) {
      // A strict proof window (Keycloak, Curity), checked before oidc-provider's own checks.
      let iat: unknown
      try {
        iat = decodeJwt(ctx.get('DPoP')).iat
      } catch {
        iat = undefined
      }
      if (typeof iat === 'number' && Math.abs(iat - Date.now() / 1000) > config.iatWindowSec) {
        recorder.proofWindowRefused()
        // Answered here, before oidc-provider's CORS: allow the SPA's origin ourselves.
        const origin = ctx.get('Origin')
        if (o.corsOrigins.has(origin)) {
          ctx.set('Access-Control-Allow-Origin', origin)
          ctx.set('Access-Control-Expose-Headers', 'WWW-Authenticate, DPoP-Nonce, Date')
        }
        ctx.status = 400
        ctx.set('Cache-Control', 'no-store')
        ctx.body = { error: 'invalid_dpop_proof', error_description: 'DPoP proof is not active (iat)' }
        return
      }
    }
    await next()
    // Keycloak's shape: no nonces, so no DPoP-Nonce header, ever.
    if (config.nonces === 'never') (ctx as unknown as { remove(name: string): void }).remove('DPoP-Nonce')
    // oidc-provider's CORS exposes DPoP-Nonce and WWW-Authenticate; Date too, so that a
    // browser client can correct a device clock from the authorization server's answers.
    // (KoaContextWithOIDC's type leaves out Koa's response object; it is there.)
    const sent = (name: string) => (ctx as unknown as { response: { get(name: string): string } }).response.get(name)
    if (sent('Access-Control-Allow-Origin') && ctx.method !== 'OPTIONS') {
      const exposed = sent('Access-Control-Expose-Headers')
      ctx.set('Access-Control-Expose-Headers', exposed ? `${exposed}, Date` : 'Date')
    }
    if (ctx.path === ROUTES.userinfo && ctx.method !== 'OPTIONS') {
      const proof = (ctx as unknown as { get(name: string): string }).get('DPoP')
      const scheme = ctx.get('Authorization').split(' ')[0] || null
      recorder.userinfo(ctx.status, scheme, proof || null)
    }
    if (ctx.method !== 'POST') return
    const fault = config.refreshFault
    if (fault && ctx.path === ROUTES.token && ctx.status === 200 && grantTypeOf(ctx) === 'refresh_token') {
      // The grant is done (the refresh token rotated, when it does): now lose the answer.
      if (--fault.count <= 0) config.refreshFault = null
      recorder.fault(fault.mode, fault.ms)
      if (fault.mode === 'drop') {
        ctx.respond = false
        ctx.req.socket.destroy()
        return
      }
      await new Promise((resolve) => setTimeout(resolve, fault.ms))
    }
    if (ctx.path === ROUTES.revocation) {
      if (ctx.status === 200) recorder.revocationSucceeded()
      // failures are recorded by the `revocation.error` event
    } else if (ctx.path === ROUTES.token && config.answerBearer && ctx.status === 200) {
      const body = ctx.body
      if (isRecord(body) && body.token_type === 'DPoP') {
        ctx.body = { ...body, token_type: 'Bearer' }
        recorder.bearerAnswered(grantTypeOf(ctx))
      }
    } else if (ctx.path === ROUTES.token && config.tokenType && ctx.status === 200) {
      const body = ctx.body
      if (isRecord(body) && body.token_type === 'DPoP') ctx.body = { ...body, token_type: config.tokenType }
    }
  })

  recorder.attach(provider)
  return provider
}

/**
 * The revocation rule of servers that bind a public client's tokens to its key (atproto's):
 * a bound refresh token is revoked only on a DPoP proof from that key. oidc-provider checks
 * no proof at its revocation endpoint, so this does, with jose: `typ`, signature with the
 * embedded key, `htm`, `htu`, `iat` within 300 s, a `jti` seen once, a nonce from the
 * provider's own nonce series (same secret), and the key's thumbprint equal to the token's
 * `cnf.jkt`. A refusal throws the OAuth error (the request fails, nothing is revoked).
 */
function boundRevocationCheck(issuer: string, nonceSecret: Buffer, algorithms: readonly string[], recorder: Recorder) {
  const nonces = new ServerChallenge(nonceSecret, 'DPoP')
  const seen = new Map<string, number>() // jti -> expiry, ms
  const htu = `${issuer}${ROUTES.revocation}`
  return async (ctx: KoaContextWithOIDC, token: TokenModel): Promise<boolean> => {
    if (token.kind !== 'RefreshToken' || !token.jkt) return true
    const proof = ctx.get('DPoP')
    let proofJkt: string | null = null
    const refuse = (error: Error): never => {
      recorder.revocationProof(proofJkt, token.jkt ?? null, (error as { error?: string }).error ?? 'invalid_dpop_proof')
      throw error
    }
    if (!proof) return refuse(new errors.InvalidDpopProof('DPoP proof required to revoke a DPoP-bound token'))
    let payload: JWTPayload
    try {
      const verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [...algorithms] })
      payload = verified.payload
      proofJkt = await calculateJwkThumbprint(verified.protectedHeader.jwk!)
    } catch {
      return refuse(new errors.InvalidDpopProof('invalid DPoP proof'))
    }
    const now = Date.now()
    for (const [jti, until] of seen) if (until < now) seen.delete(jti)
    if (payload.htm !== 'POST' || payload.htu !== htu) return refuse(new errors.InvalidDpopProof('DPoP proof htm or htu mismatch'))
    if (typeof payload.iat !== 'number' || Math.abs(now / 1000 - payload.iat) > 300) return refuse(new errors.InvalidDpopProof('DPoP proof iat out of window'))
    if (typeof payload.jti !== 'string' || seen.has(payload.jti)) return refuse(new errors.InvalidDpopProof('DPoP proof jti missing or replayed'))
    if (typeof payload.nonce !== 'string' || !nonces.checkChallenge(payload.nonce)) {
      ctx.set('DPoP-Nonce', nonces.nextChallenge())
      return refuse(new errors.UseDpopNonce('nonce is required in the DPoP proof'))
    }
    seen.set(payload.jti, now + 600_000)
    if (proofJkt !== token.jkt) return refuse(new errors.InvalidDpopProof('DPoP proof is not from the key the token is bound to'))
    recorder.revocationProof(proofJkt, token.jkt, 'revoked')
    return true
  }
}

/** Consent is automatic: the grant covers whatever the request asked for. */
async function loadExistingGrant(ctx: KoaContextWithOIDC): Promise<Grant | undefined> {
  const { oidc } = ctx
  const { client, account } = oidc
  if (!client || !account) return undefined
  const existingId = oidc.result?.consent?.grantId ?? oidc.session?.grantIdFor(client.clientId)
  let grant = existingId ? await oidc.provider.Grant.find(existingId) : undefined
  if (!grant || grant.accountId !== account.accountId || grant.clientId !== client.clientId) {
    grant = new oidc.provider.Grant({ accountId: account.accountId, clientId: client.clientId })
  }
  const scopes = [...oidc.requestParamOIDCScopes]
  if (scopes.length) grant.addOIDCScope(scopes.join(' '))
  const claims = [...oidc.requestParamClaims]
  if (claims.length) grant.addOIDCClaims(claims)
  for (const [indicator, server] of Object.entries(oidc.resourceServers)) {
    const wanted = [...oidc.requestParamScopes].filter((scope) => server.scopes.has(scope))
    if (wanted.length) grant.addResourceScope(indicator, wanted.join(' '))
  }
  await grant.save()
  return grant
}

/** Confirms the sign-out by itself; the buttons remain for a page without script. */
function logoutSource(ctx: KoaContextWithOIDC, form: string): void {
  ctx.body = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Signing out</title></head>
<body>
<h1>Signing out</h1>
${form}
<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>
<script>
  const form = document.getElementById('op.logoutForm')
  const yes = document.createElement('input')
  yes.type = 'hidden'; yes.name = 'logout'; yes.value = 'yes'
  form.appendChild(yes)
  form.submit()
</script>
</body></html>`
}

function postLogoutSuccessSource(ctx: KoaContextWithOIDC): void {
  ctx.body = '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Signed out</title></head><body><h1>Signed out</h1></body></html>'
}

// ---------------------------------------------------------------------------------------
// Recording

interface Recorder {
  attach(provider: Provider): void
  revocationSucceeded(): void
  revocationProof(proofJkt: string | null, tokenJkt: string | null, outcome: string): void
  userinfo(status: number, scheme: string | null, proof: string | null): void
  bearerAnswered(grantType: string): void
  proofWindowRefused(): void
  /** A refresh answer held or dropped on purpose (`refreshFault`). */
  fault(mode: 'hold' | 'drop', ms: number): void
  stats(): AuthServerStats
  reset(): void
}

interface OAuthErrorLike {
  error?: unknown
  error_description?: unknown
  error_detail?: unknown
  message?: unknown
}

function emptyStats(): AuthServerStats {
  return {
    tokenRequests: {},
    tokenErrors: {},
    authorizations: [],
    pushedRequests: [],
    pushedRequestErrors: {},
    issuedTokens: [],
    refreshTokensRotated: 0,
    refreshTokenReuse: 0,
    revocations: { succeeded: 0, failed: 0 },
    revocationProofs: [],
    userinfo: [],
    grantsRevoked: [],
    endSessions: 0,
    bearerAnswers: 0,
    proofWindowRefusals: 0,
    serverErrors: [],
    events: [],
  }
}

function createRecorder(log: ((line: string) => void) | undefined): Recorder {
  let stats = emptyStats()
  let seq = 0

  const record = (event: Omit<AuthServerEvent, 'seq' | 'at'>): number => {
    const at = Date.now()
    const full: AuthServerEvent = { seq: ++seq, at, ...event }
    stats.events.push(full)
    if (stats.events.length > MAX_EVENTS) stats.events.shift()
    if (log) {
      const detail = Object.entries(event)
        .filter(([key]) => key !== 'type')
        .map(([key, value]) => `${key}=${String(value)}`)
        .join(' ')
      log(`[auth-server] ${event.type} ${detail}`.trimEnd())
    }
    return at
  }

  const count = (grantType: string, outcome: keyof GrantTypeCount): void => {
    const entry = (stats.tokenRequests[grantType] ??= { succeeded: 0, failed: 0 })
    entry[outcome] += 1
  }

  const errorFields = (err: OAuthErrorLike): { error: string; errorDescription?: string; errorDetail?: string } => ({
    error: typeof err.error === 'string' ? err.error : 'server_error',
    ...(typeof err.error_description === 'string' ? { errorDescription: err.error_description } : {}),
    ...(typeof err.error_detail === 'string' ? { errorDetail: err.error_detail } : {}),
  })

  const onToken = (kind: 'AccessToken' | 'RefreshToken') => (token: TokenModel) => {
    const grantType = token.gty?.split(' ').at(-1) ?? null
    const jkt = token.jkt ?? null
    const grantId = token.grantId ?? null
    const at = record({ type: 'token.issued', kind, jkt, ...(grantType ? { grantType } : {}), ...(grantId ? { grantId } : {}) })
    stats.issuedTokens.push({ at, kind, grantType, jkt, grantId })
  }

  return {
    attach(provider) {
      provider.on('authorization.success', (ctx: KoaContextWithOIDC) => {
        const dpopJkt = stringParam(ctx, 'dpop_jkt')
        const clientId = ctx.oidc.client?.clientId ?? null
        const at = record({ type: 'authorization.success', jkt: dpopJkt })
        stats.authorizations.push({ at, clientId, dpopJkt })
      })
      provider.on('pushed_authorization_request.success', (ctx: KoaContextWithOIDC) => {
        const dpopJkt = stringParam(ctx, 'dpop_jkt')
        // The thumbprint of the key in the request's DPoP proof (the provider checked it).
        const proof = (ctx as unknown as { get(name: string): string }).get('DPoP')
        const entry = { at: record({ type: 'pushed_authorization_request.success', jkt: dpopJkt }), dpopJkt, proofJkt: null as string | null }
        stats.pushedRequests.push(entry)
        const jwk = proof ? decodeProtectedHeader(proof).jwk : undefined
        if (jwk) void calculateJwkThumbprint(jwk).then((jkt) => { entry.proofJkt = jkt }, () => undefined)
      })
      provider.on('pushed_authorization_request.error', (_ctx: KoaContextWithOIDC, err: OAuthErrorLike) => {
        const fields = errorFields(err)
        stats.pushedRequestErrors[fields.error] = (stats.pushedRequestErrors[fields.error] ?? 0) + 1
        record({ type: 'pushed_authorization_request.error', ...fields })
      })
      provider.on('authorization.error', (_ctx: KoaContextWithOIDC, err: OAuthErrorLike) => {
        record({ type: 'authorization.error', ...errorFields(err) })
      })
      provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
        const grantType = grantTypeOf(ctx)
        count(grantType, 'succeeded')
        record({ type: 'grant.success', grantType })
      })
      provider.on('grant.error', (ctx: KoaContextWithOIDC, err: OAuthErrorLike) => {
        const grantType = grantTypeOf(ctx)
        const fields = errorFields(err)
        count(grantType, 'failed')
        stats.tokenErrors[fields.error] = (stats.tokenErrors[fields.error] ?? 0) + 1
        if (fields.errorDetail === 'refresh token already used') stats.refreshTokenReuse += 1
        record({ type: 'grant.error', grantType, ...fields })
      })
      // JWT access tokens are not stored (`issued`); refresh tokens are (`saved`).
      provider.on('access_token.issued', onToken('AccessToken'))
      provider.on('access_token.saved', onToken('AccessToken'))
      provider.on('refresh_token.saved', onToken('RefreshToken'))
      provider.on('refresh_token.consumed', (token: TokenModel) => {
        stats.refreshTokensRotated += 1
        record({ type: 'refresh_token.consumed', ...(token.grantId ? { grantId: token.grantId } : {}), jkt: token.jkt ?? null })
      })
      provider.on('grant.revoked', (_ctx: KoaContextWithOIDC, grantId: string) => {
        stats.grantsRevoked.push(grantId)
        record({ type: 'grant.revoked', grantId })
      })
      provider.on('revocation.error', (_ctx: KoaContextWithOIDC, err: OAuthErrorLike) => {
        stats.revocations.failed += 1
        record({ type: 'revocation.error', ...errorFields(err) })
      })
      provider.on('end_session.success', () => {
        stats.endSessions += 1
        record({ type: 'end_session.success' })
      })
      provider.on('server_error', (ctx: KoaContextWithOIDC, err: OAuthErrorLike) => {
        const message = typeof err.message === 'string' ? err.message : 'unknown'
        const route = ctx.oidc.route ?? null
        const at = record({ type: 'server_error', error: 'server_error', errorDescription: message })
        stats.serverErrors.push({ at, route, message })
      })
    },
    revocationSucceeded() {
      stats.revocations.succeeded += 1
      record({ type: 'revocation.success' })
    },
    userinfo(status, scheme, proof) {
      const entry = { at: record({ type: 'userinfo', ...(status === 200 ? {} : { error: String(status) }) }), status, scheme, proofJkt: null as string | null }
      stats.userinfo.push(entry)
      const jwk = proof ? decodeProtectedHeader(proof).jwk : undefined
      if (jwk) void calculateJwkThumbprint(jwk).then((jkt) => { entry.proofJkt = jkt }, () => undefined)
    },
    revocationProof(proofJkt, tokenJkt, outcome) {
      const at = record({ type: 'revocation.proof', jkt: proofJkt, ...(outcome === 'revoked' ? {} : { error: outcome }) })
      stats.revocationProofs.push({ at, proofJkt, tokenJkt, outcome })
    },
    proofWindowRefused() {
      stats.proofWindowRefusals += 1
    },
    bearerAnswered(grantType) {
      stats.bearerAnswers += 1
      record({ type: 'bearer.answered', grantType })
    },
    fault(mode, ms) {
      record({ type: `fault.${mode}`, grantType: 'refresh_token', ...(mode === 'hold' ? { errorDescription: `${ms} ms` } : {}) })
    },
    stats: () => structuredClone(stats),
    reset() {
      stats = emptyStats()
      seq = 0
    },
  }
}

function stringParam(ctx: KoaContextWithOIDC, name: string): string | null {
  const value = ctx.oidc.params?.[name]
  return typeof value === 'string' ? value : null
}

function grantTypeOf(ctx: KoaContextWithOIDC): string {
  // ctx.oidc.params is assembled only after the body was parsed; an early failure has none.
  let value: string | null = null
  try {
    value = stringParam(ctx, 'grant_type')
  } catch {
    value = null
  }
  return value ?? 'unknown'
}

// ---------------------------------------------------------------------------------------
// Test control: GET /__control/stats, POST /__control/reset, POST /__control/config

function createControl(recorder: Recorder, config: AuthServerConfig, corsOrigins: Set<string>) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const origin = req.headers.origin
    if (origin && corsOrigins.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin)
      res.setHeader('Vary', 'Origin')
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    const route = `${req.method ?? 'GET'} ${path}`
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'GET, POST')
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type')
      res.writeHead(204).end()
      return
    }
    switch (route) {
      case `GET ${CONTROL_PREFIX}stats`:
        send(res, 200, recorder.stats())
        return
      case `POST ${CONTROL_PREFIX}reset`:
        recorder.reset()
        send(res, 200, { ok: true })
        return
      case `GET ${CONTROL_PREFIX}config`:
        send(res, 200, { ...config })
        return
      case `POST ${CONTROL_PREFIX}config`:
        readJson(req)
          .then((body) => applyConfig(config, body))
          .then(
            (now) => send(res, 200, now),
            (error: unknown) => send(res, 400, { error: 'invalid_request', error_description: error instanceof Error ? error.message : 'bad request' }),
        )
        return
      default:
        send(res, 404, { error: 'not_found' })
    }
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > 64 * 1024) throw new Error('body too large')
    chunks.push(chunk)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  return text ? (JSON.parse(text) as unknown) : {}
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' })
  res.end(JSON.stringify(body))
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
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
  const numeric = (text: string | undefined): number | undefined => (text === undefined || text === '' ? undefined : Number(text))
  const redirectUris = values['redirect-uri'] ?? env[AUTH_SERVER_ENV.redirectUris]?.split(',').map((s) => s.trim()).filter(Boolean)
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
  console.log(`authorization server: ${handle.issuer} (client_id ${handle.clientId}, API audience ${handle.apiAudience})`)
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
