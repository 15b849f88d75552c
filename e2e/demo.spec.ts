// The demo as a user sees it, against the real authorization server (oidc-provider) and the
// verifying API (jose) that demo/run.ts starts: sign in through the dev login form, call the
// API, reload, watch a refresh, replay the stolen token, sign out. What the page says is
// checked against what the servers saw, so a page that only claims success fails.
import { expect, test, type Page } from '@playwright/test'
import { DEMO_PORTS } from '../playwright.config.ts'

const SPA = `http://localhost:${DEMO_PORTS.spa}/`
const AS = `http://localhost:${DEMO_PORTS.as}`
const API = `http://localhost:${DEMO_PORTS.api}`
const JKT = /^[A-Za-z0-9_-]{43}$/

interface AsStats {
  tokenRequests: Record<string, { succeeded: number; failed: number }>
  tokenErrors: Record<string, number>
  authorizations: { dpopJkt: string | null }[]
  issuedTokens: { kind: string; grantType: string | null; jkt: string | null }[]
  revocations: { succeeded: number; failed: number }
  serverErrors: unknown[]
}

async function asStats(page: Page): Promise<AsStats> {
  const response = await page.request.get(`${AS}/__control/stats`)
  expect(response.ok()).toBe(true)
  return (await response.json()) as AsStats
}

const thumbprintOf = async (page: Page): Promise<string> => {
  await expect(page.locator('#thumbprint')).toHaveText(JKT)
  return (await page.locator('#thumbprint').textContent()) ?? ''
}

/** From the SPA's Sign in button to the SPA again: the oidc-provider dev login form, and consent if it is shown. */
async function signIn(page: Page, login: string, shot?: string): Promise<void> {
  await page.locator('#sign-in').click()
  const form = page.locator('input[name="login"]')
  const back = page.locator('#status[data-state="signed-in"]')
  // The authorization server remembers the browser's session: the second sign-in may come straight back.
  await expect(form.or(back)).toBeVisible()
  if (await form.isVisible()) {
    expect(new URL(page.url()).origin).toBe(AS)
    await form.fill(login)
    await page.locator('input[name="password"]').fill('any password works')
    if (shot) await page.screenshot({ fullPage: true, path: shot })
    await page.locator('button[type="submit"]').click()
    const consent = page.getByRole('button', { name: /continue/i })
    await expect(consent.or(back)).toBeVisible()
    if (await consent.isVisible()) await consent.click()
  }
  await expect(back).toHaveText('Signed in')
  expect(new URL(page.url()).origin + '/').toBe(SPA)
  // code and state are gone from the address bar.
  expect(new URL(page.url()).search).toBe('')
}

