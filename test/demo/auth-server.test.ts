// @vitest-environment node
/**
 * The test authorization server (demo/auth-server/: server.ts and the parts it wires),
 * driven headlessly by independent implementations: oauth4webapi for OAuth, panva/dpop and oauth4webapi for
 * DPoP proofs, jose for keys, thumbprints and access-token verification. None of
 * dpop-spa's own code is involved, so these tests say whether the server behaves like a
 * DPoP authorization server, not whether it agrees with us.
 */
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import * as oauth from 'oauth4webapi'
import { generateProof } from 'dpop'
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  jwtVerify,
  type JSONWebKeySet,
} from 'jose'
import type { AuthServerStats } from '../../demo/auth-server/recorder.ts'
import { startAuthServer, type AuthServerHandle } from '../../demo/auth-server/server.ts'

const SPA_ORIGIN = 'http://localhost:5199'
const REDIRECT_URI = `${SPA_ORIGIN}/e2e/fixtures/callback.html`
const API = 'http://localhost:5301'
const insecure = { [oauth.allowInsecureRequests]: true } as const

let server: AuthServerHandle
let as: oauth.AuthorizationServer
let client: oauth.Client

beforeAll(async () => {
  server = await startAuthServer({
    port: 0,
    accessTokenTtl: 5,
    redirectUris: [REDIRECT_URI],
    apiAudience: API,
  })
  const issuer = new URL(server.issuer)
  as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { ...insecure, algorithm: 'oidc' }),
  )
  client = { client_id: server.clientId }
})

afterAll(async () => {
  await server?.close()
})

beforeEach(() => {
  server.reset()
  server.configure({ answerBearer: false, accessTokenTtl: 5 })
})

// ---------------------------------------------------------------------------------------
// helpers

async function thumbprint(keyPair: CryptoKeyPair): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(keyPair.publicKey))
}

/** A tiny cookie jar: enough for the dev login pages (names are unique, paths ignored). */
function cookieJar() {
  const jar = new Map<string, string>()
  return {
    header: () => [...jar].map(([k, v]) => `${k}=${v}`).join('; '),
    take(res: Response) {
      for (const line of res.headers.getSetCookie()) {
        const [pair = ''] = line.split(';')
        const eq = pair.indexOf('=')
        const name = pair.slice(0, eq).trim()
        const value = pair.slice(eq + 1).trim()
        if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) jar.delete(name)
        else jar.set(name, value)
      }
    },
  }
}

/**
 * Logs in through the real authorization endpoint and the dev login form, as a browser
 * would (redirects followed by hand, cookies kept), and returns the callback URL.
 */
async function authorize(keyPair: CryptoKeyPair, { scope = 'openid api', bindCode = true } = {}) {
  const verifier = oauth.generateRandomCodeVerifier()
  const state = oauth.generateRandomState()
  const url = new URL(as.authorization_endpoint!)
  url.search = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...(bindCode ? { dpop_jkt: await thumbprint(keyPair) } : {}),
  }).toString()

  const jar = cookieJar()
  const go = async (target: string, init: RequestInit = {}) => {
    const res = await fetch(new URL(target, server.issuer), {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), cookie: jar.header() },
    })
    jar.take(res)
    return res
  }

  let res = await go(url.href)
  expect(res.status).toBe(303)
  const interaction = res.headers.get('location')!
  expect(interaction).toMatch(/^\/interaction\//)

  res = await go(interaction)
  expect(res.status).toBe(200)
  expect(await res.text()).toContain('name="login"')

  res = await go(interaction, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ prompt: 'login', login: 'alice', password: 'any' }).toString(),
  })
  expect(res.status).toBe(303)

  // The resume step must go straight back to the client: consent is automatic.
  res = await go(res.headers.get('location')!)
  expect(res.status).toBe(303)
  const callback = new URL(res.headers.get('location')!)
  expect(callback.origin + callback.pathname).toBe(REDIRECT_URI)
  return { callback, verifier, state, go }
}

/** oauth4webapi's documented nonce dance: one retry on `use_dpop_nonce`. */
async function withNonceRetry<T>(attempt: () => Promise<T>): Promise<T> {
  try {
    return await attempt()
  } catch (error) {
    if (oauth.isDPoPNonceError(error)) return attempt()
    throw error
  }
}

