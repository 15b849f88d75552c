// @vitest-environment node
// Security review findings on the token manager (logout, error causes, messages from other
// tabs, returnTo, abandoned logins) and the guards no test covered before. Each test here
// failed on the code before the fix, or with its guard removed.
import { inspect } from 'node:util'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { IDBFactory } from 'fake-indexeddb'
import { entries, set } from 'idb-keyval'
import { openIdbStore } from '../src/browser/idb.ts'
import { isDPoPError } from '../src/base/errors.ts'
import { REDIRECT, fakeAs, harness, nextId } from './support/fake-as.ts'
import { deferred } from './support/stub-api.ts'

afterEach(() => {
  vi.restoreAllMocks()
})

const SECRET = /SECRET/

/** Every error in the chain: the error, its cause, the cause's cause, ... */
function chain(error: unknown): unknown[] {
  const out: unknown[] = []
  for (
    let e = error;
    e !== undefined && e !== null && out.length < 20;
    e = (e as { cause?: unknown }).cause
  )
    out.push(e)
  return out
}

/** What console.error, an error tracker or util.inspect would print of it, at every depth. */
function printed(error: unknown): string {
  return chain(error)
    .map(
      (e) =>
        `${inspect(e, { depth: Infinity, showHidden: true })}\n${e instanceof Error ? `${e.stack}` : ''}\n${safeJson(e)}`,
    )
    .join('\n')
}
function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value, Object.getOwnPropertyNames(value ?? {}))
  } catch {
    return ''
  }
}

const sessionStore = (idb: IDBFactory, name: string) =>
  openIdbStore(`dpop-spa:${name}:session`, idb, 5000)

describe('logout signs out locally first', () => {
  it('an aborted logout({ signal }) still forgets the tokens, rotates the key and tells every tab; a reload is signed out', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const name = `abort-${nextId()}`
    const a = await harness({ idb, server, name })
    const b = await harness({ idb, server, name })
    await a.login()
    await expect.poll(() => b.tokens.isAuthenticated()).toBe(true)
    const key = await a.keys.thumbprint()
    const controller = new AbortController()
    controller.abort(new DOMException('user navigated', 'AbortError'))
    await a.tokens.logout({ signal: controller.signal })
    expect(a.tokens.isAuthenticated()).toBe(false)
    expect(await a.keys.thumbprint()).not.toBe(key)
    expect(a.events.at(-1)).toEqual({ type: 'logout', reason: 'user' })
    await expect.poll(() => b.tokens.isAuthenticated()).toBe(false)
    const reloaded = await harness({ idb, server, name })
    expect(reloaded.tokens.isAuthenticated()).toBe(false)
    expect(server.revoked).toEqual([]) // the caller cut revocation short
  })

  it('a slow revocation endpoint does not keep anyone signed in; a reload mid-logout is signed out; revocation still happens', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const name = `slow-${nextId()}`
    const a = await harness({ idb, server, name })
    await a.login()
    const release = deferred()
    const inner = server.fetch
    const keepalive: unknown[] = []
    server.fetch = async (input, init) => {
      if (new Request(input).url.endsWith('/revoke')) {
        keepalive.push(init?.keepalive)
        await release.promise
      }
      return inner(input, init)
    }
    const done = a.tokens.logout()
    await expect.poll(() => a.events.some((e) => e.type === 'logout')).toBe(true)
    expect(a.tokens.isAuthenticated()).toBe(false)
    const reloaded = await harness({ idb, server, name })
    expect(reloaded.tokens.isAuthenticated()).toBe(false)
    expect(server.revoked).toEqual([])
    release.resolve()
    await done
    expect(server.revoked).toEqual(['refresh_token', 'access_token'])
    expect(keepalive).toEqual([true, true]) // survives the end-session redirect
  })

  it('a failing revocation is an error event, never a reason to stay signed in', async () => {
    const h = await harness()
    await h.login()
    const inner = h.server.fetch
    h.server.fetch = async (input, init) =>
      new Request(input).url.endsWith('/revoke')
        ? Response.json({ error: 'server_error' }, { status: 500 })
        : inner(input, init)
    await h.tokens.logout()
    expect(h.tokens.isAuthenticated()).toBe(false)
    expect(h.events.filter((e) => e.type === 'logout')).toEqual([
      { type: 'logout', reason: 'user' },
    ])
    expect(h.events.filter((e) => e.type === 'error').length).toBeGreaterThanOrEqual(1)
  })
})

