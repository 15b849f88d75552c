// @vitest-environment node
// Guards of the signed fetch and its clock that no test covered (issue 19, item 14): each
// test here fails with its guard removed (the issue's note says how each was tried).
import { beforeAll, describe, expect, it } from 'vitest'
import { IDBFactory } from 'fake-indexeddb'
import { createDPoPFetch } from '../src/fetch/dpop-fetch.ts'
import { createNonceCache } from '../src/server-state/nonces.ts'
import { createDPoPClient } from '../src/client/client.ts'
import { prepareReplayable } from '../src/fetch/body.ts'
import { generateKeyPair } from '../src/proof/keys.ts'
import { isDPoPError } from '../src/base/errors.ts'
import { as as metadata, fakeAs, REDIRECT } from './support/fake-as.ts'
import { caught, challenge, stubFetch } from './support/stub-api.ts'

const API = 'https://api.example.com'
const TOKEN = 'eyJ.access-token.sig'
let keys: CryptoKeyPair
beforeAll(async () => {
  keys = await generateKeyPair()
})

/** Marks a response as one a fetch returned after following a redirect. */
function followed(response: Response, url: string): Response {
  Object.defineProperties(response, { redirected: { value: true }, url: { value: url } })
  return response
}

describe('the JSON-body nonce path', () => {
  it('needs a nonce we did not send: a JSON use_dpop_nonce repeating the nonce the proof carried is returned', async () => {
    const nonces = createNonceCache()
    nonces.set(API, 'n-1')
    const api = stubFetch(() =>
      Response.json({ error: 'use_dpop_nonce' }, { status: 400, headers: { 'DPoP-Nonce': 'n-1' } }),
    )
    const response = await createDPoPFetch({ keys, origins: [API], fetch: api.fetch, nonces })(
      `${API}/a`,
      { method: 'POST', body: 'x' },
    )
    expect(response.status).toBe(400)
    expect(api.calls.map((c) => c.proof?.payload.nonce)).toEqual(['n-1'])
  })

  it("needs the answer's own DPoP-Nonce: a nonce another answer taught meanwhile is no reason to read this body", async () => {
    const nonces = createNonceCache()
    // The cache moves on while the request is out (another answer of the API).
    const api = stubFetch(() => {
      nonces.set(API, 'taught-meanwhile')
      return Response.json({ error: 'use_dpop_nonce' }, { status: 400 })
    })
    const response = await createDPoPFetch({ keys, origins: [API], fetch: api.fetch, nonces })(
      `${API}/a`,
      { method: 'POST', body: 'x' },
    )
    expect(response.status).toBe(400)
    expect(api.calls).toHaveLength(1)
  })
})

describe('challenges are read on 400 and 401 only', () => {
  for (const status of [403, 409, 422]) {
    it(`a ${status} with a DPoP invalid_token challenge does not cause a refresh or a retry`, async () => {
      let refreshes = 0
      const api = stubFetch(() => {
        const r = challenge('invalid_token')
        return new Response('forbidden', { status, headers: r.headers })
      })
      const dpopFetch = createDPoPFetch({
        keys,
        origins: [API],
        fetch: api.fetch,
        getAccessToken: () => TOKEN,
        onInvalidToken: () => {
          refreshes++
          return 'eyJ.new.sig'
        },
      })
      expect((await dpopFetch(`${API}/a`, { method: 'POST', body: 'x' })).status).toBe(status)
      expect(refreshes).toBe(0)
      expect(api.calls).toHaveLength(1)
    })
  }
})

describe('after a refresh', () => {
  it('a refresh that yields the rejected token again sends nothing again', async () => {
    let refreshes = 0
    const api = stubFetch(() => challenge('invalid_token'))
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      fetch: api.fetch,
      getAccessToken: () => TOKEN,
      onInvalidToken: () => {
        refreshes++
        return TOKEN
      },
    })
    expect((await dpopFetch(`${API}/a`, { method: 'POST', body: 'x' })).status).toBe(401)
    expect(refreshes).toBe(1)
    expect(api.calls).toHaveLength(1)
  })
})

describe('bodies', () => {
  it('a prepared request whose body was consumed is never sent half-read: ERR_BODY_NOT_REPLAYABLE', async () => {
    const replay = await prepareReplayable(
      `${API}/a`,
      { method: 'POST', body: 'payload' },
      undefined,
    )
    expect(await replay.attempt().text()).toBe('payload')
    await replay.request.text()
    let error: unknown
    try {
      replay.attempt()
    } catch (e) {
      error = e
    }
    expect(isDPoPError(error, 'ERR_BODY_NOT_REPLAYABLE')).toBe(true)
  })

  it('a Request in mode "no-cors" is refused before anything is sent', async () => {
    const api = stubFetch()
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      fetch: api.fetch,
      getAccessToken: () => TOKEN,
    })
    const request = new Request(`${API}/a`, { mode: 'no-cors' })
    expect(request.mode).toBe('no-cors')
    expect(isDPoPError(await caught(dpopFetch(request)), 'ERR_INVALID_ARGUMENT')).toBe(true)
    expect(
      isDPoPError(
        await caught(dpopFetch(`${API}/b`, { mode: 'no-cors', method: 'POST', body: 'x' })),
        'ERR_INVALID_ARGUMENT',
      ),
    ).toBe(true)
    expect(api.calls).toHaveLength(0)
  })
})

