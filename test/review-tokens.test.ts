// @vitest-environment node
// Issue 19, the token, storage, event and binding findings: each test here failed on the code
// before the fix, or with its guard removed. The authorization server is the fake of
// test/support/fake-as.ts (it verifies every proof with jose); IndexedDB is fake-indexeddb.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { IDBFactory } from 'fake-indexeddb'
import { del, get, set } from 'idb-keyval'
import { createDPoPClient } from '../src/client/client.ts'
import type { DPoPClient } from '../src/client/dpop-client.ts'
import { EARLY_EVENTS } from '../src/client/event-bus.ts'
import type { DPoPClientConfig } from '../src/client/client-config.ts'
import { OAuthError, isDPoPError } from '../src/base/errors.ts'
import { openIdbStore } from '../src/browser/idb.ts'
import { createSnapshotStore } from '../src/bindings/snapshot-store.ts'
import type { DPoPClientEvent } from '../src/session/events.ts'
import { ISSUER, REDIRECT, as, fakeAs, harness, nextId, type FakeAs } from './support/fake-as.ts'

const clients: DPoPClient[] = []
afterEach(() => {
  for (const c of clients.splice(0)) c.close()
  vi.unstubAllGlobals()
  vi.restoreAllMocks()
})

/** A whole client (createDPoPClient) on the fake server; `events` records from the start. */
async function client(
  server: FakeAs,
  idb: IDBFactory,
  name: string,
  extra: Partial<DPoPClientConfig> = {},
) {
  const auth = await createDPoPClient({
    issuer: ISSUER,
    clientId: 'spa',
    redirectUri: REDIRECT,
    apiOrigins: ['https://api.example'],
    scope: 'openid api',
    metadata: as,
    fetch: (i, init) => server.fetch(i, init),
    indexedDB: idb,
    name,
    ...extra,
  })
  clients.push(auth)
  return auth
}

/** login() then handleRedirect() with the code the fake server issued. */
async function signIn(auth: DPoPClient, server: FakeAs): Promise<void> {
  const redirects: URL[] = []
  await auth.login({ redirect: (u) => redirects.push(u) })
  const url = redirects[0]!
  await auth.handleRedirect(
    `${REDIRECT}?code=${server.issueCode(url)}&state=${url.searchParams.get('state')}`,
  )
}

/** An IndexedDB whose key database (or every database) fails to open while `failing()` says so (Safari's "connection lost"). */
function flaky(idb: IDBFactory, failing: () => boolean, which = ':keys'): IDBFactory {
  return new Proxy(idb, {
    get(target, prop) {
      if (prop === 'open') {
        return (name: string, version?: number) => {
          if (failing() && name.endsWith(which))
            throw new DOMException(
              'Connection to Indexed Database server lost. Refresh the page to try again',
              'UnknownError',
            )
          return target.open(name, version)
        }
      }
      const value = Reflect.get(target, prop, target) as unknown
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value
    },
  })
}

/** localStorage as a browser has it, for the node environment. */
function stubLocalStorage(): Map<string, string> {
  const data = new Map<string, string>()
  vi.stubGlobal('localStorage', {
    getItem: (k: string) => data.get(k) ?? null,
    setItem: (k: string, v: string) => {
      data.set(k, String(v))
    },
    removeItem: (k: string) => {
      data.delete(k)
    },
  })
  return data
}

