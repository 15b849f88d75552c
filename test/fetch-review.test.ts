// @vitest-environment node
// Issue 19, the signed fetch and its clock: a processed request is never re-sent on a guess,
// each origin keeps its own clock, and a 4xx body is read only when small, JSON and quick.
// Each test here failed on the code before the fix (see the issue's note for what it did).
import { beforeAll, describe, expect, it, vi } from 'vitest'
import { IDBFactory } from 'fake-indexeddb'
import { createDPoPFetch, type DPoPFetchEvent } from '../src/fetch/dpop-fetch.ts'
import { createClock } from '../src/server-state/clock.ts'
import { createDPoPClient } from '../src/client/client.ts'
import { generateKeyPair } from '../src/proof/keys.ts'
import { as as metadata, fakeAs, REDIRECT } from './support/fake-as.ts'
import { challenge, deferred, stubFetch } from './support/stub-api.ts'

const API = 'https://api.example.com'
const OTHER = 'https://other-api.example.com'
const TOKEN = 'eyJ.access-token.sig'
const LOCAL = Date.UTC(2025, 5, 1, 8, 0, 0)
const date = (ms: number) => new Date(ms).toUTCString()
const iatOf = (proof: string | null): number =>
  (
    JSON.parse(Buffer.from((proof ?? '').split('.')[1] ?? '', 'base64url').toString()) as {
      iat: number
    }
  ).iat
let keys: CryptoKeyPair
beforeAll(async () => {
  keys = await generateKeyPair()
})

/** A signed fetch on a fake local clock at LOCAL. */
function setup(respond: Parameters<typeof stubFetch>[0]) {
  const clock = createClock({ now: () => LOCAL })
  const api = stubFetch(respond)
  const events: DPoPFetchEvent[] = []
  const dpopFetch = createDPoPFetch({
    keys,
    origins: [API, OTHER],
    getAccessToken: () => TOKEN,
    fetch: api.fetch,
    clock,
    debug: (e) => events.push(e),
  })
  const retries = () =>
    events.filter((e) => e.type === 'retry').map((e) => e.type === 'retry' && e.reason)
  return { clock, api, dpopFetch, retries }
}

describe('a request the server may have processed is not re-sent on a guess (item 1)', () => {
  it('a POST answered 400 (not a DPoP error) whose Date differs by 8 s is sent once, its answer returned as it is', async () => {
    const { api, dpopFetch, clock } = setup(() =>
      Response.json(
        { error: 'invalid_request', error_description: 'wrong one-time code' },
        { status: 400, headers: { Date: date(LOCAL + 8000) } },
      ),
    )
    const response = await dpopFetch(`${API}/otp`, { method: 'POST', body: 'code=123456' })
    expect(response.status).toBe(400)
    expect(await response.json()).toEqual({
      error: 'invalid_request',
      error_description: 'wrong one-time code',
    })
    expect(api.calls).toHaveLength(1)
    // The Date is still learned, for the next request.
    expect(Math.abs(clock.offset(API) - 8000)).toBeLessThanOrEqual(600)
  })

  it('a 400 with no word about time is not re-sent when another answer moved the clock while it was out', async () => {
    const held = deferred()
    const { api, dpopFetch } = setup(async (c) => {
      if (c.url.endsWith('/first'))
        return new Response('ok', { headers: { Date: date(LOCAL + 600_000) } })
      await held.promise
      return new Response('insufficient funds', { status: 400 })
    })
    const payment = dpopFetch(`${API}/pay`, { method: 'POST', body: 'amount=100' })
    await vi.waitFor(() => expect(api.calls).toHaveLength(1))
    expect((await dpopFetch(`${API}/first`)).status).toBe(200)
    held.resolve()
    expect((await payment).status).toBe(400)
    expect(api.calls.map((c) => c.url.split('/').pop())).toEqual(['pay', 'first'])
  })

  it('a 400 whose Date is 3 minutes off (inside common verifier windows) and that names no iat is returned', async () => {
    const { api, dpopFetch } = setup(
      () => new Response('no', { status: 400, headers: { Date: date(LOCAL + 180_000) } }),
    )
    expect((await dpopFetch(`${API}/a`, { method: 'POST', body: 'x' })).status).toBe(400)
    expect(api.calls).toHaveLength(1)
  })

  it('clock-refused answers are still retried once: a challenge naming iat, a JSON error naming iat, a Date 10 minutes off', async () => {
    const shapes: [string, number, (d: string) => Response][] = [
      [
        'challenge',
        8000,
        (d) => challenge('invalid_dpop_proof', { Date: d }, 'iat is not recent enough'),
      ],
      // Below the Date threshold: only the body says why.
      [
        'JSON body',
        3000,
        (d) =>
          Response.json(
            {
              error: 'invalid_dpop_proof',
              error_description: 'DPoP proof iat is not recent enough',
            },
            { status: 400, headers: { Date: d } },
          ),
      ],
      ['Date alone', 600_000, (d) => new Response('bad', { status: 400, headers: { Date: d } })],
    ]
    for (const [name, skew, refuse] of shapes) {
      const { api, dpopFetch, retries, clock } = setup((c) => {
        const d = date(LOCAL + skew)
        return Math.abs(c.proof!.payload.iat! - (LOCAL + skew) / 1000) > 2
          ? refuse(d)
          : new Response('ok', { headers: { Date: d } })
      })
      const response = await dpopFetch(`${API}/a`, { method: 'POST', body: 'same' })
      expect(response.status, name).toBe(200)
      expect(api.calls, name).toHaveLength(2)
      expect(new TextDecoder().decode(api.calls[1]?.body)).toBe('same')
      expect(retries(), name).toEqual(['iat'])
      expect(Math.abs(clock.offset(API) - skew), name).toBeLessThanOrEqual(600)
    }
  })
})

