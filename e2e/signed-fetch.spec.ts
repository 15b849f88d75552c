// The signed fetch in every installed engine against the verifying resource server on loopback
// (demo/api/server.ts checks every proof with jose). Each behaviour is counted at the
// server: what arrived, how often, with which proof, nonce, token hash and body bytes.
import { expect, test, type Tab } from './driver.ts'
import type { PageReply } from './page-globals.ts'
import {
  API,
  API_PORT,
  OTHER,
  OTHER_PORT,
  apiRequests,
  apiRequestsTo,
  ath,
  echoReply,
  mintToken,
  openWithKey,
  otherRequests,
  resetServers,
  revokeTokens,
  rotateNonce,
  rotateNonceAfter,
  setServerClock,
  type Recorded,
} from './api-control.ts'

const HARNESS = '/e2e/fixtures/harness.html'
const ECHO = `${API}/api/echo`

/** Opens the harness, makes a key pair and a token bound to it, a signed fetch `w.api` for the API origin, and `w.make`, `w.reply`. */
async function open(page: Tab): Promise<{ jkt: string; token: string }> {
  const { jkt, token } = await openWithKey(page, HARNESS)
  await page.evaluate(
    ({ token, api }) => {
      const w = window
      w.token = token
      w.events = []
      w.invalidTokenCalls = 0
      w.make = (extra: object = {}) =>
        w.dpop.createDPoPFetch({
          keys: w.keys,
          origins: [api],
          getAccessToken: () => w.token,
          // A refresh: hands out w.nextToken when a test has set one. The short await stands
          // for the token endpoint's round trip, so concurrent 401s arrive while it is pending.
          onInvalidToken: async () => {
            w.invalidTokenCalls++
            await new Promise((r) => setTimeout(r, 50))
            if (w.nextToken) w.token = w.nextToken
            return w.nextToken
          },
          debug: (e) => w.events.push(e),
          ...extra,
        })
      w.api = w.make()
      // Runs a call and returns what the caller would see, errors included, as plain data.
      w.reply = async (f: () => Promise<Response>) => {
        try {
          const r = await f()
          return { status: r.status, text: await r.text() }
        } catch (e: any) {
          return { error: { name: e?.name, code: e?.code, message: String(e?.message) } }
        }
      }
    },
    { token, api: API },
  )
  return { jkt, token }
}

/** One call through `w.api`, answered in the page. */
function call(
  page: Tab,
  url: string,
  init?: { method?: string; body?: string },
): Promise<PageReply> {
  return page.evaluate(({ url, init }) => window.reply(() => window.api(url, init)), { url, init })
}

/** The first request of a fresh signed fetch is challenged for a nonce; this does it once. */
async function warmUp(page: Tab): Promise<void> {
  expect((await call(page, `${ECHO}?warmup`)).status).toBe(200)
}

const since = (records: Recorded[], seq: number) => records.filter((r) => r.seq > seq)
const lastSeq = async () => (await apiRequests()).at(-1)?.seq ?? 0

test.beforeEach(async () => {
  await resetServers()
})

