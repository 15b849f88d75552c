// The demo as a user sees it, in every installed engine, against the real authorization server
// (oidc-provider) and the verifying API (jose) that demo/run.ts starts: sign in through the dev
// login form, call the API, reload, watch a refresh, replay the stolen token, sign out. What the
// page says is checked against what the servers saw, so a page that only claims success fails.
// The page is read and clicked through `evaluate`, which every engine's driver offers.
import type { AuthServerStats } from '../demo/auth-server/recorder.ts'
import { expect, test, type Tab } from './driver.ts'
import { PORTS } from './ports.ts'
const DEMO_PORTS = PORTS.demo

const SPA = `http://localhost:${DEMO_PORTS.spa}/`
const AS = `http://localhost:${DEMO_PORTS.as}`
const API = `http://localhost:${DEMO_PORTS.api}`
const JKT = /^[A-Za-z0-9_-]{43}$/

async function asStats(): Promise<AuthServerStats> {
  const response = await fetch(`${AS}/__control/stats`)
  expect(response.ok).toBe(true)
  return (await response.json()) as AuthServerStats
}

// ---------------------------------------------------------------- the page, read and clicked in the page

interface Query {
  selector: string
  hasText?: string
}
const q = (selector: string, hasText?: string): Query =>
  hasText === undefined ? { selector } : { selector, hasText }

/** Texts of the elements matching the query (null while the page is navigating). */
const texts = (tab: Tab, query: Query) =>
  tab
    .evaluate(
      ({ selector, hasText }) =>
        Array.from(document.querySelectorAll(selector))
          .map((e) => e.textContent ?? '')
          .filter((t) => hasText === undefined || t.includes(hasText)),
      query,
    )
    .catch(() => null)
const count = async (tab: Tab, query: Query) => (await texts(tab, query))?.length ?? -1
const text = async (tab: Tab, selector: string) => (await texts(tab, q(selector)))?.[0] ?? null
const attribute = (tab: Tab, selector: string, name: string) =>
  tab
    .evaluate(
      ({ selector, name }) => document.querySelector(selector)?.getAttribute(name) ?? null,
      { selector, name },
    )
    .catch(() => null)

/** Clicks the first enabled element matching the query once there is one (after the driver call has returned). */
async function click(tab: Tab, query: Query): Promise<void> {
  await tab.waitFor(
    ({ selector, hasText }) =>
      Array.from(document.querySelectorAll<HTMLButtonElement>(selector)).some(
        (e) => (hasText === undefined || (e.textContent ?? '').includes(hasText)) && !e.disabled,
      ),
    query,
  )
  await tab.evaluate(({ selector, hasText }) => {
    const el = Array.from(document.querySelectorAll<HTMLButtonElement>(selector)).find(
      (e) => (hasText === undefined || (e.textContent ?? '').includes(hasText)) && !e.disabled,
    )
    setTimeout(() => el?.click(), 0)
  }, query)
}

const expectText = (tab: Tab, selector: string, expected: string | RegExp) =>
  typeof expected === 'string'
    ? expect.poll(() => text(tab, selector)).toBe(expected)
    : expect.poll(() => text(tab, selector)).toMatch(expected)
const expectCount = (tab: Tab, query: Query, n: number, timeout?: number) =>
  expect.poll(() => count(tab, query), timeout ? { timeout } : {}).toBe(n)
const expectSome = (tab: Tab, query: Query, timeout?: number) =>
  expect.poll(() => count(tab, query), timeout ? { timeout } : {}).toBeGreaterThan(0)

const thumbprintOf = async (tab: Tab): Promise<string> => {
  await expectText(tab, '#thumbprint', JKT)
  return (await text(tab, '#thumbprint')) ?? ''
}

/** The sign-in page state: the authorization server's login form or consent, or back at the SPA signed in. */
const where = (tab: Tab) =>
  tab
    .evaluate(() => {
      if (document.querySelector('input[name="login"]')) return 'form'
      if (
        Array.from(document.querySelectorAll('button')).some((b) =>
          /continue/i.test(b.textContent ?? ''),
        )
      )
        return 'consent'
      if (document.querySelector('#status[data-state="signed-in"]')) return 'back'
      return 'loading'
    })
    .catch(() => 'loading')

/** From the SPA's Sign in button to the SPA again: the oidc-provider dev login form, and consent if it is shown. */
async function signIn(tab: Tab, login: string, shot?: string): Promise<void> {
  await click(tab, q('#sign-in'))
  // The authorization server remembers the browser's session: the second sign-in may come straight back.
  // Navigations through the authorization server: 15 s, not the default 5, on a loaded machine.
  await expect.poll(() => where(tab), { timeout: 15_000 }).toMatch(/^(form|back)$/)
  if ((await where(tab)) === 'form') {
    expect(new URL(await tab.url()).origin).toBe(AS)
    await tab.evaluate((login) => {
      ;(document.querySelector('input[name="login"]') as HTMLInputElement).value = login
      ;(document.querySelector('input[name="password"]') as HTMLInputElement).value =
        'any password works'
    }, login)
    if (shot) await tab.screenshot(shot)
    await click(tab, q('button[type="submit"]'))
    await expect.poll(() => where(tab), { timeout: 15_000 }).toMatch(/^(consent|back)$/)
    if ((await where(tab)) === 'consent') await click(tab, q('button', 'ontinue'))
  }
  await expectText(tab, '#status[data-state="signed-in"]', 'Signed in')
  expect(new URL(await tab.url()).origin + '/').toBe(SPA)
  // code and state are gone from the address bar.
  expect(new URL(await tab.url()).search).toBe('')
}

