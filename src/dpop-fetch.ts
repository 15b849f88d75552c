/**
 * The signed fetch: a `fetch`-compatible function that, for the configured API origins
 * only, sends `Authorization: DPoP <token>` and a fresh DPoP proof (RFC 9449 §7.1), learns
 * server nonces and clock skew, and retries once where the protocol says to.
 */
import { decodeBase64url, fromUtf8 } from './base64url.js'
import { raceAbort } from './abort.js'
import { noCors, prepareReplayable, type ReplayableRequest } from './body.js'
import { parseOAuthErrorBody, parseWWWAuthenticate, readDPoPChallenge } from './challenge.js'
import { createClock, offsetFromDate, type DPoPClock } from './clock.js'
import { DPoPError, ServerResponseError } from './errors.js'
import { jwsAlgorithmOf, type PublicJwk } from './keys.js'
import { createNonceCache, type NonceCache } from './nonces.js'
import { createProof } from './proof.js'

/** Anything that yields the key pair; the KeyStore from openKeyStore() satisfies it. */
export interface KeyPairSource {
  /**
   * Resolves to the key pair; rejects with the signal's reason when it aborts.
   * @param options - `signal` aborts the wait.
   * @returns the key pair.
   */
  load(options?: { signal?: AbortSignal }): Promise<CryptoKeyPair>
}

/** Options of {@link createDPoPFetch}. */
export interface DPoPFetchOptions {
  /** The key pair, or where to get it (called per request; a KeyStore caches it). */
  keys: KeyPairSource | CryptoKeyPair
  /**
   * The exact origins that get the access token and a proof, e.g. `'https://api.example.com'`.
   * Scheme, host and port must match; everything else passes through untouched.
   */
  origins: readonly (string | URL)[]
  /**
   * The current access token, asked once per request (not per retry). `undefined` (or
   * `''`) sends a proof without a token.
   * @param ctx - `signal`: the request's signal, for a token source that waits (a refresh).
   */
  getAccessToken?: (ctx: { signal?: AbortSignal }) => string | undefined | Promise<string | undefined>
  /**
   * Called when the API rejects the token (`error="invalid_token"`); returns a new token
   * (after a refresh) or `undefined` to give up. `ctx.token` is the token that was
   * rejected, so a token layer can tell whether it already refreshed past it. Concurrent
   * rejections of the same token share one call, which is made without a signal because it
   * serves several requests (each request still stops waiting when its own signal aborts).
   * @param ctx - `token`: the rejected token; `signal`: none for a shared call.
   */
  onInvalidToken?: (ctx: { signal?: AbortSignal; token: string }) => string | undefined | Promise<string | undefined>
  /**
   * The fetch that actually sends. Looked up at call time.
   * @default globalThis.fetch (the original one, never an installed wrapper)
   */
  fetch?: typeof fetch
  /** Clock shared with the token client. @default a new {@link createClock}() */
  clock?: DPoPClock
  /** Nonce cache shared with the token client. @default a new {@link createNonceCache}() */
  nonces?: NonceCache
  /**
   * `true` logs {@link DPoPFetchEvent}s with `console.debug`; a function receives them.
   * Events never carry the access token or a proof's signature.
   * @param event - one {@link DPoPFetchEvent}.
   * @default false
   */
  debug?: boolean | ((event: DPoPFetchEvent) => void)
}

/** Defaults of {@link DPoPFetchOptions}. */
export const DPOP_FETCH_DEFAULTS = { debug: false } as const satisfies Pick<Required<DPoPFetchOptions>, 'debug'>

/**
 * A `fetch` that signs requests to the configured origins.
 * @param input - the URL or `Request`, as for `fetch`.
 * @param init - the request options, as for `fetch`.
 * @returns the response (after at most one retry per reason).
 */
export type DPoPFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

/** Why a request was sent again. */
export type DPoPRetryReason = 'use_dpop_nonce' | 'invalid_token' | 'iat'

/**
 * What the signed fetch does, for logs and the demo. Carries the decoded proof header
 * and claims (`ath` is a hash), never the access token or the JWS signature.
 */
