// The token manager and createDPoPClient in every installed engine against oidc-provider
// (DPoP on, nonces required, PKCE, rotating refresh tokens, 6 s access tokens) and the
// verifying API. Every count below is read at the authorization server, not from our own logs.
import { expect, test, type Tab } from './driver.ts'
import { AS, API, expectStatus, openApp, refreshes, resetAuthServer, signIn, stats, submitLoginForm, thumbprint } from './token-app.ts'

test.beforeEach(async () => {
  await resetAuthServer()
})

/** The access token's `exp` and `cnf.jkt`, read from the stored JWT in the page. */
const tokenInfo = (tab: Tab) => tab.evaluate(async () => {
  const token: string = await (window as any).auth.getAccessToken()
  const payload = JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')))
  return { exp: payload.exp as number, jkt: payload.cnf?.jkt as string, token }
})

/** Waits, on the token's own `exp`, until it has expired. */
async function waitForExpiry(tab: Tab): Promise<void> {
  const { exp } = await tokenInfo(tab)
  await expect.poll(() => Date.now(), { timeout: 20_000, intervals: [250] }).toBeGreaterThan(exp * 1000 + 250)
}

/** Starts `n` concurrent calls in the page without waiting, so that several tabs can overlap. */
const startCalls = (tab: Tab, n: number) => tab.evaluate(({ api, n }) => {
  const auth = (window as any).auth
  ;(window as any).calls = Promise.all(Array.from({ length: n }, () => auth.fetch(`${api}/api/me`).then((r: Response) => r.status)))
}, { api: API, n })
const collectCalls = (tab: Tab) => tab.evaluate(() => (window as any).calls as Promise<number[]>)
const callApi = async (tab: Tab, n: number) => { await startCalls(tab, n); return collectCalls(tab) }

test('login is bound to the key by dpop_jkt, and the tokens by cnf.jkt', async ({ driver }) => {
  const page = driver.page
  await signIn(page)
  const jkt = await thumbprint(page)
  const s = await stats()
  expect(s.authorizations.at(-1)?.dpopJkt).toBe(jkt)
  expect(s.issuedTokens.filter((t) => t.grantType === 'authorization_code').map((t) => t.jkt)).toEqual(expect.arrayContaining([jkt]))
  expect(new Set(s.issuedTokens.map((t) => t.jkt))).toEqual(new Set([jkt]))
  expect((await tokenInfo(page)).jkt).toBe(jkt)
  // code and state are gone from the address bar
  const url = new URL(await page.url())
  expect(url.searchParams.has('code')).toBe(false)
  expect(url.searchParams.has('state')).toBe(false)
  expect(await page.evaluate(() => (window as any).auth.getUser()?.sub)).toBe('alice')
  expect(await callApi(page, 1)).toEqual([200])
})

test('a reload keeps the session and the key', async ({ driver }) => {
  const page = driver.page
  await signIn(page)
  const jkt = await thumbprint(page)
  const { token } = await tokenInfo(page)
  await page.reload()
  await page.waitFor(() => (window as any).ready === true)
  await expectStatus(page, 'signed-in')
  expect(await thumbprint(page)).toBe(jkt)
  expect((await tokenInfo(page)).token).toBe(token)
  expect(await callApi(page, 1)).toEqual([200])
})

test('after expiry, 20 concurrent calls cause ONE refresh at the server, bound to the same key', async ({ driver }) => {
  const page = driver.page
  await signIn(page)
  const jkt = await thumbprint(page)
  const before = await tokenInfo(page)
  await waitForExpiry(page)
  const s0 = refreshes(await stats())
  const statuses = await callApi(page, 20)
  const s1 = await stats()
  console.log(`[${driver.engine}] 20 concurrent calls after expiry: statuses ${JSON.stringify([...new Set(statuses)])}, refreshes at the server ${refreshes(s1) - s0}, refresh-token reuse ${s1.refreshTokenReuse}`)
  expect(statuses).toEqual(Array(20).fill(200))
  expect(refreshes(s1) - s0).toBe(1)
  expect(s1.refreshTokenReuse).toBe(0)
  const after = await tokenInfo(page)
  expect(after.token).not.toBe(before.token)
  expect(after.jkt).toBe(jkt)
  expect(s1.issuedTokens.filter((t) => t.grantType === 'refresh_token').every((t) => t.jkt === jkt)).toBe(true)
  expect(await page.evaluate(() => (window as any).events.filter((e: any) => e.type === 'refresh').length)).toBe(1)
})

async function secondTab(driverTab: () => Promise<Tab>): Promise<Tab> {
  const tab = await driverTab()
  await openApp(tab)
  await expectStatus(tab, 'signed-in')
  return tab
}