describe('item 3: a memory fallback is announced, and a logout there sticks', () => {
  it('the fallback is an event; a logout on the memory page ends the stored session and key: the next load is signed out with a new key', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const name = `fb${nextId()}`
    const a = await client(server, idb, name)
    await signIn(a, server)
    const oldJkt = await a.keys.thumbprint()
    a.close()

    let failing = true
    const b = await client(
      server,
      flaky(idb, () => failing),
      name,
      { storageFallback: 'memory' },
    )
    const events: DPoPClientEvent[] = []
    b.subscribe((e) => events.push(e))
    expect(b.keys.storage).toBe('memory')
    expect(events).toHaveLength(1)
    const [fallback] = events
    expect(fallback?.type).toBe('storage-fallback')
    expect(
      fallback?.type === 'storage-fallback' &&
        isDPoPError(fallback.error, 'ERR_KEY_STORE_UNAVAILABLE'),
    ).toBe(true)
    expect(b.isAuthenticated()).toBe(false)
    failing = false // the failure was transient
    await b.logout()
    b.close()

    const c = await client(server, idb, name)
    expect(c.isAuthenticated()).toBe(false)
    expect(await c.keys.thumbprint()).not.toBe(oldJkt)
    await c.getAccessToken()
    expect(server.tokenRequests.filter((r) => r.grant === 'refresh_token')).toEqual([])
  })

  it('storage still failing at that logout: the next load that reaches storage ends the stored session (logout "storage-fallback")', async () => {
    stubLocalStorage()
    const idb = new IDBFactory()
    const server = await fakeAs()
    const name = `fb${nextId()}`
    const a = await client(server, idb, name)
    await signIn(a, server)
    const oldJkt = await a.keys.thumbprint()
    a.close()

    const b = await client(
      server,
      flaky(idb, () => true, ''),
      name,
      { storageFallback: 'memory' },
    )
    await b.logout()
    b.close()

    const c = await client(server, idb, name)
    const events: DPoPClientEvent[] = []
    c.subscribe((e) => events.push(e))
    expect(events).toEqual([{ type: 'logout', reason: 'storage-fallback' }])
    expect(c.isAuthenticated()).toBe(false)
    expect(await c.keys.thumbprint()).not.toBe(oldJkt)
    c.close()
    // Done once: the load after that is quiet.
    const d = await client(server, idb, name)
    const later: DPoPClientEvent[] = []
    d.subscribe((e) => later.push(e))
    expect(later).toEqual([])
  })
})

describe('issue 18: storageTimeoutMs bounds the key store too', () => {
  it('a key database that never answers fails start-up within storageTimeoutMs (ERR_KEY_STORE_UNAVAILABLE)', async () => {
    const hanging = { open: () => ({}) as IDBOpenDBRequest } as unknown as IDBFactory
    const server = await fakeAs()
    const started = Date.now()
    const error = await client(server, hanging, `hang${nextId()}`, { storageTimeoutMs: 100 }).catch(
      (e: unknown) => e,
    )
    expect(isDPoPError(error, 'ERR_KEY_STORE_UNAVAILABLE')).toBe(true)
    expect(Date.now() - started).toBeLessThan(5_000)
  }, 8_000)
})

describe('item 6: events are kept for the first listener only, capped; replay is as safe as live delivery', () => {
  it('after the last listener left, events are not kept for the next one', async () => {
    const server = await fakeAs()
    const auth = await client(server, new IDBFactory(), `ev${nextId()}`)
    auth.subscribe(() => undefined)()
    await signIn(auth, server)
    await auth.logout()
    const late: DPoPClientEvent[] = []
    auth.subscribe((e) => late.push(e))
    expect(late).toEqual([])
  })

  it(`before the first listener, only the latest ${EARLY_EVENTS} events are kept`, async () => {
    const server = await fakeAs()
    const auth = await client(server, new IDBFactory(), `ev${nextId()}`)
    for (let i = 0; i < EARLY_EVENTS + 4; i++) await signIn(auth, server)
    const first: DPoPClientEvent[] = []
    auth.subscribe((e) => first.push(e))
    expect(first).toHaveLength(EARLY_EVENTS)
  })

  it('a listener that throws on a replayed event does not make subscribe() throw', async () => {
    const server = await fakeAs()
    const auth = await client(server, new IDBFactory(), `ev${nextId()}`)
    await signIn(auth, server)
    expect(() =>
      auth.subscribe(() => {
        throw new Error('listener bug')
      }),
    ).not.toThrow()
  })

  it('guard: a listener that throws on a live event does not break the login, and the others still hear it', async () => {
    const server = await fakeAs()
    const auth = await client(server, new IDBFactory(), `ev${nextId()}`)
    auth.subscribe(() => {
      throw new Error('listener bug')
    })
    const heard: string[] = []
    auth.subscribe((e) => heard.push(e.type))
    await signIn(auth, server)
    expect(auth.isAuthenticated()).toBe(true)
    expect(heard).toEqual(['login'])
  })
})

