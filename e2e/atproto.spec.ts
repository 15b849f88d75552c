// createDPoPClient against atproto's OAuth server, unmodified (@atproto/oauth-provider, the
// server every Bluesky/atproto PDS runs; e2e/atproto/server.ts), in every engine: its own
// sign-in and consent pages, PAR with its nonce retry, the code exchange, identity without an
// ID token, API calls on a second origin checked by `provider.authenticateRequest()`, both
// kinds of refresh, and a logout the server must honour. Every count is read at the server.
// The server needs Node >= 22.19 (e2e/atproto/runtime.ts); without one these tests are skipped
// with the reason, which `npm run test:browser` also prints.
import { expect, test } from './driver.ts'
import {
  accessTokenExp,
  at,
  callApi,
  clearLog,
  counts,
  expectStatus,
  forgetAccessTokens,
  nonceChallenges,
  resetServer,
  signIn,
  stats,
  thumbprint,
  WHOAMI,
} from './atproto/app.ts'
import { ATPROTO_AS, ATPROTO_USER } from './atproto/fixture.ts'
import { atprotoRuntime } from './atproto/runtime.ts'

const runtime = atprotoRuntime()
test.skip('missing' in runtime, 'missing' in runtime ? runtime.missing : '')

const DID = ATPROTO_USER.account.did

test.beforeEach(async () => {
  await resetServer()
})

test("login: PAR with its nonce retry, atproto's own sign-in and consent pages, a code exchange bound to the key, API calls on a second origin", async ({
  driver,
}) => {
  const page = driver.page
  await signIn(page)
  const jkt = await thumbprint(page)
  const s = await stats()
  console.log(`[${driver.engine}] atproto login: ${counts(s)}`)
  // PAR: pushed with a proof from the key; the first push has no nonce and is refused with
  // use_dpop_nonce, the retry with the server's nonce is accepted.
  const par = at(s, '/oauth/par')
  expect(par.map((r) => r.status)).toEqual([400, 201])
  expect(par[0]).toMatchObject({ error: 'use_dpop_nonce', nonce: false, jkt })
  expect(par[1]).toMatchObject({ nonce: true, jkt })
  // The code exchange: DPoP-bound to the same key; the server issued exactly one grant.
  const token = at(s, '/oauth/token')
  expect(token.at(-1)).toMatchObject({ status: 200, jkt, nonce: true })
  expect(token.every((r) => r.jkt === jkt)).toBe(true)
  expect(s.grantsIssued).toEqual(['authorization_code'])
  expect(s.grants).toEqual([
    expect.objectContaining({
      did: DID,
      jkt,
      clientId: await page.evaluate(() => window.clientId),
    }),
  ])
  // The code and state are gone from the address bar.
  const url = new URL(await page.url())
  expect(
    [...url.searchParams.keys()].filter((k) => k === 'code' || k === 'state' || k === 'iss'),
  ).toEqual([])
  // The resource server (a second origin) checks each call with authenticateRequest: the
  // first is refused for want of its nonce, retried once, and then every call is accepted.
  await clearLog()
  expect(await callApi(page, 1)).toEqual([200])
  expect(await callApi(page, 3)).toEqual([200, 200, 200])
  const api = (await stats()).api.filter((r) => r.path === '/xrpc/com.example.whoami')
  expect(api[0]).toMatchObject({ status: 401, error: 'use_dpop_nonce', nonce: false })
  expect(api.slice(1)).toEqual(
    Array(4).fill(expect.objectContaining({ status: 200, sub: DID, jkt, nonce: true })),
  )
  expect(await page.evaluate(() => window.pageErrors)).toEqual([])
})

