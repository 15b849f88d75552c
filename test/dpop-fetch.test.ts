// @vitest-environment node
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import fc from 'fast-check'
import { calculateJwkThumbprint } from 'jose'
import { createDPoPFetch, type DPoPFetchEvent } from '../src/fetch/dpop-fetch.ts'
import { installDPoPFetch } from '../src/fetch/install.ts'
import { createNonceCache } from '../src/server-state/nonces.ts'
import { createClock } from '../src/server-state/clock.ts'
import { generateKeyPair } from '../src/proof/keys.ts'
import { ServerResponseError, isDPoPError } from '../src/base/errors.ts'
import {
  caught,
  challenge,
  deferred,
  sha256b64url,
  stubFetch,
  type Call,
} from './support/stub-api.ts'

const API = 'https://api.example.com'
const TOKEN = 'eyJ.access-token-SECRET.sig'
let keys: CryptoKeyPair
beforeAll(async () => {
  keys = await generateKeyPair()
})
afterEach(() => {
  vi.unstubAllGlobals()
})

describe('signing requests to allowed origins', () => {
  it('sends Authorization: DPoP and a proof that jose verifies, with htm/htu/ath/jti/iat right', async () => {
    const api = stubFetch()
    const dpopFetch = createDPoPFetch({
      keys: { load: async () => keys },
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
    })
    const before = Math.floor(Date.now() / 1000)
    const res = await dpopFetch(`${API}/v1/items/%7Ex?q=secret#frag`, { method: 'delete' })
    expect(await res.text()).toBe('ok')
    const [call] = api.calls as [Call]
    expect(call.url).toBe(`${API}/v1/items/%7Ex?q=secret#frag`) // Request.url keeps the fragment; it is never sent
    expect(call.method).toBe('DELETE')
    expect(call.headers.get('authorization')).toBe(`DPoP ${TOKEN}`)
    const { payload, header, jkt } = call.proof!
    expect(payload.htm).toBe('DELETE')
    expect(payload.htu).toBe(`${API}/v1/items/%7Ex`)
    expect(payload.ath).toBe(await sha256b64url(TOKEN))
    expect(payload).not.toHaveProperty('nonce')
    expect(payload.iat).toBeGreaterThanOrEqual(before)
    expect(payload.iat).toBeLessThanOrEqual(Math.floor(Date.now() / 1000))
    expect(header.jwk).not.toHaveProperty('d')
    expect(jkt).toBe(
      await calculateJwkThumbprint((await crypto.subtle.exportKey('jwk', keys.publicKey)) as never),
    )
  })

  it('upper-cases non-standard methods on the wire and in htm (fetch only normalizes six)', async () => {
    const api = stubFetch()
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    await dpopFetch(`${API}/a`, { method: 'patch', body: '{}' })
    await dpopFetch(new Request(`${API}/b`, { method: 'propfind' }))
    expect(api.calls.map((c) => [c.method, c.proof?.payload.htm])).toEqual([
      ['PATCH', 'PATCH'],
      ['PROPFIND', 'PROPFIND'],
    ])
  })

  it('accepts URL and Request inputs; every proof has a fresh jti; no token means no ath', async () => {
    const api = stubFetch()
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    await dpopFetch(new URL(`${API}/x`))
    await dpopFetch(new Request(`${API}/x`, { headers: { 'X-Mine': '1' } }))
    await dpopFetch(`${API}/x`)
    expect(new Set(api.calls.map((c) => c.proof?.payload.jti)).size).toBe(3)
    expect(api.calls[1]?.headers.get('x-mine')).toBe('1')
    for (const c of api.calls) {
      expect(c.headers.has('authorization')).toBe(false)
      expect(c.proof?.payload).not.toHaveProperty('ath')
      expect(c.proof?.payload.htu).toBe(`${API}/x`)
    }
  })

  it('caller Authorization: our DPoP token replaces it; without one, Bearer is dropped, DPoP kept (with ath), others kept', async () => {
    const api = stubFetch()
    const withToken = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
    })
    await withToken(`${API}/1`, { headers: { Authorization: 'Bearer other' } })
    const noToken = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => undefined,
      fetch: api.fetch,
    })
    await noToken(`${API}/2`, { headers: { Authorization: 'Bearer leaked' } })
    await noToken(`${API}/3`, { headers: { Authorization: 'dpop caller-token' } })
    await noToken(`${API}/4`, { headers: { Authorization: 'Basic dTpw' } })
    const [a, b, c, d] = api.calls as [Call, Call, Call, Call]
    expect(a.headers.get('authorization')).toBe(`DPoP ${TOKEN}`)
    expect(a.proof?.payload.ath).toBe(await sha256b64url(TOKEN))
    expect(b.headers.has('authorization')).toBe(false)
    expect(b.proof?.payload).not.toHaveProperty('ath')
    expect(c.headers.get('authorization')).toBe('dpop caller-token')
    expect(c.proof?.payload.ath).toBe(await sha256b64url('caller-token'))
    expect(d.headers.get('authorization')).toBe('Basic dTpw')
    expect(d.proof?.payload).not.toHaveProperty('ath')
  })

  it('rejects mode "no-cors", which cannot carry the headers', async () => {
    const api = stubFetch()
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    expect(
      isDPoPError(await caught(dpopFetch(`${API}/x`, { mode: 'no-cors' })), 'ERR_INVALID_ARGUMENT'),
    ).toBe(true)
    expect(api.calls).toHaveLength(0)
  })
})

