// @vitest-environment node
// The cross-tab lock's bounded wait, with Web Locks faked at the edge (Node has none);
// the real thing runs in e2e/tokens.spec.ts ("two tabs after expiry").
import { afterEach, describe, expect, it, vi } from 'vitest'
import { withLock } from '../src/browser/tabs.ts'
import { isDPoPError } from '../src/base/errors.ts'

type Request = (
  name: string,
  options: { signal: AbortSignal },
  fn: () => Promise<unknown>,
) => Promise<unknown>

function fakeLocks(request: Request) {
  vi.stubGlobal('navigator', { locks: { request } })
}

afterEach(() => {
  vi.unstubAllGlobals()
})

describe('withLock', () => {
  it('runs fn once the lock is granted and returns its result', async () => {
    const held: string[] = []
    fakeLocks(async (name, _options, fn) => {
      held.push(name)
      return fn()
    })
    expect(await withLock('dpop-spa:x:refresh', 1000, async () => 42)).toBe(42)
    expect(held).toEqual(['dpop-spa:x:refresh'])
  })

  it('a lock another tab never releases: ERR_TIMEOUT after the bound, fn never runs', async () => {
    let ran = false
    // Never granted; rejects with the signal's reason when aborted, as Web Locks do.
    fakeLocks(
      (_name, { signal }) =>
        new Promise((_resolve, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason as Error)),
        ),
    )
    const error = await withLock('held', 50, async () => {
      ran = true
    }).catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_TIMEOUT')).toBe(true)
    expect((error as Error).message).toContain('held')
    expect(ran).toBe(false)
  })

  it('an older browser that rejects with a bare AbortError still gets ERR_TIMEOUT', async () => {
    fakeLocks(
      (_name, { signal }) =>
        new Promise((_resolve, reject) =>
          signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))),
        ),
    )
    expect(
      isDPoPError(
        await withLock('held', 50, async () => undefined).catch((e: unknown) => e),
        'ERR_TIMEOUT',
      ),
    ).toBe(true)
  })

  it('without Web Locks, fn runs directly', async () => {
    vi.stubGlobal('navigator', {})
    expect(await withLock('x', 10, async () => 'ran')).toBe('ran')
  })
})