test('origins: only the configured origin gets Authorization and DPoP; other origins and URL tricks get nothing', async ({
  driver,
}) => {
  const page = driver.page
  await open(page)
  const urls = [
    `${OTHER}/plain`, // another server
    `//127.0.0.1:${OTHER_PORT}/scheme-relative`,
    `http://localhost:${OTHER_PORT}/same-host-other-port`,
    `http://127.0.0.1:${API_PORT}/api/echo`, // the API server itself, but another origin spelling
    `http://localhost:${API_PORT}@127.0.0.1:${OTHER_PORT}/userinfo-trick`,
    `http://user:pass@localhost:${API_PORT}/api/echo`, // credentials in the URL
    `https://localhost:${API_PORT}/api/echo`, // other scheme
  ]
  const results = []
  for (const url of urls) results.push({ url, ...(await call(page, url)) })
  // Positive control: the same signed fetch does sign the configured origin, spelled differently.
  const signed = await call(page, `HTTP://LOCALHOST:${API_PORT}/api/echo`)
  expect(signed.status).toBe(200)
  console.log('origins:', results.map((r) => `${r.url} → ${r.status ?? r.error?.name}`).join('; '))

  const other = await otherRequests()
  // Not vacuous: the other origin did receive the plain calls.
  expect(
    other
      .filter((r) => r.method === 'GET')
      .map((r) => r.url)
      .sort(),
  ).toEqual(['/plain', '/same-host-other-port', '/scheme-relative'])
  for (const r of other) {
    expect(r.headers.authorization, r.url).toBeUndefined()
    expect(r.headers.dpop, r.url).toBeUndefined()
    expect(r.headers['access-control-request-headers'] ?? '', r.url).not.toMatch(
      /authorization|dpop/i,
    )
  }
  const api = (await apiRequests()).filter((r) => r.outcome !== 'preflight')
  const unsigned = api.filter((r) => r.headers.host === `127.0.0.1:${API_PORT}`)
  expect(unsigned).toHaveLength(1)
  expect(unsigned[0]?.headers.authorization).toBeUndefined()
  expect(unsigned[0]?.headers.dpop).toBeUndefined()
  // Only the localhost origin ever carried a proof (and some request did: the positive control's).
  const withProof = api.filter((r) => r.headers.dpop !== undefined)
  expect(withProof.length).toBeGreaterThan(0)
  for (const r of withProof) expect(r.headers.host).toBe(`localhost:${API_PORT}`)
  // The credentials URL was never sent anywhere with a token (tokens were sent: to the localhost origin).
  const withToken = api.filter((r) => r.tokenAth !== undefined)
  expect(withToken.length).toBeGreaterThan(0)
  expect(withToken.every((r) => r.headers.host === `localhost:${API_PORT}`)).toBe(true)
})

test('use_dpop_nonce: retried exactly once with a fresh proof (new jti, the nonce from the challenge)', async ({
  driver,
}) => {
  const page = driver.page
  const { token } = await open(page)
  const reply = await call(page, ECHO)
  expect(reply.status).toBe(200)
  const seen = await apiRequestsTo('/api/echo')
  console.log(
    'nonce retry: server saw',
    seen.length,
    'requests:',
    seen.map((r) => r.outcome).join(', '),
  )
  expect(seen.map((r) => r.outcome)).toEqual(['use_dpop_nonce', 'ok'])
  const [first, second] = seen as [Recorded, Recorded]
  expect(first.proof?.nonce).toBeUndefined()
  expect(second.proof?.nonce).toEqual(expect.any(String))
  expect(second.proof?.jti).not.toBe(first.proof?.jti)
  expect(second.proof?.iat).toEqual(expect.any(Number))
  expect(first.tokenAth).toBe(ath(token))
  expect(second.proof?.ath).toBe(ath(token))
})

test('a nonce that arrives on a 2xx is used next time, without a challenge', async ({ driver }) => {
  const page = driver.page
  await open(page)
  await warmUp(page)
  await rotateNonce() // the client's nonce becomes the "previous" one: accepted, and the 2xx carries the new one
  const fromTwoXX = await rotateNonceLater(page)
  await rotateNonce() // now only the nonce learned from that 2xx (and the newest) are accepted
  const start = await lastSeq()
  expect((await call(page, ECHO)).status).toBe(200)
  const after = since(await apiRequestsTo('/api/echo'), start)
  console.log('nonce from 2xx: requests after the second rotation:', after.length)
  expect(after).toHaveLength(1)
  expect(after[0]?.outcome).toBe('ok')
  expect(after[0]?.proof?.nonce).toBe(fromTwoXX)
})