describe('origins', () => {
  const ALLOWED = ['https://api.example.com', 'http://localhost:8080']

  function setup() {
    vi.stubGlobal('location', new URL('https://app.example.com/page/index.html'))
    const api = stubFetch(
      () =>
        new Response('ok', {
          headers: {
            'DPoP-Nonce': 'learned',
            Date: new Date(Date.now() + 3_600_000).toUTCString(),
          },
        }),
    )
    const nonces = createNonceCache()
    const clock = createClock()
    const dpopFetch = createDPoPFetch({
      keys,
      origins: ALLOWED,
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
      nonces,
      clock,
    })
    return { api, nonces, clock, dpopFetch }
  }

  it('passes other origins through untouched: same objects, no token, no proof, nothing learned', async () => {
    const { api, nonces, clock, dpopFetch } = setup()
    const init = { method: 'POST', body: 'x', headers: { Authorization: 'Bearer theirs' } }
    await dpopFetch('https://other.example/x', init)
    const request = new Request('https://other.example/y')
    await dpopFetch(request)
    expect(api.calls[0]?.input).toBe('https://other.example/x')
    expect(api.calls[0]?.init).toBe(init)
    expect(api.calls[0]?.headers.get('authorization')).toBe('Bearer theirs')
    expect(api.calls[1]?.input).toBe(request)
    expect(api.calls[1]?.init).toBeUndefined()
    for (const c of api.calls) expect(c.headers.has('dpop')).toBe(false)
    expect(nonces.get('https://other.example')).toBeUndefined()
    expect(clock.offset()).toBe(0)
  })

  it('refuses hostile look-alikes and signs only the exact origins', async () => {
    const { api, dpopFetch } = setup()
    const hostile = [
      'https://api.example.com@evil.example/x',
      'https://api.example.com:pw@evil.example/x',
      'https://api.example.com.evil.example/x',
      'https://api.example.com./x',
      'https://api.example.com:8443/x',
      'http://api.example.com/x',
      'wss://api.example.com/x',
      'https://аpi.example.com/x', // Cyrillic а: xn--pi-7lc.example.com
      'https://xn--api-example-com.evil/x',
      '//evil.example/x',
      '/\\evil.example/x',
      'https:\\\\evil.example\\x',
      'javascript:fetch("https://api.example.com")',
      'data:text/plain,https://api.example.com',
      'blob:https://api.example.com/uuid',
      'http://localhost:8081/x',
      'https://localhost:8080/x',
      '/relative-is-app-origin',
    ]
    for (const url of hostile) await dpopFetch(url)
    expect(
      api.calls.map((c) => [c.input, c.headers.has('authorization') || c.headers.has('dpop')]),
    ).toEqual(hostile.map((u) => [u, false]))

    const same = [
      'https://API.EXAMPLE.COM/x',
      'https://api.example.com:443/x',
      'HTTPS://api.example.com/x',
      'http://LOCALHOST:8080/x',
      'https://api.example.com/./a/../x',
    ]
    for (const url of same) await dpopFetch(url)
    const signed = api.calls.slice(hostile.length)
    expect(signed.map((c) => c.proof?.payload.htu)).toEqual([
      `${API}/x`,
      `${API}/x`,
      `${API}/x`,
      'http://localhost:8080/x',
      `${API}/x`,
    ])
    for (const c of signed) expect(c.headers.get('authorization')).toBe(`DPoP ${TOKEN}`)
  })

  it('resolves relative URLs against the page: signed when the page is the API origin', async () => {
    vi.stubGlobal('location', new URL('http://localhost:8080/app/'))
    const api = stubFetch()
    const dpopFetch = createDPoPFetch({
      keys,
      origins: ALLOWED,
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
    })
    await dpopFetch('data?x=1')
    await dpopFetch('//evil.example/x')
    expect(api.calls[0]?.proof?.payload.htu).toBe('http://localhost:8080/app/data')
    expect(api.calls[1]?.headers.has('dpop')).toBe(false)
  })

  it('signs exactly the URLs whose WHATWG origin is allowed (property)', async () => {
    const { api, dpopFetch } = setup()
    const host = fc.constantFrom(
      'api.example.com',
      'API.Example.COM',
      'api.example.com.',
      'api.example.co',
      'wapi.example.com',
      'api.example.com.evil.example',
      'evil.example',
      'localhost',
      '127.0.0.1',
      '[::1]',
      'аpi.example.com',
      'xn--pi-7lc.example.com',
    )
    const absolute = fc
      .tuple(
        fc.constantFrom(
          'https:',
          'http:',
          'HTTPS:',
          'ws:',
          'ftp:',
          'javascript:',
          'data:',
          'blob:https:',
          'blob:',
        ),
        fc.constantFrom('//', '/', '', '\\\\', '///'),
        fc.constantFrom('', 'api.example.com@', 'user:pw@', 'https://api.example.com@'),
        host,
        fc.constantFrom('', ':443', ':80', ':8080', ':8443', ':', ':0443'),
        fc.webPath(),
        fc.constantFrom('', '?a=1', '#f', '?x#y'),
      )
      .map((parts) => parts.join(''))
    const relative = fc.oneof(
      fc.webPath(),
      fc.constantFrom(
        '//evil.example/',
        '//api.example.com/x',
        '?q',
        '../x',
        '\\\\api.example.com\\x',
      ),
    )
    const url = fc.oneof(absolute, relative, fc.webUrl())
    await fc.assert(
      fc.asyncProperty(url, fc.boolean(), async (input, asRequest) => {
        let expected = false
        let hasCredentials = false
        try {
          const u = new URL(input, location.href)
          expected = ALLOWED.includes(u.origin) && /^https?:$/.test(u.protocol)
          hasCredentials = u.username !== '' || u.password !== ''
        } catch {
          expected = false
        }
        let arg: string | Request = input
        if (asRequest) {
          try {
            arg = new Request(new URL(input, location.href))
          } catch {
            arg = input
          }
        }
        api.calls.length = 0
        const outcome = await dpopFetch(arg).catch((e: unknown) => e)
        const [call] = api.calls
        if (expected && hasCredentials) {
          // Fetch refuses URLs with credentials (TypeError); so do we, before anything is sent.
          expect(outcome).toBeInstanceOf(TypeError)
          expect(call).toBeUndefined()
        } else if (!expected) {
          // Untouched: the same object, nothing added.
          expect(call?.input).toBe(arg)
          expect(call?.headers.has('dpop')).toBe(false)
          expect(call?.headers.has('authorization')).toBe(false)
        } else {
          const u = new URL(input, location.href)
          expect(call?.headers.get('authorization')).toBe(`DPoP ${TOKEN}`)
          expect(call?.proof?.payload.htu).toBe(u.origin + u.pathname)
          // Fragments never reach the wire; whether the Request object keeps one is the runtime's choice.
          expect(call?.url.replace(/#.*$/, '')).toBe(u.href.replace(/#.*$/, ''))
        }
      }),
      { numRuns: 400 },
    )
  })

  it('validates options.origins once, at creation', () => {
    const bad: unknown[] = [
      [],
      'https://api.example.com',
      ['https://api.example.com/v1'],
      ['https://*.example.com'],
      ['*'],
      ['ftp://api.example.com'],
      ['api.example.com'],
      ['https://u:p@api.example.com'],
      ['https://api.example.com?x'],
      ['https://api.example.com#'],
      [42],
      ['javascript:alert(1)'],
      ['null'],
    ]
    for (const origins of bad) {
      const e = (() => {
        try {
          createDPoPFetch({ keys, origins: origins as string[] })
        } catch (err) {
          return err
        }
      })()
      expect(isDPoPError(e, 'ERR_INVALID_ARGUMENT'), JSON.stringify(origins)).toBe(true)
      expect((e as Error).message).toContain('"options.origins"')
    }
    expect(() =>
      createDPoPFetch({
        keys,
        origins: ['https://API.example.com:443/', new URL('http://localhost:5301')],
      }),
    ).not.toThrow()
    expect(() => createDPoPFetch({ keys: {} as CryptoKeyPair, origins: [API] })).toThrow(
      /options\.keys/,
    )
    expect(() => createDPoPFetch({ keys, origins: [API], getAccessToken: 'x' as never })).toThrow(
      /options\.getAccessToken/,
    )
    expect(() => createDPoPFetch({ keys, origins: [API], clock: {} as never })).toThrow(
      /options\.clock/,
    )
    expect(() => createDPoPFetch({ keys, origins: [API], nonces: {} as never })).toThrow(
      /options\.nonces/,
    )
  })
})

describe('nonces', () => {
  it('learns DPoP-Nonce from any response of the origin and uses it in the next proof', async () => {
    const nonces = createNonceCache()
    const api = stubFetch(() => new Response('ok', { headers: { 'DPoP-Nonce': 'n-from-200' } }))
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch, nonces })
    await dpopFetch(`${API}/a`)
    expect(nonces.get(API)).toBe('n-from-200')
    await dpopFetch(`${API}/b`)
    expect(api.calls.map((c) => c.proof?.payload.nonce)).toEqual([undefined, 'n-from-200'])
  })

  it('retries a use_dpop_nonce challenge exactly once with a fresh proof, same token and body', async () => {
    const api = stubFetch((c) =>
      c.proof?.payload.nonce === 'n1'
        ? new Response('ok')
        : challenge('use_dpop_nonce', { 'DPoP-Nonce': 'n1' }),
    )
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
    })
    const res = await dpopFetch(`${API}/a?x`, { method: 'POST', body: 'payload' })
    expect(res.status).toBe(200)
    const [first, second] = api.calls as [Call, Call]
    expect(api.calls).toHaveLength(2)
    expect(second.proof?.payload.nonce).toBe('n1')
    expect(second.proof?.payload.jti).not.toBe(first.proof?.payload.jti)
    expect(second.proof?.payload.ath).toBe(await sha256b64url(TOKEN))
    expect([second.proof?.payload.htm, second.proof?.payload.htu]).toEqual(['POST', `${API}/a`])
    expect(new TextDecoder().decode(second.body)).toBe('payload')
  })

  it('returns a second challenge to the caller instead of looping', async () => {
    let i = 0
    const api = stubFetch(() => challenge('use_dpop_nonce', { 'DPoP-Nonce': `n${++i}` }))
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    const res = await dpopFetch(`${API}/a`)
    expect(res.status).toBe(401)
    expect(res.headers.get('DPoP-Nonce')).toBe('n2')
    expect(api.calls).toHaveLength(2)
  })

  it('does not retry when the challenge brings no new nonce (same-origin page)', async () => {
    vi.stubGlobal('location', new URL(`${API}/`))
    const nonces = createNonceCache()
    nonces.set(API, 'same')
    const api = stubFetch(() => challenge('use_dpop_nonce', { 'DPoP-Nonce': 'same' }))
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch, nonces })
    expect((await dpopFetch(`${API}/a`)).status).toBe(401)
    expect(api.calls).toHaveLength(1)
  })

  it('honours a 400 {"error":"use_dpop_nonce"} (RFC 9449 §8) once; other 400s are returned with their body', async () => {
    const api = stubFetch((c) => {
      if (c.url.endsWith('/other'))
        return Response.json(
          { error: 'invalid_request' },
          { status: 400, headers: { 'DPoP-Nonce': `x${c.n}` } },
        )
      return c.proof?.payload.nonce === 'as-1'
        ? new Response('ok')
        : Response.json(
            { error: 'use_dpop_nonce' },
            { status: 400, headers: { 'DPoP-Nonce': 'as-1' } },
          )
    })
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    expect((await dpopFetch(`${API}/a`, { method: 'POST', body: 'b' })).status).toBe(200)
    expect(api.calls).toHaveLength(2)
    const other = await dpopFetch(`${API}/other`)
    expect(other.status).toBe(400)
    expect(await other.json()).toEqual({ error: 'invalid_request' })
    expect(api.calls).toHaveLength(3)
  })

  it('200 requests in flight while the server rotates its nonce all succeed, each with at most one retry', async () => {
    let serverNonce = 'n1'
    let answered = 0
    const allInFlight = deferred()
    const N = 200
    const api = stubFetch(async (c) => {
      if (c.url.endsWith('/warmup'))
        return challenge('use_dpop_nonce', { 'DPoP-Nonce': serverNonce }) // teaches n1
      if (api.calls.length === N + 2) allInFlight.resolve()
      await allInFlight.promise
      const ok = c.proof?.payload.nonce === serverNonce
      if (ok && ++answered === N / 2) serverNonce = 'n2' // rotate halfway through the answers
      return ok
        ? new Response('ok', { headers: { 'DPoP-Nonce': serverNonce } })
        : challenge('use_dpop_nonce', { 'DPoP-Nonce': serverNonce })
    })
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
    })
    await dpopFetch(`${API}/warmup`)
    const calls0 = api.calls.length
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        dpopFetch(`${API}/item/${i}`, { method: 'PUT', body: `body-${i}` }),
      ),
    )
    expect(results.every((r) => r.status === 200)).toBe(true)
    const perItem = new Map<string, Call[]>()
    for (const c of api.calls.slice(calls0)) perItem.set(c.url, [...(perItem.get(c.url) ?? []), c])
    expect(perItem.size).toBe(N)
    for (const [url, calls] of perItem) {
      expect(calls.length).toBeLessThanOrEqual(2)
      for (const c of calls)
        expect(new TextDecoder().decode(c.body)).toBe(`body-${url.split('/').pop()}`)
      if (calls.length === 2) expect(calls[1]?.proof?.payload.nonce).toBe('n2')
    }
    expect([...perItem.values()].filter((c) => c.length === 2)).toHaveLength(N / 2)
  })
})

