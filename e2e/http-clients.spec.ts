// The HTTP clients apps already use (axios, ky, ofetch, an EventSource), each built on the
// signed fetch as docs/http-clients.md says, in every installed engine against the verifying API
// (demo/api/server.ts checks every proof with jose). Counted at the server: the nonce
// challenge and its retry, the invalid_token refresh, the token and body each attempt carried.
import { expect, test, type Tab } from './driver.ts'
import type { ClientCallOptions, ClientName, ClientReply } from './page-globals.ts'
import {
  API,
  OTHER,
  apiRequests,
  apiRequestsTo,
  ath,
  closeStreams,
  echoReply,
  mintToken,
  openWithKey,
  otherRequests,
  resetServers,
  revokeTokens,
  rotateNonce,
  type Recorded,
} from './api-control.ts'

const PAGE = '/e2e/fixtures/clients.html'
const ECHO = `${API}/api/echo`
const EVENTS = `${API}/api/events`

/** Opens the page, makes a key and a token bound to it, the signed fetch `w.api`, and the clients on top of it. */
async function open(page: Tab): Promise<{ jkt: string; token: string }> {
  const { jkt, token } = await openWithKey(page, PAGE)
  await page.evaluate(
    ({ token, api }) => {
      const w = window
      const { axios, ky, ofetch } = w.libs
      w.token = token
      w.invalidTokenCalls = 0
      w.api = w.dpop.createDPoPFetch({
        keys: w.keys,
        origins: [api],
        getAccessToken: () => w.token,
        // The refresh: hands out w.nextToken once a test has set one.
        onInvalidToken: async () => {
          w.invalidTokenCalls++
          if (w.nextToken) w.token = w.nextToken
          return w.nextToken
        },
      })
      // The recipes of docs/http-clients.md, each reduced to one call shape: (url, { method, json }) → { status, data }.
      // 'User-Agent': false: axios's fetch adapter adds User-Agent: axios/<version>, which Chromium drops
      // but Firefox sends, making every cross-origin call preflighted for a header APIs rarely allow.
      const ax = axios.create({
        adapter: 'fetch',
        env: { fetch: w.api },
        headers: { 'User-Agent': false },
      })
      const k = ky.create({ fetch: w.api, retry: 0 })
      const of = ofetch.create({}, { fetch: w.api })
      w.clients = {
        axios: async (url: string, o: ClientCallOptions = {}) => {
          const r = await ax.request({
            url,
            method: o.method ?? 'GET',
            ...(o.json === undefined ? {} : { data: o.json }),
          })
          return { status: r.status, data: r.data }
        },
        ky: async (url: string, o: ClientCallOptions = {}) => {
          const r = await k(url, { method: o.method ?? 'GET', json: o.json })
          return { status: r.status, data: await r.json() }
        },
        ofetch: async (url: string, o: ClientCallOptions = {}) => {
          const r = await of.raw(url, { method: o.method ?? 'GET', body: o.json })
          return { status: r.status, data: r._data }
        },
      }
      w.run = async (f: () => Promise<ClientReply>) => {
        try {
          return await f()
        } catch (e: any) {
          return {
            error: {
              name: e?.name,
              code: e?.code,
              message: String(e?.message),
              status: e?.response?.status,
            },
          }
        }
      }
    },
    { token, api: API },
  )
  return { jkt, token }
}

const call = (page: Tab, client: ClientName, url: string, o: ClientCallOptions = {}) =>
  page.evaluate(({ client, url, o }) => window.run(() => window.clients[client](url, o)), {
    client,
    url,
    o,
  })
const since = (records: Recorded[], seq: number) =>
  records.filter((r) => r.seq > seq && r.outcome !== 'preflight')
const lastSeq = async () => (await apiRequests()).at(-1)?.seq ?? 0

test.beforeEach(async () => {
  await resetServers()
})