describe('each origin keeps its own clock (item 2)', () => {
  it('an API answering Date = now + 23 h moves only its own proofs, not those to another API origin', async () => {
    const { api, dpopFetch, clock } = setup(
      (c) =>
        new Response(
          'ok',
          c.url.startsWith(API) ? { headers: { Date: date(LOCAL + 23 * 3_600_000) } } : {},
        ),
    )
    await dpopFetch(`${API}/a`)
    await dpopFetch(`${API}/b`)
    await dpopFetch(`${OTHER}/c`)
    const [, b, c] = api.calls.map((x) => x.proof!.payload.iat!)
    expect(Math.abs(b! - (LOCAL + 23 * 3_600_000) / 1000)).toBeLessThanOrEqual(1)
    expect(c).toBe(LOCAL / 1000)
    expect(clock.offset(OTHER)).toBe(0)
    expect(clock.offset()).toBe(0)
  })

  /** A client against the fake authorization server, with one or two API origins answered by `api`. */
  async function client(asAheadMs: number, api: (request: Request) => Response) {
    const server = await fakeAs()
    const tokenIats: number[] = []
    const apiProofs: { origin: string; iat: number }[] = []
    const auth = await createDPoPClient({
      issuer: metadata.issuer,
      clientId: 'spa',
      redirectUri: REDIRECT,
      apiOrigins: [API, OTHER],
      indexedDB: new IDBFactory(),
      fetch: async (input, init) => {
        const request = new Request(input, init)
        const { origin, pathname } = new URL(request.url)
        if (origin !== metadata.issuer) {
          apiProofs.push({ origin, iat: iatOf(request.headers.get('dpop')) })
          return api(request)
        }
        const asDate = { Date: date(Date.now() + asAheadMs) }
        if (pathname.startsWith('/.well-known/'))
          return Response.json(metadata, { headers: asDate })
        if (pathname === '/token') tokenIats.push(iatOf(request.headers.get('dpop')))
        const answer = await server.fetch(request)
        return new Response(answer.body, {
          status: answer.status,
          headers: { ...Object.fromEntries(answer.headers), ...asDate },
        })
      },
    })
    let authorizeUrl: URL | undefined
    await auth.login({
      redirect: (u) => {
        authorizeUrl = u
      },
    })
    const code = server.issueCode(authorizeUrl!)
    await auth.handleRedirect(
      `${REDIRECT}?code=${code}&state=${authorizeUrl!.searchParams.get('state')}`,
    )
    return { auth, tokenIats, apiProofs }
  }
  const nowSec = (aheadMs = 0) => (Date.now() + aheadMs) / 1000

  it('an API answering Date = now + 23 h does not move the iat of token-endpoint proofs (a refresh still works)', async () => {
    let rejected = false
    const { auth, tokenIats, apiProofs } = await client(0, (request) => {
      if (request.url.endsWith('/expired') && !rejected) {
        rejected = true
        return challenge('invalid_token', { Date: date(Date.now() + 23 * 3_600_000) })
      }
      return new Response('ok', { headers: { Date: date(Date.now() + 23 * 3_600_000) } })
    })
    expect((await auth.fetch(`${API}/me`)).status).toBe(200)
    // The 401 invalid_token makes the client refresh: a token request after the API's Date.
    expect((await auth.fetch(`${API}/expired`)).status).toBe(200)
    expect(tokenIats.length).toBeGreaterThanOrEqual(3) // code (with a nonce retry) and the refresh
    for (const iat of tokenIats) expect(Math.abs(iat - nowSec())).toBeLessThan(5)
    expect(Math.abs(apiProofs.at(-1)!.iat - nowSec(23 * 3_600_000))).toBeLessThan(5)
    auth.close()
  })

  it("the authorization server's clock seeds an API origin only until that origin answers with a Date itself", async () => {
    // 3 minutes: the fake server stamps its ID tokens (valid 5 minutes) with the real time.
    const asAhead = 3 * 60_000
    let apiDate = false
    const { auth, tokenIats, apiProofs } = await client(asAhead, (request) => {
      if (request.url.endsWith('/expired'))
        return challenge('invalid_token', { Date: date(Date.now()) })
      // The API hides its Date (CORS) until it starts exposing it.
      return new Response('ok', apiDate ? { headers: { Date: date(Date.now()) } } : {})
    })
    await auth.fetch(`${API}/a`)
    expect(Math.abs(apiProofs[0]!.iat - nowSec(asAhead))).toBeLessThan(5) // seeded
    apiDate = true
    await auth.fetch(`${API}/b`) // its own Date: now
    await auth.fetch(`${API}/c`)
    await auth.fetch(`${OTHER}/d`) // never answered with a Date: still seeded
    expect(Math.abs(apiProofs[2]!.iat - nowSec())).toBeLessThan(5)
    expect(Math.abs(apiProofs[3]!.iat - nowSec(asAhead))).toBeLessThan(5)
    // A refresh after all that still signs on the authorization server's own time.
    const before = tokenIats.length
    await auth.fetch(`${API}/expired`)
    expect(tokenIats.length).toBeGreaterThan(before)
    expect(Math.abs(tokenIats.at(-1)! - nowSec(asAhead))).toBeLessThan(5)
    auth.close()
  })
})

