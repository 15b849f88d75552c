/**
 * The signed fetch: a `fetch`-compatible function that, for the configured API origins
 * only, sends `Authorization: DPoP <token>` and a fresh DPoP proof (RFC 9449 §7.1), learns
 * server nonces and clock skew, and retries once where the protocol says to.
 */
import { raceAbort } from '../base/abort.js'
import { setBounded } from '../base/bounded-map.js'
import { defaultClock, type DPoPClock } from '../server-state/clock.js'
import { invalidArgument } from '../base/errors.js'
import { defaultNonceCache, type NonceCache } from '../server-state/nonces.js'
import { debugEmitter, type DPoPFetchEvent } from './fetch-events.js'
import { checkToken, signedRequests } from './signed-request.js'
import { unwrap } from './install.js'
import { createTargets, parseOrigins } from './targets.js'

export type { DPoPRetryReason } from './retry.js'
export type { DPoPFetchEvent } from './fetch-events.js'

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
  getAccessToken?: (ctx: {
    signal?: AbortSignal
  }) => string | undefined | Promise<string | undefined>
  /**
   * Called when the API rejects the token (`error="invalid_token"`); returns a new token
   * (after a refresh) or `undefined` to give up. `ctx.token` is the token that was
   * rejected, so a token layer can tell whether it already refreshed past it. Concurrent
   * rejections of the same token share one call, which is made without a signal because it
   * serves several requests (each request still stops waiting when its own signal aborts).
   * @param ctx - `token`: the rejected token; `signal`: none for a shared call.
   */
  onInvalidToken?: (ctx: { token: string }) => string | undefined | Promise<string | undefined>
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
export const DPOP_FETCH_DEFAULTS = {
  /** No debug events. */
  debug: false,
} as const satisfies Pick<Required<DPoPFetchOptions>, 'debug'>

/**
 * A `fetch` that signs requests to the configured origins.
 * @param input - the URL or `Request`, as for `fetch`.
 * @param init - the request options, as for `fetch`.
 * @returns the response (after at most one retry per reason).
 */
export type DPoPFetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

// Old token -> its replacement, so a 401 that arrives after a refresh finished reuses it.
const REPLACED_SIZE = 4

function isFunction(value: unknown): value is (...args: never[]) => unknown {
  return typeof value === 'function'
}

function hasMethods(value: unknown, names: readonly string[]): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    names.every((n) => isFunction((value as Record<string, unknown>)[n]))
  )
}

/**
 * Single flight per rejected token (RFC 6750 `invalid_token`): concurrent 401s for one token
 * share one `onInvalidToken` call, and a 401 that arrives after it finished reuses its answer.
 */