test('the demo: DPoP-bound sign-in, API calls, reload, refresh, stolen token refused, sign-out rotates the key', async ({ page }, testInfo) => {
  test.setTimeout(120_000)
  const shot = (name: string) => testInfo.outputPath(name)
  await page.request.post(`${AS}/__control/reset`)

  // Every Content-Security-Policy violation on the SPA is recorded: the demo runs under the
  // strict policy the README recommends, and must not need anything it forbids.
  const cspConsole: string[] = []
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspConsole.push(m.text()) })
  await page.addInitScript(() => {
    const w = window as unknown as { cspViolations: string[] }
    w.cspViolations = []
    document.addEventListener('securitypolicyviolation', (e) => w.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`))
  })

  // 1. Signed out; the key already exists and its private half is not extractable.
  const spaResponse = await page.goto(SPA)
  const csp = spaResponse?.headers()['content-security-policy'] ?? ''
  expect(csp).toContain("script-src 'self'")
  expect(csp).toContain("default-src 'none'")
  expect(csp).not.toContain('unsafe-inline')
  await expect(page.locator('#status')).toHaveText('Signed out')
  const firstKey = await thumbprintOf(page)
  await expect(page.locator('#extractable')).toHaveText('false')
  await expect(page.locator('#export-attempt')).toHaveText(/refused: InvalidAccessError/)
  await page.screenshot({ fullPage: true, path: shot('01-signed-out.png') })

  // 2. Sign in through the authorization server's login form.
  await signIn(page, 'alice', shot('02-login-form.png'))
  await expect(page.locator('#user')).toHaveText(/^alice/)
  expect(await thumbprintOf(page)).toBe(firstKey)
  await expect(page.locator('#token-binding')).toContainText(`cnf.jkt = ${firstKey}`)
  await expect(page.locator('#log li[data-kind="login"]')).toHaveCount(1)
  // At the server: the authorization request carried dpop_jkt of this key, and the code
  // exchange (after one use_dpop_nonce) issued tokens bound to it.
  let stats = await asStats(page)
  expect(stats.authorizations.map((a) => a.dpopJkt)).toEqual([firstKey])
  expect(stats.tokenRequests.authorization_code).toEqual({ succeeded: 1, failed: 1 })
  expect(stats.tokenErrors.use_dpop_nonce).toBe(1)
  expect(stats.issuedTokens.filter((t) => t.kind === 'AccessToken').map((t) => t.jkt)).toEqual([firstKey])
  await expect(page.locator('#log li[data-kind="as"]', { hasText: 'use_dpop_nonce' }).first()).toBeVisible()
  await page.screenshot({ fullPage: true, path: shot('03-signed-in.png') })

  // 3. GET and POST: 200 from the API, which checked the proof and cnf.jkt itself.
  await page.locator('#call-get').click()
  await expect(page.locator('#log li[data-kind="response"][data-status="200"]', { hasText: `GET ${API}/api/me` })).toHaveCount(1)
  await expect(page.locator('#result')).toHaveAttribute('data-status', '200')
  await expect(page.locator('#result')).toContainText(`"jkt": "${firstKey.slice(0, 24)}`)
  // The API demanded its nonce first (RFC 9449 §9): one challenge, one retry.
  await expect(page.locator('#log li[data-kind="retry"]', { hasText: 'use_dpop_nonce' })).toHaveCount(1)
  await expect(page.locator('#log li[data-kind="request"]', { hasText: '/api/me (attempt 2)' })).toHaveCount(1)
  await page.locator('#call-post').click()
  await expect(page.locator('#log li[data-kind="response"][data-status="200"]', { hasText: `POST ${API}/api/echo` })).toHaveCount(1)
  await expect(page.locator('#result')).toContainText('"method": "POST"')
  await expect(page.locator('#result')).toContainText('"hello": "DPoP"')
  // The decoded proof is in the log, with its claims.
  const proofDetails = page.locator('#log li[data-kind="request"]', { hasText: 'POST' }).first().locator('details')
  await proofDetails.locator('summary').click()
  await expect(proofDetails.locator('pre')).toContainText('"typ": "dpop+jwt"')
  await expect(proofDetails.locator('pre')).toContainText('"htm": "POST"')
  await expect(proofDetails.locator('pre')).toContainText(`"htu": "${API}/api/echo"`)
  await page.screenshot({ fullPage: true, path: shot('04-api-calls.png') })

  // 4. Reload: the session and the key survive (IndexedDB), the key is the same one.
  await page.reload()
  await expect(page.locator('#status')).toHaveText('Signed in')
  expect(await thumbprintOf(page)).toBe(firstKey)
  await expect(page.locator('#user')).toHaveText(/^alice/)
  await page.screenshot({ fullPage: true, path: shot('05-after-reload.png') })

  // 5. Keep calling until the short-lived access token is refreshed.
  await page.locator('#auto-call').check()
  await expect(page.locator('#log li[data-kind="refresh"]').first()).toBeVisible({ timeout: 30_000 })
  await page.locator('#auto-call').uncheck()
  await expect(page.locator('#log li[data-kind="as"]', { hasText: 'grant_type=refresh_token' }).first()).toBeVisible()
  stats = await asStats(page)
  expect(stats.tokenRequests.refresh_token?.succeeded).toBeGreaterThanOrEqual(1)
  // Every access token issued, the refreshed ones too, is bound to the same key.
  expect(new Set(stats.issuedTokens.map((t) => t.jkt))).toEqual(new Set([firstKey]))
  await expect(page.locator('#token-binding')).toContainText(`cnf.jkt = ${firstKey}`)
  await page.screenshot({ fullPage: true, path: shot('06-refreshed.png') })

  // 6. The stolen token, from a client without the key: refused, and the API says why.
  await page.locator('#replay').click()
  const replayed = page.locator('#replay-result li')
  await expect(replayed).toHaveCount(2)
  await expect(replayed.nth(0)).toHaveAttribute('data-status', '401')
  await expect(replayed.nth(0)).toHaveAttribute('data-check', 'jkt')
  await expect(replayed.nth(0)).toContainText('bound to a different key')
  await expect(replayed.nth(1)).toHaveAttribute('data-status', '401')
  await expect(replayed.nth(1)).toHaveAttribute('data-check', 'scheme')
  await expect(replayed.nth(1)).toContainText('requires the DPoP authorization scheme')
  await expect(page.locator('#log li[data-kind="thief"][data-status="401"]')).toHaveCount(2)
  await page.screenshot({ fullPage: true, path: shot('07-stolen-token-refused.png') })

  // 7. Sign out: the refresh token is revoked at the server and the key is replaced.
  const revokedBefore = stats.revocations.succeeded
  await page.locator('#sign-out').click()
  await expect(page.locator('#status')).toHaveText('Signed out')
  await expect(page.locator('#thumbprint')).not.toHaveText(firstKey)
  const secondKey = await thumbprintOf(page)
  expect(secondKey).not.toBe(firstKey)
  // Revocation follows the local sign-out (best effort), so the server may count it a moment later.
  await expect.poll(async () => (await asStats(page)).revocations.succeeded).toBeGreaterThan(revokedBefore)
  stats = await asStats(page)
  await page.screenshot({ fullPage: true, path: shot('08-signed-out-new-key.png') })

  // 8. The next sign-in binds the new key.
  await signIn(page, 'alice')
  expect(await thumbprintOf(page)).toBe(secondKey)
  await expect(page.locator('#token-binding')).toContainText(`cnf.jkt = ${secondKey}`)
  stats = await asStats(page)
  expect(stats.authorizations.map((a) => a.dpopJkt)).toEqual([firstKey, secondKey])
  await page.locator('#call-get').click()
  await expect(page.locator('#result')).toContainText(`"jkt": "${secondKey.slice(0, 24)}`)
  await page.screenshot({ fullPage: true, path: shot('09-signed-in-new-key.png') })

  expect(stats.serverErrors).toEqual([])
  expect(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)).toEqual([])
  expect(cspConsole).toEqual([])
  // Negative control: the policy is enforced, not only sent. An injected inline script does not run.
  expect(await page.evaluate(() => {
    const script = document.createElement('script')
    script.textContent = 'window.inlineRan = true'
    document.head.append(script)
    return (window as unknown as { inlineRan?: boolean }).inlineRan === true
  })).toBe(false)
  await expect.poll(() => page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations.join())).toMatch(/script-src/)
  // No token or signature ever reached the page: its text holds no JWT.
  expect(await page.locator('body').textContent()).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/)
})