describe('clock', () => {
  function fakeTime() {
    let local = Date.UTC(2025, 5, 1, 8, 0, 0)
    return {
      now: () => local,
      advance: (ms: number) => {
        local += ms
      },
    }
  }

  it('corrects iat from the Date of allowed-origin responses when the device is minutes off', async () => {
    const t = fakeTime()
    const clock = createClock({ now: t.now })
    const server = () => t.now() + 10 * 60_000
    const api = stubFetch(
      () => new Response('ok', { headers: { Date: new Date(server()).toUTCString() } }),
    )
    const events: DPoPFetchEvent[] = []
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      fetch: api.fetch,
      clock,
      debug: (e) => events.push(e),
    })
    await dpopFetch(`${API}/a`)
    await dpopFetch(`${API}/b`)
    const [a, b] = api.calls as [Call, Call]
    expect(a.proof?.payload.iat).toBe(Math.floor(t.now() / 1000))
    expect(Math.abs(b.proof!.payload.iat! - Math.floor(server() / 1000))).toBeLessThanOrEqual(1)
    expect(events.filter((e) => e.type === 'clock')).toHaveLength(1)
  })

  it('re-signs once after an iat rejection, using the Date of the rejection', async () => {
    const t = fakeTime()
    const clock = createClock({ now: t.now })
    const serverNow = () => t.now() + 4000 // 4 s: below the Date threshold, above this server's 2 s window
    const api = stubFetch((c) => {
      const headers = { Date: new Date(serverNow()).toUTCString() }
      if (Math.abs(c.proof!.payload.iat! - serverNow() / 1000) > 2)
        return challenge('invalid_dpop_proof', headers, 'iat is outside the accepted window')
      return new Response('ok', { headers })
    })
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch, clock })
    expect((await dpopFetch(`${API}/a`, { method: 'POST', body: 'same' })).status).toBe(200)
    expect(api.calls).toHaveLength(2)
    expect(api.calls[1]?.proof?.payload.jti).not.toBe(api.calls[0]?.proof?.payload.jti)
    expect(new TextDecoder().decode(api.calls[1]?.body)).toBe('same')
    expect(Math.abs(clock.offset(API) - 4000)).toBeLessThanOrEqual(600)
  })

  it('does not retry an iat rejection that cannot be fixed (no Date, clock already right, or twice)', async () => {
    const t = fakeTime()
    const noDate = stubFetch(() => challenge('invalid_dpop_proof', {}, 'bad iat'))
    await createDPoPFetch({
      keys,
      origins: [API],
      fetch: noDate.fetch,
      clock: createClock({ now: t.now }),
    })(`${API}/a`)
    expect(noDate.calls).toHaveLength(1)
    const right = stubFetch(() =>
      challenge('invalid_dpop_proof', { Date: new Date(t.now()).toUTCString() }, 'iat too far'),
    )
    await createDPoPFetch({
      keys,
      origins: [API],
      fetch: right.fetch,
      clock: createClock({ now: t.now }),
    })(`${API}/a`)
    expect(right.calls).toHaveLength(1)
    let skew = 4000
    const moving = stubFetch(() =>
      challenge(
        'invalid_dpop_proof',
        { Date: new Date(t.now() + (skew += 4000)).toUTCString() },
        'iat',
      ),
    )
    const res = await createDPoPFetch({
      keys,
      origins: [API],
      fetch: moving.fetch,
      clock: createClock({ now: t.now }),
    })(`${API}/a`)
    expect(res.status).toBe(401)
    expect(moving.calls).toHaveLength(2)
    const notIat = stubFetch(() =>
      challenge(
        'invalid_dpop_proof',
        { Date: new Date(t.now() + 4000).toUTCString() },
        'bad signature',
      ),
    )
    await createDPoPFetch({
      keys,
      origins: [API],
      fetch: notIat.fetch,
      clock: createClock({ now: t.now }),
    })(`${API}/a`)
    expect(notIat.calls).toHaveLength(1)
  })
})

