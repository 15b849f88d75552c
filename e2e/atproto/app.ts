/**
 * The atproto fixture (e2e/fixtures/atproto.html) against atproto's own server
 * (e2e/atproto/server.ts): the server's recorded stats, and a sign-in through atproto's own
 * React pages (sign-in, then consent) that every driver can do: the fields are filled the way
 * React sees typing (the native value setter, then an `input` event) and buttons clicked by
 * their label, all inside the page.
 */
import { expect } from '@playwright/test'
import type { Tab } from '../driver.ts'
import { PORTS } from '../ports.ts'
import {
  ATPROTO_API,
  ATPROTO_APP_ORIGIN,
  ATPROTO_APP_PATH,
  ATPROTO_AS,
  ATPROTO_USER,
  type AsRequest,
  type AtprotoStats,
} from './fixture.ts'

export const APP_URL = `${ATPROTO_APP_ORIGIN}${ATPROTO_APP_PATH}?as=${PORTS.atproto.as}&api=${PORTS.atproto.api}`
export const WHOAMI = `${ATPROTO_API}/xrpc/com.example.whoami`

const control = async (path: string, method = 'POST'): Promise<unknown> => {
  const r = await fetch(`${ATPROTO_AS}/__control/${path}`, { method })
  expect(r.ok, path).toBe(true)
  return r.json()
}

/** What the atproto server recorded since the last reset or clear. */
export const stats = (): Promise<AtprotoStats> => control('stats', 'GET') as Promise<AtprotoStats>
/** Forgets the server's log and everything in its stores (accounts stay). */
export const resetServer = async (): Promise<void> => {
  await control('reset')
}
/** Forgets the server's log only. */
export const clearLog = async (): Promise<void> => {
  await control('clear-log')
}
/** Makes the server stop honouring every access token issued so far; the refresh tokens stay valid. */
export const forgetAccessTokens = async (): Promise<number> =>
  ((await control('forget-access-tokens')) as { forgotten: number }).forgotten

/** The requests to one of the provider's endpoints (`/oauth/par`, `/oauth/token`, `/oauth/revoke`). */
export const at = (s: AtprotoStats, path: string): AsRequest[] =>
  s.as.filter((r) => r.path === path)
/** How many of these were refused with `use_dpop_nonce`. */
export const nonceChallenges = (requests: AsRequest[]): number =>
  requests.filter((r) => r.error === 'use_dpop_nonce').length

/** Request counts at the server, for the note: `PAR 2 (1 use_dpop_nonce), token 2 (1 use_dpop_nonce)`. */
export function counts(s: AtprotoStats): string {
  const part = (name: string, path: string) => {
    const rs = at(s, path)
    return `${name} ${rs.length} (${nonceChallenges(rs)} use_dpop_nonce)`
  }
  const metadata = s.as
    .filter((r) => r.path.startsWith('/.well-known/'))
    .map((r) => `${r.path} ${r.status}`)
  return [
    `discovery [${metadata.join(', ')}]`,
    part('PAR', '/oauth/par'),
    part('token', '/oauth/token'),
    part('revoke', '/oauth/revoke'),
  ].join(', ')
}

/** Opens the fixture and waits until it has started. */
export async function openApp(tab: Tab): Promise<void> {
  await tab.goto(APP_URL)
  await tab.waitFor(() => window.ready === true)
}

/** The text of `#status` once it is `expected`. */
export async function expectStatus(tab: Tab, expected: string): Promise<void> {
  await expect
    .poll(() =>
      tab
        .evaluate(() => document.getElementById('status')?.textContent ?? '')
        .catch(() => '(navigating)'),
    )
    .toBe(expected)
}

/** Clicks the enabled button whose label is `label`, once there is one; the click happens after the driver call returns. */
async function clickButton(tab: Tab, label: string): Promise<void> {
  try {
    await tab.waitFor(
      (label) =>
        [...document.querySelectorAll('button')].some(
          (b) => b.textContent?.trim() === label && !b.disabled,
        ),
      label,
      30_000,
    )
  } catch (e) {
    // Say what the page shows instead: its address, its text, its buttons.
    const seen = await tab
      .evaluate(() => ({
        url: location.href,
        text: document.body.innerText.replace(/\s+/g, ' ').slice(0, 300),
        buttons: [...document.querySelectorAll('button')].map(
          (b) => `${b.textContent?.trim() ?? ''}${b.disabled ? ' (disabled)' : ''}`,
        ),
      }))
      .catch(() => undefined)
    throw new Error(`no enabled button "${label}" on atproto's page: ${JSON.stringify(seen)}`, {
      cause: e,
    })
  }
  await tab.evaluate((label) => {
    const button = [...document.querySelectorAll('button')].find(
      (b) => b.textContent?.trim() === label && !b.disabled,
    )
    if (!button) throw new Error(`no button "${label}"`)
    setTimeout(() => button.click(), 0)
  }, label)
}

/** Signs in on atproto's own pages as the test user, consents, and waits to be back in the app, signed in. */
export async function signIn(tab: Tab): Promise<void> {
  await openApp(tab)
  await tab.evaluate(() => {
    void window.auth.login()
  })
  await tab.waitFor(
    (as) =>
      location.origin === as &&
      !!document.querySelector('input[name=username]') &&
      !!document.querySelector('input[name=password]'),
    ATPROTO_AS,
    30_000,
  )
  await tab.evaluate(
    ({ username, password }) => {
      // React keeps its own copy of an input's value: set it through the native setter and
      // announce it, as typing would.
      const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value')?.set
      for (const [name, value] of [
        ['username', username],
        ['password', password],
      ] as const) {
        const input = document.querySelector<HTMLInputElement>(`input[name=${name}]`)
        if (!input || !setter) throw new Error(`no input ${name}`)
        setter.call(input, value)
        input.dispatchEvent(new Event('input', { bubbles: true }))
      }
    },
    { username: ATPROTO_USER.account.handle, password: ATPROTO_USER.password },
  )
  await clickButton(tab, 'Sign in')
  await clickButton(tab, 'Authorize')
  await tab.waitForUrl(
    (u) =>
      u.origin === ATPROTO_APP_ORIGIN &&
      u.pathname === ATPROTO_APP_PATH &&
      !u.searchParams.has('code'),
    30_000,
  )
  await tab.waitFor(() => window.ready === true)
  await expectStatus(tab, 'signed-in')
}

/** The key's thumbprint as the client sees it. */
export const thumbprint = (tab: Tab): Promise<string> =>
  tab.evaluate(() => window.auth.keys.thumbprint())

/** Calls the resource server `n` times at once through the client; returns the statuses. */
export const callApi = (tab: Tab, n = 1): Promise<number[]> =>
  tab.evaluate(
    ({ url, n }) =>
      Promise.all(Array.from({ length: n }, () => window.auth.fetch(url).then((r) => r.status))),
    { url: WHOAMI, n },
  )

/** The access token's `exp` (seconds), read from the JWT the client holds. */
export const accessTokenExp = (tab: Tab): Promise<number> =>
  tab.evaluate(async () => {
    const token = await window.auth.getAccessToken()
    if (token === undefined) throw new Error('no access token')
    return JSON.parse(atob(token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/')))
      .exp as number
  })
