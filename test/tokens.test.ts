// @vitest-environment node
// The token manager's state machine against a fake authorization server at the network
// edge only: the fake verifies every proof with jose and requires nonces. The real
// oidc-provider runs in e2e/tokens.spec.ts.
import { describe, expect, it } from 'vitest'
import { IDBFactory } from 'fake-indexeddb'
import { calculateJwkThumbprint, generateKeyPair as joseKeyPair } from 'jose'
import { get } from 'idb-keyval'
import { ISSUER, REDIRECT, as, fakeAs, harness, nextId } from './support/fake-as.ts'
import { openIdbStore } from '../src/browser/idb.ts'
import { OAuthError, isDPoPError } from '../src/base/errors.ts'
import { createDPoPClient } from '../src/client/client.ts'

describe('token manager', () => {
  it('login binds the code to the key (dpop_jkt), uses PKCE S256, state and nonce', async () => {
    const h = await harness({ resource: ['https://api.example'] })
    await h.tokens.login({ redirect: (u) => h.redirects.push(u), prompt: 'login' })
    const url = h.redirects[0]!
    expect(url.origin + url.pathname).toBe(`${ISSUER}/authorize`)
    expect(url.searchParams.get('dpop_jkt')).toBe(await h.keys.thumbprint())
    expect(url.searchParams.get('code_challenge_method')).toBe('S256')
    expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(url.searchParams.get('state')).toBeTruthy()
    expect(url.searchParams.get('nonce')).toBeTruthy()
    expect(url.searchParams.get('resource')).toBe('https://api.example')
    expect(url.searchParams.get('prompt')).toBe('login')
  })

  it('exchanges the code with a proof, retrying once on use_dpop_nonce, and stores a DPoP session', async () => {
    const h = await harness()
    await h.login()
    expect(h.server.tokenRequests.map((r) => [r.grant, r.nonce])).toEqual([
      ['authorization_code', undefined],
      ['authorization_code', 'server-nonce-1'],
    ])
    expect(h.server.tokenRequests[0]!.jkt).toBe(await h.keys.thumbprint())
    expect(h.tokens.isAuthenticated()).toBe(true)
    expect(h.tokens.getUser()).toMatchObject({ sub: 'alice', name: 'Alice' })
    expect(h.events.map((e) => e.type)).toEqual(['login'])
  })

  it('a reload restores the session with the same key', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const a = await harness({ idb, server, name: 'reload' })
    await a.login()
    const token = await a.tokens.getAccessToken()
    const b = await harness({ idb, server, name: 'reload' })
    expect(b.tokens.isAuthenticated()).toBe(true)
    expect(await b.tokens.getAccessToken()).toBe(token)
  })

  it('drops a restored session bound to another key, with a logout event', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const a = await harness({ idb, server, name: 'mismatch' })
    await a.login()
    await a.keys.rotate() // the key changes under the stored tokens
    const b = await harness({ idb, server, name: 'mismatch' })
    expect(b.tokens.isAuthenticated()).toBe(false)
    expect(b.events).toEqual([{ type: 'logout', reason: 'key-mismatch' }])
  })

  it("a changed alg uses a key and a session of its own: not signed in, and nothing ends the other version's session", async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const a = await harness({ idb, server, name: 'alg-change' })
    await a.login()
    const b = await harness({ idb, server, name: 'alg-change', alg: 'EdDSA' })
    expect(b.tokens.isAuthenticated()).toBe(false)
    expect(b.events).toEqual([]) // issue 19 item 5: no key-mismatch between two versions' sessions
    expect((await b.keys.load()).privateKey.algorithm.name).toBe('Ed25519')
    await b.login() // and an EdDSA login works end to end against the fake server
    expect(b.tokens.isAuthenticated()).toBe(true)
    expect(server.tokenRequests.at(-1)?.jkt).toBe(await b.keys.thumbprint())
  })

  for (const [how, options] of [
    ['asked for (par: true)', { par: true }],
    ['required by metadata', { metadata: { require_pushed_authorization_requests: true } }],
  ] as const) {
    it(`PAR ${how}: pushed with a proof from the key (one nonce retry); the browser carries client_id and request_uri only`, async () => {
      const h = await harness({
        ...options,
        metadata: {
          ...('metadata' in options ? options.metadata : {}),
          pushed_authorization_request_endpoint: `${ISSUER}/par`,
        },
      })
      await h.tokens.login({ redirect: (u) => h.redirects.push(u) })
      const jkt = await h.keys.thumbprint()
      expect(h.server.pushed.map((p) => [p.jkt, p.nonce])).toEqual([
        [jkt, undefined],
        [jkt, 'server-nonce-1'],
      ])
      const pushed = h.server.pushed[1]!.params
      expect(pushed.get('dpop_jkt')).toBe(jkt)
      expect(pushed.get('code_challenge_method')).toBe('S256')
      expect(pushed.get('state')).toBeTruthy()
      const url = h.redirects[0]!
      expect(url.origin + url.pathname).toBe(`${ISSUER}/authorize`)
      expect([...url.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri'])
      expect(url.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/)
    })
  }

  it('PAR required by metadata without a pushed_authorization_request_endpoint: a typed error, no redirect', async () => {
    const h = await harness({ metadata: { require_pushed_authorization_requests: true } })
    const error = await h.tokens
      .login({ redirect: (u) => h.redirects.push(u) })
      .catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_INVALID_RESPONSE')).toBe(true)
    expect(h.redirects).toHaveLength(0)
  })

  it('refuses a Bearer answer with ERR_TOKEN_TYPE_MISMATCH and stores nothing', async () => {
    const h = await harness()
    h.server.mode.tokenType = 'Bearer'
    const error = await h.login().catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_TOKEN_TYPE_MISMATCH')).toBe(true)
    expect((error as Error).message).toMatch(/bearer/i)
    expect((error as Error).message).not.toMatch(/at-\d+/)
    expect(h.tokens.isAuthenticated()).toBe(false)
  })

  // RFC 6749 §5.1: token_type is case-insensitive; servers answer DPoP, dpop or DPOP.
  for (const tokenType of ['DPoP', 'dpop', 'DPOP']) {
    it(`accepts token_type "${tokenType}" (any casing) at the code exchange and the refresh`, async () => {
      const h = await harness()
      h.server.mode.tokenType = tokenType
      await h.login()
      expect(h.tokens.isAuthenticated()).toBe(true)
      const first = await h.tokens.getAccessToken()
      h.server.mode.ttl = 0
      await h.tokens.onInvalidToken(first)
      expect(await h.tokens.getAccessToken()).not.toBe(first)
      expect(
        h.server.tokenRequests.filter((r) => r.grant === 'refresh_token').length,
      ).toBeGreaterThan(0)
    })
  }

  it('a Bearer answer to a DPoP request says what the server must enable', async () => {
    const h = await harness()
    h.server.mode.tokenType = 'Bearer'
    const error = await h.login().catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_TOKEN_TYPE_MISMATCH')).toBe(true)
    expect((error as Error).message).toMatch(
      /Turn on DPoP-bound tokens for this client at the authorization server/,
    )
    expect((error as Error).message).toMatch(/dpop_bound_access_tokens/)
  })

  it('refuses a token bound (cnf.jkt) to another key', async () => {
    const h = await harness()
    const other = await joseKeyPair('ES256')
    const { exportJWK } = await import('jose')
    const otherJkt = await calculateJwkThumbprint(await exportJWK(other.publicKey))
    h.server.mode.bindTo = otherJkt
    // Make the access token a JWT carrying cnf.jkt of the other key.
    const inner = h.server.fetch
    h.server.fetch = async (input, init) => {
      const r = await inner(input, init)
      if (r.status !== 200 || !new URL(new Request(input).url).pathname.endsWith('/token')) return r
      const body = await r.json()
      body.access_token = `e30.${Buffer.from(JSON.stringify({ cnf: { jkt: otherJkt } })).toString('base64url')}.sig`
      return Response.json(body, { headers: r.headers })
    }
    expect(isDPoPError(await h.login().catch((e: unknown) => e), 'ERR_INVALID_RESPONSE')).toBe(true)
  })

  it('an error redirect becomes an OAuthError; an unknown state is ERR_STATE_MISMATCH', async () => {
    const h = await harness()
    await h.tokens.login({ redirect: (u) => h.redirects.push(u) })
    const state = h.redirects[0]!.searchParams.get('state')!
    const denied = await h.tokens
      .handleRedirect(`${REDIRECT}?error=access_denied&error_description=no&state=${state}`)
      .catch((e: unknown) => e)
    expect(denied).toBeInstanceOf(OAuthError)
    expect((denied as OAuthError).error).toBe('access_denied')
    const unknown = await h.tokens
      .handleRedirect(`${REDIRECT}?code=x&state=forged`)
      .catch((e: unknown) => e)
    expect(isDPoPError(unknown, 'ERR_STATE_MISMATCH')).toBe(true)
    expect(await h.tokens.handleRedirect(`${REDIRECT}?foo=bar`)).toBeUndefined()
  })

  it('a transaction is single-use', async () => {
    const h = await harness()
    await h.login()
    const url = h.redirects[0]!
    const again = await h.tokens
      .handleRedirect(`${REDIRECT}?code=whatever&state=${url.searchParams.get('state')}`)
      .catch((e: unknown) => e)
    expect(isDPoPError(again, 'ERR_STATE_MISMATCH')).toBe(true)
  })

  it('20 concurrent invalid_token reports for one token cause ONE refresh, with the same key', async () => {
    const h = await harness()
    await h.login()
    const before = await h.tokens.getAccessToken()
    // 20 requests were refused with invalid_token for the same token at once.
    const results = await Promise.all(
      Array.from({ length: 20 }, () => h.tokens.onInvalidToken(before)),
    )
    const refreshes = h.server.tokenRequests.filter((r) => r.grant === 'refresh_token')
    expect(refreshes.length).toBeGreaterThanOrEqual(1)
    expect(refreshes.length).toBeLessThanOrEqual(2) // one, plus at most one nonce retry
    expect(refreshes.filter((r) => r.nonce === 'server-nonce-1')).toHaveLength(1)
    expect(new Set(refreshes.map((r) => r.jkt))).toEqual(new Set([await h.keys.thumbprint()]))
    expect(new Set(results).size).toBe(1)
    expect(results[0]).not.toBe(before)
    expect(h.events.filter((e) => e.type === 'refresh')).toHaveLength(1)
  })

  it('a refresh refused with invalid_grant ends the session with a logout event', async () => {
    const h = await harness()
    await h.login()
    h.server.mode.failRefresh = 'invalid_grant'
    const token = await h.tokens.getAccessToken()
    const error = await h.tokens.onInvalidToken(token).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OAuthError)
    expect(h.tokens.isAuthenticated()).toBe(false)
    expect(h.events).toContainEqual({ type: 'logout', reason: 'invalid_grant' })
  })

  it('logout revokes the refresh token, forgets tokens and rotates the key', async () => {
    const h = await harness()
    await h.login()
    const before = await h.keys.thumbprint()
    await h.tokens.logout()
    expect(h.server.revoked).toEqual(['refresh_token', 'access_token'])
    expect(h.tokens.isAuthenticated()).toBe(false)
    expect(await h.keys.thumbprint()).not.toBe(before)
    expect(h.events.at(-1)).toEqual({ type: 'logout', reason: 'user' })
  })

  it('logout signs each revocation with the OLD key (thumbprint checked with jose), after one nonce retry; the new key signs nothing there', async () => {
    const idb = new IDBFactory()
    const name = `revoke-${nextId()}`
    const h = await harness({ idb, name })
    h.server.mode.requireRevocationProof = true
    h.server.mode.revocationNonce = true
    await h.login()
    const stored = await get<{ refreshToken: string }>(
      'session',
      openIdbStore(`dpop-spa:${name}:session`, idb, 5000).use,
    )
    const oldJkt = await h.keys.thumbprint()
    h.server.newNonce() // the nonce the client holds is stale by now
    await h.tokens.logout()
    const newJkt = await h.keys.thumbprint()
    expect(newJkt).not.toBe(oldJkt)
    expect(h.server.revocationProofs.map((p) => [p.hint, p.jkt, p.nonce])).toEqual([
      ['refresh_token', oldJkt, 'server-nonce-1'],
      ['refresh_token', oldJkt, h.server.nonce()],
      ['access_token', oldJkt, h.server.nonce()],
    ])
    expect(
      h.server.revocationProofs.every(
        (p) => p.htm === 'POST' && p.htu === `${ISSUER}/revoke` && p.keepalive === true,
      ),
    ).toBe(true)
    expect(h.server.revoked).toEqual(['refresh_token', 'access_token'])
    expect(h.server.hasRefreshToken(stored!.refreshToken)).toBe(false)
    expect(h.events.filter((e) => e.type === 'error')).toEqual([])
  })

  it('a server that refuses openid (atproto at PAR, invalid_scope on the redirect) gets an error naming the scope to set', async () => {
    const h = await harness({
      par: true,
      metadata: {
        pushed_authorization_request_endpoint: `${ISSUER}/par`,
        scopes_supported: ['atproto', 'transition:generic'],
      },
    })
    const inner = h.server.fetch
    h.server.fetch = async (input, init) =>
      new Request(input).url.endsWith('/par')
        ? Response.json(
            { error: 'invalid_request', error_description: 'Unsupported "nonce" parameter' },
            { status: 400 },
          )
        : inner(input, init)
    const pushed = await h.tokens
      .login({ redirect: (u) => h.redirects.push(u) })
      .catch((e: unknown) => e)
    expect(pushed).toBeInstanceOf(OAuthError)
    expect((pushed as OAuthError).error).toBe('invalid_request')
    expect((pushed as Error).message).toMatch(
      /Set "scope" .*without "openid".*atproto transition:generic/,
    )
    expect(h.redirects).toEqual([])
    const redirected = await harness()
    await redirected.tokens.login({ redirect: (u) => redirected.redirects.push(u) })
    const state = redirected.redirects[0]!.searchParams.get('state')
    const refused = await redirected.tokens
      .handleRedirect(`${REDIRECT}?error=invalid_scope&state=${state}`)
      .catch((e: unknown) => e)
    expect((refused as OAuthError).error).toBe('invalid_scope')
    expect((refused as Error).message).toContain('Set "scope" in createDPoPClient without "openid"')
  })

  it('another tab hears of login and logout over BroadcastChannel', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const a = await harness({ idb, server, name: 'tabs' })
    const b = await harness({ idb, server, name: 'tabs' })
    await a.login()
    await expect.poll(() => b.tokens.isAuthenticated()).toBe(true)
    expect(b.events[0]).toMatchObject({ type: 'login', fromOtherTab: true })
    await a.tokens.logout()
    await expect.poll(() => b.tokens.isAuthenticated()).toBe(false)
    expect(b.events.at(-1)).toEqual({ type: 'logout', reason: 'other-tab' })
  })

  it('a refused refresh (invalid_grant) ends the session in the other tab too, with that reason', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const a = await harness({ idb, server, name: 'tabs-grant' })
    const b = await harness({ idb, server, name: 'tabs-grant' })
    await a.login()
    await expect.poll(() => b.tokens.isAuthenticated()).toBe(true)
    server.mode.failRefresh = 'invalid_grant'
    await a.tokens.onInvalidToken(await a.tokens.getAccessToken()).catch(() => undefined)
    await expect.poll(() => b.tokens.isAuthenticated()).toBe(false)
    expect(b.events.at(-1)).toEqual({ type: 'logout', reason: 'invalid_grant' })
  })

  it('with auth.install() and the authorization server on an API origin, token requests still go out plain', async () => {
    const server = await fakeAs()
    server.mode.ttl = 1 // expiring after 0.75 s: the next getAccessToken refreshes
    const seen: Headers[] = []
    const realFetch = globalThis.fetch
    globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
      seen.push(new Request(input, init).headers)
      return server.fetch(input, init)
    }
    try {
      const auth = await createDPoPClient({
        issuer: ISSUER,
        clientId: 'spa',
        redirectUri: REDIRECT,
        scope: 'openid api',
        metadata: as,
        apiOrigins: [ISSUER],
        indexedDB: new IDBFactory(),
        name: 'installed',
      })
      const uninstall = auth.install()
      const redirects: URL[] = []
      await auth.login({ redirect: (u) => redirects.push(u) })
      const url = redirects[0]!
      const code = server.issueCode(url)
      await auth.handleRedirect(`${REDIRECT}?code=${code}&state=${url.searchParams.get('state')}`)
      const first = await auth.getAccessToken()
      // Once expiring, a refresh must complete (not wait for itself through the installed fetch).
      await expect
        .poll(() => auth.getAccessToken(), { timeout: 5000, interval: 200 })
        .not.toBe(first)
      expect(
        server.tokenRequests.filter((r) => r.grant === 'refresh_token' && r.nonce),
      ).toHaveLength(1)
      // No token request carried an access token (and the requests did pass through here).
      expect(seen.length).toBeGreaterThan(0)
      expect(seen.every((h) => h.get('authorization') === null)).toBe(true)
      uninstall()
      auth.close()
    } finally {
      globalThis.fetch = realFetch
    }
  })

  it('a token endpoint that never answers: the refresh fails with ERR_TIMEOUT, nothing hangs, the session stays', async () => {
    const h = await harness({ requestTimeoutMs: 300 })
    await h.login()
    const token = await h.tokens.getAccessToken()
    const inner = h.server.fetch
    h.server.fetch = (input, init) => {
      if (!new Request(input).url.endsWith('/token')) return inner(input, init)
      // Hangs until the request is aborted, as a dead server behind a live connection does.
      return new Promise((_resolve, reject) =>
        init?.signal?.addEventListener('abort', () => reject(init.signal!.reason as Error)),
      )
    }
    const error = await h.tokens.onInvalidToken(token).catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_TIMEOUT')).toBe(true)
    expect(h.tokens.isAuthenticated()).toBe(true)
    // The caller's own abort still comes back as the caller's reason.
    h.server.fetch = inner
    const controller = new AbortController()
    controller.abort(new DOMException('stop', 'AbortError'))
    await expect(h.tokens.onInvalidToken(token, controller.signal)).rejects.toMatchObject({
      name: 'AbortError',
    })
  })

  it.each([
    [
      'an HTML error page',
      () =>
        new Response('<html>502 Bad Gateway</html>', {
          status: 502,
          headers: { 'content-type': 'text/html' },
        }),
    ],
    ['JSON without access_token', () => Response.json({ token_type: 'DPoP', expires_in: 60 })],
    [
      'a body that is not JSON',
      () => new Response('{"access_token": ', { headers: { 'content-type': 'application/json' } }),
    ],
  ])(
    'a broken token response (%s) is a typed error, stores nothing and leaks nothing',
    async (_name, answer) => {
      const h = await harness()
      const inner = h.server.fetch
      let nonceSeen = false
      h.server.fetch = async (input, init) => {
        const r = await inner(input, init)
        // Let the nonce challenge through, then break the real answer.
        if (!nonceSeen && r.status === 400) {
          nonceSeen = true
          return r
        }
        return new Request(input).url.endsWith('/token') ? answer() : r
      }
      const error = await h.login().catch((e: unknown) => e)
      expect(isDPoPError(error)).toBe(true)
      expect(['ERR_INVALID_RESPONSE', 'ERR_OAUTH']).toContain((error as { code: string }).code)
      expect(h.tokens.isAuthenticated()).toBe(false)
      expect(h.events.some((e) => e.type === 'login')).toBe(false)
    },
  )

  it('login options: returnTo comes back from handleRedirect, login_hint is sent, extraParams cannot override the binding', async () => {
    const h = await harness()
    await h.tokens.login({
      redirect: (u) => h.redirects.push(u),
      returnTo: '/orders/7',
      loginHint: 'alice@example.com',
      extraParams: { dpop_jkt: 'attacker-jkt', code_challenge_method: 'plain', ui_locales: 'de' },
    })
    const url = h.redirects[0]!
    expect(url.searchParams.get('dpop_jkt')).toBe(await h.keys.thumbprint())
    expect(url.searchParams.getAll('dpop_jkt')).toHaveLength(1)
    expect(url.searchParams.get('code_challenge_method')).toBe('S256')
    expect(url.searchParams.get('login_hint')).toBe('alice@example.com')
    expect(url.searchParams.get('ui_locales')).toBe('de')
    const code = h.server.issueCode(url)
    const result = await h.tokens.handleRedirect(
      `${REDIRECT}?code=${code}&state=${url.searchParams.get('state')}`,
    )
    expect(result).toMatchObject({ returnTo: '/orders/7', user: { sub: 'alice' } })
  })
})
