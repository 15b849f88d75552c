/**
 * The demo's resource server: an API that accepts only DPoP-bound access tokens and
 * checks every proof itself with jose (RFC 9449 §4.3, §7.1); verify-proof.ts is the proof
 * check to model an API on. It also serves the browser tests of the signed fetch, which drive
 * it through `/__control/*`: those test-only routes live in control.ts, wired in test mode only.
 *
 * Run it: `npx tsx demo/api/server.ts --port 5301 [--other-port 5302]`
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createHash } from 'node:crypto'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import {
  createJwtTokenVerifier,
  createTestTokens,
  type JwtTokenOptions,
  type TestTokens,
  type TokenInfo,
  type TokenVerifier,
} from './access-tokens.ts'
import { AuthError, type CheckName } from './auth-error.ts'
import { BodyTooLarge, readBody, sendJson } from './body.ts'
import { answerRedirect, createControlRoutes } from './control.ts'
import { createCors } from './cors.ts'
import { closeServer, listen } from './listen.ts'
import { createNonceIssuer } from './nonces.ts'
import { createReplayCache } from './replay.ts'
import { createRequestLog, type Outcome, type RequestLog, type Stats } from './request-log.ts'
import { startRecordingServer } from './recording-server.ts'
import { createProofVerifier, DEFAULT_ALGORITHMS, type VerifiedProof } from './verify-proof.ts'
import { decodeJwt } from 'jose'

/** Environment variable names the CLI and the defaults read. */
export const ENV = {
  port: 'DPOP_API_PORT',
  otherPort: 'DPOP_API_OTHER_PORT',
  corsOrigins: 'DPOP_API_CORS_ORIGINS',
  issuer: 'DPOP_API_ISSUER',
  audience: 'DPOP_API_AUDIENCE',
  jwksUri: 'DPOP_API_JWKS_URI',
} as const

/** Options of {@link startApiServer}. */
export interface ApiServerOptions {
  /** Port; 0 picks a free one. @default Number(process.env.DPOP_API_PORT ?? 5301) */
  port?: number
  /** Interface to bind (loopback only in tests and the demo). @default '127.0.0.1' */
  host?: string
  /** Page origins allowed by CORS. @default DPOP_API_CORS_ORIGINS (comma-separated) or ['http://localhost:5199'] */
  corsOrigins?: readonly string[]
  /**
   * The origin clients use to reach the server, for `htu`. By default it is taken from
   * each request's Host header, which is right on loopback and wrong behind a proxy.
   */
  publicOrigin?: string | undefined
  /**
   * Which access tokens are accepted: `'test'` mints opaque tokens through
   * `POST /__control/token`; `{ jwt }` verifies JWT access tokens from an issuer.
   * @default 'test'
   */
  tokens?: 'test' | { jwt: Omit<JwtTokenOptions, 'now'> }
  /** Serve `/__control/*`. @default true in test mode, false in jwt mode */
  control?: boolean
  /** Require a server nonce in every proof (RFC 9449 §9). @default true */
  requireNonce?: boolean
  /** Rotate the nonce this often, ms; 0 = only on demand. @default 0 */
  nonceRotateEveryMs?: number
  /** Accepted `iat` distance from the server clock, seconds. @default 60 */
  iatWindowSec?: number
  /** Accepted proof algorithms, advertised in `algs`. @default ['ES256', 'EdDSA', 'RS256', 'PS256'] */
  algorithms?: readonly string[]
  /** Offset added to the server's clock, ms, to simulate a client whose clock is wrong. @default 0 */
  clockOffsetMs?: number
  /** Most unexpired proof `jti`s remembered; past it, requests are refused with 503. @default 100_000 */
  replayCacheSize?: number
  /** Largest accepted request body, bytes. @default 10 MiB */
  maxBodyBytes?: number
  /** Receives one line per request (no tokens); omit for silence. */
  log?: ((line: string) => void) | undefined
}

