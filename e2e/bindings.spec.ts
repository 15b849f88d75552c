// The UI bindings, dpop-spa/react (e2e/fixtures/react-app.ts, StrictMode) and dpop-spa/vue
// (e2e/fixtures/vue-app.ts), each in a real page served by Vite against oidc-provider and the
// verifying API: login, an API call, a second tab logging out (the first re-renders as signed
// out), and signing in again (the second re-renders as signed in). One scenario, both bindings.
import type { AuthServerStats } from '../demo/auth-server/recorder.ts'
import { expect, test, type Tab } from './driver.ts'
import { click, expectText, submitDevLogin } from './dom.ts'
import { AS, API, resetAuthServer } from './token-app.ts'

/** Code exchanges at the server, and why any was refused. */
const codeExchanges = async () => {
  const s = (await (await fetch(`${AS}/__control/stats`)).json()) as AuthServerStats
  return {
    ...(s.tokenRequests.authorization_code ?? { succeeded: 0, failed: 0 }),
    errors: s.tokenErrors,
  }
}

test.beforeEach(async () => {
  await resetAuthServer()
})

for (const binding of ['react', 'vue'] as const) {
  const fixture = `/e2e/fixtures/${binding}.html`
  const APP = `${fixture}?as=${new URL(AS).port}&api=${new URL(API).port}`

  /** Clicks the app's Sign in button and goes through oidc-provider's dev login as `user`. */
  const signIn = async (page: Tab, user: string): Promise<void> => {
    await click(page, '#login')
    await submitDevLogin(page, AS, user, fixture)
    await expectText(page, '#status', 'signed-in')
    await expectText(page, '#user', user)
  }

  test(`${binding}: login, API call, logout in a second tab re-renders the first, login again re-renders the second`, async ({
    driver,
  }) => {
    const page = driver.page
    await page.goto(APP)
    await expectText(page, '#status', 'signed-out')

    await signIn(page, 'alice')
    // handleRedirect ran once (under StrictMode's double effects, for React): one code exchange (after the
    // token endpoint's one use_dpop_nonce challenge; a second exchange of the same code would
    // add an invalid_grant or another challenge), onRedirect called once with the returnTo.
    expect(await codeExchanges()).toEqual({
      succeeded: 1,
      failed: 1,
      errors: { use_dpop_nonce: 1 },
    })
    await expectText(page, '#error', '')
    expect(await page.evaluate(() => window.redirects)).toEqual([
      { returnTo: '/after-login', user: expect.objectContaining({ sub: 'alice' }) },
    ])
    expect(new URL(await page.url()).searchParams.has('code')).toBe(false)
    await expectText(page, '#event', 'login')

    await click(page, '#call')
    await expectText(page, '#result', '200 alice')

    // A second tab shares the session, then signs out: the first tab re-renders, without a reload.
    const second = await driver.newTab()
    await second.goto(APP)
    await expectText(second, '#status', 'signed-in')
    await expectText(second, '#user', 'alice')
    const rendersBefore = binding === 'react' ? await page.evaluate(() => window.renders) : 0
    await click(second, '#logout')
    await expectText(second, '#status', 'signed-out')
    await expectText(page, '#status', 'signed-out')
    await expectText(page, '#user', '')
    await expectText(page, '#event', 'logout:other-tab')
    if (binding === 'react')
      expect(await page.evaluate(() => window.renders)).toBeGreaterThan(rendersBefore)
    // Signed out means signed out: the API call now goes without a token and is refused.
    await click(page, '#call')
    await expectText(page, '#result', /^401/)

    // Sign in again in the first tab (as someone else): the second tab re-renders as signed in.
    await signIn(page, 'bob')
    await expectText(second, '#status', 'signed-in')
    await expectText(second, '#user', 'bob')
    // The second exchange reuses the nonce this tab kept from the first (sessionStorage): no challenge.
    expect(await codeExchanges()).toEqual({
      succeeded: 2,
      failed: 1,
      errors: { use_dpop_nonce: 1 },
    })
    await click(page, '#call')
    await expectText(page, '#result', '200 bob')
    await click(second, '#call')
    await expectText(second, '#result', '200 bob')
    // Page errors as the page recorded them (e2e/fixtures/simulate.js), in every engine.
    expect(await page.evaluate(() => window.pageErrors)).toEqual([])
    expect(await second.evaluate(() => window.pageErrors)).toEqual([])
  })
}

test('react: useDPoP outside a provider, or a provider without config or client: a typed DPoPError', async ({
  driver,
}) => {
  const page = driver.page
  await page.goto('/e2e/fixtures/react.html?misuse=1')
  await expect.poll(() => page.evaluate(() => window.misuse?.length)).toBe(2)
  expect(await page.evaluate(() => window.misuse)).toEqual([
    'DPoPError ERR_INVALID_ARGUMENT',
    'DPoPError ERR_INVALID_ARGUMENT',
  ])
})

test('vue: useDPoP in an app without the plugin: a typed DPoPError', async ({ driver }) => {
  const page = driver.page
  await page.goto('/e2e/fixtures/vue.html?misuse=1')
  await expect.poll(() => page.evaluate(() => window.misuse)).toBe('DPoPError ERR_INVALID_ARGUMENT')
})
