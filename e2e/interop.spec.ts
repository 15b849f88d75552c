// The signed fetch in real Chromium against other people's DPoP verifiers (see
// e2e/interop-servers.ts): Auth0's express-oauth2-jwt-bearer, oauth4webapi's
// validateJwtAccessToken and the Community Solid Server's @solid/access-token-verifier.
// Every accept or refusal is the library's; every response is recorded (status,
// WWW-Authenticate, body) and printed as a verifier × variant table at the end.
import { writeFileSync, mkdirSync } from 'node:fs'
import { expect, test, type Browser, type Page } from '@playwright/test'
import type { InteropRecord, VerifierName } from './interop-servers.ts'
import type { PageReply } from './page-globals.ts'
import { PORTS as TEST_PORTS } from './ports.ts'

const BASE = TEST_PORTS.interop
const CONTROL = `http://127.0.0.1:${BASE}/__control`
const PORTS: Record<VerifierName, number> = {
  auth0: BASE + 1,
  oauth4webapi: BASE + 2,
  solid: BASE + 3,
}
const HARNESS = '/e2e/fixtures/harness.html'
const TEN_MINUTES = 600_000

/** What each verifier is documented (docs/servers.md, "Interoperability") to do where the RFC leaves room. */
// nonce: our nonce layer sits in front; replayRefused: keeps a jti cache; bearerProofRefused:
// refuses a bound token sent as Bearer even with a valid proof (RFC 9449 §7.1 wants DPoP).
// eddsa: takes EdDSA (Ed25519) proofs.
const EXPECTED: Record<
  VerifierName,
  { nonce: boolean; replayRefused: boolean; bearerProofRefused: boolean; eddsa: boolean }
> = {
  auth0: { nonce: true, replayRefused: false, bearerProofRefused: true, eddsa: true },
  oauth4webapi: { nonce: true, replayRefused: false, bearerProofRefused: true, eddsa: true },
  solid: { nonce: false, replayRefused: true, bearerProofRefused: false, eddsa: false },
}

interface Row {
  verifier: VerifierName
  variant: string
  result: 'pass' | 'FAIL'
  /** Statuses of the requests the server saw, in order. */
  statuses: number[]
  /** The refusal the server answered (the first non-2xx), as sent. */
  refusal?: {
    status: number
    wwwAuthenticate?: string | undefined
    contentType?: string | undefined
    body: string
  }
}

async function control(path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(
    `${CONTROL}/${path}`,
    body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) },
  )
  if (!response.ok) throw new Error(`interop control ${path} answered ${response.status}`)
  return response.json()
}
const serverLog = async (): Promise<InteropRecord[]> => (await control('log')) as InteropRecord[]

/** A page with the library, a key pair, a token bound to it, and `w.signed(origin, extra)` making signed fetches. */
async function openPage(
  browser: Browser,
  alg: 'ES256' | 'EdDSA' = 'ES256',
): Promise<{ page: Page }> {
  const page = await browser.newPage()
  await page.goto(HARNESS)
  await page.waitForFunction(() => window.harnessReady === true)
  const jkt = await page.evaluate(async (alg) => {
    const w = window
    w.keys = await w.dpop.generateKeyPair({ alg })
    w.otherKeys = await w.dpop.generateKeyPair({ alg })
    return w.dpop.calculateThumbprint(w.keys.publicKey)
  }, alg)
  const { access_token: token } = (await control('token', { jkt })) as { access_token: string }
  await page.evaluate((token) => {
    const w = window
    w.token = token
    w.signed = (origins: string[], skewMs = 0) =>
      w.dpop.createDPoPFetch({
        keys: w.keys,
        origins,
        getAccessToken: () => w.token,
        ...(skewMs ? { clock: w.dpop.createClock({ now: () => Date.now() + skewMs }) } : {}),
      })
    w.reply = async (f: () => Promise<Response>) => {
      try {
        const r = await f()
        return { status: r.status, text: await r.text() }
      } catch (e: any) {
        return { error: { name: e?.name, code: e?.code, message: String(e?.message) } }
      }
    }
  }, token)
  return { page }
}

