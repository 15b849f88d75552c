/**
 * Access tokens the resource server accepts, in two modes:
 * - test mode: opaque random tokens minted on request and bound to a given `jkt`, so
 *   the signed-fetch tests need no authorization server;
 * - jwt mode: JWT access tokens from an authorization server, verified with jose
 *   against its JWKS, whose `cnf.jkt` (RFC 9449 §6.1) binds them to a key.
 * Either way the verifier answers "which key is this token bound to"; the server then
 * compares that with the proof's thumbprint.
 */
import { randomBytes } from 'node:crypto'
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose'
import { AuthError } from './auth-error.ts'

/** What a valid token says. */
export interface TokenInfo {
  /** Thumbprint of the key the token is bound to (`cnf.jkt`). */
  jkt: string
  /** Subject, when the token names one. */
  sub?: string | undefined
  /** Space-separated scopes, when the token has them. */
  scope?: string | undefined
  /** Expiry, seconds since the epoch, when the token has one. */
  exp?: number | undefined
}

/** Resolves with what a token says or rejects with an {@link AuthError} `invalid_token`. */
export type TokenVerifier = (accessToken: string) => Promise<TokenInfo>

const invalidToken = (description: string, cause?: unknown): AuthError =>
  new AuthError('invalid_token', 'token', description, cause === undefined ? undefined : { cause })

/** Options of {@link TestTokens.mint}. */
export interface MintOptions {
  /** The key thumbprint to bind the token to. */
  jkt: string
  /** Lifetime in seconds on the server clock; omit for a token that does not expire. */
  expiresIn?: number | undefined
  /** Subject to report. @default 'test-user' */
  sub?: string | undefined
}

/** Opaque test tokens held in memory. */
export interface TestTokens {
  /** Verifies a token minted here. */
  verify: TokenVerifier
  /** Mints a token bound to `jkt`. */
  mint(options: MintOptions): { access_token: string; token_type: 'DPoP'; expires_in?: number }
  /** Revokes one token, or every token when none is given. Returns how many were revoked. */
  revoke(accessToken?: string): number
  /** Forgets every token. */
  clear(): void
}

const JKT = /^[A-Za-z0-9_-]{43}$/

/**
 * Creates the in-memory token store of test mode.
 * `mint` throws TypeError for a `jkt` that is not a base64url SHA-256 thumbprint.
 */
export function createTestTokens(options: { now: () => number }): TestTokens {
  const tokens = new Map<string, { jkt: string; sub: string; expiresAt: number | undefined }>()
  return {
    verify(accessToken) {
      const t = tokens.get(accessToken)
      if (!t) return Promise.reject(invalidToken('access token is unknown or revoked'))
      if (t.expiresAt !== undefined && options.now() >= t.expiresAt)
        return Promise.reject(invalidToken('access token expired'))
      return Promise.resolve({
        jkt: t.jkt,
        sub: t.sub,
        exp: t.expiresAt === undefined ? undefined : Math.floor(t.expiresAt / 1000),
      })
    },
    mint({ jkt, expiresIn, sub }) {
      if (typeof jkt !== 'string' || !JKT.test(jkt))
        throw new TypeError('"jkt" must be a base64url SHA-256 JWK thumbprint')
      if (expiresIn !== undefined && (!Number.isFinite(expiresIn) || expiresIn <= 0)) {
        throw new TypeError('"expiresIn" must be a positive number of seconds')
      }
      const access_token = randomBytes(32).toString('base64url')
      tokens.set(access_token, {
        jkt,
        sub: sub ?? 'test-user',
        expiresAt: expiresIn === undefined ? undefined : options.now() + expiresIn * 1000,
      })
      return expiresIn === undefined
        ? { access_token, token_type: 'DPoP' }
        : { access_token, token_type: 'DPoP', expires_in: expiresIn }
    },
    revoke(accessToken) {
      if (accessToken === undefined) {
        const n = tokens.size
        tokens.clear()
        return n
      }
      return tokens.delete(accessToken) ? 1 : 0
    },
    clear() {
      tokens.clear()
    },
  }
}

/** Options of {@link createJwtTokenVerifier}. */
export interface JwtTokenOptions {
  /** The authorization server's issuer identifier; the token's `iss` must equal it. */
  issuer: string
  /** The token's `aud` must contain this (the resource server's identifier). */
  audience: string
  /**
   * The issuer's `jwks_uri`.
   * @default discovered from `${issuer}/.well-known/openid-configuration`
   */
  jwksUri?: string | undefined
  /** Required JWT `typ` header, e.g. `at+jwt` (RFC 9068); omit to accept any. */
  typ?: string | undefined
  /** Accepted signing algorithms of the access tokens. @default ['ES256', 'RS256', 'PS256', 'EdDSA'] */
  algorithms?: readonly string[] | undefined
  /** Server clock in milliseconds. */
  now: () => number
  /** Allowed clock skew for exp/nbf, seconds. @default 30 */
  clockToleranceSec?: number | undefined
}

/**
 * Creates the verifier of JWT access tokens: signature against the issuer's JWKS
 * (jose `createRemoteJWKSet`), `iss`, `aud`, `exp`, and a `cnf.jkt` to bind to.
 * @throws {TypeError} when `issuer` or `audience` is missing.
 */
export function createJwtTokenVerifier(options: JwtTokenOptions): TokenVerifier {
  if (typeof options.issuer !== 'string' || options.issuer === '')
    throw new TypeError('"issuer" must be the issuer identifier URL')
  if (typeof options.audience !== 'string' || options.audience === '')
    throw new TypeError('"audience" must be a non-empty string')
  const algorithms = [...(options.algorithms ?? ['ES256', 'RS256', 'PS256', 'EdDSA'])]
  let jwks: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined

  const discover = async (): Promise<ReturnType<typeof createRemoteJWKSet>> => {
    if (options.jwksUri) return createRemoteJWKSet(new URL(options.jwksUri))
    const url = new URL(`${options.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`)
    const response = await fetch(url)
    if (!response.ok) throw new Error(`discovery at ${url.href} answered ${response.status}`)
    const metadata = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown }
    if (metadata.issuer !== options.issuer || typeof metadata.jwks_uri !== 'string') {
      throw new Error(`discovery at ${url.href} does not describe issuer ${options.issuer}`)
    }
    return createRemoteJWKSet(new URL(metadata.jwks_uri))
  }

  return async (accessToken) => {
    if (!jwks) {
      jwks = discover()
      // A failed discovery is retried on the next request, not cached forever.
      jwks.catch(() => (jwks = undefined))
    }
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(accessToken, await jwks, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms,
        currentDate: new Date(options.now()),
        clockTolerance: options.clockToleranceSec ?? 30,
        ...(options.typ === undefined ? {} : { typ: options.typ }),
      }))
    } catch (cause) {
      const code = (cause as { code?: unknown }).code
      throw invalidToken(
        code === 'ERR_JWT_EXPIRED' ? 'access token expired' : 'access token did not verify',
        cause,
      )
    }
    const cnf = payload.cnf as { jkt?: unknown } | undefined
    if (typeof cnf?.jkt !== 'string')
      throw invalidToken('access token is not DPoP-bound (no cnf.jkt)')
    return {
      jkt: cnf.jkt,
      sub: payload.sub,
      scope: typeof payload.scope === 'string' ? payload.scope : undefined,
      exp: payload.exp,
    }
  }
}
