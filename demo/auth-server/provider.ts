/**
 * The demo's authorization server as an app author would configure one for dpop-spa:
 * oidc-provider 9, set up the way a DPoP deployment should be. This file is the part to copy;
 * it holds no test code. server.ts starts it on loopback; recorder.ts, control.ts and
 * test-switches.ts add what only the tests need, through {@link ProviderHooks}.
 * What the SDK needs from any authorization server: docs/servers.md.
 *
 * Configuration choices, and why:
 * - One public client (`token_endpoint_auth_method: 'none'`) with
 *   `dpop_bound_access_tokens: true`: a token request without a DPoP proof is refused
 *   (RFC 9449 §5.2), so the SDK cannot silently fall back to bearer tokens.
 * - `features.dPoP` with a `nonceSecret` and `requireNonce` always true: every token
 *   request first meets `use_dpop_nonce` (RFC 9449 §8), so the SDK's nonce retry runs on
 *   every login and every refresh, not only in a dedicated test. Nonces are stateless
 *   (HMAC of time with the secret) and change every minute; every instance of a cluster
 *   needs the same secret.
 * - `enabledJWA.dPoPSigningAlgValues` names the proof algorithms accepted (ES256 and EdDSA);
 *   the server advertises them as `dpop_signing_alg_values_supported`, where the SDK picks
 *   its key's algorithm.
 * - PKCE required, S256 only (oidc-provider 9 supports no other method); `response_types`
 *   is `code` only: the SPA uses the authorization code flow and nothing else. Pushed
 *   authorization requests (RFC 9126) are on, and can be required (`requirePar`). With DPoP
 *   on, oidc-provider binds the code to the `dpop_jkt` the SPA sends (RFC 9449 §10; a pushed
 *   request also carries a proof from that key), so only the key that started the login can
 *   redeem the code.
 * - `features.resourceIndicators`: the API (`apiAudience`) is the default resource and
 *   `useGrantedResource` is on, so the code exchange and every refresh (which send no
 *   `resource`) yield an ES256 JWT access token for the API carrying `cnf.jkt`, which the
 *   demo API verifies with jose. Without `useGrantedResource`, `openid` in scope would
 *   turn the access token into an opaque userinfo token. `defaultResource: false` leaves a
 *   request without `resource` to that opaque token, which the UserInfo endpoint takes
 *   (DPoP-bound: proof, `ath`, nonce).
 * - `issueRefreshToken` returns true for any client allowed the refresh_token grant:
 *   public clients get no refresh token by default unless `offline_access` survives, and
 *   it only does with `prompt=consent`.
 * - `rotateRefreshToken` follows `refreshRotation`. `'near-expiry'` is oidc-provider's own
 *   default for a DPoP-bound refresh token of a public client, which RFC 9700 §4.14.2 allows
 *   (the token is sender-constrained): the same refresh token keeps working until 70% of its
 *   life has passed, then it rotates, so a refresh answer lost to a reload or a dropped
 *   connection costs nothing. The demo runs it, as the docs recommend (docs: lost refresh
 *   answers). `'always'` rotates on every refresh; reusing a rotated refresh token revokes the
 *   whole grant, which makes uncoordinated refreshes (two racing tabs) visible to tests.
 * - `expiresWithSession` false: refresh tokens live by their TTL and die by revocation,
 *   not with the login cookie; RP-initiated logout then does NOT revoke them, so a test of
 *   "logout revokes the refresh token" proves the SDK called the revocation endpoint.
 * - Revocation (RFC 7009) on, with the default policy spelled out: a public client may revoke
 *   only its own tokens.
 * - `loadExistingGrant` grants whatever was requested (scopes, claims, resource scopes):
 *   a test user only submits the dev login form, never a consent page.
 * - `logoutSource` submits the sign-out confirmation by itself (a form with a button for
 *   pages without script): tests see logout end at `post_logout_redirect_uri`.
 * - `clientBasedCORS` allows exactly the configured SPA origins. oidc-provider already
 *   exposes `DPoP-Nonce` and `WWW-Authenticate` on the token endpoint (checked by
 *   test/demo/auth-server.test.ts), so the browser can read the nonce from a cross-origin
 *   400. One middleware exposes `Date` as well, so the SDK can correct a wrong device clock
 *   from the authorization server's answers.
 * - Signing keys are generated at start-up (ES256 for access tokens, RS256 because it is
 *   the default `id_token_signed_response_alg`) and never written to disk. Cookie keys
 *   too: a restart logs everyone out, which is what a test server should do. A real
 *   deployment loads both from its secret store, gives oidc-provider a database adapter
 *   (the default one keeps everything in memory) and its own login pages instead of
 *   `devInteractions`.
 * - Cookies on plain http: oidc-provider marks cookies `secure` only when the request is
 *   secure, so http://localhost works without `proxy` tricks.
 */