/** Makes one call with the previous nonce and returns the DPoP-Nonce the server put on its 200. */
async function rotateNonceLater(page: Tab): Promise<string> {
  const start = await lastSeq()
  const reply = await page.evaluate(async (url) => {
    const r = await window.api(url)
    return { status: r.status, nonce: r.headers.get('DPoP-Nonce') }
  }, ECHO)
  expect(reply.status).toBe(200)
  expect(reply.nonce).toEqual(expect.any(String))
  expect(since(await apiRequestsTo('/api/echo'), start)).toHaveLength(1)
  return reply.nonce as string
}

test('a server that challenges twice: the caller gets the 401, the server saw exactly 2 requests', async ({
  driver,
}) => {
  const page = driver.page
  await open(page)
  const reply = await call(page, `${API}/api/always-challenge`)
  expect(reply.status).toBe(401)
  expect(JSON.parse(reply.text ?? '{}')).toMatchObject({ error: 'use_dpop_nonce' })
  const seen = await apiRequestsTo('/api/always-challenge')
  console.log('challenged twice: server saw', seen.length)
  expect(seen).toHaveLength(2)
  expect(new Set(seen.map((r) => r.proof?.jti)).size).toBe(2)
})

test('200 requests in flight while the nonce rotates: all succeed, at most one retry each', async ({
  driver,
}) => {
  const page = driver.page
  await open(page)
  await warmUp(page)
  const start = await lastSeq()
  // Rotations land while the batch is arriving, twice, so some requests carry a dead nonce.
  await rotateNonceAfter(40)
  await rotateNonceAfter(120)
  const statuses = await page.evaluate(async (url) => {
    const w = window
    return Promise.all(
      Array.from({ length: 200 }, (_, i) => w.api(`${url}?i=${i}`).then((r: Response) => r.status)),
    )
  }, ECHO)
  const seen = since(await apiRequestsTo('/api/echo'), start)
  const perRequest = new Map<string, number>()
  for (const r of seen) perRequest.set(r.query, (perRequest.get(r.query) ?? 0) + 1)
  const retried = [...perRequest.values()].filter((n) => n === 2).length
  const most = Math.max(...perRequest.values())
  const challenged = seen.filter((r) => r.outcome === 'use_dpop_nonce').length
  console.log(
    `concurrency: 200 calls → server saw ${seen.length} requests, ${challenged} nonce challenges, ${retried} calls retried, max ${most} per call`,
  )
  expect(statuses.filter((s) => s === 200)).toHaveLength(200)
  expect(perRequest.size).toBe(200)
  expect(seen.length).toBeLessThanOrEqual(400)
  expect(most).toBeLessThanOrEqual(2)
  // The rotations did hit requests in flight (otherwise the test proves nothing).
  expect(challenged).toBeGreaterThan(0)
  expect(seen.filter((r) => r.outcome !== 'ok' && r.outcome !== 'use_dpop_nonce')).toEqual([])
})

test('a device clock 10 minutes behind the server: corrected from Date, the call succeeds', async ({
  driver,
}) => {
  const page = driver.page
  await open(page)
  await setServerClock(10 * 60_000)
  const first = await call(page, ECHO)
  expect(first.status).toBe(200)
  const seen = await apiRequestsTo('/api/echo')
  console.log(
    'clock skew: server saw',
    seen.map((r) => `${r.outcome}${r.check ? `(${r.check})` : ''}`).join(', '),
  )
  expect(seen.length).toBeLessThanOrEqual(3)
  expect(seen.at(-1)?.outcome).toBe('ok')
  // The accepted proof's iat is on the server's clock, not the device's.
  const deviceNow = Math.floor(Date.now() / 1000)
  expect(Math.abs(Number(seen.at(-1)?.proof?.iat ?? 0) - (deviceNow + 600))).toBeLessThan(60)
  // Learned once: the next call needs no second try.
  const start = await lastSeq()
  expect((await call(page, ECHO)).status).toBe(200)
  expect(since(await apiRequestsTo('/api/echo'), start).map((r) => r.outcome)).toEqual(['ok'])
})

