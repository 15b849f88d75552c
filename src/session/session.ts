/**
 * The session record: tokens bound to the key, its shape, and the checks every session passes
 * before it is used (from a token response, from storage, from another tab or the refresh
 * worker), the user's `sub` included. Where it is kept and shared: `session-records.ts`.
 */
import { getValidatedIdTokenClaims, type TokenEndpointResponse } from 'oauth4webapi'
import { checkBoundTokens } from './server-errors.js'
import { ServerResponseError } from '../base/errors.js'
import type { UserClaims } from './user.js'

/** @internal The persisted session: tokens bound to the key with thumbprint `jkt`. */
export interface Session {
  readonly v: 1
  readonly accessToken: string
  readonly refreshToken: string | undefined
  /** Local-clock ms when the access token expires. */
  readonly expiresAt: number
  /** Lifetime in ms the server gave the access token. */
  readonly lifetimeMs: number
  readonly idToken: string | undefined
  readonly user: UserClaims | undefined
  readonly jkt: string
  readonly scope: string | undefined
}

/** @internal A login in progress: what the redirect back needs. Holds the PKCE verifier. */
export interface Transaction {
  readonly state: string
  readonly codeVerifier: string
  readonly nonce: string | undefined
  readonly jkt: string
  readonly returnTo: string | undefined
  readonly createdAt: number
}

/** @internal How long a login transaction can be completed. */
export const TRANSACTION_MAX_AGE_MS = 15 * 60_000

// RFC 6750 b64token is narrower; anything that fits an Authorization header value is accepted.
const TOKEN = /^[\x21-\x7e]{1,16384}$/
const JKT = /^[A-Za-z0-9_-]{43}$/
const isToken = (value: unknown): value is string => typeof value === 'string' && TOKEN.test(value)
const isTime = (value: unknown): boolean =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0
const isUser = (value: unknown): boolean =>
  typeof value === 'object' &&
  value !== null &&
  !Array.isArray(value) &&
  typeof (value as UserClaims).sub === 'string'

/**
 * @internal Whether `value` is a session as this version writes it: every field of the right
 * type, tokens that fit an Authorization header. Stored sessions and sessions from other
 * tabs are checked alike (and then against this key's thumbprint), like user input.
 */
export function isSession(value: unknown): value is Session {
  if (typeof value !== 'object' || value === null) return false
  const fields = value as Record<keyof Session, unknown>
  return (
    fields.v === 1 &&
    isToken(fields.accessToken) &&
    (fields.refreshToken === undefined || isToken(fields.refreshToken)) &&
    isTime(fields.expiresAt) &&
    isTime(fields.lifetimeMs) &&
    (fields.idToken === undefined || isToken(fields.idToken)) &&
    (fields.user === undefined || isUser(fields.user)) &&
    typeof fields.jkt === 'string' &&
    JKT.test(fields.jkt) &&
    (fields.scope === undefined || typeof fields.scope === 'string')
  )
}

/**
 * @internal A session from a token response, checked first: DPoP-bound, to this key (see
 * {@link checkBoundTokens}), with the ID token oauth4webapi validated. The user comes from the
 * ID token, else from the response's `sub` (with `issuer`), else stays `previous`'s; every
 * `sub` the server gives must name the same user. `fallbackLifetimeMs` applies when the
 * response has no `expires_in`.
 * @throws {ServerResponseError} `ERR_TOKEN_TYPE_MISMATCH`, `ERR_INVALID_RESPONSE`.
 */
export function sessionFromTokens(
  result: TokenEndpointResponse,
  jkt: string,
  previous: Session | undefined,
  fallbackLifetimeMs: number,
  issuer: string,
): Session {
  checkBoundTokens(result, jkt)
  const lifetimeMs =
    typeof result.expires_in === 'number' && result.expires_in > 0
      ? result.expires_in * 1000
      : fallbackLifetimeMs
  const claims = result.id_token ? getValidatedIdTokenClaims(result) : undefined
  const named = typeof result.sub === 'string' && result.sub !== '' ? result.sub : undefined
  for (const other of [named, previous?.user?.sub]) {
    const sub = claims?.sub ?? named
    if (other !== undefined && sub !== undefined && other !== sub) {
      throw new ServerResponseError(
        'ERR_INVALID_RESPONSE',
        'The server named two different users (sub) for one session; nothing was stored. Log in again.',
      )
    }
  }
  return {
    v: 1,
    accessToken: result.access_token,
    refreshToken: result.refresh_token ?? previous?.refreshToken,
    expiresAt: Date.now() + lifetimeMs,
    lifetimeMs,
    idToken: result.id_token ?? previous?.idToken,
    user: claims
      ? { ...previous?.user, ...claims }
      : named && !previous?.user
        ? { sub: named, iss: issuer }
        : previous?.user,
    jkt,
    scope: result.scope ?? previous?.scope,
  }
}