/** A running API server. */
export interface ApiServer {
  /** `http://localhost:<port>`: the origin pages use. */
  url: string
  port: number
  /** Stops the server and drops open connections. */
  close(): Promise<void>
  /** Rotates the nonce now; returns the new one. */
  rotateNonce(): string
  /** Sets the server clock offset, ms. */
  setClockOffset(ms: number): void
  /** Mints a test token (test mode only). */
  mintToken: TestTokens['mint']
  /** Revokes one test token, or all. Returns how many. */
  revokeTokens(accessToken?: string): number
  /** What the server saw. */
  stats(): Stats
  /** Ends every open `/api/events` stream (the clients reconnect); returns how many. */
  closeStreams(): number
  /** Back to a clean state: stats, replay cache, scheduled rotations, clock offset; new nonce; tokens forgotten; streams ended. */
  reset(): void
}

const DEFAULTS = {
  host: '127.0.0.1',
  corsOrigins: ['http://localhost:5199'],
  requireNonce: true,
  nonceRotateEveryMs: 0,
  iatWindowSec: 60,
  clockOffsetMs: 0,
  maxBodyBytes: 10 * 1024 * 1024,
} as const

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('base64url')

// Best-effort claims of a proof for the request log, also for rejected proofs.
function peekProof(dpop: readonly string[]): Record<string, unknown> | undefined {
  if (dpop.length !== 1) return undefined
  try {
    const { jti, htm, htu, iat, nonce, ath } = decodeJwt(dpop[0] ?? '')
    return { jti, htm, htu, iat, nonce, ath }
  } catch {
    return undefined
  }
}

/**
 * Starts the resource server.
 *
 * API routes (CORS for `corsOrigins`): `GET|POST|PUT|PATCH|DELETE /api/echo`, `GET /api/me`,
 * `* /api/always-challenge` (rotates the nonce and answers `use_dpop_nonce` every time),
 * `GET /api/events` (server-sent events: one event describing the proof of this connection,
 * then the stream stays open until `/__control/sse-close`; each reconnect is a new request,
 * verified like any other),
 * `* /hidden/echo` (like /api/echo, but its CORS does not expose DPoP-Nonce/WWW-Authenticate),
 * `* /api/redirect?to=URL&status=302` (test mode: redirects without checking anything).
 * Control routes (test mode): `/__control/*`, listed in control.ts.
 *
 * @throws {Error} code EADDRINUSE, "port N is in use; set DPOP_API_PORT (or --port) to another port".
 * @throws {TypeError} for a bad option.
 */
