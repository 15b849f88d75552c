// Lost refresh answers (issue 17), injected AT THE SERVER: oidc-provider rotates the refresh
// token, then holds its answer back (a reload or a closed tab in the meantime loses it in the
// browser) or destroys the connection without answering (a dropped mobile connection). The
// IndexedDB write of the new tokens failing is injected in the page. For each fault the test
// asks: still signed in, with tokens of the same grant (never revoked at the server), does the
// next API call succeed, and one more after the next expiry? Each test logs its outcome line
// (`[engine] F1 …`): those lines are the table of docs/lost-refresh-answers.md.
//
// Three set-ups: the refresh worker (`dpop-spa/sw`, `?sw=1`) against a server that rotates
// every refresh token; the page alone against that server (the default set-up); the page
// alone against a server that rotates DPoP-bound refresh tokens only near their expiry
// (oidc-provider's default, RFC 9700 §4.14.2).
import type { RefreshFault } from '../demo/auth-server/control.ts'
import type { RefreshRotation } from '../demo/auth-server/provider.ts'
import type { AuthServerStats } from '../demo/auth-server/recorder.ts'
import { expect, test, type Driver, type Tab } from './driver.ts'
import { AS, API, expectStatus, openApp, resetAuthServer, signIn, stats } from './token-app.ts'

/** Every fault holds the answer this long: long enough for a reload or a tab closing to happen first. */
const HOLD_MS = 6_000
/** Access tokens of this spec live this long (s), so that two expiries fit in a short test. */
const TTL = 4
const WORKER = '&sw=1'