/** One call through a fresh signed fetch for `origins`, with the device clock `skewMs` off. */
function signedCall(
  page: Page,
  origins: string[],
  url: string,
  init?: RequestInit,
  skewMs = 0,
): Promise<PageReply> {
  return page.evaluate(
    ({ origins, url, init, skewMs }) => {
      const w = window
      return w.reply(() => w.signed(origins, skewMs)(url, init))
    },
    { origins, url, init: init as Record<string, unknown> | undefined, skewMs },
  )
}

/** A hand-made request: `scheme` token, and a proof for `proofUrl` signed by `key`, or none. */
function rawCall(
  page: Page,
  url: string,
  opts: {
    scheme: 'DPoP' | 'Bearer'
    proofFor?: string
    key?: 'keys' | 'otherKeys'
    twice?: boolean
  },
): Promise<PageReply[]> {
  return page.evaluate(
    async ({ url, opts }) => {
      const w = window
      const headers: Record<string, string> = { Authorization: `${opts.scheme} ${w.token}` }
      if (opts.proofFor) {
        headers.DPoP = await w.dpop.createProof(w[opts.key ?? 'keys'], {
          htm: 'GET',
          htu: opts.proofFor,
          accessToken: w.token,
        })
      }
      const replies = []
      for (let i = 0; i < (opts.twice ? 2 : 1); i++)
        replies.push(await w.reply(() => fetch(url, { headers })))
      return replies
    },
    { url, opts },
  )
}

async function recordRow(
  verifier: VerifierName,
  variant: string,
  since: number,
  pass: () => void,
): Promise<InteropRecord[]> {
  const seen = (await serverLog()).filter((r) => r.seq > since && r.verifier === verifier)
  const refused = seen.find((r) => r.status >= 300)
  const row: Row = {
    verifier,
    variant,
    result: 'FAIL',
    statuses: seen.map((r) => r.status),
    ...(refused
      ? {
          refusal: {
            status: refused.status,
            wwwAuthenticate: refused.wwwAuthenticate,
            contentType: refused.contentType,
            body: refused.body.slice(0, 160),
          },
        }
      : {}),
  }
  // The response is in the failure message, so a failing verifier shows what it said.
  try {
    pass()
  } catch (e) {
    console.log(`interop ${verifier} / ${variant}: server saw`, JSON.stringify(seen, null, 1))
    await control('rows', row)
    throw e
  }
  row.result = 'pass'
  await control('rows', row)
  return seen
}

const lastSeq = async () => (await serverLog()).at(-1)?.seq ?? 0