export type DPoPFetchEvent =
  | {
    /** A proof was signed for an attempt. */
    type: 'proof'
    /** The request method. */
    method: string
    /** The `htu`: the URL without query and fragment. */
    url: string
    /** 1 for the first send, 2+ for retries. */
    attempt: number
    /** The proof's JOSE header. */
    header: {
      /** Always `dpop+jwt`. */
      typ: string
      /** The signing algorithm, e.g. `ES256`. */
      alg: string
      /** The public key. */
      jwk: PublicJwk
    }
    /** The proof's claims (`ath` is a hash of the token, not the token). */
    claims: {
      /** Unique id of this proof. */
      jti: string
      /** HTTP method. */
      htm: string
      /** HTTP target URI without query and fragment. */
      htu: string
      /** Issued-at, seconds, server-corrected. */
      iat: number
      /** base64url SHA-256 of the access token sent. */
      ath?: string
      /** The server nonce used. */
      nonce?: string
    }
  }
  | {
    /** A server sent a new `DPoP-Nonce`. */
    type: 'nonce'
    /** The server origin. */
    origin: string
    /** The nonce. */
    nonce: string
  }
  | {
    /** The request is sent again. */
    type: 'retry'
    /** Why: nonce challenge, rejected token, rejected `iat`. */
    reason: DPoPRetryReason
    /** The `htu` of the request. */
    url: string
    /** The attempt that is about to be made. */
    attempt: number
  }
  | {
    /** A response arrived. */
    type: 'response'
    /** The request method. */
    method: string
    /** The `htu` of the request. */
    url: string
    /** The HTTP status. */
    status: number
    /** Which attempt it answers. */
    attempt: number
  }
  | {
    /** The server clock offset changed. */
    type: 'clock'
    /** Server minus local time, ms. */
    offsetMs: number
    /** Learned from a `Date` header or from an `iat` rejection. */
    source: 'date' | 'iat'
  }

// Marks installed wrappers; the value is the fetch that was there before any of ours.
const INSTALLED = Symbol('dpop-spa.installed')
type InstalledFetch = typeof fetch & { [INSTALLED]?: typeof fetch }

// Requests and init objects this module sent. An installed wrapper that sees one again (a
// custom `options.fetch` that calls the global fetch) passes it on instead of signing it twice.
const ours = new WeakSet<object>()

// RFC 6750 §2.1 b64token is narrower; any printable ASCII without spaces fits a header.
const TOKEN = /^[\x21-\x7e]+$/
// A rejected `iat` as RFC 9449 §11.1 servers word it: "iat", "issued at", time, clock.
const IAT_REJECTION = /\biat\b|issued|time|clock/i
// Old token -> its replacement, so a 401 that arrives after a refresh finished reuses it.
const REPLACED_SIZE = 4
// A URL string that is absolute whatever the base (scheme and "//" authority), so what it
// resolves to can be cached.
const ABSOLUTE = /^https?:\/\//i
const TARGET_CACHE_SIZE = 64
// Methods that `fetch` accepts as they are; anything else goes through `new Request`, which
// rejects invalid and forbidden methods with the TypeError fetch would throw.
const PLAIN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])
// Statuses that carry a Location to follow (304 is not one).
const REDIRECTS = new Set([301, 302, 303, 307, 308])

/** Where a signed request goes: resolved once, then cached for absolute URL strings. */
interface Target {
  readonly href: string
  readonly origin: string
  readonly htu: string
  /** No userinfo: `fetch` refuses URLs with credentials, so those take the `Request` path. */
  readonly plain: boolean
}

const invalid = (message: string) => new DPoPError('ERR_INVALID_ARGUMENT', message)

/**
 * @internal The fetch under any installed signed fetch, looked up at call time. The token
 * layer sends authorization-server requests through it: an installed wrapper must never add
 * an access token (or wait for a refresh) on the very requests that get tokens.
 */
export function plainFetch(custom?: typeof fetch): typeof fetch {
  return (input, init) => unwrap(custom ?? globalThis.fetch)(input, init)
}

function unwrap(f: typeof fetch): typeof fetch {
  return (f as InstalledFetch)[INSTALLED] ?? f
}

function isRequest(input: unknown): input is Request {
  return input instanceof Request || Object.prototype.toString.call(input) === '[object Request]'
}