describe('no token in any error, at any depth', () => {
  const malformed: [string, Record<string, unknown>][] = [
    [
      'expires_in of the wrong type',
      {
        access_token: 'at-SECRET-1',
        refresh_token: 'rt-SECRET-1',
        token_type: 'DPoP',
        expires_in: 'soon',
      },
    ],
    [
      'no token_type',
      { access_token: 'at-SECRET-2', refresh_token: 'rt-SECRET-2', expires_in: 60 },
    ],
    [
      'an ID token that is not a JWT',
      {
        access_token: 'at-SECRET-3',
        refresh_token: 'rt-SECRET-3',
        token_type: 'DPoP',
        expires_in: 60,
        id_token: 'id-SECRET-3',
      },
    ],
    [
      'a refresh_token of the wrong type',
      {
        access_token: 'at-SECRET-4',
        refresh_token: ['rt-SECRET-4'],
        token_type: 'DPoP',
        expires_in: 60,
      },
    ],
  ]

  it.each(malformed)(
    'code exchange answered with %s: the typed error and its whole cause chain carry no token',
    async (_name, body) => {
      const h = await harness()
      const inner = h.server.fetch
      h.server.fetch = async (input, init) => {
        const r = await inner(input, init)
        return r.status === 200 && new Request(input).url.endsWith('/token')
          ? Response.json(body, { headers: r.headers })
          : r
      }
      const error = await h.login().catch((e: unknown) => e)
      expect(isDPoPError(error)).toBe(true)
      expect(chain(error).length).toBeGreaterThanOrEqual(2) // the cause is kept, only redacted
      expect(printed(error)).not.toMatch(SECRET)
      expect(h.tokens.isAuthenticated()).toBe(false)
    },
  )

  it("a token response that is not valid JSON: the parser's message (which quotes the body) is not kept", async () => {
    const h = await harness()
    const inner = h.server.fetch
    h.server.fetch = async (input, init) => {
      const r = await inner(input, init)
      return r.status === 200 && new Request(input).url.endsWith('/token')
        ? new Response('{"access_token": "at-SECRET-5", "refresh_token": "rt-SECRET-5", ', {
            headers: {
              'content-type': 'application/json',
              'DPoP-Nonce': r.headers.get('DPoP-Nonce') ?? '',
            },
          })
        : r
    }
    const error = await h.login().catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_INVALID_RESPONSE')).toBe(true)
    expect(printed(error)).not.toMatch(SECRET)
  })

  it('a SyntaxError thrown by a custom fetch keeps its name but not its message', async () => {
    const { redactedCause } = await import('../src/session/server-errors.ts')
    let parseError: unknown
    try {
      JSON.parse('rt-SECRET-6 is not JSON')
    } catch (e) {
      parseError = e
    }
    expect(String((parseError as Error).message)).toMatch(SECRET) // V8 quotes the input
    const cause = redactedCause(parseError)
    expect(cause?.name).toBe('SyntaxError')
    expect(printed(cause)).not.toMatch(SECRET)
  })

  it.each(malformed)(
    'refresh answered with %s: neither the rejection nor the error event carries a token',
    async (_name, body) => {
      const h = await harness()
      await h.login()
      const inner = h.server.fetch
      h.server.fetch = async (input, init) => {
        const r = await inner(input, init)
        return r.status === 200 && new Request(input).url.endsWith('/token')
          ? Response.json(body, { headers: r.headers })
          : r
      }
      const error = await h.tokens
        .onInvalidToken(await h.tokens.getAccessToken())
        .catch((e: unknown) => e)
      expect(isDPoPError(error)).toBe(true)
      expect(printed(error)).not.toMatch(SECRET)
      const events = h.events.filter((e) => e.type === 'error')
      expect(events.length).toBeGreaterThanOrEqual(1)
      for (const e of events) expect(printed(e.error)).not.toMatch(SECRET)
    },
  )
})

