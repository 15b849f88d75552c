/**
 * Installing a signed fetch as `window.fetch`, and finding the fetch under any installed
 * one: a signed fetch always sends through the original, so installing twice never signs
 * twice, and authorization-server requests never get a token.
 */
import { invalidArgument } from '../base/errors.js'
import type { DPoPFetch } from './dpop-fetch.js'

// Marks installed wrappers; the value is the fetch that was there before any of ours.
const INSTALLED = Symbol('dpop-spa.installed')
type InstalledFetch = typeof fetch & { [INSTALLED]?: typeof fetch }

// Requests and init objects this module sent. An installed wrapper that sees one again (a
// custom `options.fetch` that calls the global fetch) passes it on instead of signing it twice.
const ours = new WeakSet<object>()

/** @internal Marks a request (or init object) as one a signed fetch sends. */
export function markSent(request: object): void {
  ours.add(request)
}

/**
 * @internal The fetch under any installed signed fetch, looked up at call time. The token
 * layer sends authorization-server requests through it: an installed wrapper must never add
 * an access token (or wait for a refresh) on the very requests that get tokens.
 */
export function uninstalledFetch(custom?: typeof fetch): typeof fetch {
  return (input, init) => unwrap(custom ?? globalThis.fetch)(input, init)
}

/** @internal The fetch under any installed signed fetch. */
export function unwrap(f: typeof fetch): typeof fetch {
  return (f as InstalledFetch)[INSTALLED] ?? f
}

/**
 * Makes `target.fetch` (default: `globalThis.fetch`) sign calls to the signed fetch's
 * origins; every other call goes to the previous fetch unchanged. Returns a function that
 * restores the previous fetch.
 *
 * Installing again (the same or another signed fetch) does not sign twice: installed
 * wrappers are marked, and a signed fetch always sends through the original fetch, never
 * through a wrapper. The last install wins. If something else wrapped `target.fetch`
 * after us, restoring leaves that wrapper in place and turns ours into a pass-through.
 *
 * @param dpopFetch - a signed fetch from {@link createDPoPFetch}.
 * @param target - the object whose `fetch` is replaced; `globalThis` by default.
 * @returns the function that restores the previous fetch.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when `dpopFetch` is not a function or
 *   `target.fetch` is not a function.
 * @example
 * ```ts
 * const uninstall = installDPoPFetch(createDPoPFetch({ keys, origins: ['https://api.example.com'], getAccessToken }))
 * await fetch('https://api.example.com/me') // signed
 * uninstall()
 * ```
 */
export function installDPoPFetch(
  dpopFetch: DPoPFetch,
  target: { fetch: typeof fetch } = globalThis,
): () => void {
  if (typeof dpopFetch !== 'function')
    throw invalidArgument('"dpopFetch" must be a function from createDPoPFetch().')
  if (typeof target !== 'object' || target === null || typeof target.fetch !== 'function')
    throw invalidArgument('"target" must be an object with a fetch function.')
  const previous = target.fetch
  const original = unwrap(previous)
  let active = true
  const wrapper = ((input: string | URL | Request, init?: RequestInit) => {
    if (!active) return previous(input, init)
    // One of our own signed requests coming back through a custom fetch: send it, don't re-sign.
    if (ours.has(input as object) || ours.has(init as object)) return original(input, init)
    return dpopFetch(input, init)
  }) as InstalledFetch
  Object.defineProperty(wrapper, INSTALLED, { value: original })
  target.fetch = wrapper
  return () => {
    if (!active) return
    active = false
    if (target.fetch === wrapper) target.fetch = previous
  }
}