export async function startApiServer(options: ApiServerOptions = {}): Promise<ApiServer> {
  const port = options.port ?? Number(process.env[ENV.port] ?? 5301)
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new TypeError('"port" must be an integer 0..65535')
  const host = options.host ?? DEFAULTS.host
  const envOrigins = process.env[ENV.corsOrigins]
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  const cors = createCors(options.corsOrigins ?? envOrigins ?? DEFAULTS.corsOrigins)
  const iatWindowSec = options.iatWindowSec ?? DEFAULTS.iatWindowSec
  const algorithms = options.algorithms ?? DEFAULT_ALGORITHMS
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULTS.maxBodyBytes
  const publicOrigin =
    options.publicOrigin === undefined ? undefined : new URL(options.publicOrigin).origin
  const log = options.log

  let clockOffsetMs = options.clockOffsetMs ?? DEFAULTS.clockOffsetMs
  // The server's clock: every time-based check and the Date header use it.
  const now = (): number => Date.now() + clockOffsetMs

  const nonces = createNonceIssuer({
    rotateEveryMs: options.nonceRotateEveryMs ?? DEFAULTS.nonceRotateEveryMs,
  })
  const requireNonce = options.requireNonce ?? DEFAULTS.requireNonce
  const replay = createReplayCache({
    windowSec: iatWindowSec,
    now,
    ...(options.replayCacheSize ? { maxEntries: options.replayCacheSize } : {}),
  })
  const verifyProof = createProofVerifier({
    algorithms,
    iatWindowSec,
    now,
    nonces: requireNonce ? nonces : undefined,
    replay,
  })
  const tokenMode = options.tokens ?? 'test'
  const testTokens = createTestTokens({ now })
  const verifyToken: TokenVerifier =
    tokenMode === 'test' ? testTokens.verify : createJwtTokenVerifier({ ...tokenMode.jwt, now })
  const requests: RequestLog = createRequestLog()
  // Pending "rotate after N more API requests" thresholds, as absolute counts.
  let apiRequests = 0
  let rotateAt: number[] = []
  const algs = algorithms.join(' ')
  // Open server-sent-event streams, ended by /__control/sse-close and reset().
  const streams = new Set<ServerResponse>()
  let events = 0
  // The test-only routes, wired in test mode only (control.ts).
  const handleControl =
    (options.control ?? tokenMode === 'test')
      ? createControlRoutes({
          api: () => api,
          testTokens: tokenMode === 'test',
          scheduleRotation(after) {
            rotateAt = [...rotateAt, apiRequests + after].sort((a, b) => a - b)
            return apiRequests + after
          },
          now,
        })
      : undefined

  /** RFC 9449 §7.1 + RFC 6750 §3: the challenge, the JSON body, and a nonce whenever it helps. */
  const reject = (res: ServerResponse, error: AuthError, sentNonce: unknown): Outcome => {
    const params =
      error.error === undefined
        ? []
        : [`error="${error.error}"`, `error_description="${error.message}"`]
    params.push(`algs="${algs}"`)
    res.setHeader('WWW-Authenticate', `DPoP ${params.join(', ')}`)
    if (requireNonce && (error.error === 'use_dpop_nonce' || sentNonce !== nonces.current())) {
      res.setHeader('DPoP-Nonce', nonces.current())
    }
    // A full replay cache is the server's trouble, not the proof's: 503, try again later.
    if (error.check === 'jti-capacity') res.setHeader('Retry-After', String(iatWindowSec))
    sendJson(res, error.check === 'jti-capacity' ? 503 : 401, {
      error: error.error ?? 'unauthorized',
      error_description: error.message,
      check: error.check,
    })
    return error.error ?? 'unauthenticated'
  }

  /** Authorization: DPoP <token> + a valid proof + a valid token bound to the proof's key. */
  const authenticate = async (
    req: IncomingMessage,
    url: URL,
  ): Promise<{ proof: VerifiedProof; token: TokenInfo }> => {
    const authorization = req.headersDistinct.authorization ?? []
    if (authorization.length === 0)
      throw new AuthError(undefined, 'authorization', 'DPoP access token required')
    if (authorization.length > 1)
      throw new AuthError('invalid_request', 'authorization', 'more than one Authorization header')
    const match = /^(\S+)(?: +([A-Za-z0-9\-._~+/]+=*))?$/.exec(authorization[0] ?? '')
    const scheme = match?.[1]?.toLowerCase()
    if (scheme !== 'dpop') {
      // RFC 9449 §7.2: a resource that requires DPoP does not accept a Bearer token.
      throw new AuthError(
        'invalid_request',
        'scheme',
        'this resource requires the DPoP authorization scheme',
      )
    }
    const accessToken = match?.[2]
    if (accessToken === undefined)
      throw new AuthError('invalid_request', 'authorization', 'DPoP access token missing')
    const proof = await verifyProof({
      dpop: req.headersDistinct.dpop ?? [],
      method: req.method ?? '',
      url: url.href,
      accessToken,
    })
    const token = await verifyToken(accessToken)
    // RFC 9449 §6.1, §7.1: the token is bound to the key that signed the proof.
    if (token.jkt !== proof.jkt)
      throw new AuthError(
        'invalid_token',
        'jkt',
        'access token is bound to a different key than the DPoP proof',
      )
    proof.accept()
    return { proof, token }
  }

  const handleApi = async (
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    hidden: boolean,
  ): Promise<{ outcome: Outcome; check?: CheckName; body: Buffer }> => {
    cors.apply(req, res, { expose: !hidden })
    const body = await readBody(req, maxBodyBytes)
    apiRequests++
    while (rotateAt.length > 0 && (rotateAt[0] ?? Infinity) <= apiRequests) {
      rotateAt.shift()
      nonces.rotate()
    }
    const route = url.pathname
    if (route === '/api/redirect' && handleControl) {
      // Test mode only (control.ts).
      answerRedirect(res, url)
      return { outcome: 'redirect', body }
    }
    const known =
      route === '/api/echo' ||
      route === '/api/me' ||
      route === '/api/events' ||
      route === '/api/always-challenge' ||
      route === '/hidden/echo'
    if (!known || ((route === '/api/me' || route === '/api/events') && req.method !== 'GET')) {
      sendJson(res, 404, { error: 'not_found' })
      return { outcome: 'not_found', body }
    }
    const dpop = req.headersDistinct.dpop ?? []
    const sentNonce = peekProof(dpop)?.nonce
    let auth: { proof: VerifiedProof; token: TokenInfo }
    try {
      auth = await authenticate(req, url)
      if (route === '/api/always-challenge') {
        nonces.rotate()
        throw new AuthError(
          'use_dpop_nonce',
          'challenge',
          'Resource server requires a fresh nonce on every request',
        )
      }
    } catch (error) {
      if (!(error instanceof AuthError)) throw error
      return { outcome: reject(res, error, sentNonce), check: error.check, body }
    }
    // RFC 9449 §8.2: a new nonce may come with any response; send it whenever the
    // client's one is no longer the current one, so it does not need a 401 to learn it.
    if (requireNonce && auth.proof.claims.nonce !== nonces.current())
      res.setHeader('DPoP-Nonce', nonces.current())
    if (route === '/api/me') {
      sendJson(res, 200, { sub: auth.token.sub, jkt: auth.token.jkt, scope: auth.token.scope })
    } else if (route === '/api/events') {
      // One event per connection, naming the proof it was opened with; a short `retry` so
      // reconnects after /__control/sse-close are quick.
      res.statusCode = 200
      res.setHeader('Content-Type', 'text/event-stream')
      res.setHeader('Cache-Control', 'no-store')
      const data = {
        jti: auth.proof.claims.jti,
        ath: auth.proof.claims.ath,
        sub: auth.token.sub,
        lastEventId: req.headers['last-event-id'] ?? null,
      }
      res.write(`retry: 100\nid: ${++events}\ndata: ${JSON.stringify(data)}\n\n`)
      streams.add(res)
      res.on('close', () => streams.delete(res))
    } else {
      const contentType = req.headers['content-type']
      sendJson(res, 200, {
        method: req.method,
        path: route,
        query: url.search.slice(1),
        claims: auth.proof.claims,
        jkt: auth.proof.jkt,
        tokenJkt: auth.token.jkt,
        sub: auth.token.sub,
        contentType: contentType ?? null,
        bodyLength: body.length,
        bodySha256: sha256(body),
        body: body.toString('base64'),
      })
    }
    return { outcome: 'ok', body }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // The Date header reflects the server's own (possibly offset) clock: the SDK learns the offset from it.
    res.setHeader('Date', new Date(now()).toUTCString())
    const origin = publicOrigin ?? `http://${req.headers.host ?? `localhost:${boundPort}`}`
    const url = new URL(req.url ?? '/', origin)
    const route = url.pathname
    if (route.startsWith('/__control/')) {
      if (!handleControl) return sendJson(res, 404, { error: 'not_found' })
      return handleControl(req, res, route)
    }
    const isApi = route.startsWith('/api/') || route.startsWith('/hidden/')
    let outcome: Outcome = 'not_found'
    let check: CheckName | undefined
    let body: Buffer | undefined
    if (isApi && cors.preflight(req, res)) {
      outcome = 'preflight'
    } else if (isApi) {
      try {
        ;({ outcome, check, body } = await handleApi(req, res, url, route.startsWith('/hidden/')))
      } catch (error) {
        if (!(error instanceof BodyTooLarge)) throw error
        sendJson(res, 413, { error: 'payload_too_large' })
        outcome = 'payload_too_large'
      }
    } else {
      sendJson(res, 404, { error: 'not_found' })
    }
    const dpop = req.headersDistinct.dpop ?? []
    requests.record({
      req,
      method: req.method ?? '',
      path: route,
      query: url.search.slice(1),
      outcome,
      check,
      status: res.statusCode,
      proof: peekProof(dpop),
      bodyLength: body?.length ?? 0,
      bodySha256: body && sha256(body),
    })
    log?.(`${res.statusCode} ${req.method} ${route} ${outcome}${check ? ` (${check})` : ''}`)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // Malformed control input and the like; never echo request data back.
      const message =
        error instanceof SyntaxError || error instanceof TypeError
          ? 'bad request'
          : 'internal error'
      if (!res.headersSent) sendJson(res, message === 'bad request' ? 400 : 500, { error: message })
      else res.destroy()
      if (message === 'internal error') console.error('api server:', error)
    })
  })
  const boundPort = await listen(server, port, host, `${ENV.port} (or --port)`)

  const api: ApiServer = {
    url: `http://localhost:${boundPort}`,
    port: boundPort,
    close: () => closeServer(server),
    rotateNonce: () => nonces.rotate(),
    setClockOffset(ms) {
      if (!Number.isFinite(ms)) throw new TypeError('"ms" must be a finite number')
      clockOffsetMs = ms
    },
    mintToken: (o) => testTokens.mint(o),
    revokeTokens: (t) => testTokens.revoke(t),
    stats: () => requests.stats(),
    closeStreams() {
      const open = [...streams]
      streams.clear()
      for (const stream of open) stream.end()
      return open.length
    },
    reset() {
      api.closeStreams()
      events = 0
      requests.clear()
      replay.clear()
      testTokens.clear()
      nonces.reset()
      rotateAt = []
      apiRequests = 0
      clockOffsetMs = options.clockOffsetMs ?? DEFAULTS.clockOffsetMs
    },
  }
  return api
}