async function login(keyPair: CryptoKeyPair) {
  const { callback, verifier, state, go } = await authorize(keyPair)
  const params = oauth.validateAuthResponse(as, client, callback, state)
  const DPoP = oauth.DPoP(client, keyPair)
  const tokens = await withNonceRetry(async () => {
    const res = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      oauth.None(),
      params,
      REDIRECT_URI,
      verifier,
      { ...insecure, DPoP },
    )
    return oauth.processAuthorizationCodeResponse(as, client, res)
  })
  return Object.assign(tokens, { browser: go })
}

async function refresh(keyPair: CryptoKeyPair, refreshToken: string) {
  const DPoP = oauth.DPoP(client, keyPair)
  return withNonceRetry(async () => {
    const res = await oauth.refreshTokenGrantRequest(as, client, oauth.None(), refreshToken, {
      ...insecure,
      DPoP,
    })
    return oauth.processRefreshTokenResponse(as, client, res)
  })
}

async function verifyAccessToken(accessToken: string) {
  const jwks = (await (await fetch(as.jwks_uri!)).json()) as JSONWebKeySet
  return jwtVerify(accessToken, createLocalJWKSet(jwks), {
    issuer: server.issuer,
    audience: API,
    typ: 'at+jwt',
    algorithms: ['ES256'],
  })
}

async function controlStats(): Promise<AuthServerStats> {
  const res = await fetch(`${server.issuer}/__control/stats`)
  expect(res.status).toBe(200)
  return (await res.json()) as AuthServerStats
}

function oauthError(error: unknown): string | undefined {
  return error instanceof oauth.ResponseBodyError ? error.error : undefined
}

// ---------------------------------------------------------------------------------------

describe('discovery', () => {
  it('advertises DPoP, S256-only PKCE, the code flow, revocation and logout', () => {
    expect(as.issuer).toBe(server.issuer)
    expect(as.dpop_signing_alg_values_supported).toContain('ES256')
    expect(as.code_challenge_methods_supported).toEqual(['S256'])
    expect(as.response_types_supported).toEqual(['code'])
    expect(as.grant_types_supported).toEqual(
      expect.arrayContaining(['authorization_code', 'refresh_token']),
    )
    expect(as.revocation_endpoint).toBe(`${server.issuer}/token/revocation`)
    expect(as.end_session_endpoint).toBe(`${server.issuer}/session/end`)
  })
})