describe('item 7: server text in messages is capped and filtered', () => {
  const hostile = `<img src=x onerror=alert(1)>\n[INFO] fake log line\u202e${'A'.repeat(1024 * 1024)}`

  it('a 1 MB error_description with HTML from the token endpoint: short, tag- and control-free message, error event and field', async () => {
    const h = await harness()
    await h.login()
    const real = h.server.fetch
    h.server.fetch = async (input, init) =>
      new URL(new Request(input, init).url).pathname === '/token'
        ? Response.json({ error: 'invalid_request', error_description: hostile }, { status: 400 })
        : real(input, init)
    const error = await h.tokens
      .onInvalidToken(await h.tokens.getAccessToken())
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OAuthError)
    const e = error as OAuthError
    expect(e.error).toBe('invalid_request')
    expect(e.message.length).toBeLessThan(400)
    expect(e.message).not.toMatch(/[<>\n\u202e]/)
    expect(e.message).toContain('fake log line')
    expect(e.errorDescription!.length).toBeLessThanOrEqual(1000)
    expect(e.errorDescription).not.toMatch(/[<>\n\u202e]/)
    const event = h.events.find((x) => x.type === 'error')
    expect(event?.type === 'error' && event.error.message).toBe(e.message)
  })

  it('a forged error redirect with markup and line breaks in error and error_description', async () => {
    const h = await harness()
    await h.tokens.login({ redirect: (u) => h.redirects.push(u) })
    const state = h.redirects[0]!.searchParams.get('state')!
    const url = new URL(REDIRECT)
    url.searchParams.set('error', `access_denied<script>x</script>\n${'E'.repeat(5000)}`)
    url.searchParams.set('error_description', hostile.slice(0, 200_000))
    url.searchParams.set('state', state)
    const error = await h.tokens.handleRedirect(url).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(OAuthError)
    const e = error as OAuthError
    expect(e.message.length).toBeLessThan(400)
    expect(e.message).not.toMatch(/[<>\n]/)
    expect(e.error.length).toBeLessThanOrEqual(64)
  })
})

describe('item 8: one code exchange per login transaction', () => {
  it('two concurrent handleRedirect() with the same URL exchange the code once; the other is ERR_STATE_MISMATCH', async () => {
    const h = await harness()
    await h.tokens.login({ redirect: (u) => h.redirects.push(u) })
    const url = h.redirects[0]!
    const back = `${REDIRECT}?code=${h.server.issueCode(url)}&state=${url.searchParams.get('state')}`
    const results = await Promise.allSettled([
      h.tokens.handleRedirect(back),
      h.tokens.handleRedirect(back),
    ])
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected'])
    const rejected = results.find((r) => r.status === 'rejected')
    expect(isDPoPError(rejected?.reason, 'ERR_STATE_MISMATCH')).toBe(true)
    // One exchange: the first attempt and its one nonce retry.
    expect(h.server.tokenRequests.filter((r) => r.grant === 'authorization_code')).toHaveLength(2)
  })
})

describe("item 9: PAR keeps the authorization endpoint's own query", () => {
  it("Azure AD B2C's ?p= stays on the URL the browser is sent to", async () => {
    const h = await harness({
      par: true,
      metadata: {
        authorization_endpoint: `${ISSUER}/authorize?p=b2c_1_signin`,
        pushed_authorization_request_endpoint: `${ISSUER}/par`,
      },
    })
    await h.tokens.login({ redirect: (u) => h.redirects.push(u) })
    const url = h.redirects[0]!
    expect(url.pathname).toBe('/authorize')
    expect(url.searchParams.get('p')).toBe('b2c_1_signin')
    expect([...url.searchParams.keys()].sort()).toEqual(['client_id', 'p', 'request_uri'])
  })
})

describe('item 11: the bindings show what the client holds after a failed redirect', () => {
  it('handleRedirect() fails on a restored session: status error, the error, and still authenticated as the user', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const name = `bind${nextId()}`
    await signIn(await client(server, idb, name), server)
    const reloaded = await client(server, idb, name)
    expect(reloaded.isAuthenticated()).toBe(true)
    // A stale authorization response in the address bar (a bookmark, the back button).
    vi.stubGlobal('location', { href: `${REDIRECT}?code=old&state=unknown` })
    const store = createSnapshotStore(Promise.resolve(reloaded), true)
    const changed = new Promise<void>((resolve) => store.subscribe(resolve))
    const stop = store.start()
    await changed
    await expect.poll(() => store.getSnapshot().status).toBe('error')
    const snapshot = store.getSnapshot()
    expect(isDPoPError(snapshot.error, 'ERR_STATE_MISMATCH')).toBe(true)
    expect(snapshot.isAuthenticated).toBe(true)
    expect(snapshot.user?.sub).toBe('alice')
    stop()
  })
})

