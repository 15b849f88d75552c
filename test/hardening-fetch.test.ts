// @vitest-environment node
// Security review findings on the signed fetch (redirects, the URL checked vs the URL sent,
// the clock bound): each test failed on the code before the fix.
import { beforeAll, describe, expect, it } from 'vitest'
import { createDPoPFetch } from '../src/fetch/dpop-fetch.ts'
import { createNonceCache } from '../src/server-state/nonces.ts'
import { createClock } from '../src/server-state/clock.ts'
import { generateKeyPair } from '../src/proof/keys.ts'
import { isDPoPError } from '../src/base/errors.ts'
import { caught, challenge, stubFetch } from './support/stub-api.ts'

const API = 'https://api.example.com'
const EVIL = 'https://evil.example'
const TOKEN = 'eyJ.access-token-SECRET.sig'
let keys: CryptoKeyPair
beforeAll(async () => {
  keys = await generateKeyPair()
})

/** A response as a fetch that followed a redirect returns it: `redirected` and the final URL. */
function followed(response: Response, url: string): Response {
  Object.defineProperty(response, 'redirected', { value: true })
  Object.defineProperty(response, 'url', { value: url })
  return response
}

describe('redirects of signed requests', () => {
  it('asks the underlying fetch not to follow (redirect: "manual"), for plain and Request paths', async () => {
    const api = stubFetch()
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
    })
    await dpopFetch(`${API}/a`)
    await dpopFetch(`${API}/b`, { method: 'POST', body: 'x', redirect: 'follow' })
    await dpopFetch(new Request(`${API}/c`))
    await dpopFetch(`${API}/d`, { redirect: 'error' })
    expect(
      api.calls.map((c) => (c.input instanceof Request ? c.input.redirect : c.init?.redirect)),
    ).toEqual(['manual', 'manual', 'manual', 'error'])
  })

  it('a redirect (cross-origin or same-origin) rejects with ERR_REDIRECT; nothing is learned from it', async () => {
    for (const location of [`${EVIL}/steal`, `${API}/moved`]) {
      const nonces = createNonceCache()
      const clock = createClock()
      const api = stubFetch(
        () =>
          new Response(null, {
            status: 302,
            headers: { Location: location, 'DPoP-Nonce': 'from-redirect' },
          }),
      )
      const dpopFetch = createDPoPFetch({
        keys,
        origins: [API],
        getAccessToken: () => TOKEN,
        fetch: api.fetch,
        nonces,
        clock,
      })
      const error = await caught(dpopFetch(`${API}/start`))
      expect(isDPoPError(error, 'ERR_REDIRECT')).toBe(true)
      expect((error as { status?: number }).status).toBe(302)
      expect(String((error as Error).message)).not.toContain(TOKEN)
      expect(api.calls).toHaveLength(1)
      expect(nonces.get(API)).toBeUndefined()
    }
  })

  it('an opaque redirect (what browsers return for "manual") rejects with ERR_REDIRECT too', async () => {
    const opaque = new Response(null, { status: 200 })
    Object.defineProperty(opaque, 'type', { value: 'opaqueredirect' })
    Object.defineProperty(opaque, 'status', { value: 0 })
    const api = stubFetch(() => opaque)
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
    })
    expect(isDPoPError(await caught(dpopFetch(`${API}/start`)), 'ERR_REDIRECT')).toBe(true)
  })

  it('redirect: "manual" from the caller gets the redirect response itself', async () => {
    const api = stubFetch(
      () => new Response(null, { status: 307, headers: { Location: `${EVIL}/x` } }),
    )
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
    })
    const response = await dpopFetch(`${API}/start`, { redirect: 'manual' })
    expect(response.status).toBe(307)
    expect(api.calls).toHaveLength(1)
  })

  it('a fetch that followed anyway: the foreign DPoP-Nonce, Date and invalid_token challenge are not credited to the API', async () => {
    const nonces = createNonceCache()
    const clock = createClock()
    let invalidTokenCalls = 0
    const api = stubFetch(() =>
      followed(
        challenge('invalid_token', {
          'DPoP-Nonce': 'evil-nonce',
          Date: new Date(Date.now() + 3_600_000).toUTCString(),
        }),
        `${EVIL}/landing`,
      ),
    )
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
      nonces,
      clock,
      onInvalidToken: () => {
        invalidTokenCalls++
        return 'eyJ.new-token.sig'
      },
    })
    const response = await dpopFetch(`${API}/start`)
    expect(response.status).toBe(401)
    expect(api.calls).toHaveLength(1)
    expect(nonces.get(API)).toBeUndefined()
    expect(clock.offset()).toBe(0)
    expect(invalidTokenCalls).toBe(0)
  })

  it('a response whose URL is on another origin (without the redirected flag) is not learned from either', async () => {
    const nonces = createNonceCache()
    const api = stubFetch(() => {
      const r = challenge('use_dpop_nonce', { 'DPoP-Nonce': 'evil-nonce' })
      Object.defineProperty(r, 'url', { value: `${EVIL}/x` })
      return r
    })
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
      nonces,
    })
    expect((await dpopFetch(`${API}/start`)).status).toBe(401)
    expect(api.calls).toHaveLength(1) // no nonce retry on another server's word
    expect(nonces.get(API)).toBeUndefined()
  })
})

describe('the clock is bounded', () => {
  it('a Date 27 years off is not a correction, from Date or from an iat rejection', async () => {
    const clock = createClock()
    const far = new Date(Date.now() + 27 * 365 * 86_400_000).toUTCString()
    const api = stubFetch((call) =>
      call.n === 1
        ? new Response('ok', { headers: { Date: far } })
        : challenge('invalid_dpop_proof', { Date: far }, 'iat too far from server time'),
    )
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
      clock,
    })
    await dpopFetch(`${API}/a`)
    expect(clock.offset()).toBe(0)
    expect((await dpopFetch(`${API}/b`)).status).toBe(401)
    expect(clock.offset()).toBe(0)
    expect(api.calls).toHaveLength(2) // no retry: nothing changed
  })

  it('an hour off is still learned (a wrong device clock is real)', async () => {
    const clock = createClock()
    const api = stubFetch(
      () =>
        new Response('ok', { headers: { Date: new Date(Date.now() + 3_600_000).toUTCString() } }),
    )
    await createDPoPFetch({ keys, origins: [API], fetch: api.fetch, clock })(`${API}/a`)
    expect(Math.abs(clock.offset(API) - 3_600_000)).toBeLessThan(2_000)
  })
})

describe('the URL checked is the URL sent', () => {
  it('a Request look-alike whose url names the API but converts to another URL gets no token', async () => {
    const api = stubFetch()
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      getAccessToken: () => TOKEN,
      fetch: api.fetch,
    })
    const lookalike = {
      url: `${API}/me`,
      method: 'GET',
      redirect: 'follow',
      headers: new Headers(),
      get [Symbol.toStringTag]() {
        return 'Request'
      },
      toString: () => `${EVIL}/steal`,
    }
    const error = await caught(dpopFetch(lookalike as unknown as Request))
    expect(isDPoPError(error, 'ERR_INVALID_ARGUMENT')).toBe(true)
    expect(
      api.calls.filter((c) => c.headers.has('authorization') || c.headers.has('dpop')),
    ).toEqual([])
    expect(api.calls).toHaveLength(0)
  })
})