/** @internal Exact API origins from `options.origins`; shared with the XHR guard. */
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
      throw invalid(`"options.origins" must be a non-empty array of origins like "https://api.example.com" (scheme, host, port only); got ${JSON.stringify(text.slice(0, 100))}.`)
    }
    origins.add(url.origin)
  }
  return origins
}

function isFunction(value: unknown): value is (...args: never[]) => unknown {
  return typeof value === 'function'
}

function hasMethods(value: unknown, names: readonly string[]): boolean {
  return typeof value === 'object' && value !== null && names.every((n) => isFunction((value as Record<string, unknown>)[n]))
}

function checkToken(value: unknown, from: string): string | undefined {
  if (value === undefined || value === '') return undefined
  // Never echo the value: it may be a token.
  if (typeof value !== 'string' || !TOKEN.test(value)) throw invalid(`${from} must return an access token (printable ASCII, no spaces) or undefined.`)
  return value
}

function redirected(origin: string, status: number): ServerResponseError {
  return new ServerResponseError(
    'ERR_REDIRECT',
    `The API at ${origin} answered a signed request with a redirect. dpop-spa does not follow redirects of signed ` +
      'requests: the proof names the first URL, and the token and proof must not travel to another origin. ' +
      'Call the final URL directly, or pass redirect: "manual" to handle the redirect yourself.',
    { status },
  )
}

/** Whether `response` came from `origin` itself: not redirected, and its URL (when set) on that origin. */
function answeredBy(response: Response, origin: string): boolean {
  if (response.redirected) return false
  if (!response.url) return true
  try {
    return new URL(response.url).origin === origin
  } catch {
    return false
  }
}

function hidden(origin: string, status: number, header: string): ServerResponseError {
  return new ServerResponseError(
    'ERR_CORS_HEADER_HIDDEN',
    `The API at ${origin} answered ${status}, but the browser hid its ${header} header (CORS). The API must send ` +
      '"Access-Control-Expose-Headers: WWW-Authenticate, DPoP-Nonce" (and Date, for clock correction).',
    { status },
  )
}

function unsupported(origin: string, alg: string, algs: readonly string[]): DPoPError {
  const names = algs.slice(0, 12).map((a) => a.slice(0, 20)).join(', ')
  return new DPoPError('ERR_UNSUPPORTED_ALGORITHM', `The API at ${origin} accepts DPoP proofs signed with ${names}, not ${alg}: use a key of one of those (dpop-spa signs ES256 and EdDSA).`)
}

function discard(response: Response): void {
  // Frees the connection; an error here changes nothing for the retry.
  response.body?.cancel().catch(() => undefined)
}

function decodeProof(proof: string): { header: unknown; claims: unknown } {
  const [h = '', p = ''] = proof.split('.')
  return { header: JSON.parse(fromUtf8(decodeBase64url(h))), claims: JSON.parse(fromUtf8(decodeBase64url(p))) }
}

/** Whether a built request's URL is the target that was checked (same origin and `htu`). */
function sameTarget(url: string, target: Target): boolean {
  try {
    const u = new URL(url)
    return u.origin === target.origin && u.origin + u.pathname === target.htu
  } catch {
    return false
  }
}

function resolveUrl(input: unknown): URL | undefined {
  try {
    if (isRequest(input)) return new URL(input.url)
    // The base fetch itself uses: the document's base URL, else the worker's location.
    const base = typeof document !== 'undefined' ? document.baseURI : typeof location !== 'undefined' ? location.href : undefined
    return new URL(String(input), base)
  } catch {
    return undefined
  }
}

// A response type of 'cors' is the browser's word for it; pages on another origin than the
// API get 'cors' responses, so the location test covers fetch implementations that do not set it.
function isCrossOrigin(response: Response, origin: string): boolean {
  if (response.type === 'cors') return true
  return typeof location !== 'undefined' && typeof location.origin === 'string' && location.origin !== origin
}