describe('messages from other tabs are validated', () => {
  it('null, malformed, other-key and non-token sessions are ignored without throwing; a valid one is adopted', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const name = `msgs-${nextId()}`
    const b = await harness({ idb, server, name })
    const jkt = await b.keys.thumbprint()
    const valid = {
      v: 1,
      accessToken: 'at-valid.x',
      refreshToken: 'rt-valid',
      expiresAt: Date.now() + 60_000,
      lifetimeMs: 60_000,
      idToken: undefined,
      user: { sub: 'alice' },
      jkt,
      scope: 'openid',
    }
    const errors: unknown[] = []
    const onError = (e: unknown) => errors.push(e)
    process.on('uncaughtException', onError)
    const channel = new BroadcastChannel(`dpop-spa:${name}:session`)
    try {
      for (const m of [
        null,
        'logout',
        { type: 'session', session: null, login: true },
        { type: 'session', session: { ...valid, jkt: 'A'.repeat(43) }, login: true }, // another key
        { type: 'session', session: { ...valid, accessToken: 'has a space' }, login: true },
        { type: 'session', session: { ...valid, accessToken: 42 }, login: true },
        { type: 'session', session: { ...valid, expiresAt: 'tomorrow' }, login: true },
        { type: 'session', session: { ...valid, v: 2 }, login: true }, // a newer version's shape
        { type: 'session-v3', payload: {} }, // a message this version does not know
      ])
        channel.postMessage(m)
      channel.postMessage({ type: 'session', session: valid, login: true })
      await expect.poll(() => b.tokens.isAuthenticated()).toBe(true)
      expect(b.events).toEqual([{ type: 'login', user: { sub: 'alice' }, fromOtherTab: true }])
      expect(await b.tokens.getAccessToken()).toBe('at-valid.x')
      // A logout with a reason this version does not know still logs out, as "other-tab".
      channel.postMessage({ type: 'logout', reason: 'policy-v9' })
      await expect.poll(() => b.tokens.isAuthenticated()).toBe(false)
      expect(b.events.at(-1)).toEqual({ type: 'logout', reason: 'other-tab' })
    } finally {
      channel.close()
      process.off('uncaughtException', onError)
    }
    expect(errors).toEqual([])
  })
})

describe('one way a session ends', () => {
  it('a session dropped at start-up for key-mismatch is announced to the other tabs too', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const name = `restore-${nextId()}`
    const a = await harness({ idb, server, name })
    await a.login()
    await a.keys.rotate() // the key changes under the stored tokens (Safari ITP, another tab)
    const b = await harness({ idb, server, name }) // start-up in another tab
    expect(b.tokens.isAuthenticated()).toBe(false)
    expect(b.events).toEqual([{ type: 'logout', reason: 'key-mismatch' }])
    await expect.poll(() => a.tokens.isAuthenticated()).toBe(false)
    expect(a.events.at(-1)).toEqual({ type: 'logout', reason: 'key-mismatch' })
  })
})

describe('returnTo stays in the app', () => {
  it.each([
    'javascript:alert(document.cookie)',
    'https://evil.example/phish',
    '//evil.example/phish',
    '/\\evil.example/phish',
    'data:text/html,<script>alert(1)</script>',
    'http://app.example/cb', // same host, other scheme: another origin
  ])('rejects %s with ERR_INVALID_ARGUMENT and starts no login', async (returnTo) => {
    const h = await harness()
    const error = await h.tokens
      .login({ redirect: (u) => h.redirects.push(u), returnTo })
      .catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_INVALID_ARGUMENT')).toBe(true)
    expect(h.redirects).toEqual([])
  })

  it('keeps same-origin paths and URLs as path + query + hash', async () => {
    const h = await harness()
    for (const [returnTo, expected] of <[string, string][]>[
      ['/orders?page=2#top', '/orders?page=2#top'],
      [`${new URL(REDIRECT).origin}/a/b?x=1`, '/a/b?x=1'],
      ['settings', '/settings'],
    ]) {
      await h.tokens.login({ redirect: (u) => h.redirects.push(u), returnTo })
      const url = h.redirects.at(-1)!
      const result = await h.tokens.handleRedirect(
        `${REDIRECT}?code=${h.server.issueCode(url)}&state=${url.searchParams.get('state')}`,
      )
      expect(result?.returnTo).toBe(expected)
    }
  })

  it('a stored transaction with a hostile returnTo (an older version wrote it) hands back nothing', async () => {
    const idb = new IDBFactory()
    const name = `old-tx-${nextId()}`
    const h = await harness({ idb, name })
    await h.tokens.login({ redirect: (u) => h.redirects.push(u), returnTo: '/fine' })
    const url = h.redirects[0]!
    const state = url.searchParams.get('state')!
    const store = sessionStore(idb, name)
    const [, tx] = (await entries(store.use)).find(([k]) => k === `tx:${state}`)!
    await set(`tx:${state}`, { ...(tx as object), returnTo: 'https://evil.example/' }, store.use)
    const result = await h.tokens.handleRedirect(
      `${REDIRECT}?code=${h.server.issueCode(url)}&state=${state}`,
    )
    expect(result?.returnTo).toBeUndefined()
    store.close()
  })
})