describe('clock recovery whatever the error looks like', () => {
  function fakeTime() {
    const local = Date.UTC(2025, 5, 1, 8, 0, 0)
    return { now: () => local }
  }
  const TEN_MIN = 10 * 60_000
  // Three shapes real verifiers give a proof whose iat is 10 minutes off (see e2e/interop.spec.ts).
  const shapes: [string, (date: string) => Response][] = [
    [
      '400 with a DPoP challenge (Auth0)',
      (date) =>
        new Response('<pre>iat</pre>', {
          status: 400,
          headers: {
            Date: date,
            'WWW-Authenticate':
              'Bearer realm="api", DPoP error="invalid_dpop_proof", error_description="DPoP proof \'iat\' is outside the acceptable range", algs="ES256"',
          },
        }),
    ],
    [
      '401 invalid_dpop_proof without a description',
      (date) =>
        Response.json(
          { error: 'invalid_dpop_proof', reason: 'not recent enough' },
          {
            status: 401,
            headers: {
              Date: date,
              'WWW-Authenticate': 'DPoP error="invalid_dpop_proof", algs="ES256"',
            },
          },
        ),
    ],
    [
      '400 text/plain with no challenge at all (Solid)',
      (date) =>
        new Response('Error verifying WebID: "iat" claim timestamp check failed', {
          status: 400,
          headers: { Date: date, 'Content-Type': 'text/plain' },
        }),
    ],
  ]
  for (const [name, reject] of shapes) {
    for (const skew of [TEN_MIN, -TEN_MIN]) {
      it(`${name}, device ${skew > 0 ? 'behind' : 'ahead'}: the Date moves the clock, one re-signed retry succeeds`, async () => {
        const t = fakeTime()
        const clock = createClock({ now: t.now })
        const serverNow = () => t.now() + skew
        const api = stubFetch((c) => {
          const date = new Date(serverNow()).toUTCString()
          return Math.abs(c.proof!.payload.iat! - serverNow() / 1000) > 60
            ? reject(date)
            : new Response('ok', { headers: { Date: date } })
        })
        const events: DPoPFetchEvent[] = []
        const dpopFetch = createDPoPFetch({
          keys,
          origins: [API],
          getAccessToken: () => TOKEN,
          fetch: api.fetch,
          clock,
          debug: (e) => events.push(e),
        })
        const res = await dpopFetch(`${API}/a`, { method: 'POST', body: 'same' })
        expect(res.status).toBe(200)
        expect(api.calls).toHaveLength(2)
        expect(api.calls[1]?.proof?.payload.jti).not.toBe(api.calls[0]?.proof?.payload.jti)
        expect(new TextDecoder().decode(api.calls[1]?.body)).toBe('same')
        expect(
          events.filter((e) => e.type === 'retry').map((e) => e.type === 'retry' && e.reason),
        ).toEqual(['iat'])
      })
    }
  }

  it('retries an iat rejection without a Date, signed before another response moved the clock (concurrent start-up requests)', async () => {
    const t = fakeTime()
    const clock = createClock({ now: t.now })
    const serverNow = () => t.now() + TEN_MIN
    const held = deferred()
    const api = stubFetch(async (c) => {
      const date = new Date(serverNow()).toUTCString()
      if (c.url.endsWith('/first')) return new Response('ok', { headers: { Date: date } })
      if (c.n === 1) await held.promise // /slow is answered only after /first taught the clock
      // This answer carries no Date: only the earlier response moved the clock; its challenge says why.
      return Math.abs(c.proof!.payload.iat! - serverNow() / 1000) > 60
        ? challenge('invalid_dpop_proof', {}, 'iat is too old')
        : new Response('ok')
    })
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch, clock })
    const slow = dpopFetch(`${API}/slow`)
    await vi.waitFor(() => expect(api.calls).toHaveLength(1))
    const first = await dpopFetch(`${API}/first`)
    expect(first.status).toBe(200)
    held.resolve()
    expect((await slow).status).toBe(200)
    expect(api.calls.map((c) => c.url.split('/').pop())).toEqual(['slow', 'first', 'slow'])
  })

  it('retries at most once, and not at all when nothing moved, for a redirected answer, or for other statuses', async () => {
    const t = fakeTime()
    // The server clock keeps moving: the first rejection teaches, the second is returned.
    let skew = 0
    const moving = stubFetch(
      () =>
        new Response('no', {
          status: 400,
          headers: { Date: new Date(t.now() + (skew += TEN_MIN)).toUTCString() },
        }),
    )
    expect(
      (
        await createDPoPFetch({
          keys,
          origins: [API],
          fetch: moving.fetch,
          clock: createClock({ now: t.now }),
        })(`${API}/a`)
      ).status,
    ).toBe(400)
    expect(moving.calls).toHaveLength(2)
    // A 400 whose Date agrees with us: a plain bad request, returned as it is.
    const right = stubFetch(
      () => new Response('no', { status: 400, headers: { Date: new Date(t.now()).toUTCString() } }),
    )
    expect(
      (
        await createDPoPFetch({
          keys,
          origins: [API],
          fetch: right.fetch,
          clock: createClock({ now: t.now }),
        })(`${API}/a`)
      ).status,
    ).toBe(400)
    expect(right.calls).toHaveLength(1)
    // A 403 or 500 is not about the proof.
    for (const status of [403, 500]) {
      const other = stubFetch(
        () =>
          new Response('no', {
            status,
            headers: { Date: new Date(t.now() + TEN_MIN).toUTCString() },
          }),
      )
      await createDPoPFetch({
        keys,
        origins: [API],
        fetch: other.fetch,
        clock: createClock({ now: t.now }),
      })(`${API}/a`)
      expect(other.calls).toHaveLength(1)
    }
    // An answer that a redirect produced (another path, or another origin) never causes a retry.
    for (const where of [`${API}/elsewhere`, 'https://evil.example/x']) {
      const redirected = stubFetch(() => {
        const r = new Response('no', {
          status: 401,
          headers: {
            Date: new Date(t.now() + TEN_MIN).toUTCString(),
            'WWW-Authenticate': 'DPoP error="invalid_dpop_proof"',
          },
        })
        Object.defineProperties(r, { redirected: { value: true }, url: { value: where } })
        return r
      })
      await createDPoPFetch({
        keys,
        origins: [API],
        fetch: redirected.fetch,
        clock: createClock({ now: t.now }),
      })(`${API}/a`)
      expect(redirected.calls).toHaveLength(1)
    }
  })
})