/**
 * Creates a signed fetch for the given API origins.
 *
 * For a request whose URL's exact origin (scheme, host, port; relative URLs resolved
 * like `fetch` does) is in `options.origins`:
 * - `Authorization: DPoP <token>` when `getAccessToken` yields a token; it replaces an
 *   `Authorization` header the caller set. Without a token, a caller's `DPoP <token>`
 *   header is kept and its token hashed into `ath`; a caller's `Bearer` header is removed
 *   (a DPoP API must never receive bearer semantics); other schemes are left alone.
 * - a fresh `DPoP` proof per attempt: new `jti`, `iat` from the server-corrected clock,
 *   `htm`/`htu` of the request, `ath` of the token sent, the origin's cached nonce. The
 *   method is upper-cased on the wire too.
 * - `DPoP-Nonce` of every response updates the nonce cache; `Date` may correct the clock.
 * - one retry each, at most, for an answer of the request's own origin that no redirect
 *   produced: `use_dpop_nonce` (a DPoP challenge on 401 or 400, or a JSON error body with a
 *   new nonce on any 4xx), `invalid_token` (after `onInvalidToken` yields a new token), and
 *   the clock: any 400 or 401 to a proof signed before the clock offset moved (this answer's
 *   `Date`, an `invalid_dpop_proof` that names iat/time/clock, or another answer meanwhile).
 *   A second challenge is returned as the Response.
 * - bodies are prepared once so a retry sends the same bytes and `Content-Type`; a
 *   `ReadableStream` body is read into memory before the first send.
 * - redirects are never followed (the proof names the first URL, and the token and proof
 *   must not travel): a redirect rejects with `ERR_REDIRECT`, unless the caller asked for
 *   `redirect: 'manual'` (the redirect response is returned) or `'error'` (fetch's
 *   TypeError). A response that was redirected anyway by a custom fetch, or whose URL is
 *   on another origin, is returned as it is: nothing is learned from it, nothing retried.
 *
 * Any other request goes to the underlying fetch with the same `input` and `init`
 * objects, untouched: no token, no proof, nothing learned from its response.
 *
 * @param options - keys, API origins, token callbacks; see {@link DPoPFetchOptions}.
 * @returns the signed fetch, with the contract of `fetch`.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` at creation for bad options (the message names
 *   the option). The returned function rejects like `fetch` (including the signal's
 *   reason on abort, at every wait), and also with: `ERR_INVALID_ARGUMENT` when a token
 *   source returns a non-token or for `mode: 'no-cors'`; `ERR_BODY_NOT_REPLAYABLE` for an
 *   already read body; `ERR_INVALID_ARGUMENT` when a Request-like input's `url` is not the
 *   URL it converts to; {@link ServerResponseError} `ERR_REDIRECT` for a redirect; {@link ServerResponseError} `ERR_CORS_HEADER_HIDDEN` when a
 *   cross-origin 401 hides `WWW-Authenticate`, or a `use_dpop_nonce` challenge hides
 *   `DPoP-Nonce`; `ERR_UNSUPPORTED_ALGORITHM` when a refusal's challenge lists `algs` that
 *   leave out the key's algorithm; errors of `keys.load()`, the token callbacks and `createProof`.
 * @example
 * ```ts
 * const keys = await openKeyStore({ name: 'my-app' })
 * const api = createDPoPFetch({ keys, origins: ['https://api.example.com'], getAccessToken: () => tokens.access })
 * const me = await (await api('https://api.example.com/me')).json()
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-7.1
 */