describe('stale login transactions are swept', () => {
  it('abandoned logins (with their PKCE verifiers) are deleted on login() and at start-up once past 15 minutes', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const name = `sweep-${nextId()}`
    const a = await harness({ idb, server, name })
    await a.tokens.login({ redirect: () => undefined })
    await a.tokens.login({ redirect: () => undefined })
    const store = sessionStore(idb, name)
    const txKeys = async () =>
      (await entries(store.use))
        .map(([k]) => (typeof k === 'string' ? k : ''))
        .filter((k) => k.startsWith('tx:'))
    expect(await txKeys()).toHaveLength(2)
    // A transaction from a broken writer is swept too.
    await set('tx:garbage', { createdAt: 'yesterday' }, store.use)
    const real = Date.now.bind(Date)
    vi.spyOn(Date, 'now').mockImplementation(() => real() + 16 * 60_000)
    await harness({ idb, server, name }) // start-up
    expect(await txKeys()).toEqual([])
    await a.tokens.login({ redirect: () => undefined })
    await a.tokens.login({ redirect: () => undefined })
    expect(await txKeys()).toHaveLength(2)
    vi.spyOn(Date, 'now').mockImplementation(() => real() + 32 * 60_000)
    await a.tokens.login({ redirect: () => undefined })
    expect(await txKeys()).toHaveLength(1) // only the new one
    store.close()
  })
})

describe('guards that no test covered before', () => {
  it('the code exchange is refused locally (ERR_LOGIN_REQUIRED) when the key changed during login; no token request is made', async () => {
    const h = await harness()
    await h.tokens.login({ redirect: (u) => h.redirects.push(u) })
    const url = h.redirects[0]!
    await h.keys.rotate() // another tab logged out meanwhile
    const error = await h.tokens
      .handleRedirect(
        `${REDIRECT}?code=${h.server.issueCode(url)}&state=${url.searchParams.get('state')}`,
      )
      .catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_LOGIN_REQUIRED')).toBe(true)
    expect(h.server.tokenRequests).toEqual([])
  })

  it('a refresh with tokens bound to another key ends the session (key-mismatch) without asking the server', async () => {
    const server = await fakeAs()
    const h = await harness({ server })
    await h.login()
    const token = await h.tokens.getAccessToken()
    const before = server.tokenRequests.length
    await h.keys.rotate()
    expect(await h.tokens.onInvalidToken(token)).toBeUndefined()
    expect(server.tokenRequests.slice(before)).toEqual([])
    expect(h.events.at(-1)).toEqual({ type: 'logout', reason: 'key-mismatch' })
  })

  it('a login transaction older than 15 minutes is refused (ERR_STATE_MISMATCH)', async () => {
    const h = await harness()
    await h.tokens.login({ redirect: (u) => h.redirects.push(u) })
    const url = h.redirects[0]!
    const real = Date.now.bind(Date)
    vi.spyOn(Date, 'now').mockImplementation(() => real() + 15 * 60_000 + 5_000)
    const error = await h.tokens
      .handleRedirect(
        `${REDIRECT}?code=${h.server.issueCode(url)}&state=${url.searchParams.get('state')}`,
      )
      .catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_STATE_MISMATCH')).toBe(true)
    expect(h.server.tokenRequests).toEqual([])
  })

  it('a nonce handed out on a 2xx token response is used by the next token request (RFC 9449 §8.2): no extra round trip', async () => {
    const h = await harness()
    h.server.mode.rotateNonceOnSuccess = true
    await h.login()
    const current = h.server.nonce()
    expect(current).not.toBe('server-nonce-1')
    const before = h.server.tokenRequests.length
    await h.tokens.onInvalidToken(await h.tokens.getAccessToken())
    expect(h.server.tokenRequests.slice(before).map((r) => [r.grant, r.nonce])).toEqual([
      ['refresh_token', current],
    ])
  })
})
