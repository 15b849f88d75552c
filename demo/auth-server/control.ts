/**
 * The test control of the demo's authorization server, on loopback only; it never returns a
 * token value:
 * - `GET /__control/stats`: what the recorder saw (recorder.ts); `POST /__control/reset`
 *   forgets it (not the sessions, grants or tokens).
 * - `GET /__control/config`, `POST /__control/config`: the settings tests change while the
 *   server runs ({@link AuthServerConfig}); test-switches.ts applies them inside the provider.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RefreshRotation } from './provider.ts'
import type { Recorder } from './recorder.ts'

/** Where the control routes live; any other path belongs to the provider. */
export const CONTROL_PREFIX = '/__control/'

/** A lost refresh answer, injected after the server rotated (see `AuthServerConfig.refreshFault`). */
export interface RefreshFault {
  /** `hold`: answer after `ms`; `drop`: destroy the connection without answering. */
  mode: 'hold' | 'drop'
  /** How long `hold` keeps the answer back, ms (0 to 30000). */
  ms: number
  /** How many successful refresh_token grants it applies to (1 to 10); counts down. */
  count: number
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

/** `value` as a positive integer of seconds. @throws {TypeError} naming `name` otherwise */
export function seconds(value: unknown, name: string): number {
  if (!Number.isInteger(value) || (value as number) < 1)
    throw new TypeError(`"${name}" must be a positive integer (seconds)`)
  return value as number
}

/** `value` as a {@link RefreshRotation}. @throws {TypeError} naming `name` otherwise */
export function rotation(value: unknown, name: string): RefreshRotation {
  if (value !== 'always' && value !== 'near-expiry')
    throw new TypeError(`"${name}" must be 'always' or 'near-expiry'`)
  return value
}

function refreshFault(value: unknown): RefreshFault | null {
  if (value === null) return null
  const { mode, ms, count } = (typeof value === 'object' ? value : {}) as Record<string, unknown>
  const int = (v: unknown, min: number, max: number) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max
  if ((mode !== 'hold' && mode !== 'drop') || !int(ms ?? 0, 0, 30_000) || !int(count ?? 1, 1, 10)) {
    throw new TypeError(
      '"refreshFault" must be null or { mode: "hold" | "drop", ms: 0..30000, count: 1..10 }',
    )
  }
  return { mode, ms: (ms as number | undefined) ?? 0, count: (count as number | undefined) ?? 1 }
}

/** Applies a validated change to `config`, all or nothing; returns a copy of the settings now in force. @throws {TypeError} on a bad value */
export function applyConfig(config: AuthServerConfig, change: unknown): AuthServerConfig {
  if (typeof change !== 'object' || change === null)
    throw new TypeError('the config change must be an object')
  const {
    answerBearer,
    accessTokenTtl,
    revocationDelayMs,
    nonces,
    iatWindowSec,
    tokenType,
    refreshRotation,
    refreshFault: fault,
  } = change as Record<string, unknown>
  if (nonces !== undefined && nonces !== 'always' && nonces !== 'never')
    throw new TypeError('"nonces" must be "always" or "never"')
  if (
    iatWindowSec !== undefined &&
    !(Number.isInteger(iatWindowSec) && (iatWindowSec as number) >= 0)
  )
    throw new TypeError('"iatWindowSec" must be an integer >= 0')
  if (
    tokenType !== undefined &&
    !(typeof tokenType === 'string' && /^[A-Za-z]{0,20}$/.test(tokenType))
  )
    throw new TypeError('"tokenType" must be letters only (or empty)')
  if (answerBearer !== undefined && typeof answerBearer !== 'boolean')
    throw new TypeError('"answerBearer" must be a boolean')
  if (accessTokenTtl !== undefined) seconds(accessTokenTtl, 'accessTokenTtl')
  if (
    revocationDelayMs !== undefined &&
    !(
      Number.isInteger(revocationDelayMs) &&
      (revocationDelayMs as number) >= 0 &&
      (revocationDelayMs as number) <= 10_000
    )
  ) {
    throw new TypeError('"revocationDelayMs" must be an integer from 0 to 10000')
  }
  const nextRotation =
    refreshRotation === undefined ? undefined : rotation(refreshRotation, 'refreshRotation')
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

/** The request listener of `/__control/*`; CORS for `corsOrigins`. */
export function createControl(
  recorder: Recorder,
  config: AuthServerConfig,
  corsOrigins: ReadonlySet<string>,
) {
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
            (error: unknown) =>
              send(res, 400, {
                error: 'invalid_request',
                error_description: error instanceof Error ? error.message : 'bad request',
              }),
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

/** Answers `body` as JSON, never cached. */
export function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' })
  res.end(JSON.stringify(body))
}