for (const client of ['axios', 'ky', 'ofetch'] as const) {
  test(`${client}: use_dpop_nonce is retried once with a fresh proof; the JSON body arrives the same both times`, async ({
    driver,
  }) => {
    const page = driver.page
    const { token } = await open(page)
    const json = { item: 42, note: 'grüße', list: [1, 2, 3] }
    const reply = await call(page, client, ECHO, { method: 'POST', json })
    expect(reply.error).toBeUndefined()
    expect(reply.status).toBe(200)
    const echo = echoReply(reply.data)
    expect(echo.contentType).toMatch(/^application\/json/)
    expect(JSON.parse(Buffer.from(echo.body, 'base64').toString('utf8'))).toEqual(json)
    const seen = await apiRequestsTo('/api/echo')
    expect(seen.map((r) => r.outcome)).toEqual(['use_dpop_nonce', 'ok'])
    const [first, second] = seen as [Recorded, Recorded]
    expect(first.proof?.nonce).toBeUndefined()
    expect(second.proof?.nonce).toEqual(expect.any(String))
    expect(second.proof?.jti).not.toBe(first.proof?.jti)
    expect(second.bodySha256).toBe(first.bodySha256)
    expect(second.bodyLength).toBeGreaterThan(0)
    for (const r of seen) {
      expect(r.tokenAth).toBe(ath(token))
      expect(r.proof?.htm).toBe('POST')
      expect(r.proof?.htu).toBe(ECHO)
    }
    // The nonce rotates twice (the server still accepts the previous one): the next call is
    // challenged once more and still succeeds.
    await rotateNonce()
    await rotateNonce()
    const seq = await lastSeq()
    expect((await call(page, client, `${ECHO}?after-rotation`)).status).toBe(200)
    expect(since(await apiRequestsTo('/api/echo'), seq).map((r) => r.outcome)).toEqual([
      'use_dpop_nonce',
      'ok',
    ])
  })

  test(`${client}: invalid_token asks for a new token once and retries with it`, async ({
    driver,
  }) => {
    const page = driver.page
    const { jkt, token } = await open(page)
    expect((await call(page, client, `${ECHO}?warmup`)).status).toBe(200)
    await revokeTokens(token)
    const next = await mintToken(jkt)
    await page.evaluate((t) => {
      window.nextToken = t
    }, next)
    const seq = await lastSeq()
    const reply = await call(page, client, ECHO, { method: 'PUT', json: { n: 1 } })
    expect(reply.error).toBeUndefined()
    expect(reply.status).toBe(200)
    expect(await page.evaluate(() => window.invalidTokenCalls)).toBe(1)
    const seen = since(await apiRequestsTo('/api/echo'), seq)
    expect(seen.map((r) => r.outcome)).toEqual(['invalid_token', 'ok'])
    expect(seen.map((r) => r.tokenAth)).toEqual([ath(token), ath(next)])
    expect(seen[1]?.proof?.ath).toBe(ath(next))
    expect(seen[1]?.bodySha256).toBe(seen[0]?.bodySha256)
  })
}

test('axios on its default XHR adapter: unsigned without the guard; with guardXMLHttpRequest a typed error and nothing sent', async ({
  driver,
}) => {
  const page = driver.page
  await open(page)
  const xhrCall = (url: string) =>
    page.evaluate(
      (url) =>
        window.run(async () => {
          const r = await window.libs.axios.get(url) // the default adapter: XMLHttpRequest in a browser
          return { status: r.status, data: r.data }
        }),
      url,
    )

  // Without the guard: the request reaches the API with no proof and no token (the API refuses it).
  const unguarded = await xhrCall(`${ECHO}?xhr-unguarded`)
  expect(unguarded.error?.status).toBe(401)
  const bare = await apiRequestsTo('/api/echo')
  expect(bare).toHaveLength(1)
  expect(bare[0]?.headers.authorization).toBeUndefined()
  expect(bare[0]?.headers.dpop).toBeUndefined()

  await page.evaluate((api) => {
    window.unguard = window.dpop.guardXMLHttpRequest({ origins: [api] })
  }, API)
  const seq = await lastSeq()
  const guarded = await xhrCall(`${ECHO}?xhr-guarded`)
  expect(guarded.error).toMatchObject({ name: 'DPoPError', code: 'ERR_XHR_NOT_SIGNED' })
  expect(guarded.error?.message).toContain(API)
  // Synchronous XHR and relative spellings of the API origin are refused the same way.
  const sync = await page.evaluate(
    (url) => {
      const xhr = new XMLHttpRequest()
      try {
        xhr.open('GET', url, false)
        return 'opened'
      } catch (e: any) {
        return e.code
      }
    },
    `${ECHO.toUpperCase().replace('/API/ECHO', '/api/echo')}`,
  )
  expect(sync).toBe('ERR_XHR_NOT_SIGNED')
  // Nothing reached the API while guarded.
  expect(since(await apiRequests(), seq)).toEqual([])
  // Other origins still work over XHR.
  expect((await xhrCall(`${OTHER}/xhr-other-origin`)).error).toBeUndefined()
  expect((await otherRequests()).map((r) => r.url)).toContain('/xhr-other-origin')
  // The fetch adapter on the signed fetch is the way through, guard or not.
  expect((await call(page, 'axios', `${ECHO}?fetch-adapter`)).status).toBe(200)
  // Removing the guard lets XHR through again.
  await page.evaluate(() => window.unguard())
  expect((await xhrCall(`${ECHO}?xhr-unguarded-again`)).error?.status).toBe(401)
})