for (const verifier of ['auth0', 'oauth4webapi', 'solid'] as const) {
  test.describe(`interop: ${verifier}`, () => {
    const port = PORTS[verifier]
    const origin = `http://localhost:${port}`
    let page: Page

    // A page per test: Playwright starts a new worker after a failure, and every variant must still run.
    test.beforeEach(async ({ browser }) => {
      ;({ page } = await openPage(browser))
    })
    test.afterEach(async () => {
      await page.close()
    })

    /** A signed call that must end 200 after at most `maxAttempts` requests, all reaching this verifier. */
    async function accepted(
      variant: string,
      url: string,
      opts: {
        init?: RequestInit
        skewMs?: number
        origins?: string[]
        maxAttempts?: number
        path?: string
      } = {},
    ) {
      const since = await lastSeq()
      const reply = await signedCall(page, opts.origins ?? [origin], url, opts.init, opts.skewMs)
      return recordRow(verifier, variant, since, () => {
        expect(reply.error, JSON.stringify(reply.error)).toBeUndefined()
        expect(reply.status, reply.text).toBe(200)
      }).then(async (seen) => {
        expect(seen.length).toBeGreaterThanOrEqual(1)
        expect(seen.length).toBeLessThanOrEqual(opts.maxAttempts ?? 1)
        expect(seen.at(-1)?.status).toBe(200)
        if (opts.path) expect(seen.at(-1)?.url).toBe(opts.path)
        return { reply, seen }
      })
    }

    test('plain GET', async () => {
      const { seen } = await accepted('plain GET', `${origin}/api/items`, { path: '/api/items' })
      expect(seen[0]?.proof?.htu).toBe(`${origin}/api/items`)
    })

    test('GET with a query', async () => {
      const { seen } = await accepted('query', `${origin}/api/items?a=1&b=x%20y`, {
        path: '/api/items?a=1&b=x%20y',
      })
      expect(seen[0]?.proof?.htu).toBe(`${origin}/api/items`)
    })

    test('GET with a fragment', async () => {
      await accepted('fragment', `${origin}/api/items?a=1#section`, { path: '/api/items?a=1' })
    })

    test('upper-case scheme and host', async () => {
      const { seen } = await accepted('upper-case host', `HTTP://LOCALHOST:${port}/api/items`, {
        path: '/api/items',
      })
      expect(seen[0]?.proof?.htu).toBe(`${origin}/api/items`)
    })

    test('explicit default port (:80, through a proxy to the verifier)', async () => {
      // The verifier sits behind a proxy on port 80, as in production; the page names the
      // default port explicitly. The proxy (Playwright's router) passes Host: localhost.
      await page.route('http://localhost/**', async (route) => {
        const request = route.request()
        const target = request.url().replace('http://localhost/', `${origin}/`)
        const response = await route.fetch({
          url: target,
          headers: { ...request.headers(), host: 'localhost' },
        })
        await route.fulfill({ response })
      })
      try {
        const { seen } = await accepted('explicit :80', 'http://localhost:80/api/items', {
          origins: ['http://localhost'],
          path: '/api/items',
        })
        expect(seen[0]?.proof?.htu).toBe('http://localhost/api/items')
      } finally {
        await page.unroute('http://localhost/**')
      }
    })

    test('JSON POST', async () => {
      const body = JSON.stringify({ item: 42, note: 'ünïcode' })
      const { reply, seen } = await accepted('JSON POST', `${origin}/api/items`, {
        init: { method: 'POST', headers: { 'content-type': 'application/json' }, body },
        path: '/api/items',
      })
      expect(seen[0]?.proof?.htm).toBe('POST')
      // oauth4webapi's and Solid's fronts echo the body they read after verifying.
      expect(JSON.parse(reply.text ?? '{}')).toMatchObject({ ok: true, method: 'POST', body })
    })

    if (EXPECTED[verifier].nonce) {
      test('nonce required (a layer in front of the verifier): one retry with the nonce', async () => {
        const { seen } = await accepted('nonce', `${origin}/nonce/items`, {
          maxAttempts: 2,
          path: '/nonce/items',
        })
        expect(seen).toHaveLength(2)
        expect(seen[0]?.proof?.nonce).toBeUndefined()
        expect(seen[1]?.proof?.nonce).toBe(seen[0]?.dpopNonce)
      })
    }

    for (const [name, skewMs] of [
      ['device clock +10 min', TEN_MINUTES],
      ['device clock −10 min', -TEN_MINUTES],
    ] as const) {
      test(`${name}: the first refusal corrects the clock, one retry succeeds`, async () => {
        const { seen } = await accepted(name, `${origin}/api/items`, { skewMs, maxAttempts: 2 })
        // The accepted proof is on the server's clock.
        expect(Math.abs(Number(seen.at(-1)?.proof?.iat) - Date.now() / 1000)).toBeLessThan(30)
      })
    }

    test(`EdDSA (Ed25519) key: ${EXPECTED[verifier].eddsa ? 'accepted' : 'refused (the verifier takes no EdDSA)'}`, async ({
      browser,
    }) => {
      await page.close()
      ;({ page } = await openPage(browser, 'EdDSA'))
      const since = await lastSeq()
      const reply = await signedCall(page, [origin], `${origin}/api/items`)
      const seen = await recordRow(verifier, 'EdDSA key', since, () => {
        expect(reply.error, JSON.stringify(reply.error)).toBeUndefined()
        if (EXPECTED[verifier].eddsa) expect(reply.status, reply.text).toBe(200)
        else expect(reply.status, reply.text).toBe(400)
      })
      expect(seen[0]?.proof?.alg).toBe('EdDSA')
      expect(seen).toHaveLength(1)
    })

    test('negative: no proof', async () => {
      const since = await lastSeq()
      const [reply] = await rawCall(page, `${origin}/api/items`, { scheme: 'DPoP' })
      await recordRow(verifier, 'no proof', since, () =>
        expect(reply?.status).toBeGreaterThanOrEqual(400),
      )
    })

    test('negative: Bearer scheme, no proof', async () => {
      const since = await lastSeq()
      const [reply] = await rawCall(page, `${origin}/api/items`, { scheme: 'Bearer' })
      await recordRow(verifier, 'Bearer', since, () =>
        expect(reply?.status).toBeGreaterThanOrEqual(400),
      )
    })

    test('quirk: Bearer scheme with a valid proof', async () => {
      const since = await lastSeq()
      const [reply] = await rawCall(page, `${origin}/api/items`, {
        scheme: 'Bearer',
        proofFor: `${origin}/api/items`,
      })
      await recordRow(verifier, 'Bearer + valid proof', since, () => {
        if (EXPECTED[verifier].bearerProofRefused) expect(reply?.status).toBeGreaterThanOrEqual(400)
        else expect(reply?.status).toBe(200)
      })
    })

    test('negative: proof for another URL', async () => {
      const since = await lastSeq()
      const [reply] = await rawCall(page, `${origin}/api/items`, {
        scheme: 'DPoP',
        proofFor: `${origin}/api/other`,
      })
      await recordRow(verifier, 'proof for another URL', since, () =>
        expect(reply?.status).toBeGreaterThanOrEqual(400),
      )
    })

    test('negative: proof from another key', async () => {
      const since = await lastSeq()
      const [reply] = await rawCall(page, `${origin}/api/items`, {
        scheme: 'DPoP',
        proofFor: `${origin}/api/items`,
        key: 'otherKeys',
      })
      await recordRow(verifier, 'proof from another key', since, () =>
        expect(reply?.status).toBeGreaterThanOrEqual(400),
      )
    })

    test('quirk: the same proof sent twice (jti replay cache)', async () => {
      const since = await lastSeq()
      const replies = await rawCall(page, `${origin}/api/items`, {
        scheme: 'DPoP',
        proofFor: `${origin}/api/items`,
        twice: true,
      })
      await recordRow(verifier, 'same proof twice', since, () => {
        expect(replies[0]?.status).toBe(200)
        if (EXPECTED[verifier].replayRefused) expect(replies[1]?.status).toBeGreaterThanOrEqual(400)
        else expect(replies[1]?.status).toBe(200)
      })
    })
  })
}

test.afterAll(async () => {
  const rows = (await control('rows')) as Row[]
  const variants = [...new Set(rows.map((r) => r.variant))]
  const verifiers = Object.keys(PORTS) as VerifierName[]
  const cell = (v: VerifierName, variant: string) => {
    const row = rows.find((r) => r.verifier === v && r.variant === variant)
    return row ? `${row.result} ${row.statuses.join('→')}` : 'n/a'
  }
  const table = [
    `| variant | ${verifiers.join(' | ')} |`,
    `|---|${verifiers.map(() => '---').join('|')}|`,
    ...variants.map(
      (variant) => `| ${variant} | ${verifiers.map((v) => cell(v, variant)).join(' | ')} |`,
    ),
  ].join('\n')
  console.log(`\ninterop (statuses the server answered, in order):\n${table}`)
  const dir = process.env.DPOP_TEST_OUTPUT_DIR ?? 'test-results'
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}/interop.json`, JSON.stringify(rows, null, 1))
})