describe('token endpoint', () => {
  // The client is registered with dpop_bound_access_tokens (RFC 9449 §5.2): no proof, no
  // token, whether or not the code was bound with dpop_jkt (§10). The check comes before the
  // code is consumed, so the same code still works with a proof.
  it.each([{ bindCode: true }, { bindCode: false }])(
    'refuses a code exchange without a DPoP proof (dpop_jkt sent: $bindCode)',
    async ({ bindCode }) => {
      const keyPair = await generateKeyPair('ES256')
      const { callback, verifier, state } = await authorize(keyPair, { bindCode })
      const res = await fetch(as.token_endpoint!, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          client_id: client.client_id,
          code: callback.searchParams.get('code')!,
          redirect_uri: REDIRECT_URI,
          code_verifier: verifier,
        }).toString(),
      })
      expect(res.status).toBe(400)
      const body = (await res.json()) as { error: string; access_token?: string }
      expect(body.access_token).toBeUndefined()
      expect(body.error).toBe('invalid_grant')
      const stats = server.stats()
      expect(stats.tokenRequests.authorization_code).toEqual({ succeeded: 0, failed: 1 })
      expect(stats.events.find((e) => e.type === 'grant.error')?.errorDetail).toBe(
        'DPoP proof JWT not provided',
      )
      expect(stats.authorizations.map((a) => a.dpopJkt)).toEqual([
        bindCode ? await thumbprint(keyPair) : null,
      ])
      expect(stats.issuedTokens).toEqual([])

      const params = oauth.validateAuthResponse(as, client, callback, state)
      const DPoP = oauth.DPoP(client, keyPair)
      const tokens = await withNonceRetry(async () =>
        oauth.processAuthorizationCodeResponse(
          as,
          client,
          await oauth.authorizationCodeGrantRequest(
            as,
            client,
            oauth.None(),
            params,
            REDIRECT_URI,
            verifier,
            { ...insecure, DPoP },
          ),
        ),
      )
      expect(tokens.token_type).toBe('dpop')
    },
  )

  it('answers a proof without a nonce with use_dpop_nonce and a DPoP-Nonce the browser may read', async () => {
    const keyPair = await generateKeyPair('ES256')
    const proof = await generateProof(keyPair, as.token_endpoint!, 'POST')
    const res = await fetch(as.token_endpoint!, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        dpop: proof,
        origin: SPA_ORIGIN,
      },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        client_id: client.client_id,
        refresh_token: 'not-a-real-one',
      }).toString(),
    })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: string }).error).toBe('use_dpop_nonce')
    const nonce = res.headers.get('dpop-nonce')
    expect(nonce).toMatch(/^[\w-]{16,}$/)
    // A cross-origin SPA can only read the nonce if CORS exposes it.
    expect(res.headers.get('access-control-allow-origin')).toBe(SPA_ORIGIN)
    const exposed = (res.headers.get('access-control-expose-headers') ?? '')
      .toLowerCase()
      .split(/\s*,\s*/)
    expect(exposed).toEqual(expect.arrayContaining(['dpop-nonce', 'www-authenticate']))

    // With that nonce the same request gets past DPoP and fails on the (fake) grant itself.
    const again = await fetch(as.token_endpoint!, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        dpop: await generateProof(keyPair, as.token_endpoint!, 'POST', nonce!),
      },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        client_id: client.client_id,
        refresh_token: 'not-a-real-one',
      }).toString(),
    })
    expect(((await again.json()) as { error: string }).error).toBe('invalid_grant')
    expect(server.stats().tokenErrors).toEqual({ use_dpop_nonce: 1, invalid_grant: 1 })
  })

  it('answers a CORS preflight from the SPA origin and refuses an unknown origin', async () => {
    const preflight = await fetch(as.token_endpoint!, {
      method: 'OPTIONS',
      headers: {
        origin: SPA_ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'dpop, content-type',
      },
    })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-origin')).toBe(SPA_ORIGIN)
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('dpop')

    const keyPair = await generateKeyPair('ES256')
    const res = await fetch(as.token_endpoint!, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'http://localhost:6666',
        dpop: await generateProof(keyPair, as.token_endpoint!, 'POST'),
      },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        client_id: client.client_id,
        refresh_token: 'x',
      }).toString(),
    })
    expect(res.status).toBe(400)
    expect(res.headers.get('access-control-allow-origin')).toBeNull()
  })
})

