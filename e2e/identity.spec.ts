// Who signed in, against oidc-provider: a DPoP-signed UserInfo call when the ID token lacks the
// profile claims asked for (oidc-provider puts them only in UserInfo), and an app's verifyUser
// refusing a user before anything is stored. Counted at the server.
import { expect, test } from './driver.ts'
import {
  expectStatus,
  openApp,
  resetAuthServer,
  signIn,
  stats,
  submitLoginForm,
  thumbprint,
} from './token-app.ts'
import type { AuthServerStats } from '../demo/auth-server/recorder.ts'
import { PORTS } from './ports.ts'

/** The token stack's server without a default resource: its access tokens are for UserInfo. */
const IDENTITY = `http://localhost:${PORTS.identityAs}`
const identityStats = async (): Promise<AuthServerStats> =>
  (await fetch(`${IDENTITY}/__control/stats`)).json() as Promise<AuthServerStats>

test.beforeEach(async () => {
  await resetAuthServer()
  expect((await fetch(`${IDENTITY}/__control/reset`, { method: 'POST' })).ok).toBe(true)
})

test('an ID token without the profile claims: one UserInfo call signed by the bound key fills the user', async ({
  driver,
}) => {
  const page = driver.page
  const query = `?as=${PORTS.identityAs}&api=${PORTS.api}&name=e2e-identity&scope=${encodeURIComponent('openid profile offline_access')}&resource=none&verify=accept`
  await signIn(page, 'alice', query, IDENTITY)
  const jkt = await thumbprint(page)
  expect(await page.evaluate(() => window.auth.getUser())).toMatchObject({
    sub: 'alice',
    name: 'alice',
    iss: IDENTITY,
  })
  // verifyUser saw the user with the UserInfo claims, and the issuer, before the session was stored.
  expect(await page.evaluate(() => window.verified)).toEqual([
    { user: expect.objectContaining({ sub: 'alice', name: 'alice' }), issuer: IDENTITY },
  ])
  const s = await identityStats()
  // A nonce challenge may come first (oidc-provider requires nonces); one success, signed by the key.
  expect(s.userinfo.filter((u) => u.status === 200)).toEqual([
    { at: expect.any(Number), status: 200, scheme: 'DPoP', proofJkt: jkt },
  ])
  expect(s.userinfo.every((u) => u.scheme === 'DPoP' && u.proofJkt === jkt)).toBe(true)
  expect(await page.evaluate(() => window.events.filter((e) => e.type === 'error'))).toEqual([])
})

test('verifyUser refuses the user: handleRedirect fails with ERR_USER_REFUSED, nothing is stored, the refresh token is revoked with a proof', async ({
  driver,
}) => {
  const page = driver.page
  await openApp(page, '&name=e2e-refused&verify=refuse')
  await page.evaluate(() => {
    void window.auth.login({ prompt: 'login' })
  })
  await submitLoginForm(page, 'mallory')
  await expectStatus(page, 'signed-out')
  expect(await page.evaluate(() => window.redirectError?.code)).toBe('ERR_USER_REFUSED')
  expect(await page.evaluate(() => window.verified.map((v) => v.user?.sub))).toEqual(['mallory'])
  expect(await page.evaluate(() => window.events.filter((e) => e.type === 'login'))).toEqual([])
  const jkt = await thumbprint(page)
  const s = await stats()
  expect(s.revocationProofs.filter((p) => p.outcome === 'revoked')).toEqual([
    { at: expect.any(Number), proofJkt: jkt, tokenJkt: jkt, outcome: 'revoked' },
  ])
  // A reload is still signed out.
  await openApp(page, '&name=e2e-refused&verify=refuse')
  expect(await page.evaluate(() => window.auth.isAuthenticated())).toBe(false)
})