describe('challenges on 400 and nonces in JSON bodies', () => {
  it('honours a DPoP use_dpop_nonce challenge on a 400 once', async () => {
    const api = stubFetch((c) =>
      c.proof?.payload.nonce === 'n-1'
        ? new Response('ok')
        : new Response(null, {
            status: 400,
            headers: { 'WWW-Authenticate': 'DPoP error="use_dpop_nonce"', 'DPoP-Nonce': 'n-1' },
          }),
    )
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    expect((await dpopFetch(`${API}/a`)).status).toBe(200)
    expect(api.calls.map((c) => c.proof?.payload.nonce)).toEqual([undefined, 'n-1'])
  })

  it('honours an invalid_token challenge on a 400: one refresh, one retry', async () => {
    const api = stubFetch((c) =>
      c.headers.get('authorization') === 'DPoP new-token'
        ? new Response('ok')
        : new Response(null, {
            status: 400,
            headers: { 'WWW-Authenticate': 'DPoP error="invalid_token"' },
          }),
    )
    let refreshes = 0
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      fetch: api.fetch,
      getAccessToken: () => TOKEN,
      onInvalidToken: () => {
        refreshes++
        return 'new-token'
      },
    })
    expect((await dpopFetch(`${API}/a`)).status).toBe(200)
    expect(refreshes).toBe(1)
    expect(api.calls).toHaveLength(2)
  })

  for (const status of [401, 403, 409, 422]) {
    it(`treats a ${status} JSON {"error":"use_dpop_nonce"} with a new DPoP-Nonce like the challenge, once`, async () => {
      const api = stubFetch((c) =>
        Response.json(
          { error: 'use_dpop_nonce' },
          { status, headers: { 'DPoP-Nonce': `n-${c.n}` } },
        ),
      )
      const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
      const res = await dpopFetch(`${API}/a`, { method: 'POST', body: 'x' })
      expect(res.status).toBe(status) // the second one is the caller's
      expect(await res.json()).toEqual({ error: 'use_dpop_nonce' })
      expect(api.calls).toHaveLength(2)
      expect(api.calls.map((c) => c.proof?.payload.nonce)).toEqual([undefined, 'n-1'])
    })
  }

  it('does not read a JSON nonce error that came without a new nonce, or from a 5xx', async () => {
    const noNonce = stubFetch(() => Response.json({ error: 'use_dpop_nonce' }, { status: 403 }))
    await createDPoPFetch({ keys, origins: [API], fetch: noNonce.fetch })(`${API}/a`)
    expect(noNonce.calls).toHaveLength(1)
    const serverError = stubFetch(() =>
      Response.json({ error: 'use_dpop_nonce' }, { status: 500, headers: { 'DPoP-Nonce': 'n' } }),
    )
    await createDPoPFetch({ keys, origins: [API], fetch: serverError.fetch })(`${API}/a`)
    expect(serverError.calls).toHaveLength(1)
  })
})