async function configure(change: {
  refreshFault?: RefreshFault | null
  refreshRotation?: RefreshRotation
  accessTokenTtl?: number
}): Promise<void> {
  const r = await fetch(`${AS}/__control/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(change),
  })
  expect(r.ok, await r.text()).toBe(true)
}

test.beforeEach(async () => {
  await resetAuthServer()
  await configure({ accessTokenTtl: TTL })
})
// The token stack's own lifetime (e2e/token-stack.ts) for the specs after this one.
test.afterEach(async () => {
  await configure({ accessTokenTtl: 6, refreshFault: null, refreshRotation: 'always' })
})

/** The grant of the login: every token the authorization code gave. */
const loginGrant = (s: AuthServerStats): string => {
  const id = s.issuedTokens.find((t) => t.grantType === 'authorization_code')?.grantId
  if (!id) throw new Error('no grant recorded for the login')
  return id
}

/** Waits until the server recorded an event of `type` (the fault happened: the grant rotated first). */
const serverSaw = (type: string) =>
  expect
    .poll(async () => (await stats()).events.some((e) => e.type === type), {
      timeout: 20_000,
      intervals: [100],
    })
    .toBe(true)

/** The access token's `exp` (s), read in the page without refreshing. */
const tokenExp = (tab: Tab) =>
  tab.evaluate(async () => {
    const token = await window.auth.getAccessToken()
    if (token === undefined) return 0
    return JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')))
      .exp as number
  })

async function waitForExpiry(tab: Tab): Promise<void> {
  const exp = await tokenExp(tab)
  await expect
    .poll(() => Date.now(), { timeout: 20_000, intervals: [250] })
    .toBeGreaterThan(exp * 1000 + 250)
}

/** Starts one API call in the tab without waiting for it (it needs a refresh: the token has expired). */
const startCall = (tab: Tab) =>
  tab.evaluate((api) => {
    window.calls = window.auth.fetch(`${api}/api/me`).then(
      (r) => [r.status],
      () => [0],
    )
  }, API)

/** One API call; its status, or the error's code (0 when it threw something else), bounded. */
const call = (tab: Tab) =>
  tab.evaluate(async (api) => {
    try {
      const r = await window.auth.fetch(`${api}/api/me`, { signal: AbortSignal.timeout(15_000) })
      return String(r.status)
    } catch (e) {
      return (e as { code?: string }).code ?? (e as Error).name
    }
  }, API)

interface Outcome {
  signedIn: boolean
  nextCall: string
  afterExpiry: string
  sameGrant: boolean
  logouts: string[]
  reuse: number
  /** The refused refresh requests at the server: `error (detail)`, nonce challenges left out. */
  refused: string[]
  ms: number
}

/** What the user gets after the fault, in `tab`, measured at the server and in the page. */
async function outcome(
  label: string,
  engine: string,
  tab: Tab,
  grant: string,
  started: number,
): Promise<Outcome> {
  const nextCall = await call(tab)
  let afterExpiry = 'n/a'
  if (await tab.evaluate(() => window.auth.isAuthenticated())) {
    await waitForExpiry(tab)
    afterExpiry = await call(tab)
  }
  const s = await stats()
  const lastRefresh = s.issuedTokens.filter((t) => t.grantType === 'refresh_token').at(-1)
  const o: Outcome = {
    signedIn: await tab.evaluate(() => window.auth.isAuthenticated()),
    nextCall,
    afterExpiry,
    sameGrant: !s.grantsRevoked.includes(grant) && lastRefresh?.grantId === grant,
    logouts: await tab.evaluate(() =>
      window.events.flatMap((e) => (e.type === 'logout' ? [e.reason] : [])),
    ),
    reuse: s.refreshTokenReuse,
    refused: s.events
      .filter(
        (e) =>
          e.type === 'grant.error' &&
          e.grantType === 'refresh_token' &&
          e.error !== 'use_dpop_nonce',
      )
      .map((e) => `${e.error} (${e.errorDetail ?? e.errorDescription ?? ''})`),
    ms: Date.now() - started,
  }
  console.log(`[${engine}] ${label}: ${JSON.stringify(o)}`)
  return o
}

const kept = (o: Outcome) => {
  expect(o.logouts).toEqual([])
  expect(o).toMatchObject({
    signedIn: true,
    nextCall: '200',
    afterExpiry: '200',
    sameGrant: true,
    reuse: 0,
  })
}

/** Signs in; the grant of the login. With the worker, waits until it is active (its first start compiles it). */
async function start(tab: Tab, query = ''): Promise<string> {
  await signIn(tab, 'alice', query)
  if (query === WORKER)
    await tab.waitFor(
      () => navigator.serviceWorker.getRegistration('/e2e/fixtures/').then((r) => !!r?.active),
      undefined,
      60_000,
    )
  return loginGrant(await stats())
}

async function openSecond(newTab: () => Promise<Tab>, query = ''): Promise<Tab> {
  const tab = await newTab()
  await openApp(tab, query)
  await expectStatus(tab, 'signed-in')
  return tab
}

const hold = () => configure({ refreshFault: { mode: 'hold', ms: HOLD_MS, count: 1 } })

/** F1: the page reloads while the server holds the answer of the refresh it asked for. */
async function f1(driver: Driver, query: string, label: string): Promise<Outcome> {
  const page = driver.page
  const grant = await start(page, query)
  await hold()
  await waitForExpiry(page)
  await startCall(page)
  await serverSaw('fault.hold')
  const t0 = Date.now()
  await page.reload()
  await page.waitFor(() => window.ready === true)
  expect(await page.evaluate(() => window.startError ?? null)).toBeNull()
  return outcome(`F1 reload while held, ${label}`, driver.engine, page, grant, t0)
}

/** F3: the server rotates, then destroys the connection without answering. */
async function f3(
  driver: Driver,
  query: string,
  label: string,
): Promise<{ first: string; o: Outcome }> {
  const page = driver.page
  const grant = await start(page, query)
  await configure({ refreshFault: { mode: 'drop', ms: 0, count: 1 } })
  await waitForExpiry(page)
  const t0 = Date.now()
  const first = await call(page)
  console.log(`[${driver.engine}] F3 first call, ${label}: ${first}`)
  return {
    first,
    o: await outcome(
      `F3 connection dropped after rotation, ${label}`,
      driver.engine,
      page,
      grant,
      t0,
    ),
  }
}

/**
 * With rotation always on, a dropped answer cannot be recovered: the session ends within
 * seconds, nothing hangs. Where the browser reports the drop (ERR_NETWORK), the next refresh
 * names it: 'refresh-lost'. Where the browser re-sends the request by itself with the same
 * proof (Chromium; Firefox from a service worker, on a kept-alive connection), the server
 * refuses the copy with invalid_grant: from the page that is a refused refresh token like any
 * other, so the reason stays 'invalid_grant'.
 */
const endsAtOnce = ({ first, o }: { first: string; o: Outcome }) => {
  expect(o.signedIn).toBe(false)
  expect(o.ms).toBeLessThan(10_000)
  expect(['ERR_NETWORK', 'ERR_OAUTH']).toContain(first)
  expect(o.logouts).toEqual([first === 'ERR_NETWORK' ? 'refresh-lost' : 'invalid_grant'])
}

test.describe('refresh worker, rotation always on', () => {
  // Once in a clean-clone CI run, WebKitGTK's service worker never became active (30 s) before
  // F5 began, on a loaded 2-core machine; it passed in every other run. One retry, in a fresh
  // browser session, for the worker's start-up only: a fault outcome that is wrong fails twice.
  test.describe.configure({ retries: 1 })
  test('F1: the page reloads while the refresh answer is held; the user stays signed in on the same grant', async ({
    driver,
  }) => {
    kept(await f1(driver, WORKER, 'worker'))
  })

  test('F2: the refreshing tab closes while the answer is held; the other tab stays signed in', async ({
    driver,
  }) => {
    const page = driver.page
    const grant = await start(page, WORKER)
    const other = await openSecond(() => driver.newTab(), WORKER)
    await hold()
    await waitForExpiry(page)
    await startCall(page)
    await serverSaw('fault.hold')
    const t0 = Date.now()
    await page.close()
    kept(
      await outcome('F2 refreshing tab closed while held, worker', driver.engine, other, grant, t0),
    )
  })

  test('F5: two tabs refresh at once while the refreshing one reloads; both stay signed in', async ({
    driver,
  }) => {
    const page = driver.page
    const grant = await start(page, WORKER)
    const other = await openSecond(() => driver.newTab(), WORKER)
    await hold()
    await waitForExpiry(page)
    await startCall(page)
    await serverSaw('fault.hold')
    // The other tab needs the refresh too and waits for the one in flight.
    await startCall(other)
    const t0 = Date.now()
    await page.reload()
    await page.waitFor(() => window.ready === true)
    const waiting = await other.evaluate(() => window.calls)
    console.log(`[${driver.engine}] F5 the waiting tab's call, worker: ${JSON.stringify(waiting)}`)
    const reloaded = await outcome(
      'F5 two tabs, refreshing one reloads, worker',
      driver.engine,
      page,
      grant,
      t0,
    )
    const stayed = await outcome('F5 (the other tab), worker', driver.engine, other, grant, t0)
    expect(waiting).toEqual([200])
    kept(reloaded)
    kept(stayed)
  })

  test('F3: the connection drops after the server rotated; the session ends within seconds, nothing hangs', async ({
    driver,
  }) => {
    endsAtOnce(await f3(driver, WORKER, 'worker'))
  })
})

