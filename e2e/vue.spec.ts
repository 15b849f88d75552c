// dpop-spa/vue in a real Vue page (e2e/fixtures/vue-app.ts, served by Vite) against
// oidc-provider and the verifying API: login, an API call, a second tab logging out (the
// first re-renders as signed out), and signing in again (the second re-renders as signed in).
import { expect, test, type Page } from '@playwright/test'

const AS = `http://localhost:${process.env.DPOP_TEST_AS_PORT ?? 5420}`
const API = `http://localhost:${process.env.DPOP_TEST_API_PORT ?? 5421}`
const APP = `/e2e/fixtures/vue.html?as=${new URL(AS).port}&api=${new URL(API).port}`

interface Stats { tokenRequests: Record<string, { succeeded: number; failed: number }>; tokenErrors: Record<string, number> }
/** Code exchanges at the server, and why any was refused. */
const codeExchanges = async (page: Page) => {
  const s = (await (await page.request.get(`${AS}/__control/stats`)).json()) as Stats
  return { ...(s.tokenRequests.authorization_code ?? { succeeded: 0, failed: 0 }), errors: s.tokenErrors }
}

test.beforeEach(async ({ request }) => {
  await request.post(`${AS}/__control/reset`)
  await request.post(`${AS}/__control/config`, { data: { answerBearer: false } })
})

/** Clicks the app's Sign in button and goes through oidc-provider's dev login as `user`. */
async function signIn(page: Page, user: string): Promise<void> {
  await Promise.all([page.waitForURL(`${AS}/**`), page.click('#login')])
  await page.fill('input[name=login]', user)
  await page.fill('input[name=password]', 'any')
  await Promise.all([page.waitForURL('**/e2e/fixtures/vue.html**'), page.click('button[type=submit]')])
  await expect(page.locator('#status')).toHaveText('signed-in')
  await expect(page.locator('#user')).toHaveText(user)
}

test('login, API call, logout in a second tab re-renders the first, login again re-renders the second', async ({ page, context }) => {
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(APP)
  await expect(page.locator('#status')).toHaveText('signed-out')

  await signIn(page, 'alice')
  // handleRedirect ran once: one code exchange (after the
  // token endpoint's one use_dpop_nonce challenge; a second exchange of the same code would
  // add an invalid_grant or another challenge), onRedirect called once with the returnTo.
  expect(await codeExchanges(page)).toEqual({ succeeded: 1, failed: 1, errors: { use_dpop_nonce: 1 } })
  await expect(page.locator('#error')).toHaveText('')
  expect(await page.evaluate(() => (window as any).redirects)).toEqual([{ returnTo: '/after-login', user: expect.objectContaining({ sub: 'alice' }) }])
  expect(new URL(page.url()).searchParams.has('code')).toBe(false)
  await expect(page.locator('#event')).toHaveText('login')

  await page.click('#call')
  await expect(page.locator('#result')).toHaveText('200 alice')

  // A second tab shares the session, then signs out: the first tab re-renders, without a reload.
  const second = await context.newPage()
  await second.goto(APP)
  await expect(second.locator('#status')).toHaveText('signed-in')
  await expect(second.locator('#user')).toHaveText('alice')
  await second.click('#logout')
  await expect(second.locator('#status')).toHaveText('signed-out')
  await expect(page.locator('#status')).toHaveText('signed-out')
  await expect(page.locator('#user')).toHaveText('')
  await expect(page.locator('#event')).toHaveText('logout:other-tab')
  // Signed out means signed out: the API call now goes without a token and is refused.
  await page.click('#call')
  await expect(page.locator('#result')).toHaveText(/^401/)

  // Sign in again in the first tab (as someone else): the second tab re-renders as signed in.
  await signIn(page, 'bob')
  await expect(second.locator('#status')).toHaveText('signed-in')
  await expect(second.locator('#user')).toHaveText('bob')
  expect(await codeExchanges(page)).toEqual({ succeeded: 2, failed: 2, errors: { use_dpop_nonce: 2 } })
  await page.click('#call')
  await expect(page.locator('#result')).toHaveText('200 bob')
  await second.click('#call')
  await expect(second.locator('#result')).toHaveText('200 bob')
  expect(errors).toEqual([])
})

test('useDPoP in an app without the plugin: a typed DPoPError', async ({ page }) => {
  await page.goto('/e2e/fixtures/vue.html?misuse=1')
  await expect.poll(() => page.evaluate(() => (window as any).misuse)).toBe('DPoPError ERR_INVALID_ARGUMENT')
})
