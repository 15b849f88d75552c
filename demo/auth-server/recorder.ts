/**
 * What the demo's authorization server saw, for the tests: provider events (grant.success and
 * .error, authorization.success, pushed_authorization_request.*, token saves,
 * refresh_token.consumed, grant.revoked, end_session.success, server_error) plus what
 * test-switches.ts reports from its middleware (successful revocations, UserInfo requests,
 * answers rewritten or lost on purpose). Tests read it through `GET /__control/stats`
 * (control.ts) and count at the server instead of trusting client logs. It never holds a
 * token value.
 */
import { calculateJwkThumbprint, decodeProtectedHeader } from 'jose'
import type { KoaContextWithOIDC, Provider, TokenModel } from 'oidc-provider'

const MAX_EVENTS = 1000

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
  issuedTokens: {
    at: number
    kind: 'AccessToken' | 'RefreshToken'
    grantType: string | null
    jkt: string | null
    grantId: string | null
  }[]
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
  revocationProofs: {
    at: number
    proofJkt: string | null
    tokenJkt: string | null
    outcome: string
  }[]
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

/** Records what the server saw; {@link createRecorder} makes one. */
export interface Recorder {
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

/** A recorder that starts empty; `log` receives one line per event (never a token). */
export function createRecorder(log: ((line: string) => void) | undefined): Recorder {
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

  const errorFields = (
    err: OAuthErrorLike,
  ): { error: string; errorDescription?: string; errorDetail?: string } => ({
    error: typeof err.error === 'string' ? err.error : 'server_error',
    ...(typeof err.error_description === 'string'
      ? { errorDescription: err.error_description }
      : {}),
    ...(typeof err.error_detail === 'string' ? { errorDetail: err.error_detail } : {}),
  })

  const onToken = (kind: 'AccessToken' | 'RefreshToken') => (token: TokenModel) => {
    const grantType = token.gty?.split(' ').at(-1) ?? null
    const jkt = token.jkt ?? null
    const grantId = token.grantId ?? null
    const at = record({
      type: 'token.issued',
      kind,
      jkt,
      ...(grantType ? { grantType } : {}),
      ...(grantId ? { grantId } : {}),
    })
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
        const entry = {
          at: record({ type: 'pushed_authorization_request.success', jkt: dpopJkt }),
          dpopJkt,
          proofJkt: null as string | null,
        }
        stats.pushedRequests.push(entry)
        const jwk = proof ? decodeProtectedHeader(proof).jwk : undefined
        if (jwk)
          void calculateJwkThumbprint(jwk).then(
            (jkt) => {
              entry.proofJkt = jkt
            },
            () => undefined,
          )
      })
      provider.on(
        'pushed_authorization_request.error',
        (_ctx: KoaContextWithOIDC, err: OAuthErrorLike) => {
          const fields = errorFields(err)
          stats.pushedRequestErrors[fields.error] =
            (stats.pushedRequestErrors[fields.error] ?? 0) + 1
          record({ type: 'pushed_authorization_request.error', ...fields })
        },
      )
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
        record({
          type: 'refresh_token.consumed',
          ...(token.grantId ? { grantId: token.grantId } : {}),
          jkt: token.jkt ?? null,
        })
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
        const at = record({
          type: 'server_error',
          error: 'server_error',
          errorDescription: message,
        })
        stats.serverErrors.push({ at, route, message })
      })
    },
    revocationSucceeded() {
      stats.revocations.succeeded += 1
      record({ type: 'revocation.success' })
    },
    userinfo(status, scheme, proof) {
      const entry = {
        at: record({ type: 'userinfo', ...(status === 200 ? {} : { error: String(status) }) }),
        status,
        scheme,
        proofJkt: null as string | null,
      }
      stats.userinfo.push(entry)
      const jwk = proof ? decodeProtectedHeader(proof).jwk : undefined
      if (jwk)
        void calculateJwkThumbprint(jwk).then(
          (jkt) => {
            entry.proofJkt = jkt
          },
          () => undefined,
        )
    },
    revocationProof(proofJkt, tokenJkt, outcome) {
      const at = record({
        type: 'revocation.proof',
        jkt: proofJkt,
        ...(outcome === 'revoked' ? {} : { error: outcome }),
      })
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
      record({
        type: `fault.${mode}`,
        grantType: 'refresh_token',
        ...(mode === 'hold' ? { errorDescription: `${ms} ms` } : {}),
      })
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

/** The request's `grant_type`, `unknown` when it has none (yet). */
export function grantTypeOf(ctx: KoaContextWithOIDC): string {
  // ctx.oidc.params is assembled only after the body was parsed; an early failure has none.
  let value: string | null = null
  try {
    value = stringParam(ctx, 'grant_type')
  } catch {
    value = null
  }
  return value ?? 'unknown'
}