test('EventSource (eventsource package, custom fetch): every reconnect has a fresh proof, the current nonce and the current token', async ({
  driver,
}) => {
  const page = driver.page
  const { jkt, token } = await open(page)
  await page.evaluate((url) => {
    const w = window
    w.messages = []
    w.errors = 0
    w.es = new w.libs.EventSource(url, { fetch: w.api })
    w.es.onmessage = (e: MessageEvent) =>
      w.messages.push({ ...JSON.parse(e.data), id: e.lastEventId })
    w.es.onerror = () => {
      w.errors++
    }
  }, EVENTS)
  const messages = () => page.evaluate(() => window.messages)
  await expect.poll(async () => (await messages()).length).toBe(1)
  expect((await apiRequestsTo('/api/events')).map((r) => r.outcome)).toEqual([
    'use_dpop_nonce',
    'ok',
  ])

  // Reconnect: the server ends the stream; the client comes back with a new proof and Last-Event-ID.
  let seq = await lastSeq()
  expect(await closeStreams()).toBe(1)
  await expect.poll(async () => (await messages()).length).toBe(2)
  expect(since(await apiRequestsTo('/api/events'), seq).map((r) => r.outcome)).toEqual(['ok'])
  expect((await messages())[1]?.lastEventId).toBe('1')

  // Reconnect after two nonce rotations (the previous one is still accepted): challenged
  // once, retried inside the signed fetch.
  await rotateNonce()
  await rotateNonce()
  seq = await lastSeq()
  await closeStreams()
  await expect.poll(async () => (await messages()).length).toBe(3)
  expect(since(await apiRequestsTo('/api/events'), seq).map((r) => r.outcome)).toEqual([
    'use_dpop_nonce',
    'ok',
  ])

  // Reconnect after the token was revoked: one refresh, and the stream opens with the new token.
  await revokeTokens(token)
  const next = await mintToken(jkt)
  await page.evaluate((t) => {
    window.nextToken = t
  }, next)
  seq = await lastSeq()
  await closeStreams()
  await expect.poll(async () => (await messages()).length).toBe(4)
  const afterRevoke = since(await apiRequestsTo('/api/events'), seq)
  expect(afterRevoke.map((r) => r.outcome)).toEqual(['invalid_token', 'ok'])
  expect(afterRevoke.map((r) => r.tokenAth)).toEqual([ath(token), ath(next)])
  expect(await page.evaluate(() => window.invalidTokenCalls)).toBe(1)

  const all = await messages()
  expect(all.map((m) => m.ath)).toEqual([ath(token), ath(token), ath(token), ath(next)])
  const jtis = (await apiRequestsTo('/api/events')).map((r) => r.proof?.jti)
  expect(new Set(jtis).size).toBe(jtis.length)
  expect(await page.evaluate(() => window.errors)).toBe(3) // one per stream the server ended
  await page.evaluate(() => window.es.close())
})