test('two tabs after expiry: one refresh at the server, neither logged out', async ({ driver }) => {
  const page = driver.page
  await signIn(page)
  const other = await secondTab(() => driver.newTab())
  expect(await thumbprint(other)).toBe(await thumbprint(page))
  await waitForExpiry(page)
  const s0 = await stats()
  // Both tabs start their calls before either collects: the refreshes race across tabs.
  await startCalls(page, 10)
  await startCalls(other, 10)
  const a = await collectCalls(page)
  const b = await collectCalls(other)
  const s1 = await stats()
  console.log(`[${driver.engine}] two tabs x 10 calls after expiry: refreshes at the server ${refreshes(s1) - refreshes(s0)}, reuse ${s1.refreshTokenReuse}`)
  expect([...a, ...b]).toEqual(Array(20).fill(200))
  expect(refreshes(s1) - refreshes(s0)).toBe(1)
  expect(s1.refreshTokenReuse).toBe(0)
  for (const p of [page, other]) {
    expect(await p.evaluate(() => (window as any).auth.isAuthenticated())).toBe(true)
    expect(await p.evaluate(() => (window as any).events.some((e: any) => e.type === 'logout'))).toBe(false)
  }
  // Both tabs now hold the same, new token.
  expect((await tokenInfo(other)).token).toBe((await tokenInfo(page)).token)
})

test('logout revokes at the server, logs out the other tab, and the next login uses a new key', async ({ driver }) => {
  const page = driver.page
  await signIn(page)
  const other = await secondTab(() => driver.newTab())
  const oldJkt = await thumbprint(page)
  // Keep the old key pair and refresh token in page memory, to try them after logout.
  await page.evaluate(async () => {
    const w = window as any
    w.oldPair = await w.auth.keys.load()
    w.oldRefresh = await new Promise((resolve, reject) => {
      const req = indexedDB.open('dpop-spa:e2e-client:session')
      req.onsuccess = () => {
        const get = req.result.transaction('keyval').objectStore('keyval').get('session')
        get.onsuccess = () => { resolve(get.result.refreshToken); req.result.close() }
        get.onerror = () => reject(get.error)
      }
    })
  })
  const s0 = await stats()
  await page.evaluate(() => (window as any).auth.logout())
  const s1 = await stats()
  expect(s1.revocations.succeeded - s0.revocations.succeeded).toBeGreaterThanOrEqual(1)
  expect(await page.evaluate(() => (window as any).auth.isAuthenticated())).toBe(false)
  // The other tab hears of it.
  await expect.poll(() => other.evaluate(() => (window as any).auth.isAuthenticated())).toBe(false)
  expect(await other.evaluate(() => (window as any).events.at(-1))).toEqual({ type: 'logout', reason: 'other-tab' })
  // The server refuses the old refresh token, even with the old key and a valid nonce.
  const refused = await page.evaluate(async ({ as }) => {
    const w = window as any
    const meta = await (await fetch(`${as}/.well-known/openid-configuration`)).json()
    let nonce: string | undefined
    for (let attempt = 0; attempt < 2; attempt++) {
      const proof = await w.dpop.createProof(w.oldPair, { htm: 'POST', htu: meta.token_endpoint, nonce })
      const r = await fetch(meta.token_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', DPoP: proof },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: w.oldRefresh, client_id: 'dpop-spa-demo' }),
      })
      const body = await r.json()
      if (body.error === 'use_dpop_nonce') { nonce = r.headers.get('dpop-nonce') ?? undefined; continue }
      return { status: r.status, error: body.error }
    }
    return { status: 0, error: 'nonce loop' }
  }, { as: AS })
  expect(refused).toEqual({ status: 400, error: 'invalid_grant' })
  // The key was replaced: the next login is bound to a new thumbprint.
  const newJkt = await thumbprint(page)
  expect(newJkt).not.toBe(oldJkt)
  await signIn(page)
  expect(await thumbprint(page)).toBe(newJkt)
  expect((await stats()).authorizations.at(-1)?.dpopJkt).toBe(newJkt)
})

test('logout({ redirect: true }) ends the session at the server and comes back', async ({ driver }) => {
  const page = driver.page
  await signIn(page)
  const s0 = await stats()
  const back = new URL('/e2e/fixtures/client.html', await page.url()).href
  await page.evaluate((url) => {
    ;(window as any).beforeLogout = true // gone once a new document has loaded
    void (window as any).auth.logout({ redirect: true, postLogoutRedirectUri: url })
  }, back)
  await page.waitFor(() => (window as any).beforeLogout === undefined && (window as any).ready === true)
  expect(await page.url()).toBe(back)
  await expectStatus(page, 'signed-out')
  const s1 = await stats()
  expect(s1.endSessions - s0.endSessions).toBe(1)
  expect(s1.revocations.succeeded - s0.revocations.succeeded).toBeGreaterThanOrEqual(1)
})

test('an authorization server that answers Bearer gets the typed error, never a bearer session', async ({ driver }) => {
  const page = driver.page
  expect((await fetch(`${AS}/__control/config`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ answerBearer: true }) })).ok).toBe(true)
  await openApp(page)
  await page.evaluate(() => { void (window as any).auth.login() })
  await submitLoginForm(page, 'bob')
  const error = await page.evaluate(() => (window as any).redirectError)
  expect(error).toMatchObject({ code: 'ERR_TOKEN_TYPE_MISMATCH' })
  expect(error.message).toMatch(/bearer/i)
  expect((await stats()).bearerAnswers).toBeGreaterThanOrEqual(1)
  await expectStatus(page, 'signed-out')
  // Nothing was stored: a reload is still signed out.
  await page.reload()
  await page.waitFor(() => (window as any).ready === true)
  await expectStatus(page, 'signed-out')
})
