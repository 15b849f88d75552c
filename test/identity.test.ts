// @vitest-environment node
// A user for every session: from the ID token, else the token response's `sub` (atproto), else
// a DPoP-signed UserInfo call; every `sub` must name the same user; and the app's verifyUser
// hook decides before anything is stored. The fake server checks every proof with jose.
import { describe, expect, it } from 'vitest'
import { IDBFactory } from 'fake-indexeddb'
import { ISSUER, REDIRECT, fakeAs, harness, nextId, type Harness } from './support/fake-as.ts'
import { isDPoPError } from '../src/base/errors.ts'
import type { UserClaims, VerifyUserContext } from '../src/session/user.ts'

/** The login of Harness.login(), but returning what handleRedirect() resolved to. */
async function loginResult(h: Harness) {
  await h.tokens.login({ redirect: (u) => h.redirects.push(u) })
  const url = h.redirects.at(-1)!
  return h.tokens.handleRedirect(
    `${REDIRECT}?code=${h.server.issueCode(url)}&state=${url.searchParams.get('state')}`,
  )
}

describe('identity without an ID token', () => {
  it("atproto's shape: no ID token, sub (a DID) in the token response: the user is that sub and the issuer, kept across a refresh and a reload", async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    server.mode.idToken = false
    server.mode.responseSub = 'did:plc:alice'
    const name = `atproto-${nextId()}`
    const h = await harness({ idb, server, name, scope: 'atproto transition:generic' })
    const result = await loginResult(h)
    expect(h.redirects[0]!.searchParams.has('nonce')).toBe(false)
    expect(result?.user).toEqual({ sub: 'did:plc:alice', iss: ISSUER })
    expect(h.tokens.getUser()).toEqual({ sub: 'did:plc:alice', iss: ISSUER })
    expect(h.events[0]).toEqual({
      type: 'login',
      user: { sub: 'did:plc:alice', iss: ISSUER },
      fromOtherTab: false,
    })
    await h.tokens.onInvalidToken(await h.tokens.getAccessToken())
    expect(h.server.tokenRequests.some((r) => r.grant === 'refresh_token')).toBe(true)
    expect(h.tokens.getUser()).toEqual({ sub: 'did:plc:alice', iss: ISSUER })
    const reloaded = await harness({ idb, server, name, scope: 'atproto transition:generic' })
    expect(reloaded.tokens.getUser()).toEqual({ sub: 'did:plc:alice', iss: ISSUER })
  })

  it('an ID token and a token response naming different users: ERR_INVALID_RESPONSE, nothing stored', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    server.mode.responseSub = 'mallory'
    const name = `mismatch-${nextId()}`
    const h = await harness({ idb, server, name })
    const error = await loginResult(h).catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_INVALID_RESPONSE')).toBe(true)
    expect((error as Error).message).toContain('two different users')
    expect(h.tokens.isAuthenticated()).toBe(false)
    expect((await harness({ idb, server, name })).tokens.isAuthenticated()).toBe(false)
  })

  it('a refresh that names another user is refused; the session keeps its user', async () => {
    const server = await fakeAs()
    server.mode.idToken = false
    server.mode.responseSub = 'did:plc:alice'
    const h = await harness({ server, scope: 'atproto' })
    await h.login()
    server.mode.responseSub = 'did:plc:mallory'
    const error = await h.tokens
      .onInvalidToken(await h.tokens.getAccessToken())
      .catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_INVALID_RESPONSE')).toBe(true)
    expect(h.tokens.getUser()?.sub).toBe('did:plc:alice')
  })
})