/** Options of the command line, with their environment fallbacks. */
function cliOptions(argv: string[]): { api: ApiServerOptions; otherPort: number | undefined } {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'other-port': { type: 'string' },
      'cors-origin': { type: 'string', multiple: true },
      'public-origin': { type: 'string' },
      issuer: { type: 'string' },
      audience: { type: 'string' },
      'jwks-uri': { type: 'string' },
      'nonce-rotate-ms': { type: 'string' },
      'iat-window': { type: 'string' },
      verbose: { type: 'boolean', default: false },
    },
  })
  const issuer = values.issuer ?? process.env[ENV.issuer]
  const audience = values.audience ?? process.env[ENV.audience]
  const jwksUri = values['jwks-uri'] ?? process.env[ENV.jwksUri]
  const otherPort = values['other-port'] ?? process.env[ENV.otherPort]
  const api: ApiServerOptions = {
    ...(values.port !== undefined ? { port: Number(values.port) } : {}),
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values['cors-origin'] ? { corsOrigins: values['cors-origin'] } : {}),
    ...(values['public-origin'] !== undefined ? { publicOrigin: values['public-origin'] } : {}),
    ...(values['nonce-rotate-ms'] !== undefined
      ? { nonceRotateEveryMs: Number(values['nonce-rotate-ms']) }
      : {}),
    ...(values['iat-window'] !== undefined ? { iatWindowSec: Number(values['iat-window']) } : {}),
    ...(issuer !== undefined
      ? { tokens: { jwt: { issuer, audience: audience ?? 'http://localhost:5301', jwksUri } } }
      : {}),
    ...(values.verbose ? { log: (line: string) => console.log(line) } : {}),
  }
  return { api, otherPort: otherPort === undefined ? undefined : Number(otherPort) }
}

async function main(): Promise<void> {
  const { api, otherPort } = cliOptions(process.argv.slice(2))
  try {
    const server = await startApiServer(api)
    console.log(
      `api server: ${server.url} (${api.tokens === undefined ? 'test mode, /__control on' : 'jwt mode'})`,
    )
    if (otherPort !== undefined) {
      const other = await startRecordingServer({
        port: otherPort,
        portHint: `${ENV.otherPort} (or --other-port)`,
      })
      console.log(`other origin: ${other.url}`)
    }
  } catch (error) {
    console.error(`api server: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(1)
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  await main()
