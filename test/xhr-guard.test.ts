// The XMLHttpRequest guard, in happy-dom (which resolves relative URLs against
// document.baseURI as browsers do). Its refusal against real axios is in e2e/http-clients.spec.ts.
import { afterEach, describe, expect, it } from 'vitest'
import { guardXMLHttpRequest } from '../src/fetch/xhr-guard.ts'
import { isDPoPError } from '../src/base/errors.ts'

const API = 'https://api.example.com'

/** A stand-in XMLHttpRequest class whose open() records what it was given. */
function recordingXHR() {
  const opened: unknown[] = []
  class XHR {
    open(_method: string, url: string | URL) {
      opened.push(url)
    }
  }
  return {
    XHR: XHR as unknown as { prototype: Pick<XMLHttpRequest, 'open'> },
    opened,
    open: (url: unknown) => (new XHR() as unknown as XMLHttpRequest).open('GET', url as string),
  }
}

function thrown(run: () => void): unknown {
  try {
    run()
  } catch (e) {
    return e
  }
  return undefined
}

const unguards: (() => void)[] = []
afterEach(() => {
  for (const u of unguards.splice(0)) u()
  document.head.querySelector('base')?.remove()
})

describe('guardXMLHttpRequest', () => {
  it('converts the URL once: an object whose toString() changes its answer opens the URL that was checked', () => {
    const { XHR, opened, open } = recordingXHR()
    unguards.push(guardXMLHttpRequest({ origins: [API], XMLHttpRequest: XHR }))
    let calls = 0
    // Harmless when checked, the API when converted again.
    const shifty = { toString: () => (++calls === 1 ? 'https://cdn.example/lib.js' : `${API}/me`) }
    open(shifty)
    expect(opened).toEqual(['https://cdn.example/lib.js'])
    expect(calls).toBe(1)
  })

  it('refuses a relative URL that resolves (against document.baseURI) to an API origin', () => {
    const base = document.createElement('base')
    base.href = `${API}/app/`
    document.head.append(base)
    expect(document.baseURI).toBe(`${API}/app/`)
    const { XHR, opened, open } = recordingXHR()
    unguards.push(guardXMLHttpRequest({ origins: [API], XMLHttpRequest: XHR }))
    for (const relative of ['/me', 'orders?id=1', '../x']) {
      expect(
        isDPoPError(
          thrown(() => open(relative)),
          'ERR_XHR_NOT_SIGNED',
        ),
        relative,
      ).toBe(true)
    }
    open('https://cdn.example/lib.js')
    expect(opened).toEqual(['https://cdn.example/lib.js'])
  })

  it('passes URL objects and other origins through, and the removed guard refuses nothing', () => {
    const { XHR, opened, open } = recordingXHR()
    const unguard = guardXMLHttpRequest({ origins: [API], XMLHttpRequest: XHR })
    expect(
      isDPoPError(
        thrown(() => open(new URL(`${API}/me`))),
        'ERR_XHR_NOT_SIGNED',
      ),
    ).toBe(true)
    open(new URL('https://cdn.example/a'))
    unguard()
    open(`${API}/me`)
    expect(opened).toEqual(['https://cdn.example/a', `${API}/me`])
  })
})
