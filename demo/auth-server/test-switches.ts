/**
 * The demo authorization server's test-only switches, reached through the provider's one seam
 * ({@link ProviderHooks}, provider.ts), so the provider's configuration holds no test code.
 * Each is set by an option at start or by `POST /__control/config` (control.ts) while it runs:
 * - `nonces`: `'always'` demands a nonce on the first request of every client (Auth0, Okta,
 *   and oidc-provider as configured); `'never'` uses no nonces at all (Keycloak): none is
 *   required and no `DPoP-Nonce` header is ever sent (docs/servers.md).
 * - `iatWindowSec` above 0 refuses token and PAR requests whose proof's `iat` is further than
 *   that from the server's clock, nonce or not (Keycloak and Curity allow 10–15 s;
 *   oidc-provider skips the check when a nonce is used).
 * - `accessTokenTtl` and `refreshRotation` override the provider's settings.
 * - `answerBearer` rewrites `token_type` of successful token responses to `Bearer` while
 *   the token stays bound: the shape of a misconfigured server, for the SDK's
 *   ERR_TOKEN_TYPE_MISMATCH test. `tokenType` rewrites it to another spelling (`dpop`, ...).
 * - `revocationDelayMs` holds revocation answers back: a slow server, asserted at the server,
 *   so a test needs no request interception (WebKit's driver has none).
 * - `refreshFault` injects a lost answer AT THE SERVER, after the refresh token was rotated:
 *   `hold` keeps the answer back for `ms` (a reload or a closed tab in the meantime loses it
 *   in the browser), `drop` destroys the connection without answering (a dropped mobile
 *   connection). It applies to the next `count` successful refresh_token grants, so the
 *   nonce round trip before them is not counted.
 * - `requireRevocationProof` (option only; {@link boundRevocationCheck}) revokes a DPoP-bound
 *   refresh token only on a DPoP proof from the key it is bound to, checked with jose
 *   (atproto's rule; oidc-provider itself checks no proof at revocation). Refused requests
 *   fail (`invalid_dpop_proof`, `use_dpop_nonce`) and revoke nothing;
 *   `stats().revocationProofs` says which key signed and what happened.
 * The middleware also reports to the recorder what has no provider event: a successful
 * revocation, UserInfo requests with the proof's key, the answers it rewrote or lost.
 */
import { EmbeddedJWK, calculateJwkThumbprint, decodeJwt, jwtVerify, type JWTPayload } from 'jose'
import { errors, type KoaContextWithOIDC, type TokenModel } from 'oidc-provider'
import ServerChallenge from 'oidc-provider/lib/helpers/challenge.js'
import type { AuthServerConfig } from './control.ts'
import { ROUTES, type ProviderHooks } from './provider.ts'
import { grantTypeOf, type Recorder } from './recorder.ts'

/**
 * The hooks that put `config` into effect inside the provider, reporting to `recorder`.
 * `corsOrigins` are the SPA origins a refusal answered before the provider's CORS must allow;
 * `mayRevoke` is an extra revocation rule ({@link boundRevocationCheck}), or none.
 */
export function testSwitches(
  config: AuthServerConfig,
  recorder: Recorder,
  corsOrigins: ReadonlySet<string>,
  mayRevoke: ProviderHooks['mayRevoke'],
): ProviderHooks {
  return {
    requireNonce: () => config.nonces === 'always',
    accessTokenTtl: () => config.accessTokenTtl,
    refreshRotation: () => config.refreshRotation,
    ...(mayRevoke ? { mayRevoke } : {}),
    middleware: async (ctx, next) => {
      if (ctx.method === 'POST' && ctx.path === ROUTES.revocation && config.revocationDelayMs > 0) {
        await new Promise((resolve) => setTimeout(resolve, config.revocationDelayMs))
      }
      if (
        ctx.method === 'POST' &&
        config.iatWindowSec > 0 &&
        (ctx.path === ROUTES.token || ctx.path === ROUTES.pushed_authorization_request)
      ) {
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
          if (corsOrigins.has(origin)) {
            ctx.set('Access-Control-Allow-Origin', origin)
            ctx.set('Access-Control-Expose-Headers', 'WWW-Authenticate, DPoP-Nonce, Date')
          }
          ctx.status = 400
          ctx.set('Cache-Control', 'no-store')
          ctx.body = {
            error: 'invalid_dpop_proof',
            error_description: 'DPoP proof is not active (iat)',
          }
          return
        }
      }
      await next()
      // Keycloak's shape: no nonces, so no DPoP-Nonce header, ever.
      if (config.nonces === 'never')
        (ctx as unknown as { remove(name: string): void }).remove('DPoP-Nonce')
      if (ctx.path === ROUTES.userinfo && ctx.method !== 'OPTIONS') {
        const proof = (ctx as unknown as { get(name: string): string }).get('DPoP')
        const scheme = ctx.get('Authorization').split(' ')[0] || null
        recorder.userinfo(ctx.status, scheme, proof || null)
      }
      if (ctx.method !== 'POST') return
      const fault = config.refreshFault
      if (
        fault &&
        ctx.path === ROUTES.token &&
        ctx.status === 200 &&
        grantTypeOf(ctx) === 'refresh_token'
      ) {
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
        if (isRecord(body) && body.token_type === 'DPoP')
          ctx.body = { ...body, token_type: config.tokenType }
      }
    },
  }
}