test.describe('the page alone, rotation always on', () => {
  test('F1: a reload while the answer is held ends the session as refresh-lost, not as a generic invalid_grant', async ({
    driver,
  }) => {
    const o = await f1(driver, '', 'page')
    // Firefox lets the reloading document take the answer in (measured): nothing is lost there.
    if (o.signedIn) kept(o)
    else {
      expect(o.logouts).toEqual(['refresh-lost'])
      expect(o.ms).toBeLessThan(10_000)
    }
  })

  test('F4: the IndexedDB write of the new tokens fails after the server answered; the tab stays signed in and stores them later', async ({
    driver,
  }) => {
    const page = driver.page
    const grant = await start(page)
    // The next write of the session fails, as a full disk or an evicted database would.
    await page.evaluate(() => {
      const put = IDBObjectStore.prototype.put
      let armed = true
      IDBObjectStore.prototype.put = function (value: unknown, key?: IDBValidKey) {
        if (armed && key === 'session') {
          armed = false
          throw new DOMException('Simulated: the disk is full', 'QuotaExceededError')
        }
        return put.call(this, value, key)
      }
    })
    await waitForExpiry(page)
    const t0 = Date.now()
    const first = await call(page)
    console.log(`[${driver.engine}] F4 first call: ${first}`)
    const o = await outcome('F4 IndexedDB write failed, page', driver.engine, page, grant, t0)
    expect(first).toBe('200')
    kept(o)
    expect(
      await page.evaluate(() =>
        window.events.some((e) => e.type === 'error' && e.code === 'ERR_KEY_STORE_QUOTA'),
      ),
    ).toBe(true)
    // A reload finds the session of the last refresh, not the one before the failed write
    // (whose rotated refresh token the server would take as reuse and revoke the grant).
    await page.reload()
    await page.waitFor(() => window.ready === true)
    await waitForExpiry(page)
    expect(await call(page)).toBe('200')
    const s = await stats()
    expect(s.refreshTokenReuse).toBe(0)
    expect(s.grantsRevoked).toEqual([])
  })
})

test.describe('the page alone, rotation near expiry (RFC 9700 §4.14.2)', () => {
  test.beforeEach(async () => {
    await configure({ refreshRotation: 'near-expiry' })
  })

  test('F1: a reload while the answer is held loses nothing', async ({ driver }) => {
    kept(await f1(driver, '', 'near-expiry'))
  })

  test('F3: a dropped answer loses nothing; the next refresh sends the same refresh token', async ({
    driver,
  }) => {
    const { o } = await f3(driver, '', 'near-expiry')
    kept(o)
  })
})
