// Lost refresh answers (issue 17), injected AT THE SERVER: oidc-provider rotates the refresh
// token, then holds its answer back (a reload or a closed tab in the meantime loses it in the
// browser) or destroys the connection without answering (a dropped mobile connection). The
// IndexedDB write of the new tokens failing is injected in the page. For each fault the test
// asks: still signed in, with tokens of the same grant (never revoked at the server), does the
// next API call succeed, and one more after the next expiry? Each test logs its outcome line
// (`[engine] F1 …`): those lines are the table of docs/lost-refresh-answers.md.
import type { AuthServerStats, RefreshFault, RefreshRotation } from '../demo/auth-server/server.ts'
import { expect, test, type Tab } from './driver.ts'
import { AS, API, expectStatus, openApp, resetAuthServer, signIn, stats } from './token-app.ts'

/** Every fault holds the answer this long: long enough for a reload or a tab closing to happen first. */
const HOLD_MS = 3_000

async function configure(change: { refreshFault?: RefreshFault | null; refreshRotation?: RefreshRotation }): Promise<void> {
  const r = await fetch(`${AS}/__control/config`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(change) })
  expect(r.ok, await r.text()).toBe(true)
}

test.beforeEach(async () => {
  await resetAuthServer()
})

/** The grant of the login: every token the authorization code gave. */
const loginGrant = (s: AuthServerStats): string => {
  const id = s.issuedTokens.find((t) => t.grantType === 'authorization_code')?.grantId
  if (!id) throw new Error('no grant recorded for the login')
  return id
}

/** Waits until the server recorded an event of `type` (the fault happened: the grant rotated first). */
const serverSaw = (type: string) => expect.poll(async () => (await stats()).events.some((e) => e.type === type), { timeout: 20_000, intervals: [100] }).toBe(true)

/** The access token's `exp` (s), read in the page without refreshing. */
const tokenExp = (tab: Tab) => tab.evaluate(async () => {
  const token = await window.auth.getAccessToken()
  if (token === undefined) return 0
  return JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))).exp as number
})

async function waitForExpiry(tab: Tab): Promise<void> {
  const exp = await tokenExp(tab)
  await expect.poll(() => Date.now(), { timeout: 20_000, intervals: [250] }).toBeGreaterThan(exp * 1000 + 250)
}

/** Starts one API call in the tab without waiting for it (it needs a refresh: the token has expired). */
const startCall = (tab: Tab) => tab.evaluate((api) => {
  window.calls = window.auth.fetch(`${api}/api/me`).then((r) => [r.status], () => [0])
}, API)

/** One API call; its status, or the error's code (0 when it threw something else), bounded. */
const call = (tab: Tab) => tab.evaluate(async (api) => {
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
async function outcome(label: string, engine: string, tab: Tab, grant: string, started: number): Promise<Outcome> {
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
    logouts: await tab.evaluate(() => window.events.flatMap((e) => (e.type === 'logout' ? [e.reason] : []))),
    reuse: s.refreshTokenReuse,
    refused: s.events.filter((e) => e.type === 'grant.error' && e.grantType === 'refresh_token' && e.error !== 'use_dpop_nonce').map((e) => `${e.error} (${e.errorDetail ?? e.errorDescription ?? ''})`),
    ms: Date.now() - started,
  }
  console.log(`[${engine}] ${label}: ${JSON.stringify(o)}`)
  return o
}

const kept = (o: Outcome) => {
  expect(o.logouts).toEqual([])
  expect(o).toMatchObject({ signedIn: true, nextCall: '200', afterExpiry: '200', sameGrant: true, reuse: 0 })
}

/** Signs in; a second tab on the same session when `tabs` is 2. */
async function start(tab: Tab, query = ''): Promise<string> {
  await signIn(tab, 'alice', query)
  return loginGrant(await stats())
}

async function openSecond(newTab: () => Promise<Tab>, query = ''): Promise<Tab> {
  const tab = await newTab()
  await openApp(tab, query)
  await expectStatus(tab, 'signed-in')
  return tab
}

test('F1: the page reloads while the refresh answer is held; the user stays signed in on the same grant', async ({ driver }) => {
  const page = driver.page
  const grant = await start(page)
  await configure({ refreshFault: { mode: 'hold', ms: HOLD_MS, count: 1 } })
  await waitForExpiry(page)
  await startCall(page)
  await serverSaw('fault.hold')
  const t0 = Date.now()
  await page.reload()
  await page.waitFor(() => window.ready === true)
  kept(await outcome('F1 reload while held', driver.engine, page, grant, t0))
})

test('F2: the tab holding the refresh lock closes while the answer is held; the other tab stays signed in', async ({ driver }) => {
  const page = driver.page
  const grant = await start(page)
  const other = await openSecond(() => driver.newTab())
  await configure({ refreshFault: { mode: 'hold', ms: HOLD_MS, count: 1 } })
  await waitForExpiry(page)
  await startCall(page)
  await serverSaw('fault.hold')
  const t0 = Date.now()
  await page.close()
  kept(await outcome('F2 refreshing tab closed while held', driver.engine, other, grant, t0))
})

test('F5: two tabs refresh at once while the refreshing one reloads; both stay signed in', async ({ driver }) => {
  const page = driver.page
  const grant = await start(page)
  const other = await openSecond(() => driver.newTab())
  await configure({ refreshFault: { mode: 'hold', ms: HOLD_MS, count: 1 } })
  await waitForExpiry(page)
  await startCall(page)
  await serverSaw('fault.hold')
  // The other tab needs the refresh too and waits for the lock the first one holds.
  await startCall(other)
  const t0 = Date.now()
  await page.reload()
  await page.waitFor(() => window.ready === true)
  const waiting = await other.evaluate(() => window.calls)
  console.log(`[${driver.engine}] F5 the waiting tab's call: ${JSON.stringify(waiting)}`)
  const reloaded = await outcome('F5 two tabs, refreshing one reloads', driver.engine, page, grant, t0)
  const stayed = await outcome('F5 (the other tab)', driver.engine, other, grant, t0)
  expect(waiting).toEqual([200])
  kept(reloaded)
  kept(stayed)
})

test('F3: the connection drops after the server rotated; the session ends at once as refresh-lost, nothing hangs', async ({ driver }) => {
  const page = driver.page
  const grant = await start(page)
  await configure({ refreshFault: { mode: 'drop', ms: 0, count: 1 } })
  await waitForExpiry(page)
  const t0 = Date.now()
  const first = await call(page)
  const o = await outcome('F3 connection dropped after rotation', driver.engine, page, grant, t0)
  console.log(`[${driver.engine}] F3 first call: ${first}`)
  // The server rotated and its answer is gone: with rotation always on nothing can bring the
  // new refresh token back. The session must end naming the lost answer, within seconds.
  expect(o.logouts).toEqual(['refresh-lost'])
  expect(o.signedIn).toBe(false)
  expect(o.ms).toBeLessThan(10_000)
})

test('F4: the IndexedDB write of the new tokens fails after the server answered; the tab stays signed in and stores them later', async ({ driver }) => {
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
  kept(await outcome('F4 IndexedDB write failed', driver.engine, page, grant, t0))
  expect(first).toBe('200')
  // What a reload finds is the session of the last refresh, not the one the failed write lost.
  const stored = await page.evaluate(() => window.auth.getAccessToken())
  await page.reload()
  await page.waitFor(() => window.ready === true)
  expect(await page.evaluate(() => window.auth.getAccessToken())).toBe(stored)
})