test("identity without an ID token: getUser() is the account's DID (the token response's sub) and the issuer", async ({
  driver,
}) => {
  const page = driver.page
  await signIn(page)
  // atproto sends no ID token; the token response carries `sub`, the account's DID.
  expect(await page.evaluate(() => window.auth.getUser())).toMatchObject({
    sub: DID,
    iss: ATPROTO_AS,
  })
  expect(await page.evaluate(() => document.getElementById('user')?.textContent)).toBe(DID)
  expect(await page.evaluate(() => window.events.find((e) => e.type === 'login'))).toMatchObject({
    type: 'login',
    user: { sub: DID },
  })
})

test('refresh: ahead of expiry, and after the server refuses the access token (invalid_token); each rotates the refresh token once', async ({
  driver,
}) => {
  const page = driver.page
  await signIn(page)
  const jkt = await thumbprint(page)
  expect(await callApi(page)).toEqual([200])
  // Proactive: once the token is inside its refresh window (a quarter of its 12 s life),
  // the next call refreshes first and never sends the old token.
  const exp = await accessTokenExp(page)
  await expect
    .poll(() => Date.now(), { timeout: 20_000, intervals: [250] })
    .toBeGreaterThan(exp * 1000 - 2000)
  await clearLog()
  expect(await callApi(page, 3)).toEqual([200, 200, 200])
  let s = await stats()
  console.log(`[${driver.engine}] atproto first refresh (same page): ${counts(s)}`)
  expect(s.grantsIssued).toEqual(['refresh_token'])
  expect(at(s, '/oauth/token').at(-1)).toMatchObject({ status: 200, jkt })
  expect(s.api.filter((r) => r.status !== 200)).toEqual([])
  expect(await accessTokenExp(page)).toBeGreaterThan(exp)
  // Reactive: the server ends the access token early; the call is refused with
  // invalid_token, the client refreshes once and retries, and the caller sees a 200.
  expect(await forgetAccessTokens()).toBe(1)
  await clearLog()
  expect(await callApi(page)).toEqual([200])
  s = await stats()
  console.log(`[${driver.engine}] atproto refresh after invalid_token: ${counts(s)}`)
  expect(s.api.map((r) => [r.status, r.error])).toEqual([
    [401, 'invalid_token'],
    [200, undefined],
  ])
  expect(s.grantsIssued).toEqual(['refresh_token'])
  expect(s.grants).toEqual([expect.objectContaining({ did: DID, jkt, refreshTokens: 3 })])
  expect(await page.evaluate(() => window.events.filter((e) => e.type === 'refresh').length)).toBe(
    2,
  )
  expect(await page.evaluate(() => window.auth.isAuthenticated())).toBe(true)
})

test('nonces outlive the login redirect and a reload: no use_dpop_nonce at the token endpoint, at the code exchange or at the first refresh', async ({
  driver,
}) => {
  const page = driver.page
  await signIn(page)
  // The nonce was learned at PAR, before the redirect to the sign-in pages.
  let s = await stats()
  expect(nonceChallenges(at(s, '/oauth/par'))).toBe(1)
  expect(nonceChallenges(at(s, '/oauth/token'))).toBe(0)
  // After a reload, the first refresh (provoked by the server refusing the access token)
  // reuses the nonce learned before the reload.
  await page.reload()
  await page.waitFor(() => window.ready === true)
  await expectStatus(page, 'signed-in')
  await forgetAccessTokens()
  await clearLog()
  expect(await callApi(page)).toEqual([200])
  s = await stats()
  console.log(`[${driver.engine}] atproto first refresh after a reload: ${counts(s)}`)
  expect(s.grantsIssued).toEqual(['refresh_token'])
  expect(at(s, '/oauth/token').map((r) => r.status)).toEqual([200])
})

