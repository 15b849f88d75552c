/**
 * The client fixture (e2e/fixtures/client.html) against the token stack (e2e/token-stack.ts):
 * addresses, the authorization server's recorded stats, and a sign-in through oidc-provider's
 * dev login form that every driver can do (the form is filled and submitted in the page).
 */
import { expect } from '@playwright/test'
import type { AuthServerStats } from '../demo/auth-server/recorder.ts'
import type { Tab } from './driver.ts'
import { submitDevLogin } from './dom.ts'
import { PORTS } from './ports.ts'

export const AS = `http://localhost:${PORTS.as}`
export const API = `http://localhost:${PORTS.api}`
export const CLIENT = `/e2e/fixtures/client.html?as=${new URL(AS).port}&api=${new URL(API).port}`
/** The stricter server of e2e/token-stack.ts: PAR required, ES256 proofs only. */
export const STRICT = `http://localhost:${PORTS.strictAs}`

/** What the authorization server recorded since its last reset. */
export const stats = async (): Promise<AuthServerStats> =>
  (await fetch(`${AS}/__control/stats`)).json() as Promise<AuthServerStats>
export const refreshes = (s: AuthServerStats): number =>
  s.tokenRequests.refresh_token?.succeeded ?? 0

/** Access token lifetime of the token stack (e2e/token-stack.ts), seconds. */
export const ACCESS_TOKEN_TTL = 6

/** Clean authorization server: no stats, no sessions; answers DPoP, rotates every refresh token, loses no answer. */
export async function resetAuthServer(): Promise<void> {
  for (const [path, body] of [
    ['reset', undefined],
    [
      'config',
      {
        answerBearer: false,
        accessTokenTtl: ACCESS_TOKEN_TTL,
        revocationDelayMs: 0,
        nonces: 'always',
        iatWindowSec: 0,
        tokenType: '',
        refreshFault: null,
        refreshRotation: 'always',
      },
    ],
  ] as const) {
    const r = await fetch(`${AS}/__control/${path}`, {
      method: 'POST',
      ...(body
        ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
        : {}),
    })
    expect(r.ok, path).toBe(true)
  }
}

/** Changes the token stack's authorization server for this test (undone by {@link resetAuthServer}). */
export async function configureAuthServer(change: Record<string, unknown>): Promise<void> {
  const r = await fetch(`${AS}/__control/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(change),
  })
  expect(r.ok, 'config').toBe(true)
}

/**
 * Opens the client fixture and waits until it has started. `query` is added to the default
 * URL (`&name=…`, `&simulate=…`), or replaces its query when it starts with `?`.
 */
export async function openApp(tab: Tab, query = ''): Promise<void> {
  await tab.goto(query.startsWith('?') ? `/e2e/fixtures/client.html${query}` : `${CLIENT}${query}`)
  await tab.waitFor(() => window.ready === true)
}

/** The text of `#status` once it is `expected`. */
export async function expectStatus(tab: Tab, expected: string): Promise<void> {
  // A navigation in progress makes evaluate throw: look again.
  await expect
    .poll(() =>
      tab
        .evaluate(() => document.getElementById('status')?.textContent ?? '')
        .catch(() => '(navigating)'),
    )
    .toBe(expected)
}

/** Fills and submits oidc-provider's dev login form; waits for the way back to the client fixture. */
export async function submitLoginForm(tab: Tab, user: string, as = AS): Promise<void> {
  await submitDevLogin(tab, as, user, '/e2e/fixtures/client.html')
  await tab.waitFor(() => window.ready === true)
}

/** Signs in through oidc-provider's dev login, as a user would. */
export async function signIn(tab: Tab, user = 'alice', query = '', as = AS): Promise<void> {
  await openApp(tab, query)
  // prompt=login: the server shows its login form even when it still has a session cookie.
  await tab.evaluate(() => {
    void window.auth.login({ prompt: 'login' })
  })
  await submitLoginForm(tab, user, as)
  await expectStatus(tab, 'signed-in')
}

/** The key's thumbprint as the client sees it. */
export const thumbprint = (tab: Tab): Promise<string> =>
  tab.evaluate(() => window.auth.keys.thumbprint())