describe('algorithm negotiation (algs)', () => {
  it('an EdDSA key signs requests; a refusal whose algs leave out our alg rejects with ERR_UNSUPPORTED_ALGORITHM', async () => {
    const edKeys = await generateKeyPair({ alg: 'EdDSA' })
    const api = stubFetch((c) =>
      c.url.endsWith('/ok')
        ? new Response('ok')
        : new Response(null, {
            status: 401,
            headers: { 'WWW-Authenticate': 'DPoP error="invalid_dpop_proof", algs="ES256 PS256"' },
          }),
    )
    const dpopFetch = createDPoPFetch({ keys: edKeys, origins: [API], fetch: api.fetch })
    expect((await dpopFetch(`${API}/ok`)).status).toBe(200)
    expect(api.calls[0]?.proof?.header.alg).toBe('EdDSA')
    const error = await caught(dpopFetch(`${API}/refused`))
    expect(isDPoPError(error, 'ERR_UNSUPPORTED_ALGORITHM')).toBe(true)
    expect((error as Error).message).toContain('ES256, PS256')
    expect(api.calls).toHaveLength(2)
    // ES256 is in that list: the same refusal is just returned.
    const esFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    expect((await esFetch(`${API}/refused`)).status).toBe(401)
  })
})

describe('invalid_token', () => {
  it('asks onInvalidToken once for many concurrent 401s with the same token, and retries each once with the new token', async () => {
    let current = 'T1'
    const api = stubFetch((c) =>
      c.headers.get('authorization') === 'DPoP T2'
        ? new Response('ok')
        : challenge('invalid_token'),
    )
    const firstWave = deferred()
    const onInvalidToken = vi.fn(async ({ token }: { token: string }) => {
      expect(token).toBe('T1')
      await firstWave.promise
      current = 'T2'
      return 'T2'
    })
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => current,
      onInvalidToken,
      fetch: api.fetch,
    })
    const pending = Array.from({ length: 20 }, (_, i) => dpopFetch(`${API}/r/${i}`))
    await vi.waitFor(() => expect(api.calls).toHaveLength(20))
    firstWave.resolve()
    const results = await Promise.all(pending)
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200))
    expect(onInvalidToken).toHaveBeenCalledTimes(1)
    expect(api.calls).toHaveLength(40)
    const ath2 = await sha256b64url('T2')
    for (const c of api.calls.slice(20)) expect(c.proof?.payload.ath).toBe(ath2)
  })

  it('a late 401 for an already replaced token reuses the replacement (one refresh per expiry)', async () => {
    const api = stubFetch((c) =>
      c.headers.get('authorization') === 'DPoP T2'
        ? new Response('ok')
        : challenge('invalid_token'),
    )
    const onInvalidToken = vi.fn(async () => 'T2')
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => 'T1',
      onInvalidToken,
      fetch: api.fetch,
    })
    expect((await dpopFetch(`${API}/a`)).status).toBe(200)
    expect((await dpopFetch(`${API}/b`)).status).toBe(200)
    expect(onInvalidToken).toHaveBeenCalledTimes(1)
  })

  it('returns the 401 when there is no new token, or when the new one is rejected too', async () => {
    const api = stubFetch(() => challenge('invalid_token'))
    const giveUp = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => 'T1',
      onInvalidToken: () => undefined,
      fetch: api.fetch,
    })
    expect((await giveUp(`${API}/a`)).status).toBe(401)
    expect(api.calls).toHaveLength(1)
    let n = 1
    const onInvalidToken = vi.fn(() => `T${++n}`)
    const always = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => 'T1',
      onInvalidToken,
      fetch: api.fetch,
    })
    expect((await always(`${API}/b`)).status).toBe(401)
    expect(api.calls).toHaveLength(3)
    expect(onInvalidToken).toHaveBeenCalledTimes(1)
  })
})

