/**
 * The XMLHttpRequest guard. dpop-spa does not sign `XMLHttpRequest` (see the README,
 * "XMLHttpRequest"): a request that cannot be retried with a fresh proof, that may be
 * synchronous, whose progress events and body cannot be replayed, is not one we can make
 * DPoP-correct. What we can do is make the gap loud: with the guard installed, an XHR to an
 * API origin fails at `open()` with a typed error instead of leaving the page without a
 * proof (axios's default adapter in browsers is XHR).
 */
import { DPoPError, invalidArgument } from '../base/errors.js'
import { parseOrigins } from './targets.js'

/** Options of {@link guardXMLHttpRequest}. */
export interface XHRGuardOptions {
  /** The API origins (as given to the signed fetch): an `XMLHttpRequest` to one of them is refused. */
  origins: readonly (string | URL)[]
  /**
   * The `XMLHttpRequest` class to guard.
   * @default globalThis.XMLHttpRequest
   */
  XMLHttpRequest?: {
    /** The prototype whose `open` is wrapped. */
    prototype: Pick<XMLHttpRequest, 'open'>
  }
}

type Open = (this: XMLHttpRequest, method: string, url: string | URL, ...rest: unknown[]) => void

/**
 * Makes `XMLHttpRequest.prototype.open` throw for URLs on the given API origins, so code
 * that still uses XHR (axios's default browser adapter, older libraries) fails with
 * `ERR_XHR_NOT_SIGNED` instead of sending a request without a DPoP proof. Requests to every
 * other origin are untouched. Returns the function that removes the guard. Relative URLs
 * resolve against `document.baseURI`, as XHR resolves them.
 *
 * Where the error surfaces: `open()` throws synchronously; axios's XHR adapter calls
 * `open()` inside its promise, so the axios call rejects with this `DPoPError`.
 *
 * @param options - the API origins; see {@link XHRGuardOptions}.
 * @returns a function that removes this guard (a guard installed after it stays in place).
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when `options.origins` is not a non-empty array of
 *   origins, or there is no `XMLHttpRequest` to guard. The installed `open()` throws
 *   `ERR_XHR_NOT_SIGNED` for an API origin.
 * @example
 * ```ts
 * const unguard = guardXMLHttpRequest({ origins: ['https://api.example.com'] })
 * await axios.get('https://api.example.com/me') // rejects: DPoPError ERR_XHR_NOT_SIGNED
 * const api = axios.create({ adapter: 'fetch', env: { fetch: auth.fetch } }) // signed instead
 * ```
 */
export function guardXMLHttpRequest(options: XHRGuardOptions): () => void {
  if (typeof options !== 'object' || options === null)
    throw invalidArgument('"options" must be an object with "origins".')
  const origins = parseOrigins(options.origins)
  const proto = (
    options.XMLHttpRequest ??
    (globalThis as { XMLHttpRequest?: XHRGuardOptions['XMLHttpRequest'] }).XMLHttpRequest
  )?.prototype as { open: Open } | undefined
  if (typeof proto?.open !== 'function')
    throw invalidArgument(
      'There is no XMLHttpRequest to guard here; pass "options.XMLHttpRequest".',
    )
  const previous = proto.open
  let active = true
  const open: Open = function (this: XMLHttpRequest, method, url, ...rest) {
    if (!active) return previous.call(this, method, url, ...rest)
    // Converted once: the URL checked is the URL opened, whatever its toString() does next.
    const href = String(url)
    let origin: string | undefined
    try {
      origin = new URL(href, globalThis.document?.baseURI ?? globalThis.location?.href).origin
    } catch {
      // An invalid URL: XHR itself throws SyntaxError below.
    }
    if (origin !== undefined && origins.has(origin)) {
      throw new DPoPError(
        'ERR_XHR_NOT_SIGNED',
        `An XMLHttpRequest to ${origin} was refused: it would carry no DPoP proof. Send it through the signed fetch (axios >= 1.12: adapter 'fetch' with env.fetch).`,
      )
    }
    previous.call(this, method, href, ...rest)
  }
  proto.open = open
  return () => {
    if (!active) return
    active = false
    if (proto.open === open) proto.open = previous
  }
}