describe('server text in messages is capped', () => {
  const longAlgs = Array.from({ length: 200 }, (_, i) => `ALG${i}-${'x'.repeat(500)}`)

  it("a refusal's algs (200 names of 500 characters) make a message of at most 12 names of 20 characters", async () => {
    const edKeys = await generateKeyPair({ alg: 'EdDSA' })
    const api = stubFetch(
      () =>
        new Response(null, {
          status: 401,
          headers: {
            'WWW-Authenticate': `DPoP error="invalid_dpop_proof", algs="${longAlgs.join(' ').slice(0, 7000)}"`,
          },
        }),
    )
    const error = await caught(
      createDPoPFetch({ keys: edKeys, origins: [API], fetch: api.fetch })(`${API}/a`),
    )
    expect(isDPoPError(error, 'ERR_UNSUPPORTED_ALGORITHM')).toBe(true)
    const message = (error as Error).message
    expect(message).toContain('ALG0-xxxxxxxxxxxxxxx')
    expect(message).not.toContain('ALG12-')
    expect(message.length).toBeLessThan(500)
  })

  it("the metadata's dpop_signing_alg_values_supported (200 long names) make a message of at most 12 names of 20 characters", async () => {
    const error = await caught(
      createDPoPClient({
        issuer: metadata.issuer,
        clientId: 'spa',
        redirectUri: REDIRECT,
        apiOrigins: [API],
        indexedDB: new IDBFactory(),
        fetch: async () =>
          Response.json({ ...metadata, dpop_signing_alg_values_supported: longAlgs }),
      }),
    )
    expect(isDPoPError(error, 'ERR_UNSUPPORTED_ALGORITHM')).toBe(true)
    const message = (error as Error).message
    expect(message).toContain('ALG11-')
    expect(message).not.toContain('ALG12-')
    expect(message.length).toBeLessThan(500)
  })
})

describe('a redirected authorization-server answer teaches nothing', () => {
  it('its Date does not move the clock the API proofs are signed with', async () => {
    const proofs: string[] = []
    const auth = await createDPoPClient({
      issuer: metadata.issuer,
      clientId: 'spa',
      redirectUri: REDIRECT,
      apiOrigins: [API],
      indexedDB: new IDBFactory(),
      fetch: async (input, init) => {
        const request = new Request(input, init)
        if (request.url.startsWith(API)) {
          proofs.push(request.headers.get('dpop') ?? '')
          return new Response('ok')
        }
        return followed(
          Response.json(metadata, {
            headers: { Date: new Date(Date.now() + 2 * 3_600_000).toUTCString() },
          }),
          'https://elsewhere.example/meta',
        )
      },
    })
    await auth.fetch(`${API}/me`)
    const { iat } = JSON.parse(Buffer.from(proofs[0]!.split('.')[1]!, 'base64url').toString()) as {
      iat: number
    }
    expect(Math.abs(iat - Date.now() / 1000)).toBeLessThan(5)
    auth.close()
  })

  it('its DPoP-Nonce is not put into the next token-request proof', async () => {
    const server = await fakeAs()
    const tokenNonces: unknown[] = []
    let first = true
    const auth = await createDPoPClient({
      issuer: metadata.issuer,
      clientId: 'spa',
      redirectUri: REDIRECT,
      apiOrigins: [API],
      indexedDB: new IDBFactory(),
      metadata,
      fetch: async (input, init) => {
        const request = new Request(input, init)
        const proof = request.headers.get('dpop')
        if (proof)
          tokenNonces.push(
            (
              JSON.parse(Buffer.from(proof.split('.')[1]!, 'base64url').toString()) as {
                nonce?: string
              }
            ).nonce,
          )
        if (first && request.url.endsWith('/token')) {
          first = false
          return followed(
            Response.json(
              { error: 'use_dpop_nonce' },
              { status: 400, headers: { 'DPoP-Nonce': 'from-a-redirect' } },
            ),
            'https://elsewhere.example/token',
          )
        }
        return server.fetch(request)
      },
    })
    let authorizeUrl: URL | undefined
    await auth.login({
      redirect: (u) => {
        authorizeUrl = u
      },
    })
    const code = server.issueCode(authorizeUrl!)
    await auth
      .handleRedirect(`${REDIRECT}?code=${code}&state=${authorizeUrl!.searchParams.get('state')}`)
      .catch(() => undefined)
    expect(tokenNonces.length).toBeGreaterThanOrEqual(2)
    expect(tokenNonces).not.toContain('from-a-redirect')
    auth.close()
  })
})

describe('the options are read once', () => {
  it('an init whose mode getter answers "cors" when checked and "no-cors" later is sent as checked', async () => {
    const api = stubFetch()
    const dpopFetch = createDPoPFetch({
      keys,
      origins: [API],
      fetch: api.fetch,
      getAccessToken: () => TOKEN,
    })
    let reads = 0
    const init = {
      get mode(): RequestMode {
        return ++reads === 1 ? 'cors' : 'no-cors'
      },
    }
    expect((await dpopFetch(`${API}/a`, init)).status).toBe(200)
    expect(reads).toBe(1)
    expect(api.calls[0]?.init?.mode).toBe('cors')
    expect(api.calls[0]?.headers.get('authorization')).toBe(`DPoP ${TOKEN}`)
  })
})