describe('the whole flow, headless', () => {
  it('binds the code to dpop_jkt and issues a DPoP-bound ES256 JWT access token for the API', async () => {
    const keyPair = await generateKeyPair('ES256')
    const jkt = await thumbprint(keyPair)
    const tokens = await login(keyPair)

    expect(tokens.token_type).toBe('dpop')
    expect(typeof tokens.refresh_token).toBe('string')
    expect(tokens.expires_in).toBe(5)
    const { payload, protectedHeader } = await verifyAccessToken(tokens.access_token)
    expect(protectedHeader.alg).toBe('ES256')
    expect(payload.cnf).toEqual({ jkt })
    expect(payload.client_id).toBe(client.client_id)
    expect(payload.sub).toBe('alice')
    expect(payload.scope).toBe('api')
    expect(payload.exp! - payload.iat!).toBe(5)

    const stats = await controlStats()
    expect(stats.authorizations.map((a) => a.dpopJkt)).toEqual([jkt])
    // One nonce challenge, then success.
    expect(stats.tokenRequests).toEqual({ authorization_code: { succeeded: 1, failed: 1 } })
    expect(stats.tokenErrors).toEqual({ use_dpop_nonce: 1 })
    expect(stats.issuedTokens.map((t) => [t.kind, t.grantType, t.jkt])).toEqual(
      expect.arrayContaining([
        ['AccessToken', 'authorization_code', jkt],
        ['RefreshToken', 'authorization_code', jkt],
      ]),
    )
    expect(stats.serverErrors).toEqual([])
  })

  it('refuses the code exchange with a key other than dpop_jkt', async () => {
    const keyPair = await generateKeyPair('ES256')
    const other = await generateKeyPair('ES256')
    const { callback, verifier, state } = await authorize(keyPair)
    const params = oauth.validateAuthResponse(as, client, callback, state)
    const DPoP = oauth.DPoP(client, other)
    const attempt = withNonceRetry(async () => {
      const res = await oauth.authorizationCodeGrantRequest(
        as,
        client,
        oauth.None(),
        params,
        REDIRECT_URI,
        verifier,
        { ...insecure, DPoP },
      )
      return oauth.processAuthorizationCodeResponse(as, client, res)
    })
    await expect(attempt).rejects.toSatisfy((e) => oauthError(e) === 'invalid_grant')
    expect(server.stats().issuedTokens).toEqual([])
  })

  it('rotates the refresh token on every refresh, and a reused one revokes the grant', async () => {
    const keyPair = await generateKeyPair('ES256')
    const first = await login(keyPair)
    const second = await refresh(keyPair, first.refresh_token!)
    expect(second.refresh_token).toBeDefined()
    expect(second.refresh_token).not.toBe(first.refresh_token)
    expect((await verifyAccessToken(second.access_token)).payload.cnf).toEqual({
      jkt: await thumbprint(keyPair),
    })

    // The first refresh token was rotated away: using it again is what racing tabs do.
    await expect(refresh(keyPair, first.refresh_token!)).rejects.toSatisfy(
      (e) => oauthError(e) === 'invalid_grant',
    )
    // ...and it took the whole grant with it, including the newest refresh token.
    await expect(refresh(keyPair, second.refresh_token!)).rejects.toSatisfy(
      (e) => oauthError(e) === 'invalid_grant',
    )

    const stats = server.stats()
    expect(stats.refreshTokensRotated).toBe(1)
    expect(stats.refreshTokenReuse).toBe(1)
    expect(stats.grantsRevoked).toHaveLength(1)
    expect(stats.tokenRequests.refresh_token?.succeeded).toBe(1)
    expect(
      stats.issuedTokens
        .filter((t) => t.grantType === 'refresh_token')
        .map((t) => t.kind)
        .sort(),
    ).toEqual(['AccessToken', 'RefreshToken'])
  })

  it('refuses a refresh signed by another key', async () => {
    const keyPair = await generateKeyPair('ES256')
    const tokens = await login(keyPair)
    const thief = await generateKeyPair('ES256')
    await expect(refresh(thief, tokens.refresh_token!)).rejects.toSatisfy(
      (e) => oauthError(e) === 'invalid_grant',
    )
    expect(server.stats().tokenRequests.refresh_token?.succeeded ?? 0).toBe(0)
  })

  it('revokes a refresh token (RFC 7009) and records it', async () => {
    const keyPair = await generateKeyPair('ES256')
    const tokens = await login(keyPair)
    const res = await oauth.revocationRequest(as, client, oauth.None(), tokens.refresh_token!, {
      ...insecure,
      additionalParameters: { token_type_hint: 'refresh_token' },
    })
    await oauth.processRevocationResponse(res)
    await expect(refresh(keyPair, tokens.refresh_token!)).rejects.toSatisfy(
      (e) => oauthError(e) === 'invalid_grant',
    )
    const stats = server.stats()
    expect(stats.revocations).toEqual({ succeeded: 1, failed: 0 })
    expect(stats.grantsRevoked).toHaveLength(1)
  })

  it('ends the session by RP-initiated logout without revoking the refresh token (the SDK must)', async () => {
    const keyPair = await generateKeyPair('ES256')
    const tokens = await login(keyPair)
    const url = new URL(as.end_session_endpoint!)
    url.search = new URLSearchParams({
      client_id: client.client_id,
      post_logout_redirect_uri: `${SPA_ORIGIN}/`,
      state: 'bye',
    }).toString()
    const page = await tokens.browser(url.href)
    expect(page.status).toBe(200)
    // The page confirms by script; nothing may forbid that inline script.
    expect(page.headers.get('content-security-policy')).toBeNull()
    const html = await page.text()
    expect(html).toContain('form.submit()')
    const xsrf = /name="xsrf" value="([^"]+)"/.exec(html)?.[1]
    expect(xsrf).toBeDefined()
    const action = /id="op.logoutForm" method="post" action="([^"]+)"/.exec(html)?.[1]
    const done = await tokens.browser(action!, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ xsrf: xsrf!, logout: 'yes' }).toString(),
    })
    expect(done.status).toBe(303)
    expect(done.headers.get('location')).toBe(`${SPA_ORIGIN}/?state=bye`)
    expect(server.stats().endSessions).toBe(1)
    expect(server.stats().grantsRevoked).toEqual([])
    // Still alive: only an explicit revocation ends a refresh token's life before its TTL.
    await expect(refresh(keyPair, tokens.refresh_token!)).resolves.toHaveProperty(
      'token_type',
      'dpop',
    )
  })

  it('answers token_type Bearer when told to, while the token stays bound', async () => {
    const keyPair = await generateKeyPair('ES256')
    const tokens = await login(keyPair)
    const control = await fetch(`${server.issuer}/__control/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ answerBearer: true }),
    })
    expect(await control.json()).toEqual({
      answerBearer: true,
      accessTokenTtl: 5,
      revocationDelayMs: 0,
      nonces: 'always',
      iatWindowSec: 0,
      tokenType: '',
      refreshRotation: 'always',
      refreshFault: null,
    })
    const refreshed = await refresh(keyPair, tokens.refresh_token!)
    expect(refreshed.token_type).toBe('bearer')
    expect((await verifyAccessToken(refreshed.access_token)).payload.cnf).toEqual({
      jkt: await thumbprint(keyPair),
    })
    expect(server.stats().bearerAnswers).toBe(1)
  })

  it('applies a changed access token lifetime to the next token', async () => {
    const keyPair = await generateKeyPair('ES256')
    server.configure({ accessTokenTtl: 2 })
    const tokens = await login(keyPair)
    expect(tokens.expires_in).toBe(2)
    const claims = decodeJwt(tokens.access_token)
    expect(claims.exp! - claims.iat!).toBe(2)
  })
})

describe('test control', () => {
  it('serves and resets the stats over HTTP, without token values', async () => {
    const keyPair = await generateKeyPair('ES256')
    const tokens = await login(keyPair)
    const text = await (await fetch(`${server.issuer}/__control/stats`)).text()
    expect(text).not.toContain(tokens.access_token)
    expect(text).not.toContain(tokens.refresh_token!)
    expect((JSON.parse(text) as AuthServerStats).events.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        'authorization.success',
        'grant.error',
        'grant.success',
        'token.issued',
      ]),
    )

    const reset = await fetch(`${server.issuer}/__control/reset`, { method: 'POST' })
    expect(reset.status).toBe(200)
    const after = await controlStats()
    expect(after.events).toEqual([])
    expect(after.tokenRequests).toEqual({})
  })

  it('revocationDelayMs: 0 to 10000 ms, anything else refused', async () => {
    const post = (body: unknown) =>
      fetch(`${server.issuer}/__control/config`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })
    for (const bad of [-1, 10_001, 1.5, '100'])
      expect((await post({ revocationDelayMs: bad })).status).toBe(400)
    expect(await (await post({ revocationDelayMs: 300 })).json()).toMatchObject({
      revocationDelayMs: 300,
    })
    server.configure({ revocationDelayMs: 0 })
  })

  it('rejects a bad config change and keeps the old settings', async () => {
    const res = await fetch(`${server.issuer}/__control/config`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ answerBearer: true, accessTokenTtl: -1 }),
    })
    expect(res.status).toBe(400)
    expect(await (await fetch(`${server.issuer}/__control/config`)).json()).toEqual({
      answerBearer: false,
      accessTokenTtl: 5,
      revocationDelayMs: 0,
      nonces: 'always',
      iatWindowSec: 0,
      tokenType: '',
      refreshRotation: 'always',
      refreshFault: null,
    })
  })
})

describe('start-up', () => {
  it('says which variable to set when the port is taken', async () => {
    await expect(startAuthServer({ port: server.port })).rejects.toThrow(
      new RegExp(`^port ${server.port} is in use; set DPOP_DEMO_AS_PORT to another port$`),
    )
  })

  it('names the option that is wrong', async () => {
    await expect(startAuthServer({ port: 0, redirectUris: ['/callback'] })).rejects.toThrow(
      /"options\.redirectUris"/,
    )
    await expect(startAuthServer({ port: 0, accessTokenTtl: 0 })).rejects.toThrow(
      /"options\.accessTokenTtl"/,
    )
  })
})

describe('the provider configuration', () => {
  it('stands alone: provider.ts imports nothing of the test parts', () => {
    // The part an app author copies; the test switches reach it only through ProviderHooks.
    const source = readFileSync(
      new URL('../../demo/auth-server/provider.ts', import.meta.url),
      'utf8',
    )
    const imports = [...source.matchAll(/^import [^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1])
    expect(imports.sort()).toEqual(['jose', 'node:crypto', 'oidc-provider'])
    expect(source).not.toContain('__control')
  })
})
