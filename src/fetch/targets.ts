/**
 * Which requests get a token and a proof, and which responses may teach us anything: the
 * security rule of the signed fetch, on its own so it can be reviewed on its own. Exact
 * origins (scheme, host, port) only; relative URLs resolved as `fetch` resolves them; the
 * URL checked is the URL sent; an answer counts only when it came from that origin.
 * Internal.
 */
import { setBounded } from '../base/bounded-map.js'
import { invalidArgument } from '../base/errors.js'

/** @internal Where a signed request goes: resolved once, then cached for absolute URL strings. */
export interface Target {
  readonly href: string
  readonly origin: string
  /** The proof's `htu`: the URL without query and fragment. */
  readonly htu: string
  /** No userinfo, so `fetch` takes `href` as it is; a URL with credentials takes the `Request` path. */
  readonly fetchableUrl: boolean
}

// A URL string that is absolute whatever the base (scheme and "//" authority), so what it
// resolves to can be cached.
const ABSOLUTE = /^https?:\/\//i
const TARGET_CACHE_SIZE = 64

/** @internal A `Request`, from this realm or another (an iframe's). */
export function isRequest(input: unknown): input is Request {
  return input instanceof Request || Object.prototype.toString.call(input) === '[object Request]'
}

/**
 * @internal Exact API origins from `options.origins`; shared with the XHR guard.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` for anything but a non-empty list of origins.
 */
export function parseOrigins(value: unknown): ReadonlySet<string> {
  const origins = new Set<string>()
  for (const item of Array.isArray(value) && value.length ? (value as unknown[]) : [undefined]) {
    const text = typeof item === 'string' || item instanceof URL ? String(item) : ''
    let url: URL | undefined
    try {
      url = new URL(text)
    } catch {
      // reported below
    }
    // Exactly scheme, host and port: no wildcard, credentials, path, query or fragment.
    if (!url || !/^https?:$/.test(url.protocol) || /[*?#@]/.test(text) || url.pathname !== '/') {
      throw invalidArgument(
        `"options.origins" must be a non-empty array of origins like "https://api.example.com" (scheme, host, port only); got ${JSON.stringify(text.slice(0, 100))}.`,
      )
    }
    origins.add(url.origin)
  }
  return origins
}

function resolveUrl(input: unknown): URL | undefined {
  try {
    if (isRequest(input)) return new URL(input.url)
    // The base fetch itself uses: the document's base URL, else the worker's location.
    const base =
      typeof document !== 'undefined'
        ? document.baseURI
        : typeof location !== 'undefined'
          ? location.href
          : undefined
    return new URL(String(input), base)
  } catch {
    return undefined
  }
}

/**
 * @internal The target of `input` when its exact origin is allowed, else `false`.
 * Resolving a URL and reading `document.baseURI` is a good part of a request's own cost;
 * absolute URL strings resolve the same whatever the page does, so they are cached.
 */
export function createTargets(allowed: ReadonlySet<string>): (input: unknown) => Target | false {
  const cache = new Map<string, Target | false>()
  return (input) => {
    const cacheable = typeof input === 'string' && ABSOLUTE.test(input)
    let target = cacheable ? cache.get(input) : undefined
    if (target === undefined) {
      const url = resolveUrl(input)
      // The scheme test matters: a blob: URL's origin is that of the page that made it (WHATWG URL).
      target = !!url &&
        allowed.has(url.origin) &&
        /^https?:$/.test(url.protocol) && {
          href: url.href,
          origin: url.origin,
          htu: url.origin + url.pathname,
          fetchableUrl: !url.username && !url.password,
        }
      if (cacheable) setBounded(cache, input, target, TARGET_CACHE_SIZE)
    }
    return target
  }
}

/**
 * @internal Whether a built request's URL is the target that was checked (same origin and
 * `htu`): a `Request` look-alike whose `url` names an API origin while it converts to
 * another URL must not get a token for the origin it names.
 */
export function isSameTarget(url: string, target: Target): boolean {
  try {
    const u = new URL(url)
    return u.origin === target.origin && u.origin + u.pathname === target.htu
  } catch {
    return false
  }
}

/**
 * @internal Whether `response` came from `origin` itself: not redirected, and its URL (when
 * set) on that origin. Nonces, the time and token state are learned only from such answers.
 */
export function answeredBy(response: Response, origin: string): boolean {
  if (response.redirected) return false
  if (!response.url) return true
  try {
    return new URL(response.url).origin === origin
  } catch {
    return false
  }
}
