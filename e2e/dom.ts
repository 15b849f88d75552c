/**
 * Reading and clicking a page through any driver (e2e/driver.ts): everything goes through
 * `evaluate`, which Playwright and WebDriver both offer, and waits on visible state by polling.
 */
import { expect } from '@playwright/test'
import type { Tab } from './driver.ts'

/** Text of the first element matching `selector` (null while there is none, or while navigating). */
export const text = (tab: Tab, selector: string): Promise<string | null> =>
  tab.evaluate((s) => document.querySelector(s)?.textContent ?? null, selector).catch(() => null)

/** Waits until the element's text is `expected` (a string, or a pattern it matches). */
export async function expectText(
  tab: Tab,
  selector: string,
  expected: string | RegExp,
): Promise<void> {
  if (typeof expected === 'string')
    await expect.poll(() => text(tab, selector), { message: selector }).toBe(expected)
  else await expect.poll(() => text(tab, selector), { message: selector }).toMatch(expected)
}

/** Clicks the element once it exists and is enabled; the click happens after the driver call returns, so a navigation it starts cannot break the call. */
export async function click(tab: Tab, selector: string): Promise<void> {
  await tab.waitFor((s) => {
    const e = document.querySelector<HTMLButtonElement>(s)
    return !!e && !e.disabled
  }, selector)
  await tab.evaluate((s) => {
    const e = document.querySelector<HTMLElement>(s)!
    setTimeout(() => e.click(), 0)
  }, selector)
}

/** Fills and submits oidc-provider's dev login form at `as`, then waits to be back on a page whose path is `back`. */
export async function submitDevLogin(
  tab: Tab,
  as: string,
  user: string,
  back: string,
): Promise<void> {
  await tab.waitFor(
    (as) => location.origin === as && !!document.querySelector('input[name=login]'),
    as,
  )
  await tab.evaluate((user) => {
    ;(document.querySelector('input[name=login]') as HTMLInputElement).value = user
    ;(document.querySelector('input[name=password]') as HTMLInputElement).value = 'any'
    // After this script has returned, so the driver does not see its page go away mid-call.
    setTimeout(
      () => (document.querySelector('button[type=submit]') as HTMLButtonElement).click(),
      0,
    )
  }, user)
  await tab.waitForUrl((u) => u.pathname === back && !u.searchParams.has('code'))
}
