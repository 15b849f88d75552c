// What real authorization servers do differently, reproduced with the token stack's
// oidc-provider (its /__control/config quirks) and counted at the server: nonces kept across
// the login redirect and a reload, a nonce demanded on every client's first token request
// (Auth0, Okta), no nonces at all (Keycloak), a stale nonce answered with use_dpop_nonce
// (Duende), a 10 s proof window with a device clock minutes off (Keycloak, Curity).
// docs/servers.md says what to configure on each.
import type { AuthServerConfig } from '../demo/auth-server/control.ts'
import type { AuthServerStats } from '../demo/auth-server/recorder.ts'
import { expect, test, type Tab } from './driver.ts'
import {
  AS,
  expectStatus,
  openApp,
  resetAuthServer,
  signIn,
  stats,
  submitLoginForm,
} from './token-app.ts'

test.beforeEach(async () => {
  await resetAuthServer()
})

const control = async (path: 'reset' | 'config', body?: Partial<AuthServerConfig>) => {
  const r = await fetch(`${AS}/__control/${path}`, {
    method: 'POST',
    ...(body
      ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
      : {}),
  })
  expect(r.ok, path).toBe(true)
}
/** Forgets the recorded stats only (sessions, grants and nonces live on). */
const resetStats = () => control('reset')

/** Requests per endpoint since the last reset: pushed requests, code exchanges, refreshes; and how many met use_dpop_nonce. */
function counts(s: AuthServerStats) {
  const all = (grant: string) =>
    (s.tokenRequests[grant]?.succeeded ?? 0) + (s.tokenRequests[grant]?.failed ?? 0)
  return {
    par: s.pushedRequests.length + Object.values(s.pushedRequestErrors).reduce((a, b) => a + b, 0),
    parNonceRetries: s.pushedRequestErrors.use_dpop_nonce ?? 0,
    code: all('authorization_code'),
    refresh: all('refresh_token'),
    refreshFailed: s.tokenRequests.refresh_token?.failed ?? 0,
    tokenNonceRetries: s.tokenErrors.use_dpop_nonce ?? 0,
    otherTokenErrors: Object.entries(s.tokenErrors).filter(([e]) => e !== 'use_dpop_nonce').length,
    proofWindowRefusals: s.proofWindowRefusals,
  }
}

/** Signs in again from the signed-in page (prompt=login shows the form again). */
async function signInAgain(tab: Tab, user: string): Promise<void> {
  await tab.evaluate(() => {
    void window.auth.login({ prompt: 'login' })
  })
  await submitLoginForm(tab, user)
  await expectStatus(tab, 'signed-in')
}

/**
 * Forgets the stats, loads a new page (a reload by default), lets the access token (6 s) expire
 * and gets a new one. Every refresh of that page is counted: in a slow engine the token may
 * already have expired when the page starts, and its first refresh then runs at start-up.
 */