function createRenewal(
  onInvalidToken: NonNullable<DPoPFetchOptions['onInvalidToken']>,
): (failed: string) => Promise<string | undefined> {
  const renewing = new Map<string, Promise<string | undefined>>()
  const replaced = new Map<string, string>()
  return (failed) => {
    const done = replaced.get(failed)
    if (done !== undefined) return Promise.resolve(done)
    let pending = renewing.get(failed)
    if (!pending) {
      pending = (async () =>
        checkToken(await onInvalidToken({ token: failed }), '"options.onInvalidToken"'))()
      renewing.set(failed, pending)
      pending
        .then(
          (next) => {
            if (next !== undefined && next !== failed)
              setBounded(replaced, failed, next, REPLACED_SIZE)
          },
          () => undefined,
        )
        .finally(() => renewing.delete(failed))
        .catch(() => undefined)
    }
    return pending
  }
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
 * - a fresh `DPoP` proof per attempt: new `jti`, `iat` from that origin's server-corrected
 *   clock, `htm`/`htu` of the request, `ath` of the token sent, the origin's cached nonce.
 *   The method is upper-cased on the wire too.
 * - `DPoP-Nonce` of every response updates that origin's nonce; `Date` may correct that
 *   origin's clock offset (never another origin's).
 * - one retry each, at most, for an answer of the request's own origin that no redirect
 *   produced, and only when the answer says why (a request the server may have processed
 *   is never re-sent on a guess): `use_dpop_nonce` (a DPoP challenge on 401 or 400, or a
 *   JSON error body of at most 4 KiB, read within 1.5 s, with a new nonce on any 4xx),
 *   `invalid_token` (a challenge on 401 or 400, after `onInvalidToken` yields a new token),
 *   and `iat` (a 400 or 401 whose challenge or JSON error is `invalid_dpop_proof` naming
 *   iat/time/clock, or whose `Date` is more than 6 minutes from the proof's `iat`, when a
 *   corrected offset is known). A second challenge is returned as the Response.
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
  // The options, checked once at the boundary (STYLE 4): the hot path carries no checks.
  if (typeof options !== 'object' || options === null)
    throw invalidArgument('"options" must be an object.')
  const { keys } = options
  if (
    !hasMethods(keys, ['load']) &&
    (typeof (keys as CryptoKeyPair)?.privateKey !== 'object' ||
      typeof (keys as CryptoKeyPair).publicKey !== 'object')
  ) {
    throw invalidArgument('"options.keys" must be a CryptoKeyPair or a key store.')
  }
  const allowed = parseOrigins(options.origins)
  for (const name of ['getAccessToken', 'onInvalidToken', 'fetch'] as const) {
    if (options[name] !== undefined && !isFunction(options[name]))
      throw invalidArgument(`"options.${name}" must be a function.`)
  }
  const clock = options.clock ?? defaultClock()
  if (!hasMethods(clock, ['now', 'local', 'offset', 'observeDate', 'correct', 'adjust']))
    throw invalidArgument('"options.clock" must be a clock from createClock().')
  const nonces = options.nonces ?? defaultNonceCache()
  if (!hasMethods(nonces, ['get', 'set']))
    throw invalidArgument('"options.nonces" must be a nonce cache from createNonceCache().')
  return signedFetch(
    keys,
    allowed,
    clock,
    nonces,
    debugEmitter(options.debug ?? DPOP_FETCH_DEFAULTS.debug),
    options,
  )
}

/**
 * @internal {@link createDPoPFetch} without its checks: `createDPoPClient` passes its own key
 * store, clock, nonces and callbacks, which need none (the app's origins, `fetch` and `debug`
 * it checks itself).
 * @param keys - a key source (an object whose `load` is a function) or the key pair.
 * @param allowed - the exact API origins.
 * @param clock - the clock every request learns into and signs on.
 * @param nonces - the nonce cache every request learns into.
 * @param emit - the debug emitter, or `undefined`.
 * @param callbacks - the token callbacks and the fetch to send with, as in {@link DPoPFetchOptions}.
 */
export function signedFetch(
  keys: KeyPairSource | CryptoKeyPair,
  allowed: ReadonlySet<string>,
  clock: DPoPClock,
  nonces: NonceCache,
  emit: ((event: DPoPFetchEvent) => void) | undefined,
  callbacks: Pick<DPoPFetchOptions, 'getAccessToken' | 'onInvalidToken' | 'fetch'>,
): DPoPFetch {
  const { onInvalidToken } = callbacks
  const targetOf = createTargets(allowed)
  // Lazy, so a page can install or replace fetch after creating us; unwrapped, so an
  // installed wrapper never ends up calling itself.
  const underlying = (): typeof fetch => unwrap(callbacks.fetch ?? globalThis.fetch)
  const sendSigned = signedRequests(
    typeof (keys as KeyPairSource).load === 'function'
      ? (signal) => raceAbort((keys as KeyPairSource).load(signal ? { signal } : undefined), signal)
      : () => keys as CryptoKeyPair,
    callbacks.getAccessToken,
    onInvalidToken && createRenewal(onInvalidToken),
    underlying,
    clock,
    nonces,
    emit,
  )
  return async (input, init) => {
    const target = targetOf(input)
    return target ? sendSigned(target, input, init) : underlying()(input, init)
  }
}