describe('item 12: id_token_hint in the end-session URL is an option', () => {
  for (const [how, option, expected] of [
    ['by default', {}, true],
    ['idTokenHint: false', { idTokenHint: false }, false],
  ] as const) {
    it(`logout({ redirect: true }) ${how}: id_token_hint ${expected ? 'sent' : 'left out'}, client_id always`, async () => {
      const h = await harness()
      await h.login()
      const assigned: URL[] = []
      vi.stubGlobal('location', { assign: (u: URL) => assigned.push(new URL(u)) })
      await h.tokens.logout({ redirect: true, ...option })
      const url = assigned[0]!
      expect(url.origin + url.pathname).toBe(`${ISSUER}/logout`)
      expect(url.searchParams.get('client_id')).toBe('spa')
      expect(url.searchParams.has('id_token_hint')).toBe(expected)
    })
  }
})

describe('item 14: guards on stored sessions and tokens', () => {
  const sessionStore = (idb: IDBFactory, name: string) =>
    openIdbStore(`dpop-spa:${name}:session`, idb, 5000)

  /** A signed-in harness, its stored session changed by `change`, then "reloaded". */
  async function reloadWith(change: (session: Record<string, unknown>) => Record<string, unknown>) {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const name = `guard${nextId()}`
    const a = await harness({ idb, server, name })
    await a.login()
    const store = sessionStore(idb, name)
    const stored = await get<Record<string, unknown>>('session', store.use)
    await set('session', change(stored!), store.use)
    store.close()
    return harness({ idb, server, name })
  }

  it('a stored session whose jkt is no thumbprint is not a session: ignored, not "key-mismatch"', async () => {
    const b = await reloadWith((s) => ({ ...s, jkt: 'not a thumbprint' }))
    expect(b.tokens.isAuthenticated()).toBe(false)
    expect(b.events).toEqual([])
  })

  it('a stored session whose user has no sub is not restored', async () => {
    const b = await reloadWith((s) => ({ ...s, user: { name: 'no sub' } }))
    expect(b.tokens.isAuthenticated()).toBe(false)
  })

  it('a stored access token longer than 16384 characters is not restored', async () => {
    const b = await reloadWith((s) => ({
      ...s,
      accessToken: `${String(s.accessToken)}${'x'.repeat(16_384)}`,
    }))
    expect(b.tokens.isAuthenticated()).toBe(false)
  })

  it('"a newer token is already here": a 401 for an older token neither takes the lock nor reads storage', async () => {
    const idb = new IDBFactory()
    const name = `guard${nextId()}`
    const h = await harness({ idb, name })
    await h.login()
    const token = await h.tokens.getAccessToken()
    // The stored session is gone (another tab's logout, not told yet): reading it under the
    // lock would end this one. A 401 for a token this tab replaced already must not go there.
    const store = sessionStore(idb, name)
    await del('session', store.use)
    store.close()
    const requests = h.server.tokenRequests.length
    expect(await h.tokens.onInvalidToken('at-older-token')).toBe(token)
    expect(h.server.tokenRequests).toHaveLength(requests)
    expect(h.tokens.isAuthenticated()).toBe(true)
    expect(h.events.map((e) => e.type)).toEqual(['login'])
  })
})

describe('two app versions with different alg (issue 19, item 5)', () => {
  it('keep their own sessions: neither ends the other with key-mismatch, on any number of loads', async () => {
    const idb = new IDBFactory()
    const server = await fakeAs()
    const name = 'versions'
    const es = await harness({ idb, server, name })
    await es.login()
    const ed = await harness({ idb, server, name, alg: 'EdDSA' })
    await ed.login()
    for (let load = 0; load < 3; load++) {
      const esAgain = await harness({ idb, server, name })
      const edAgain = await harness({ idb, server, name, alg: 'EdDSA' })
      expect(
        [esAgain.tokens.isAuthenticated(), edAgain.tokens.isAuthenticated()],
        `load ${load}`,
      ).toEqual([true, true])
      expect([...esAgain.events, ...edAgain.events].filter((e) => e.type === 'logout')).toEqual([])
      esAgain.tokens.close()
      edAgain.tokens.close()
    }
    // Each session stays bound to its own version's key.
    expect(
      (
        await get<{ jkt: string }>(
          'session',
          openIdbStore(`dpop-spa:${name}:session`, idb, 5000).use,
        )
      )?.jkt,
    ).toBe(await es.keys.thumbprint())
  })
})