import { randomBytes } from 'node:crypto'
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose'
import Provider, {
  errors,
  type Grant,
  type KoaContextWithOIDC,
  type Middleware,
  type TokenModel,
} from 'oidc-provider'

// Fixed routes (oidc-provider's defaults, spelled out) so middleware can match them.
export const ROUTES = {
  authorization: '/auth',
  token: '/token',
  revocation: '/token/revocation',
  end_session: '/session/end',
  jwks: '/jwks',
  userinfo: '/me',
  pushed_authorization_request: '/request',
} as const

/**
 * When the server rotates a refresh token. `'always'`: on every refresh, and presenting a
 * rotated one again revokes the grant (reuse detection). `'near-expiry'`: oidc-provider's
 * default for a DPoP-bound refresh token of a public client (RFC 9700 §4.14.2 lets a
 * sender-constrained refresh token stay unrotated): the same token keeps working until 70%
 * of its life has passed.
 */
export type RefreshRotation = 'always' | 'near-expiry'

/** What the provider is configured with (server.ts derives it from its options). */
export interface ProviderSettings {
  /** The public SPA client's id. */
  clientId: string
  /** Registered `redirect_uris` (exact match, RFC 6749 §3.1.2). */
  redirectUris: string[]
  /** Registered `post_logout_redirect_uris`. */
  postLogoutRedirectUris: string[]
  /** Page origins allowed by CORS. */
  corsOrigins: ReadonlySet<string>
  /** Resource indicator (RFC 8707) of the API; the `aud` of the JWT access tokens. */
  apiAudience: string
  /** Scope the API knows. */
  apiScope: string
  /** Access token lifetime, seconds. */
  accessTokenTtl: number
  /** Refresh token lifetime, seconds. */
  refreshTokenTtl: number
  /** DPoP proof algorithms accepted (`dpop_signing_alg_values_supported`). */
  dpopSigningAlgs: string[]
  /** Require pushed authorization requests (RFC 9126). */
  requirePar: boolean
  /** Make the API the resource of a request that names none. */
  defaultResource: boolean
  /** When refresh tokens rotate. */
  refreshRotation: RefreshRotation
  /** 32 random bytes the stateless DPoP nonces are derived from. */
  nonceSecret: Buffer
}

/**
 * The one seam between the provider and the tests (test-switches.ts supplies it); an app
 * passes none. Each function is read per request, so a test can change the server while it
 * runs.
 */
export interface ProviderHooks {
  /** Whether DPoP proofs must carry a nonce now. @default always */
  requireNonce?: () => boolean
  /** The access token lifetime now, seconds. @default settings.accessTokenTtl */
  accessTokenTtl?: () => number
  /** When refresh tokens rotate now. @default settings.refreshRotation */
  refreshRotation?: () => RefreshRotation
  /** A further condition on revoking a token, after the own-token rule; may throw an OAuth error. */
  mayRevoke?: (ctx: KoaContextWithOIDC, token: TokenModel) => Promise<boolean>
  /** Koa middleware around every request, outside the provider's own middleware. */
  middleware?: Middleware
}

async function signingKeys(): Promise<JWK[]> {
  const make = async (alg: 'ES256' | 'RS256'): Promise<JWK> => {
    const { privateKey } = await generateKeyPair(alg, { extractable: true })
    const jwk = await exportJWK(privateKey)
    return { ...jwk, alg, use: 'sig', kid: await calculateJwkThumbprint(jwk) }
  }
  return Promise.all([make('ES256'), make('RS256')])
}