async function refreshAfterReload(
  tab: Tab,
  load: () => Promise<void> = () => tab.reload(),
): Promise<void> {
  await resetStats()
  await load()
  await tab.waitFor(() => window.ready === true)
  await expectStatus(tab, 'signed-in')
  const exp = await tab.evaluate(async () => {
    const token = await window.auth.getAccessToken()
    return JSON.parse(atob(token!.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')))
      .exp as number
  })
  await expect
    .poll(() => Date.now(), { timeout: 20_000, intervals: [250] })
    .toBeGreaterThan(exp * 1000 + 250)
  await tab.evaluate(async () => {
    await window.auth.getAccessToken()
  })
}

/** The nonces this tab keeps for `name`, as [origin, nonce, learnedAt]. */
const storedNonces = (tab: Tab, name: string) =>
  tab.evaluate(
    (key) => JSON.parse(sessionStorage.getItem(key) ?? '[]') as [string, string, number][],
    `dpop-spa:${name}:nonces`,
  )

test('nonces survive page loads: a login costs one pushed request and one code exchange, the first refresh after a reload one request', async ({
  driver,
}) => {
  const page = driver.page
  // First contact of a new tab: the pushed request meets use_dpop_nonce (nothing to know it
  // from); the code exchange after the redirect reuses the nonce that answer carried.
  await signIn(page, 'alice', '&par=1&name=e2e-nonce-kept')
  const first = counts(await stats())
  console.log(`[${driver.engine}] first login of a tab:`, JSON.stringify(first))
  // Soft: every count is logged and checked even when one is off (before/after comparisons).
  expect.soft(first).toMatchObject({ par: 2, parNonceRetries: 1, code: 1, tokenNonceRetries: 0 })
  // Kept for the authorization server's origin only, with a plausible time.
  const kept = await storedNonces(page, 'e2e-nonce-kept')
  expect.soft(kept.map(([origin]) => origin)).toEqual([AS])
  expect.soft(Math.abs((kept[0]?.[2] ?? 0) - Date.now())).toBeLessThan(60_000)

  await refreshAfterReload(page)
  const refresh = counts(await stats())
  console.log(`[${driver.engine}] first refresh after a reload:`, JSON.stringify(refresh))
  expect.soft(refresh.refresh).toBeGreaterThan(0)
  expect
    .soft(refresh)
    .toMatchObject({ refreshFailed: 0, tokenNonceRetries: 0, otherTokenErrors: 0 })

  // A new page again (the user comes back later in this tab), then a login.
  await page.reload()
  await page.waitFor(() => window.ready === true)
  await resetStats()
  await signInAgain(page, 'alice')
  const again = counts(await stats())
  console.log(`[${driver.engine}] login with a fresh nonce:`, JSON.stringify(again))
  expect.soft(again).toMatchObject({
    par: 1,
    parNonceRetries: 0,
    code: 1,
    tokenNonceRetries: 0,
    otherTokenErrors: 0,
  })
})

test('a nonce demanded on the first token request of every client (Auth0, Okta): one use_dpop_nonce, one retry, signed in', async ({
  driver,
}) => {
  const page = driver.page
  // No PAR: the code exchange is this tab's first request to the server.
  await signIn(page, 'bob', '&name=e2e-nonce-first')
  const c = counts(await stats())
  console.log(`[${driver.engine}] first token request of a client:`, JSON.stringify(c))
  expect(c).toMatchObject({ par: 0, code: 2, tokenNonceRetries: 1, otherTokenErrors: 0 })
  expect(await page.evaluate(() => window.auth.getUser()?.sub)).toBe('bob')
})

test('a stale nonce from an earlier page is answered with use_dpop_nonce (Duende): replaced, one retry, refreshed', async ({
  driver,
}) => {
  const page = driver.page
  await signIn(page, 'carol', '&name=e2e-nonce-stale')
  // An earlier page kept a nonce the server no longer accepts (recent by our clock). Written
  // from a page of the app's origin without the client, so no answer can overwrite it.
  await page.goto('/e2e/fixtures/harness.html')
  await page.waitFor(() => window.harnessReady === true)
  await page.evaluate(
    ({ key, as }) =>
      sessionStorage.setItem(
        key,
        JSON.stringify([[as, 'expired-nonce-from-an-earlier-page', Date.now()]]),
      ),
    { key: 'dpop-spa:e2e-nonce-stale:nonces', as: AS },
  )
  await refreshAfterReload(page, () => openApp(page, '&name=e2e-nonce-stale'))
  const c = counts(await stats())
  console.log(`[${driver.engine}] refresh with a stale stored nonce:`, JSON.stringify(c))
  // One refusal of the stale nonce, one retry with the server's; never refused again.
  expect(c.refresh).toBeGreaterThan(1)
  expect(c).toMatchObject({ refreshFailed: 1, tokenNonceRetries: 1, otherTokenErrors: 0 })
  const kept = await storedNonces(page, 'e2e-nonce-stale')
  expect(kept.map(([origin]) => origin)).toEqual([AS])
  expect(kept[0]![1]).not.toBe('expired-nonce-from-an-earlier-page')
  expect(await page.evaluate(() => window.events.filter((e) => e.type === 'error'))).toEqual([])
})

test('a server without nonces (Keycloak): no DPoP-Nonce ever, one request per step, nothing kept for it', async ({
  driver,
}) => {
  await control('config', { nonces: 'never' })
  const page = driver.page
  await signIn(page, 'dave', '&par=1&name=e2e-no-nonces')
  const login = counts(await stats())
  console.log(`[${driver.engine}] login without nonces:`, JSON.stringify(login))
  expect(login).toMatchObject({
    par: 1,
    parNonceRetries: 0,
    code: 1,
    tokenNonceRetries: 0,
    otherTokenErrors: 0,
  })
  await refreshAfterReload(page)
  const refresh = counts(await stats())
  expect(refresh.refresh).toBeGreaterThan(0)
  expect(refresh).toMatchObject({ refreshFailed: 0, tokenNonceRetries: 0, otherTokenErrors: 0 })
  expect((await storedNonces(page, 'e2e-no-nonces')).filter(([origin]) => origin === AS)).toEqual(
    [],
  )
})

test("a 10 s proof window (Keycloak, Curity) and a device clock 5 minutes slow: every proof is on the server's time", async ({
  driver,
}) => {
  await control('config', { iatWindowSec: 10 })
  const page = driver.page
  // ?clock= makes the fixture's Date.now() run 5 minutes slow (e2e/fixtures/simulate.js).
  await openApp(page, '&par=1&name=e2e-window&clock=-300000')
  expect(await page.evaluate(() => Math.round((Date.now() - new Date().getTime()) / 60_000))).toBe(
    -5,
  )
  await signInAgain(page, 'erin')
  await refreshAfterReload(page)
  const c = counts(await stats())
  console.log(`[${driver.engine}] refresh on a skewed device, 10 s window:`, JSON.stringify(c))
  expect(c.refresh).toBeGreaterThan(0)
  expect(c).toMatchObject({ otherTokenErrors: 0, proofWindowRefusals: 0 })
  expect(await page.evaluate(() => window.auth.getUser()?.sub)).toBe('erin')
  expect(await page.evaluate(() => window.events.filter((e) => e.type === 'error'))).toEqual([])
})