describe('UserInfo, signed', () => {
  it('an ID token without the profile claims asked for: one DPoP-signed UserInfo call (ath, the bound key, the nonce) fills the user', async () => {
    const server = await fakeAs()
    server.mode.idTokenProfile = false
    const h = await harness({ server, scope: 'openid profile api' })
    const result = await loginResult(h)
    const jkt = await h.keys.thumbprint()
    expect(server.userinfo).toEqual([{ jkt, nonce: 'server-nonce-1', athOk: true, scheme: 'DPoP' }])
    expect(result?.user).toMatchObject({
      sub: 'alice',
      iss: ISSUER,
      name: 'Alice (userinfo)',
      email: 'alice@example.com',
    })
    expect(h.tokens.getUser()).toMatchObject({ sub: 'alice', name: 'Alice (userinfo)' })
  })

  it('a stale nonce at UserInfo is retried once with the new one', async () => {
    const server = await fakeAs()
    server.mode.idTokenProfile = false
    const h = await harness({ server, scope: 'openid profile', userInfo: 'always' })
    const inner = server.fetch
    // The token endpoint's success moves the nonce on, so the first UserInfo proof carries a stale one.
    server.fetch = async (input, init) => {
      const response = await inner(input, init)
      if (new Request(input).url.endsWith('/token') && response.ok) server.newNonce()
      return response
    }
    await loginResult(h)
    expect(server.userinfo.map((u) => u.nonce)).toEqual(['server-nonce-1', server.nonce()])
    expect(h.tokens.getUser()).toMatchObject({ name: 'Alice (userinfo)' })
  })

  it('UserInfo naming another user than the ID token: ERR_INVALID_RESPONSE, nothing stored', async () => {
    const server = await fakeAs()
    server.mode.idTokenProfile = false
    server.mode.userinfoSub = 'mallory'
    const h = await harness({ server, scope: 'openid profile' })
    const error = await loginResult(h).catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_INVALID_RESPONSE')).toBe(true)
    expect(h.tokens.isAuthenticated()).toBe(false)
  })

  it("'auto' asks nothing when the ID token has the claims, or no claim scope was asked for; 'never' never asks", async () => {
    const withClaims = await harness({ scope: 'openid profile' })
    await withClaims.login()
    const server = await fakeAs()
    server.mode.idTokenProfile = false
    const noClaimScope = await harness({ server, scope: 'openid api' })
    await noClaimScope.login()
    const never = await harness({ server, scope: 'openid profile', userInfo: 'never' })
    await never.login()
    expect([withClaims.server.userinfo, server.userinfo]).toEqual([[], []])
    expect(never.tokens.getUser()).toMatchObject({ sub: 'alice' })
  })
})

describe('verifyUser: the app checks the user before the session is stored', () => {
  it('receives the user, the issuer and the token response without its tokens; true stores the session', async () => {
    const server = await fakeAs()
    server.mode.idToken = false
    server.mode.responseSub = 'did:plc:alice'
    const calls: [UserClaims | undefined, VerifyUserContext][] = []
    const h = await harness({
      server,
      scope: 'atproto',
      verifyUser: (user, context) => {
        calls.push([user, context])
        return true
      },
    })
    await h.login()
    expect(calls).toHaveLength(1)
    const [user, context] = calls[0]!
    expect(user).toEqual({ sub: 'did:plc:alice', iss: ISSUER })
    expect(context.issuer).toBe(ISSUER)
    expect(context.tokenResponse).toMatchObject({ sub: 'did:plc:alice', token_type: 'dpop' })
    expect(Object.keys(context.tokenResponse)).not.toEqual(expect.arrayContaining(['access_token']))
    expect(
      Object.keys(context.tokenResponse).filter((k) => /token$/.test(k) && k !== 'token_type'),
    ).toEqual([])
    expect(h.tokens.isAuthenticated()).toBe(true)
  })

  for (const [how, verifyUser] of [
    ['returns false', async () => false],
    [
      'throws',
      async () => {
        throw new Error('DID does not resolve to this issuer')
      },
    ],
  ] as const) {
    it(`a hook that ${how}: ERR_USER_REFUSED, nothing stored, no login event, the refresh token revoked`, async () => {
      const idb = new IDBFactory()
      const server = await fakeAs()
      const name = `refused-${nextId()}`
      const h = await harness({ idb, server, name, verifyUser })
      const error = await loginResult(h).catch((e: unknown) => e)
      expect(isDPoPError(error, 'ERR_USER_REFUSED')).toBe(true)
      if (how === 'throws')
        expect(((error as Error).cause as Error).message).toBe(
          'DID does not resolve to this issuer',
        )
      expect(h.tokens.isAuthenticated()).toBe(false)
      expect(h.events.filter((e) => e.type === 'login')).toEqual([])
      expect(server.revoked).toEqual(['refresh_token'])
      expect((await harness({ idb, server, name })).tokens.isAuthenticated()).toBe(false)
    })
  }
})