test("logout revokes at atproto's server: the revocation is signed by the bound key, and the old refresh token and access token are refused", async ({
  driver,
}) => {
  const page = driver.page
  await signIn(page)
  const oldJkt = await thumbprint(page)
  expect(await callApi(page)).toEqual([200])
  // Keep the old key pair and tokens in page memory, to try them after logout.
  await page.evaluate(async () => {
    const w = window
    w.oldPair = await w.auth.keys.load()
    w.oldAccess = (await w.auth.getAccessToken()) ?? ''
    w.oldRefresh = await new Promise((resolve, reject) => {
      const req = indexedDB.open('dpop-spa:e2e-atproto:session')
      req.onsuccess = () => {
        const get = req.result.transaction('keyval').objectStore('keyval').get('session')
        get.onsuccess = () => {
          resolve(get.result.refreshToken)
          req.result.close()
        }
        get.onerror = () => reject(get.error)
      }
      req.onerror = () => reject(req.error)
    })
  })
  expect(
    await page.evaluate(
      () => typeof window.oldRefresh === 'string' && window.oldRefresh.length > 0,
    ),
  ).toBe(true)
  await clearLog()
  await page.evaluate(() => window.auth.logout())
  // Signed out locally, with a new key, whatever the server did.
  expect(await page.evaluate(() => window.auth.isAuthenticated())).toBe(false)
  expect(await thumbprint(page)).not.toBe(oldJkt)
  // At the server: a revocation request signed by the old (bound) key was accepted, and the
  // token store no longer holds the grant. (atproto answers 200 even when it refuses an
  // unsigned revocation, RFC 7009 §2.2, so only the server can tell.)
  await expect
    .poll(async () => at(await stats(), '/oauth/revoke').some((r) => r.status === 200), {
      timeout: 10_000,
    })
    .toBe(true)
  const s = await stats()
  const revoke = at(s, '/oauth/revoke')
  console.log(
    `[${driver.engine}] atproto logout: ${counts(s)}; revocations ${JSON.stringify(revoke)}`,
  )
  expect(revoke.filter((r) => r.failure)).toEqual([])
  expect(revoke.at(-1)).toMatchObject({ status: 200, jkt: oldJkt, nonce: true })
  expect(s.grants).toEqual([])
  // The old refresh token, replayed with the old key and a fresh nonce, is refused.
  const replay = await page.evaluate(
    async ({ as }) => {
      const w = window
      const meta = await (await fetch(`${as}/.well-known/oauth-authorization-server`)).json()
      let nonce: string | undefined
      for (let attempt = 0; attempt < 2; attempt++) {
        const proof = await w.dpop.createProof(w.oldPair, {
          htm: 'POST',
          htu: meta.token_endpoint,
          nonce,
        })
        const r = await fetch(meta.token_endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', DPoP: proof },
          body: new URLSearchParams({
            grant_type: 'refresh_token',
            refresh_token: w.oldRefresh,
            client_id: w.clientId,
          }),
        })
        const body = await r.json()
        if (body.error === 'use_dpop_nonce') {
          nonce = r.headers.get('dpop-nonce') ?? undefined
          continue
        }
        return { status: r.status, error: body.error }
      }
      return { status: 0, error: 'nonce loop' }
    },
    { as: ATPROTO_AS },
  )
  expect(replay).toEqual({ status: 400, error: 'invalid_grant' })
  // The old access token, with a proof from the old key, is refused at the resource server.
  const call = await page.evaluate(
    async ({ url }) => {
      const w = window
      let nonce: string | undefined
      for (let attempt = 0; attempt < 2; attempt++) {
        const proof = await w.dpop.createProof(w.oldPair, {
          htm: 'GET',
          htu: url,
          nonce,
          accessToken: w.oldAccess,
        })
        const r = await fetch(url, {
          headers: { Authorization: `DPoP ${w.oldAccess}`, DPoP: proof },
        })
        const body = await r.json()
        if (body.error === 'use_dpop_nonce') {
          nonce = r.headers.get('dpop-nonce') ?? undefined
          continue
        }
        return { status: r.status, error: body.error }
      }
      return { status: 0, error: 'nonce loop' }
    },
    { url: WHOAMI },
  )
  expect(call).toEqual({ status: 401, error: 'invalid_token' })
})