describe('CORS-hidden headers', () => {
  it('throws ERR_CORS_HEADER_HIDDEN for a cross-origin 401 without a readable WWW-Authenticate', async () => {
    vi.stubGlobal('location', new URL('https://app.example.com/'))
    const api = stubFetch(() => new Response(null, { status: 401 }))
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
    })
    const e = await caught(dpopFetch(`${API}/a`))
    expect(e).toBeInstanceOf(ServerResponseError)
    expect(isDPoPError(e, 'ERR_CORS_HEADER_HIDDEN')).toBe(true)
    expect((e as ServerResponseError).status).toBe(401)
    expect((e as Error).message).toContain(
      'Access-Control-Expose-Headers: WWW-Authenticate, DPoP-Nonce',
    )
    expect((e as Error).message).toContain('hid its WWW-Authenticate')
    expect(JSON.stringify(e) + String((e as Error).stack)).not.toContain(TOKEN)
  })

  it('throws naming DPoP-Nonce for a cross-origin use_dpop_nonce challenge without a readable nonce', async () => {
    vi.stubGlobal('location', new URL('https://app.example.com/'))
    const api = stubFetch(() => challenge('use_dpop_nonce'))
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    const e = await caught(dpopFetch(`${API}/a`))
    expect(isDPoPError(e, 'ERR_CORS_HEADER_HIDDEN')).toBe(true)
    expect((e as Error).message).toContain('hid its DPoP-Nonce')
  })

  it("uses the response's own type 'cors' when there is no page location", async () => {
    const api = stubFetch(() =>
      Object.defineProperty(new Response(null, { status: 401 }), 'type', { value: 'cors' }),
    )
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    expect(isDPoPError(await caught(dpopFetch(`${API}/a`)), 'ERR_CORS_HEADER_HIDDEN')).toBe(true)
  })

  it('returns a same-origin 401 without WWW-Authenticate as a Response', async () => {
    vi.stubGlobal('location', new URL(`${API}/app`))
    const api = stubFetch(() => new Response('nope', { status: 401 }))
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    const res = await dpopFetch(`${API}/a`)
    expect(res.status).toBe(401)
    expect(await res.text()).toBe('nope')
  })
})

describe('installDPoPFetch', () => {
  it('signs global fetch calls to the origins once, even when installed twice, and restores', async () => {
    const api = stubFetch()
    vi.stubGlobal('fetch', api.fetch)
    const dpopFetch = createDPoPFetch({ keys, origins: [API], getAccessToken: () => TOKEN }) // underlying: globalThis.fetch, lazily
    const restore1 = installDPoPFetch(dpopFetch)
    const restore2 = installDPoPFetch(dpopFetch)
    const other = createDPoPFetch({ keys, origins: [API], getAccessToken: () => TOKEN })
    const restore3 = installDPoPFetch(other)
    await globalThis.fetch(`${API}/x`)
    expect(api.calls).toHaveLength(1)
    expect(api.calls[0]?.headers.get('dpop')?.split('.')).toHaveLength(3)
    expect(api.calls[0]?.headers.get('authorization')).toBe(`DPoP ${TOKEN}`)
    const init = { method: 'POST', body: 'x' }
    await globalThis.fetch('https://elsewhere.example/', init)
    expect(api.calls[1]?.init).toBe(init)
    expect(api.calls[1]?.headers.has('dpop')).toBe(false)
    restore3()
    restore2()
    restore1()
    expect(globalThis.fetch).toBe(api.fetch)
  })

  it('does not recurse or double-sign when options.fetch itself calls the installed global fetch', async () => {
    const api = stubFetch()
    vi.stubGlobal('fetch', api.fetch)
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      fetch: (input, init) => globalThis.fetch(input, init),
    })
    const restore = installDPoPFetch(dpopFetch)
    await globalThis.fetch(`${API}/x`)
    expect(api.calls).toHaveLength(1)
    expect(api.calls[0]?.proof?.payload.htu).toBe(`${API}/x`)
    restore()
  })

  it('leaves a later wrapper in place on restore, and stops signing', async () => {
    const api = stubFetch()
    const target = { fetch: api.fetch }
    const restore = installDPoPFetch(
      createDPoPFetch({ keys, origins: [API], fetch: api.fetch }),
      target,
    )
    const ours = target.fetch
    const theirs = ((i: RequestInfo | URL, n?: RequestInit) => ours(i, n)) as typeof fetch
    target.fetch = theirs
    restore()
    expect(target.fetch).toBe(theirs)
    await target.fetch(`${API}/x`)
    expect(api.calls[0]?.headers.has('dpop')).toBe(false)
    expect(() => installDPoPFetch('x' as never, target)).toThrow(/dpopFetch/)
  })
})