test('the demo: DPoP-bound sign-in, API calls, reload, refresh, stolen token refused, sign-out rotates the key', async ({
  driver,
}, testInfo) => {
  test.setTimeout(120_000)
  const page = driver.page
  const shot = (name: string) => testInfo.outputPath(name)
  expect((await fetch(`${AS}/__control/reset`, { method: 'POST' })).ok).toBe(true)

  // Every Content-Security-Policy violation on the SPA is recorded: the demo runs under the
  // strict policy docs/threat-model.md recommends, and must not need anything it forbids. Playwright
  // engines record from before the first script (init script, console); every engine records
  // from the moment the page has loaded (the listener below), and runs the negative control.
  const cspConsole: string[] = []
  driver.playwright?.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspConsole.push(m.text())
  })
  await driver.playwright?.addInitScript(() => {
    const w = window as unknown as { cspViolations: string[] }
    w.cspViolations = []
    document.addEventListener('securitypolicyviolation', (e) =>
      w.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} from ${e.sourceFile}`),
    )
  })
  const recordViolations = () =>
    page.evaluate(() => {
      const w = window as unknown as { cspViolations?: string[] }
      if (w.cspViolations) return
      w.cspViolations = []
      document.addEventListener('securitypolicyviolation', (e) =>
        w.cspViolations!.push(`${e.violatedDirective} ${e.blockedURI} from ${e.sourceFile}`),
      )
    })

  // 1. Signed out; the key already exists and its private half is not extractable.
  const csp = (await fetch(SPA)).headers.get('content-security-policy') ?? ''
  expect(csp).toContain("script-src 'self'")
  expect(csp).toContain("default-src 'none'")
  expect(csp).not.toContain('unsafe-inline')
  await page.goto(SPA)
  await expectText(page, '#status', 'Signed out')
  const firstKey = await thumbprintOf(page)
  await expectText(page, '#extractable', 'false')
  await expectText(page, '#export-attempt', /refused: InvalidAccessError/)
  await page.screenshot(shot('01-signed-out.png'))

  // 2. Sign in through the authorization server's login form.
  await signIn(page, 'alice', shot('02-login-form.png'))
  await expectText(page, '#user', /^alice/)
  expect(await thumbprintOf(page)).toBe(firstKey)
  expect(await text(page, '#token-binding')).toContain(`cnf.jkt = ${firstKey}`)
  await expectCount(page, q('#log li[data-kind="login"]'), 1)
  // At the server: the authorization request carried dpop_jkt of this key, and the code
  // exchange (after one use_dpop_nonce) issued tokens bound to it.
  let stats = await asStats()
  expect(stats.authorizations.map((a) => a.dpopJkt)).toEqual([firstKey])
  expect(stats.tokenRequests.authorization_code).toEqual({ succeeded: 1, failed: 1 })
  expect(stats.tokenErrors.use_dpop_nonce).toBe(1)
  expect(stats.issuedTokens.filter((t) => t.kind === 'AccessToken').map((t) => t.jkt)).toEqual([
    firstKey,
  ])
  await expectSome(page, q('#log li[data-kind="as"]', 'use_dpop_nonce'))
  await page.screenshot(shot('03-signed-in.png'))

  // 3. GET and POST: 200 from the API, which checked the proof and cnf.jkt itself.
  await click(page, q('#call-get'))
  await expectCount(
    page,
    q('#log li[data-kind="response"][data-status="200"]', `GET ${API}/api/me`),
    1,
  )
  await expect.poll(() => attribute(page, '#result', 'data-status')).toBe('200')
  expect(await text(page, '#result')).toContain(`"jkt": "${firstKey.slice(0, 24)}`)
  // The API demanded its nonce first (RFC 9449 §9): one challenge, one retry.
  await expectCount(page, q('#log li[data-kind="retry"]', 'use_dpop_nonce'), 1)
  await expectCount(page, q('#log li[data-kind="request"]', '/api/me (attempt 2)'), 1)
  await click(page, q('#call-post'))
  await expectCount(
    page,
    q('#log li[data-kind="response"][data-status="200"]', `POST ${API}/api/echo`),
    1,
  )
  await expect.poll(() => text(page, '#result')).toContain('"method": "POST"')
  expect(await text(page, '#result')).toContain('"hello": "DPoP"')
  // The decoded proof is in the log, with its claims.
  await click(page, q('#log li[data-kind="request"] details summary'))
  const proof = await page.evaluate(() => {
    const item = Array.from(document.querySelectorAll('#log li[data-kind="request"]')).find((li) =>
      (li.textContent ?? '').includes('POST'),
    )
    return { text: item?.querySelector('details pre')?.textContent ?? '' }
  })
  expect(proof.text).toContain('"typ": "dpop+jwt"')
  expect(proof.text).toContain('"htm": "POST"')
  expect(proof.text).toContain(`"htu": "${API}/api/echo"`)
  await page.screenshot(shot('04-api-calls.png'))

  // 4. Reload: the session and the key survive (IndexedDB), the key is the same one.
  await page.reload()
  await expectText(page, '#status', 'Signed in')
  expect(await thumbprintOf(page)).toBe(firstKey)
  await expectText(page, '#user', /^alice/)
  await page.screenshot(shot('05-after-reload.png'))

  // 5. Keep calling until the short-lived access token is refreshed.
  await click(page, q('#auto-call'))
  await expectSome(page, q('#log li[data-kind="refresh"]'), 30_000)
  await click(page, q('#auto-call'))
  await expect
    .poll(() =>
      page.evaluate(() => (document.getElementById('auto-call') as HTMLInputElement).checked),
    )
    .toBe(false)
  await expectSome(page, q('#log li[data-kind="as"]', 'grant_type=refresh_token'))
  stats = await asStats()
  expect(stats.tokenRequests.refresh_token?.succeeded).toBeGreaterThanOrEqual(1)
  // Every access token issued, the refreshed ones too, is bound to the same key.
  expect(new Set(stats.issuedTokens.map((t) => t.jkt))).toEqual(new Set([firstKey]))
  expect(await text(page, '#token-binding')).toContain(`cnf.jkt = ${firstKey}`)
  await page.screenshot(shot('06-refreshed.png'))

  // 6. The stolen token, from a client without the key: refused, and the API says why.
  await click(page, q('#replay'))
  await expectCount(page, q('#replay-result li'), 2)
  const replayed = await page.evaluate(() =>
    Array.from(document.querySelectorAll('#replay-result li')).map((li) => ({
      status: li.getAttribute('data-status'),
      check: li.getAttribute('data-check'),
      text: li.textContent ?? '',
    })),
  )
  expect(replayed[0]).toMatchObject({
    status: '401',
    check: 'jkt',
    text: expect.stringContaining('bound to a different key'),
  })
  expect(replayed[1]).toMatchObject({
    status: '401',
    check: 'scheme',
    text: expect.stringContaining('requires the DPoP authorization scheme'),
  })
  await expectCount(page, q('#log li[data-kind="thief"][data-status="401"]'), 2)
  await page.screenshot(shot('07-stolen-token-refused.png'))

  // 7. Sign out: the refresh token is revoked at the server and the key is replaced.
  const revokedBefore = stats.revocations.succeeded
  await click(page, q('#sign-out'))
  await expectText(page, '#status', 'Signed out')
  await expect.poll(() => text(page, '#thumbprint')).not.toBe(firstKey)
  const secondKey = await thumbprintOf(page)
  expect(secondKey).not.toBe(firstKey)
  // Revocation follows the local sign-out (best effort), so the server may count it a moment later.
  await expect
    .poll(async () => (await asStats()).revocations.succeeded)
    .toBeGreaterThan(revokedBefore)
  stats = await asStats()
  await page.screenshot(shot('08-signed-out-new-key.png'))

  // 8. The next sign-in binds the new key.
  await signIn(page, 'alice')
  await recordViolations()
  expect(await thumbprintOf(page)).toBe(secondKey)
  expect(await text(page, '#token-binding')).toContain(`cnf.jkt = ${secondKey}`)
  stats = await asStats()
  expect(stats.authorizations.map((a) => a.dpopJkt)).toEqual([firstKey, secondKey])
  await click(page, q('#call-get'))
  await expect.poll(() => text(page, '#result')).toContain(`"jkt": "${secondKey.slice(0, 24)}`)
  await page.screenshot(shot('09-signed-in-new-key.png'))

  expect(stats.serverErrors).toEqual([])
  // Playwright's script for Firefox (WebDriver BiDi) adds a <style> from an eval'd frame: the
  // driver's, not the app's (the app cannot eval under this policy), so it is left out there.
  const driverNoise = (v: string) =>
    driver.engine === 'firefox' && /^style-src-elem inline from .*(> |%3E%20)eval$/.test(v)
  expect(
    (
      await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)
    ).filter((v) => !driverNoise(v)),
  ).toEqual([])
  expect(
    cspConsole.filter((m) => !(driver.engine === 'firefox' && /style-src-elem/.test(m))),
  ).toEqual([])
  // Negative control: the policy is enforced, not only sent. An injected inline script does not run.
  expect(
    await page.evaluate(() => {
      const script = document.createElement('script')
      script.textContent = 'window.inlineRan = true'
      document.head.append(script)
      return (window as unknown as { inlineRan?: boolean }).inlineRan === true
    }),
  ).toBe(false)
  await expect
    .poll(() =>
      page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations.join()),
    )
    .toMatch(/script-src/)
  // No token or signature ever reached the page: its text holds no JWT.
  expect(await text(page, 'body')).not.toMatch(
    /eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/,
  )
})