describe('a 4xx body is read only when small JSON that arrives quickly (item 4)', () => {
  const nonceAnswer = (body: BodyInit, type: string, status = 400) =>
    new Response(body, { status, headers: { 'Content-Type': type, 'DPoP-Nonce': 'fresh-nonce' } })

  it('a text/plain 404 carrying {"error":"use_dpop_nonce"} does not re-send a POST', async () => {
    const { api, dpopFetch } = setup(() =>
      nonceAnswer('{"error":"use_dpop_nonce"}', 'text/plain', 404),
    )
    const response = await dpopFetch(`${API}/orders`, { method: 'POST', body: 'order' })
    expect(response.status).toBe(404)
    expect(await response.text()).toBe('{"error":"use_dpop_nonce"}')
    expect(api.calls).toHaveLength(1)
  })

  it('application/problem+json and application/json; charset=utf-8 are JSON: the nonce retry happens', async () => {
    for (const type of ['application/problem+json', 'application/json; charset=utf-8']) {
      const { api, dpopFetch } = setup((c) =>
        c.n === 1 ? nonceAnswer('{"error":"use_dpop_nonce"}', type) : new Response('ok'),
      )
      expect((await dpopFetch(`${API}/a`, { method: 'POST', body: 'x' })).status, type).toBe(200)
      expect(api.calls[1]?.proof?.payload.nonce, type).toBe('fresh-nonce')
    }
  })

  it('a JSON body larger than 4 KiB is not read past the cap (no retry) and the caller still gets all of it', async () => {
    const big = JSON.stringify({ error: 'use_dpop_nonce', padding: 'x'.repeat(64 * 1024) })
    const { api, dpopFetch } = setup(() => nonceAnswer(big, 'application/json'))
    const response = await dpopFetch(`${API}/a`, { method: 'POST', body: 'x' })
    expect(response.status).toBe(400)
    expect(await response.text()).toBe(big)
    expect(api.calls).toHaveLength(1)
  })

  it('a JSON body that never ends does not hang the call: the 400 comes back within about 1.5 s', async () => {
    const stalled = () =>
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"error":"use_dpop_'))
        },
      })
    const { api, dpopFetch } = setup(() => nonceAnswer(stalled(), 'application/json'))
    const started = Date.now()
    const outcome = await Promise.race([
      dpopFetch(`${API}/a`).then((r) => r.status),
      new Promise((resolve) => setTimeout(() => resolve('still waiting after 5 s'), 5000)),
    ])
    expect(outcome).toBe(400)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400)
    expect(api.calls).toHaveLength(1)
  })

  it("the caller's abort ends the wait for a body that never ends, with the signal's reason", async () => {
    const { dpopFetch } = setup(() =>
      nonceAnswer(
        new ReadableStream<Uint8Array>({
          start() {
            /* never sends */
          },
        }),
        'application/json',
      ),
    )
    const controller = new AbortController()
    const reason = new Error('user left')
    setTimeout(() => controller.abort(reason), 100)
    const outcome = await Promise.race([
      dpopFetch(`${API}/a`, { signal: controller.signal }).then(
        () => 'resolved',
        (e: unknown) => e,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting after 1 s'), 1000)),
    ])
    expect(outcome).toBe(reason)
  })
})