test('a 4xx body is read only when small JSON that arrives quickly: a body that never ends does not hold the call, text/plain is not read, the caller gets every byte', async ({
  driver,
}) => {
  const page = driver.page
  await open(page)
  // The engine's own Response.clone(), stream tee and reader cancel decide here; the answers
  // come from a fetch inside the page, so each shape is exact.
  const seen = await page.evaluate(async (echo) => {
    const w = window
    const answered = (make: (n: number) => Response) => {
      let sent = 0
      return { api: w.make({ fetch: async () => make(++sent) }), sent: () => sent }
    }
    const nonceHeaders = (n: number, type: string) => ({
      'Content-Type': type,
      'DPoP-Nonce': `nonce-${n}`,
    })
    const stalled = answered(
      (n) =>
        new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(new TextEncoder().encode('{"error":"use_dpop_'))
            },
          }),
          { status: 400, headers: nonceHeaders(n, 'application/json') },
        ),
    )
    const started = performance.now()
    const first = await Promise.race([
      stalled.api(echo).then((r) => r.status),
      new Promise((resolve) => setTimeout(() => resolve('still waiting after 6 s'), 6000)),
    ])
    const ms = Math.round(performance.now() - started)
    const plain = answered(
      (n) =>
        new Response('{"error":"use_dpop_nonce"}', {
          status: 404,
          headers: nonceHeaders(n, 'text/plain'),
        }),
    )
    const plainResponse = await plain.api(echo, { method: 'POST', body: 'once' })
    const big = JSON.stringify({ error: 'use_dpop_nonce', padding: 'x'.repeat(100_000) })
    const large = answered(
      (n) => new Response(big, { status: 400, headers: nonceHeaders(n, 'application/json') }),
    )
    const largeResponse = await large.api(echo, { method: 'POST', body: 'once' })
    const small = answered((n) =>
      n === 1
        ? new Response('{"error":"use_dpop_nonce"}', {
            status: 400,
            headers: nonceHeaders(n, 'application/json'),
          })
        : new Response('ok'),
    )
    const smallResponse = await small.api(echo, { method: 'POST', body: 'once' })
    return {
      first,
      ms,
      stalledSent: stalled.sent(),
      plain: { status: plainResponse.status, sent: plain.sent(), body: await plainResponse.text() },
      large: {
        status: largeResponse.status,
        sent: large.sent(),
        intact: (await largeResponse.text()) === big,
      },
      small: { status: smallResponse.status, sent: small.sent() },
    }
  }, ECHO)
  console.log(`[${driver.engine}] error bodies:`, JSON.stringify(seen))
  expect(seen.first).toBe(400)
  expect(seen.ms).toBeGreaterThanOrEqual(1400)
  expect(seen.ms).toBeLessThan(4000)
  expect(seen.stalledSent).toBe(1)
  expect(seen.plain).toEqual({ status: 404, sent: 1, body: '{"error":"use_dpop_nonce"}' })
  expect(seen.large).toEqual({ status: 400, sent: 1, intact: true })
  // A small JSON nonce error is still read, and retried once.
  expect(seen.small).toEqual({ status: 200, sent: 2 })
})