export function createDPoPFetch(options: DPoPFetchOptions): DPoPFetch {
  if (typeof options !== 'object' || options === null) throw invalid('"options" must be an object.')
  const { keys, getAccessToken, onInvalidToken } = options
  const keySource = hasMethods(keys, ['load']) ? (keys as KeyPairSource) : undefined
  const fixedPair = keys as CryptoKeyPair
  if (!keySource && (typeof fixedPair?.privateKey !== 'object' || typeof fixedPair.publicKey !== 'object')) {
    throw invalid('"options.keys" must be a CryptoKeyPair or a key store (an object with load()).')
  }
  const allowed = parseOrigins(options.origins)
  for (const [name, value] of [['getAccessToken', getAccessToken], ['onInvalidToken', onInvalidToken], ['fetch', options.fetch]] as const) {
    if (value !== undefined && !isFunction(value)) throw invalid(`"options.${name}" must be a function.`)
  }
  const clock = options.clock ?? createClock()
  if (!hasMethods(clock, ['now', 'offset', 'observeDate', 'adjust'])) throw invalid('"options.clock" must be a clock from createClock().')
  const nonces = options.nonces ?? createNonceCache()
  if (!hasMethods(nonces, ['get', 'set'])) throw invalid('"options.nonces" must be a nonce cache from createNonceCache().')
  const debug = options.debug ?? DPOP_FETCH_DEFAULTS.debug
  if (typeof debug !== 'boolean' && !isFunction(debug)) throw invalid('"options.debug" must be a boolean or a function.')
  const listener = debug === true ? (e: DPoPFetchEvent) => console.debug('[dpop-spa]', e) : debug || undefined
  // A logger must never break a request.
  const emit = listener && ((e: DPoPFetchEvent) => {
    try {
      listener(e)
    } catch {
      // ignored on purpose
    }
  })

  // Lazy, so a page can install or replace fetch after creating us; unwrapped, so an
  // installed wrapper never ends up calling itself.
  const underlying = (): typeof fetch => unwrap(options.fetch ?? globalThis.fetch)

  // Resolving a URL and reading document.baseURI is a good part of a request's own cost;
  // absolute URL strings resolve the same whatever the page does, so they are cached.
  const targets = new Map<string, Target | false>()
  const targetOf = (input: unknown): Target | false => {
    const cacheable = typeof input === 'string' && ABSOLUTE.test(input)
    let target = cacheable ? targets.get(input) : undefined
    if (target === undefined) {
      const url = resolveUrl(input)
      // The scheme test matters: a blob: URL's origin is that of the page that made it (WHATWG URL).
      target = !!url && allowed.has(url.origin) && /^https?:$/.test(url.protocol) &&
        { href: url.href, origin: url.origin, htu: url.origin + url.pathname, plain: !url.username && !url.password }
      if (cacheable) {
        if (targets.size >= TARGET_CACHE_SIZE) targets.delete(targets.keys().next().value as string)
        targets.set(input, target)
      }
    }
    return target
  }

  // Single flight per rejected token (§ "invalid_token"): concurrent 401s share one call.
  const renewing = new Map<string, Promise<string | undefined>>()
  const replaced = new Map<string, string>()
  const renew = (failed: string): Promise<string | undefined> => {
    const done = replaced.get(failed)
    if (done !== undefined) return Promise.resolve(done)
    let pending = renewing.get(failed)
    if (!pending) {
      const call = onInvalidToken as NonNullable<typeof onInvalidToken>
      pending = (async () => checkToken(await call({ token: failed }), '"options.onInvalidToken"'))()
      renewing.set(failed, pending)
      pending
        .then((next) => {
          if (next === undefined || next === failed) return
          replaced.set(failed, next)
          if (replaced.size > REPLACED_SIZE) replaced.delete(replaced.keys().next().value as string)
        }, () => undefined)
        .finally(() => renewing.delete(failed))
        .catch(() => undefined)
    }
    return pending
  }

  // Most requests carry the same token as the last one: it is checked, and its header value
  // built, once per token. Reusing one string also spares copying a 1 KB header value anew.
  let lastToken: string | undefined
  let lastAuthorization = ''

  return async (input, init) => {
    const target = targetOf(input)
    if (!target) return underlying()(input, init)

    const signal = init?.signal !== undefined ? init.signal ?? undefined : isRequest(input) ? input.signal : undefined
    signal?.throwIfAborted()
    const { origin, htu } = target
    const initMethod = init?.method
    // The common request (a URL, no body, a plain method) needs no Request object: building
    // one and cloning it per attempt is most of what the signed fetch would otherwise add.
    // Everything else is prepared once as a Request, so a retry sends the same bytes.
    const plain = target.plain && !isRequest(input) && init?.body == null &&
      (initMethod === undefined || (typeof initMethod === 'string' && PLAIN_METHODS.has(initMethod.toUpperCase())))
    if (plain && init?.mode === 'no-cors') throw noCors()
    // Signed requests never follow redirects (the proof names this URL; the token and proof
    // must not travel): 'manual' lets us tell a redirect apart from a network error. A caller
    // who asked for 'manual' gets the redirect response; 'error' keeps fetch's TypeError.
    const asked = init?.redirect ?? (isRequest(input) ? input.redirect : undefined)
    const redirect: RequestRedirect = asked === 'error' ? 'error' : 'manual'
    const preparing = plain ? undefined : prepareReplayable(isRequest(input) ? input : target.href, { ...init, redirect }, signal)
    const loading = keySource ? raceAbort(keySource.load(signal ? { signal } : undefined), signal) : fixedPair
    const tokenAsked = getAccessToken?.(signal ? { signal } : {})
    const pending = typeof (tokenAsked as Partial<PromiseLike<unknown>> | undefined)?.then === 'function'
    // Await only what is pending: settled values still cost turns of the microtask queue.
    const [replay, keyPair, firstToken]: [ReplayableRequest | undefined, CryptoKeyPair, unknown] =
      preparing || loading instanceof Promise || pending
        ? await Promise.all([preparing, loading, pending ? raceAbort(tokenAsked, signal) : tokenAsked])
        : [preparing, loading, tokenAsked]
    // The URL checked is the URL sent: a Request look-alike whose `url` names an API origin
    // while it converts to another URL must not get a token for the origin it names.
    if (replay && !sameTarget(replay.request.url, target)) {
      throw invalid('The request\'s "url" and the URL it is sent to differ; pass a real Request or a URL string.')
    }
    let token = firstToken === lastToken ? lastToken : checkToken(firstToken, '"options.getAccessToken"')
    const method = replay ? replay.request.method : (initMethod ?? 'GET').toUpperCase()
    // Without caller headers, each attempt sends a plain record: fetch validates and copies
    // header values once when it builds its Request, so a Headers object of ours would do it twice.
    let headers = replay ? replay.request.headers : init?.headers === undefined ? undefined : new Headers(init.headers)
    let authorization: string | undefined
    if (token !== undefined) {
      if (token !== lastToken) {
        lastToken = token
        lastAuthorization = `DPoP ${token}`
      }
      authorization = lastAuthorization
    } else {
      const callerAuth = headers?.get('Authorization')?.trim()
      const callerDPoP = callerAuth === undefined ? null : /^DPoP +([\x21-\x7e]+)$/i.exec(callerAuth)
      if (callerDPoP) token = callerDPoP[1]
      else if (callerAuth !== undefined && /^Bearer(?:\s|$)/i.test(callerAuth)) headers?.delete('Authorization')
    }

    const send = underlying()
    let retriedNonce = false
    let retriedToken = false
    let retriedClock = false
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted()
      // A retry without a Request gets headers of its own: the first attempt's were handed out.
      if (headers && !replay && attempt > 1) headers = new Headers(headers)
      const nonce = nonces.get(origin)
      const signedWithOffset = clock.offset()
      const proof = await createProof(keyPair, { htm: method, htu, accessToken: token, nonce, now: clock.now() })
      let sent: HeadersInit
      if (headers) {
        if (authorization) headers.set('Authorization', authorization)
        headers.set('DPoP', proof)
        sent = headers
      } else {
        sent = authorization ? { Authorization: authorization, DPoP: proof } : { DPoP: proof }
      }
      if (emit) {
        const { header, claims } = decodeProof(proof)
        emit({ type: 'proof', method, url: htu, attempt, header, claims } as DPoPFetchEvent)
      }
      const request = replay ? replay.attempt() : { ...init, method, headers: sent, redirect }
      ours.add(request)
      const startedAt = clock.now() - clock.offset()
      const response = await (replay ? send(request as Request) : send(target.href, request))
      const endedAt = clock.now() - clock.offset()
      const { status } = response

      if (response.type === 'opaqueredirect' || (REDIRECTS.has(status) && response.headers.has('Location'))) {
        emit?.({ type: 'response', method, url: htu, status, attempt })
        if (asked === 'manual') return response
        discard(response)
        throw redirected(origin, status)
      }
      // A fetch that followed a redirect anyway (custom or old implementations): what came
      // back is another server's word. Never learn a nonce, the time or token state from it.
      if (!answeredBy(response, origin)) {
        emit?.({ type: 'response', method, url: htu, status, attempt })
        return response
      }

      const nonceHeader = response.headers.get('DPoP-Nonce')
      if (nonceHeader !== null && nonces.set(origin, nonceHeader)) emit?.({ type: 'nonce', origin, nonce: nonceHeader })
      const dateHeader = response.headers.get('Date')
      if (clock.observeDate(dateHeader, startedAt, endedAt)) emit?.({ type: 'clock', offsetMs: clock.offset(), source: 'date' })
      emit?.({ type: 'response', method, url: htu, status, attempt })
      if (status < 400 || status > 499) return response

      // Whether to send again: at most one retry per reason (nonce, clock, token), so never a
      // loop; only answers of this very origin that no redirect produced get here (answeredBy).
      let reason: DPoPRetryReason | undefined
      // RFC 9449 §7.1 says 401; servers also send the DPoP challenge on 400 (Auth0's does).
      const wwwAuthenticate = status === 401 || status === 400 ? response.headers.get('WWW-Authenticate') : null
      const challenge = wwwAuthenticate === null ? undefined : readDPoPChallenge(parseWWWAuthenticate(wwwAuthenticate, { until: 'dpop' }))
      const freshNonce = () => {
        const fresh = nonces.get(origin)
        return fresh !== undefined && fresh !== nonce
      }
      // RFC 9449 §7.1 `algs`: a server that does not take our algorithm refuses every proof.
      const alg = challenge?.algs?.length ? jwsAlgorithmOf(keyPair.privateKey) : undefined
      if (alg && !challenge?.algs?.includes(alg)) {
        discard(response)
        throw unsupported(origin, alg, challenge?.algs ?? [])
      }
      if (!retriedNonce) {
        if (challenge?.error === 'use_dpop_nonce') {
          if (nonceHeader === null && isCrossOrigin(response, origin)) {
            discard(response)
            throw hidden(origin, status, 'DPoP-Nonce')
          }
          if (freshNonce()) reason = 'use_dpop_nonce'
        } else if (nonceHeader !== null && freshNonce()) {
          // RFC 9449 §8's shape, {"error":"use_dpop_nonce"}, from a resource server on any 4xx
          // (servers exist that send it with the wrong status). Read only with a new nonce.
          const body: unknown = await response.clone().json().catch(() => undefined)
          if (parseOAuthErrorBody(body)?.error === 'use_dpop_nonce') reason = 'use_dpop_nonce'
        }
      }
      if (!reason && !retriedClock && (status === 400 || status === 401)) {
        if (challenge?.error === 'invalid_dpop_proof' && IAT_REJECTION.test(challenge.errorDescription ?? '')) {
          // The Date of this very response says where the server's clock is, even below the Date threshold.
          const seen = offsetFromDate(dateHeader, startedAt, endedAt)
          if (seen && Math.abs(seen.offsetMs - clock.offset()) > seen.uncertaintyMs && clock.adjust(seen.offsetMs)) {
            emit?.({ type: 'clock', offsetMs: clock.offset(), source: 'iat' })
          }
        }
        // The proof was signed with an offset that has since moved materially (this response's
        // Date, or another answer meanwhile): re-sign once, whatever the status, challenge or
        // description say. Verifiers word an iat rejection in many ways, or not at all (a bare
        // 400, an invalid_dpop_proof without description). If nothing moved, a retry cannot help.
        if (clock.offset() !== signedWithOffset) reason = 'iat'
      }
      if (!reason && !retriedToken && challenge?.error === 'invalid_token' && onInvalidToken && token !== undefined) {
        const next = await raceAbort(renew(token), signal)
        if (next !== undefined && next !== token) {
          token = next
          authorization = `DPoP ${token}`
          reason = 'invalid_token'
        }
      }
      if (!reason) {
        // A cross-origin 401 with no readable challenge at all: the API's CORS hides it.
        if (status === 401 && wwwAuthenticate === null && isCrossOrigin(response, origin)) {
          discard(response)
          throw hidden(origin, status, 'WWW-Authenticate')
        }
        return response
      }
      if (reason === 'use_dpop_nonce') retriedNonce = true
      else if (reason === 'iat') retriedClock = true
      else retriedToken = true
      discard(response)
      emit?.({ type: 'retry', reason, url: htu, attempt })
    }
  }
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
export function installDPoPFetch(dpopFetch: DPoPFetch, target: { fetch: typeof fetch } = globalThis): () => void {
  if (!isFunction(dpopFetch)) throw invalid('"dpopFetch" must be a function from createDPoPFetch().')
  if (!hasMethods(target, ['fetch'])) throw invalid('"target" must be an object with a fetch function.')
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