/**
 * The provider, configured as the header says, for one public SPA client. Serve it with
 * `provider.callback()` (a Node request listener) or mount it in Koa or Express.
 *
 * @throws {Error} from oidc-provider when the settings make an invalid configuration.
 */
export async function createProvider(
  issuer: string,
  s: ProviderSettings,
  hooks: ProviderHooks = {},
): Promise<Provider> {
  const requireNonce = hooks.requireNonce ?? (() => true)
  const accessTokenTtl = hooks.accessTokenTtl ?? (() => s.accessTokenTtl)
  const refreshRotation = hooks.refreshRotation ?? (() => s.refreshRotation)
  const mayRevoke = hooks.mayRevoke
  const resourceServer = () => ({
    audience: s.apiAudience,
    scope: s.apiScope,
    accessTokenFormat: 'jwt',
    accessTokenTTL: accessTokenTtl(),
    jwt: { sign: { alg: 'ES256' } },
  })

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: s.clientId,
        application_type: 'web',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: s.redirectUris,
        post_logout_redirect_uris: s.postLogoutRedirectUris,
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
    enabledJWA: { dPoPSigningAlgValues: s.dpopSigningAlgs },
    findAccount: (_ctx: unknown, sub: string) => ({
      accountId: sub,
      claims: () => ({ sub, name: sub }),
    }),
    clientBasedCORS: (_ctx: unknown, origin: string) => s.corsOrigins.has(origin),
    issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
      client.grantTypeAllowed('refresh_token'),
    // 'near-expiry' is oidc-provider's own rule for sender-constrained refresh tokens of public clients.
    rotateRefreshToken: (ctx: KoaContextWithOIDC) =>
      refreshRotation() === 'always' ||
      (ctx.oidc.entities.RefreshToken?.ttlPercentagePassed() ?? 100) >= 70,
    expiresWithSession: () => false,
    loadExistingGrant,
    renderError: (ctx: KoaContextWithOIDC, out: { error?: string; error_description?: string }) => {
      ctx.body = `<!DOCTYPE html><title>Error</title><h1>${escapeHtml(out.error ?? 'error')}</h1><p>${escapeHtml(out.error_description ?? '')}</p>`
    },
    ttl: {
      AccessToken: () => accessTokenTtl(),
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: s.refreshTokenTtl,
      Interaction: 600,
      Session: 86_400,
      Grant: 86_400,
    },
    features: {
      devInteractions: { enabled: true },
      dPoP: { enabled: true, nonceSecret: s.nonceSecret, requireNonce: () => requireNonce() },
      pushedAuthorizationRequests: {
        enabled: true,
        requirePushedAuthorizationRequests: s.requirePar,
      },
      revocation: {
        enabled: true,
        // The default policy, spelled out: a public client may revoke only its own tokens.
        allowedPolicy: async (
          ctx: KoaContextWithOIDC,
          client: { clientId: string },
          token: TokenModel,
        ) => token.clientId === client.clientId && ((await mayRevoke?.(ctx, token)) ?? true),
      },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string[]) =>
          oneOf ?? (s.defaultResource ? s.apiAudience : undefined),
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => {
          if (resourceIndicator !== s.apiAudience)
            throw new errors.InvalidTarget('unknown resource indicator')
          return resourceServer()
        },
      },
    },
  })

  // First in, so it runs outside the provider's own middleware.
  if (hooks.middleware) provider.use(hooks.middleware)
  provider.use(async (ctx, next) => {
    await next()
    // oidc-provider's CORS exposes DPoP-Nonce and WWW-Authenticate; Date too, so that a
    // browser client can correct a device clock from the authorization server's answers.
    // (KoaContextWithOIDC's type leaves out Koa's response object; it is there.)
    const sent = (name: string) =>
      (ctx as unknown as { response: { get(name: string): string } }).response.get(name)
    if (sent('Access-Control-Allow-Origin') && ctx.method !== 'OPTIONS') {
      const exposed = sent('Access-Control-Expose-Headers')
      ctx.set('Access-Control-Expose-Headers', exposed ? `${exposed}, Date` : 'Date')
    }
  })
  return provider
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
  ctx.body =
    '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Signed out</title></head><body><h1>Signed out</h1></body></html>'
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