test('bodies arrive byte-identical (and with the same Content-Type) after a nonce retry', async ({
  driver,
}) => {
  const page = driver.page
  await open(page)
  const kinds = [
    'json',
    'blob',
    'arraybuffer',
    'formdata',
    'urlsearchparams',
    'request',
    'stream',
  ] as const
  for (const kind of kinds) {
    // A fresh signed fetch per kind: its first attempt is always challenged for a nonce.
    const start = await lastSeq()
    const result = await page.evaluate(
      async ({ kind, url }) => {
        const w = window
        const api = w.make()
        const bytes = new Uint8Array(3000).map((_, i) => (i * 7 + 3) % 256) // includes 0x00 and non-UTF-8 bytes
        const b64 = (u8: Uint8Array) => btoa(Array.from(u8, (b) => String.fromCharCode(b)).join(''))
        let response: Response
        let expected: string | undefined
        switch (kind) {
          case 'json': {
            const text = JSON.stringify({ hello: 'wörld ✓', n: 1 })
            expected = b64(new TextEncoder().encode(text))
            response = await api(url, {
              method: 'POST',
              body: text,
              headers: { 'Content-Type': 'application/json' },
            })
            break
          }
          case 'blob':
            expected = b64(bytes)
            response = await api(url, {
              method: 'PUT',
              body: new Blob([bytes], { type: 'application/octet-stream' }),
            })
            break
          case 'arraybuffer':
            expected = b64(bytes)
            response = await api(url, { method: 'PATCH', body: bytes.buffer })
            break
          case 'formdata': {
            const form = new FormData()
            form.append('field', 'välue')
            form.append('file', new Blob([bytes], { type: 'application/octet-stream' }), 'f.bin')
            response = await api(url, { method: 'POST', body: form })
            break
          }
          case 'urlsearchparams':
            expected = b64(new TextEncoder().encode('a=1&b=%C3%A9+x'))
            response = await api(url, {
              method: 'POST',
              body: new URLSearchParams({ a: '1', b: 'é x' }),
            })
            break
          case 'request':
            expected = b64(bytes)
            response = await api(
              new Request(url, {
                method: 'POST',
                body: bytes,
                headers: { 'Content-Type': 'application/x-test' },
              }),
            )
            break
          case 'stream': {
            expected = b64(bytes)
            const stream = new ReadableStream({
              start(c) {
                c.enqueue(bytes.slice(0, 1000))
                c.enqueue(bytes.slice(1000))
                c.close()
              },
            })
            // `duplex`, required for a stream body, is not in TypeScript's RequestInit yet.
            const init: RequestInit & { duplex: 'half' } = {
              method: 'POST',
              body: stream,
              duplex: 'half',
              headers: { 'Content-Type': 'application/x-stream' },
            }
            response = await api(url, init)
            break
          }
        }
        return { status: response.status, echo: (await response.json()) as unknown, expected }
      },
      { kind, url: ECHO },
    )
    expect(result.status, kind).toBe(200)
    const seen = since(await apiRequestsTo('/api/echo'), start)
    expect(
      seen.map((r) => r.outcome),
      kind,
    ).toEqual(['use_dpop_nonce', 'ok'])
    const [first, second] = seen as [Recorded, Recorded]
    expect(first.bodyLength, kind).toBeGreaterThan(0)
    expect(second.bodySha256, kind).toBe(first.bodySha256)
    expect(second.headers['content-type'], kind).toEqual(first.headers['content-type'])
    const echo = echoReply(result.echo)
    if (result.expected !== undefined) expect(echo.body, kind).toBe(result.expected)
    if (kind === 'formdata') {
      const text = Buffer.from(echo.body, 'base64').toString('latin1')
      expect(echo.contentType).toMatch(/^multipart\/form-data; boundary=/)
      expect(text).toContain('name="field"')
      expect(text).toContain('filename="f.bin"')
    }
    if (kind === 'json') expect(echo.contentType).toBe('application/json')
    if (kind === 'urlsearchparams')
      expect(echo.contentType).toMatch(/^application\/x-www-form-urlencoded/)
    if (kind === 'request') expect(echo.contentType).toBe('application/x-test')
    if (kind === 'stream') expect(echo.contentType).toBe('application/x-stream')
  }
})