describe('abort', () => {
  const reason = new Error('user navigated away')
  const never = <T>() => new Promise<T>(() => undefined)

  async function expectAbortWhile(
    start: (signal: AbortSignal) => Promise<unknown>,
    waitingOn: () => boolean,
    api: { calls: Call[] },
    callsBefore = 0,
  ) {
    const controller = new AbortController()
    const p = start(controller.signal)
    await vi.waitFor(() => expect(waitingOn()).toBe(true))
    controller.abort(reason)
    await expect(p).rejects.toBe(reason)
    expect(api.calls).toHaveLength(callsBefore)
  }

  it('rejects with the reason at once when the signal is already aborted', async () => {
    const api = stubFetch()
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    await expect(dpopFetch(`${API}/a`, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
    await expect(
      dpopFetch(new Request(`${API}/a`, { signal: AbortSignal.abort(reason) })),
    ).rejects.toBe(reason)
    expect(api.calls).toHaveLength(0)
  })

  it('while waiting for the key', async () => {
    const api = stubFetch()
    let waiting = false
    const dpopFetch = createDPoPFetch({
      keys: {
        load: () => {
          waiting = true
          return never()
        },
      },
      origins: [API],
      fetch: api.fetch,
    })
    await expectAbortWhile(
      (signal) => dpopFetch(`${API}/a`, { signal }),
      () => waiting,
      api,
    )
  })

  it('while waiting for the token', async () => {
    const api = stubFetch()
    let ctxSignal: AbortSignal | undefined
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: ({ signal }) => {
        ctxSignal = signal
        return never()
      },
      fetch: api.fetch,
    })
    await expectAbortWhile(
      (signal) => dpopFetch(`${API}/a`, { signal }),
      () => ctxSignal !== undefined,
      api,
    )
    expect(ctxSignal?.aborted).toBe(true)
  })

  it('while reading a stream body', async () => {
    const api = stubFetch()
    let pulled = false
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    const body = new ReadableStream({
      pull: () => {
        pulled = true
        return never()
      },
    })
    await expectAbortWhile(
      (signal) =>
        dpopFetch(`${API}/a`, { method: 'POST', body, duplex: 'half', signal } as RequestInit),
      () => pulled,
      api,
    )
  })

  it('while waiting for onInvalidToken', async () => {
    const api = stubFetch(() => challenge('invalid_token'))
    let asked = false
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => 'T1',
      onInvalidToken: () => {
        asked = true
        return never()
      },
      fetch: api.fetch,
    })
    await expectAbortWhile(
      (signal) => dpopFetch(`${API}/a`, { signal }),
      () => asked,
      api,
      1,
    )
  })

  it('before a retry', async () => {
    const controller = new AbortController()
    const api = stubFetch(() => {
      controller.abort(reason)
      return challenge('use_dpop_nonce', { 'DPoP-Nonce': 'n1' })
    })
    const dpopFetch = createDPoPFetch({ keys, origins: [API], fetch: api.fetch })
    await expect(dpopFetch(`${API}/a`, { signal: controller.signal })).rejects.toBe(reason)
    expect(api.calls).toHaveLength(1)
  })
})

describe('tokens never leak', () => {
  it('not into errors for bad token values', async () => {
    const api = stubFetch(() => challenge('invalid_token'))
    const bad = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => 'SECRET token with spaces',
      fetch: api.fetch,
    })
    const e1 = await caught(bad(`${API}/a`))
    expect(isDPoPError(e1, 'ERR_INVALID_ARGUMENT')).toBe(true)
    expect((e1 as Error).message).toContain('getAccessToken')
    expect(String((e1 as Error).message)).not.toContain('SECRET')
    const badRenew = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      onInvalidToken: () => 'NEW-SECRET\r\nX: y',
      fetch: api.fetch,
    })
    const e2 = await caught(badRenew(`${API}/a`))
    expect(isDPoPError(e2, 'ERR_INVALID_ARGUMENT')).toBe(true)
    expect(`${(e2 as Error).message} ${(e2 as Error).stack}`).not.toMatch(/SECRET/)
    expect(api.calls.every((c) => !c.url.includes('SECRET') && !c.url.includes(TOKEN))).toBe(true)
  })

  it('not into debug events or console output, which still say what happened', async () => {
    const api = stubFetch((c) =>
      c.proof?.payload.nonce === 'n1'
        ? new Response('ok')
        : challenge('use_dpop_nonce', { 'DPoP-Nonce': 'n1' }),
    )
    const events: DPoPFetchEvent[] = []
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
      debug: (e) => {
        events.push(e)
        throw new Error('listener bug')
      },
    })
    expect((await dpopFetch(`${API}/a?q=1`, { method: 'post' })).status).toBe(200)
    expect(events.map((e) => e.type)).toEqual([
      'proof',
      'nonce',
      'response',
      'retry',
      'proof',
      'response',
    ])
    const proofEvent = events[4] as Extract<DPoPFetchEvent, { type: 'proof' }>
    expect(proofEvent).toMatchObject({ method: 'POST', url: `${API}/a`, attempt: 2 })
    expect(proofEvent.claims).toMatchObject({
      htm: 'POST',
      htu: `${API}/a`,
      nonce: 'n1',
      ath: await sha256b64url(TOKEN),
    })
    expect(proofEvent.claims.jti).toBe(api.calls[1]?.proof?.payload.jti)
    expect(proofEvent.header.typ).toBe('dpop+jwt')
    expect(events[3]).toEqual({
      type: 'retry',
      reason: 'use_dpop_nonce',
      url: `${API}/a`,
      attempt: 1,
    })
    const dump = JSON.stringify(events)
    expect(dump).not.toContain(TOKEN)
    for (const c of api.calls) expect(dump).not.toContain(c.proof!.raw.split('.')[2])

    const debugSpy = vi.spyOn(console, 'debug').mockImplementation(() => undefined)
    try {
      const loud = createDPoPFetch({
        keys,
        origins: [API],
        getAccessToken: () => TOKEN,
        fetch: api.fetch,
        debug: true,
      })
      await loud(`${API}/b`)
      expect(debugSpy).toHaveBeenCalled()
      const printed = JSON.stringify(debugSpy.mock.calls)
      expect(printed).toContain('[dpop-spa]')
      expect(printed).not.toContain(TOKEN)
    } finally {
      debugSpy.mockRestore()
    }
  })
})