/**
 * The revocation rule of servers that bind a public client's tokens to its key (atproto's):
 * a bound refresh token is revoked only on a DPoP proof from that key. oidc-provider checks
 * no proof at its revocation endpoint, so this does, with jose: `typ`, signature with the
 * embedded key, `htm`, `htu`, `iat` within 300 s, a `jti` seen once, a nonce from the
 * provider's own nonce series (same secret), and the key's thumbprint equal to the token's
 * `cnf.jkt`. A refusal throws the OAuth error (the request fails, nothing is revoked).
 * `nonceSecret` is the provider's own (`ProviderSettings.nonceSecret`).
 */
export function boundRevocationCheck(
  issuer: string,
  nonceSecret: Buffer,
  algorithms: readonly string[],
  recorder: Recorder,
) {
  const nonces = new ServerChallenge(nonceSecret, 'DPoP')
  const seen = new Map<string, number>() // jti -> expiry, ms
  const htu = `${issuer}${ROUTES.revocation}`
  return async (ctx: KoaContextWithOIDC, token: TokenModel): Promise<boolean> => {
    if (token.kind !== 'RefreshToken' || !token.jkt) return true
    const proof = ctx.get('DPoP')
    let proofJkt: string | null = null
    const refuse = (error: Error): never => {
      recorder.revocationProof(
        proofJkt,
        token.jkt ?? null,
        (error as { error?: string }).error ?? 'invalid_dpop_proof',
      )
      throw error
    }
    if (!proof)
      return refuse(new errors.InvalidDpopProof('DPoP proof required to revoke a DPoP-bound token'))
    let payload: JWTPayload
    try {
      const verified = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: [...algorithms],
      })
      payload = verified.payload
      proofJkt = await calculateJwkThumbprint(verified.protectedHeader.jwk!)
    } catch {
      return refuse(new errors.InvalidDpopProof('invalid DPoP proof'))
    }
    const now = Date.now()
    for (const [jti, until] of seen) if (until < now) seen.delete(jti)
    if (payload.htm !== 'POST' || payload.htu !== htu)
      return refuse(new errors.InvalidDpopProof('DPoP proof htm or htu mismatch'))
    if (typeof payload.iat !== 'number' || Math.abs(now / 1000 - payload.iat) > 300)
      return refuse(new errors.InvalidDpopProof('DPoP proof iat out of window'))
    if (typeof payload.jti !== 'string' || seen.has(payload.jti))
      return refuse(new errors.InvalidDpopProof('DPoP proof jti missing or replayed'))
    if (typeof payload.nonce !== 'string' || !nonces.checkChallenge(payload.nonce)) {
      ctx.set('DPoP-Nonce', nonces.nextChallenge())
      return refuse(new errors.UseDpopNonce('nonce is required in the DPoP proof'))
    }
    seen.set(payload.jti, now + 600_000)
    if (proofJkt !== token.jkt)
      return refuse(
        new errors.InvalidDpopProof('DPoP proof is not from the key the token is bound to'),
      )
    recorder.revocationProof(proofJkt, token.jkt, 'revoked')
    return true
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