test('CORS hides WWW-Authenticate: a typed ERR_CORS_HEADER_HIDDEN error naming the header', async ({
  driver,
}) => {
  const page = driver.page
  const { token } = await open(page)
  const reply = await call(page, `${API}/hidden/echo`)
  expect(reply.error).toBeDefined()
  expect(reply.error?.code).toBe('ERR_CORS_HEADER_HIDDEN')
  expect(reply.error?.name).toBe('ServerResponseError')
  expect(reply.error?.message).toContain('WWW-Authenticate')
  expect(reply.error?.message).toContain('Access-Control-Expose-Headers')
  expect(reply.error?.message).not.toContain(token)
  // The server did answer; it is the browser that hid the header.
  expect((await apiRequestsTo('/hidden/echo')).map((r) => r.outcome)).toEqual(['use_dpop_nonce'])
})

test('invalid_token: one onInvalidToken call for 12 concurrent requests, each retried with the new token', async ({
  driver,
}) => {
  const page = driver.page
  const { jkt, token: oldToken } = await open(page)
  await warmUp(page)
  const newToken = await mintToken(jkt)
  await revokeTokens(oldToken)
  await page.evaluate((t) => (window.nextToken = t), newToken)
  const start = await lastSeq()
  const statuses = await page.evaluate(async (url) => {
    const w = window
    return Promise.all(
      Array.from({ length: 12 }, (_, i) => w.api(`${url}?n=${i}`).then((r: Response) => r.status)),
    )
  }, ECHO)
  const calls = await page.evaluate(() => window.invalidTokenCalls)
  const seen = since(await apiRequestsTo('/api/echo'), start)
  console.log(
    `invalid_token: 12 calls → onInvalidToken called ${calls}×, server saw ${seen.length} (${seen.filter((r) => r.outcome === 'invalid_token').length} invalid_token)`,
  )
  expect(statuses).toEqual(Array(12).fill(200))
  expect(calls).toBe(1)
  const rejected = seen.filter((r) => r.outcome === 'invalid_token')
  const ok = seen.filter((r) => r.outcome === 'ok')
  expect(rejected).toHaveLength(12)
  expect(rejected.every((r) => r.tokenAth === ath(oldToken))).toBe(true)
  expect(ok).toHaveLength(12)
  expect(ok.every((r) => r.tokenAth === ath(newToken) && r.proof?.ath === ath(newToken))).toBe(true)
  expect(seen).toHaveLength(24)
})

test('installDPoPFetch twice signs once per attempt; restoring puts the original fetch back', async ({
  driver,
}) => {
  const page = driver.page
  await open(page)
  await warmUp(page)
  const start = await lastSeq()
  const result = await page.evaluate(
    async ({ echo, other }) => {
      const w = window
      const original = window.fetch
      w.events.length = 0
      const undoFirst = w.dpop.installDPoPFetch(w.api)
      const undoSecond = w.dpop.installDPoPFetch(w.api)
      const installed = window.fetch !== original
      const signed = (await fetch(echo)).status
      const proofs = w.events.filter((e) => e.type === 'proof').length
      const passThrough = (await fetch(`${other}/through-installed`)).status
      undoSecond()
      undoFirst()
      const restored = window.fetch === original
      const afterRestore = (await fetch(`${echo}?after-restore`)).status
      return { installed, signed, proofs, passThrough, restored, afterRestore }
    },
    { echo: ECHO, other: OTHER },
  )
  expect(result).toEqual({
    installed: true,
    signed: 200,
    proofs: 1,
    passThrough: 200,
    restored: true,
    afterRestore: 401,
  })
  const seen = since(await apiRequestsTo('/api/echo'), start)
  expect(seen.map((r) => r.outcome)).toEqual(['ok', 'unauthenticated'])
  expect(seen[0]?.headers.dpop).toEqual(expect.any(String)) // one DPoP field, not a list
  expect(seen[1]?.headers.dpop).toBeUndefined()
  expect(seen[1]?.headers.authorization).toBeUndefined()
  const other = await otherRequests()
  expect(other.find((r) => r.url === '/through-installed')?.headers.authorization).toBeUndefined()
})

test('no token in any thrown error message or debug event', async ({ driver }) => {
  const page = driver.page
  const { token } = await open(page)
  const errors = await page.evaluate(
    async ({ echo, hidden, token }) => {
      const w = window
      const out: { code: string; message: string }[] = []
      const collect = async (f: () => Promise<unknown>) => {
        try {
          await f()
          out.push({ code: 'NO_ERROR', message: '' })
        } catch (e: any) {
          out.push({
            code: String(e?.code),
            message: `${e?.name}: ${e?.message} ${e?.cause ? String(e.cause) : ''}`,
          })
        }
      }
      // A CORS-hidden challenge.
      await collect(() => w.api(hidden))
      // A token source that returns a token with a space in it (not sendable).
      await collect(() => w.make({ getAccessToken: () => `${token} x` })(echo))
      // An onInvalidToken that returns garbage derived from the token.
      await w.api(echo) // nonce
      w.token = `${token}zz` // unknown to the server → invalid_token
      await collect(() => w.make({ onInvalidToken: () => `${token} y` })(echo))
      // A Request whose body was already read.
      const used = new Request(echo, { method: 'POST', body: token })
      await used.text()
      await collect(() => w.api(used))
      return { errors: out, events: JSON.stringify(w.events) }
    },
    { echo: ECHO, hidden: `${API}/hidden/echo`, token },
  )
  console.log('errors:', errors.errors.map((e) => e.code).join(', '))
  expect(errors.errors.map((e) => e.code)).toEqual([
    'ERR_CORS_HEADER_HIDDEN',
    'ERR_INVALID_ARGUMENT',
    'ERR_INVALID_ARGUMENT',
    'ERR_BODY_NOT_REPLAYABLE',
  ])
  for (const e of errors.errors) expect(e.message).not.toContain(token)
  expect(errors.events.length).toBeGreaterThan(100)
  expect(errors.events).not.toContain(token)
})

test('redirects: a signed request is never followed to another origin or the same one; ERR_REDIRECT, or the opaque redirect when asked', async ({
  driver,
}) => {
  const page = driver.page
  await open(page)
  await warmUp(page)
  const nonceBefore = await page.evaluate(
    () => window.events.filter((e) => e.type === 'nonce').length,
  )
  const redirect = (to: string, status = 302) =>
    `${API}/api/redirect?status=${status}&to=${encodeURIComponent(to)}`
  const crossOrigin = await call(page, redirect(`${OTHER}/landing`))
  const sameOrigin = await call(page, redirect(`${ECHO}?moved`, 307))
  const manual = await page.evaluate(
    (url) =>
      window
        .api(url, { redirect: 'manual' })
        .then((r: Response) => ({ type: r.type, status: r.status })),
    redirect(`${OTHER}/manual`),
  )
  const post = await call(page, redirect(`${OTHER}/post`, 308), {
    method: 'POST',
    body: 'secret body',
  })
  expect(crossOrigin.error?.code).toBe('ERR_REDIRECT')
  expect(crossOrigin.error?.message).toMatch(/does not follow redirects/)
  expect(sameOrigin.error?.code).toBe('ERR_REDIRECT')
  expect(post.error?.code).toBe('ERR_REDIRECT')
  expect(manual).toEqual({ type: 'opaqueredirect', status: 0 })
  // The other origin saw nothing at all; the API saw the redirects and never the target.
  expect(await otherRequests()).toEqual([])
  const api = (await apiRequests()).filter((r) => r.outcome !== 'preflight')
  expect(api.filter((r) => r.path === '/api/redirect')).toHaveLength(4)
  expect(api.filter((r) => r.query === 'moved')).toEqual([])
  // The redirect's DPoP-Nonce was not learned (no nonce event since the warm-up).
  const nonceAfter = await page.evaluate(
    () => window.events.filter((e) => e.type === 'nonce').length,
  )
  expect(nonceAfter).toBe(nonceBefore)
  // Still signed and working afterwards.
  expect((await call(page, ECHO)).status).toBe(200)
})
