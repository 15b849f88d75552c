/**
 * One signed request, from the caller's `fetch(input, init)` to the final answer. One call
 * owns the request's state (its target, method, body prepared for replay, headers, token,
 * signal and the redirect mode the caller asked for) and runs its attempts: a fresh proof
 * each (new `jti`, `iat` from the corrected clock, the origin's nonce, `ath` of the token
 * sent), nonces and time learned only from the API origin's own answers, redirects refused,
 * and a retry where retry.ts decides so. Internal to the signed fetch.
 */
import { raceAbort } from '../base/abort.js'
import { noCors, prepareReplayable, type ReplayableRequest } from './body.js'
import { offsetFromDate, type DPoPClock } from '../server-state/clock.js'
import { proofEvent, type DPoPFetchEvent } from './fetch-events.js'
import { DPoPError, ServerResponseError, invalidArgument } from '../base/errors.js'
import { markSent } from './install.js'
import { jwsAlgorithmOf } from '../proof/keys.js'
import type { NonceCache } from '../server-state/nonces.js'
import { createProof } from '../proof/proof.js'
import { decideRetry, discard, type DPoPRetryReason } from './retry.js'
import { answeredBy, isRequest, isSameTarget, type Target } from './targets.js'

/** @internal The key pair of one request; rejects with the signal's reason when it aborts. */
export type LoadKey = (signal: AbortSignal | undefined) => CryptoKeyPair | Promise<CryptoKeyPair>
/** @internal The app's source of the current access token (`options.getAccessToken`). */
export type GetAccessToken = (ctx: {
  signal?: AbortSignal
}) => string | undefined | Promise<string | undefined>
/** @internal Asks for a new token after `invalid_token`; single flight per token. */
export type Renew = (failed: string) => Promise<string | undefined>
/** @internal Delivers one debug event. */
export type Emit = (event: DPoPFetchEvent) => void
/** @internal Sends one signed request to `target` (whose origin is an API origin). */
export type SendSigned = (
  target: Target,
  input: string | URL | Request,
  init: RequestInit | undefined,
) => Promise<Response>

// RFC 6750 §2.1 b64token is narrower; any printable ASCII without spaces fits a header.
const TOKEN = /^[\x21-\x7e]+$/
// Methods that `fetch` accepts as they are; anything else goes through `new Request`, which
// rejects invalid and forbidden methods with the TypeError fetch would throw.
const STANDARD_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])
// Statuses that carry a Location to follow (304 is not one).
const REDIRECTS = new Set([301, 302, 303, 307, 308])

/**
 * @internal An access token from the app's callbacks, checked; `undefined` for none.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` naming `from` for anything but a token.
 */
export function checkToken(value: unknown, from: string): string | undefined {
  if (value === undefined || value === '') return undefined
  // Never echo the value: it may be a token.
  if (typeof value !== 'string' || !TOKEN.test(value))
    throw invalidArgument(`${from} must return an access token (printable ASCII) or undefined.`)
  return value
}

function redirected(origin: string, status: number): ServerResponseError {
  return new ServerResponseError(
    'ERR_REDIRECT',
    `The API at ${origin} answered with a redirect; dpop-spa does not follow redirects of signed requests (the proof ` +
      'names one URL, the token must not travel). Call the final URL, or pass redirect: "manual" to handle it.',
    { status },
  )
}

/**
 * @internal The sender of one signed fetch's requests, from what they share: where the key
 * and the token come from, how a refused token is renewed, the fetch under us (looked up per
 * request), and the clock, nonces and debug emitter that every request learns into.
 */
export function signedRequests(
  loadKey: LoadKey,
  getAccessToken: GetAccessToken | undefined,
  renew: Renew | undefined,
  underlying: () => typeof fetch,
  clock: DPoPClock,
  nonces: NonceCache,
  emit: Emit | undefined,
): SendSigned {
  // Most requests carry the same token as the last one: it is checked, and its header value
  // built, once per token. Reusing one string also spares copying a 1 KB header value anew.
  let lastToken: string | undefined
  let lastAuthorization = ''

  /**
   * One request: prepared once, then sent until an answer is final, at most one retry per reason.
   * @throws {ServerResponseError} `ERR_REDIRECT`, `ERR_CORS_HEADER_HIDDEN`; {@link DPoPError}
   *   `ERR_UNSUPPORTED_ALGORITHM`, `ERR_INVALID_ARGUMENT`, `ERR_BODY_NOT_REPLAYABLE`; what
   *   fetch, the key, the token callbacks and the proof throw; the signal's reason.
   */
  return async (target, input, callerInit) => {
    const { origin, htu, href } = target
    // Read once: what is checked (mode, body, method) is what is sent, whatever getters do next.
    const init = callerInit && { ...callerInit }
    const signal =
      init?.signal !== undefined
        ? (init.signal ?? undefined)
        : isRequest(input)
          ? input.signal
          : undefined
    signal?.throwIfAborted()
    const initMethod = init?.method
    // A URL-only request (a URL, no body, a standard method) needs no Request object: building
    // one and cloning it per attempt is most of what the signed fetch would otherwise add.
    // Everything else is prepared once as a Request, so a retry sends the same bytes.
    const urlOnly =
      target.fetchableUrl &&
      !isRequest(input) &&
      init?.body == null &&
      (initMethod === undefined ||
        (typeof initMethod === 'string' && STANDARD_METHODS.has(initMethod.toUpperCase())))
    if (urlOnly && init?.mode === 'no-cors') throw noCors()
    // Signed requests never follow redirects (the proof names this URL; the token and proof
    // must not travel): 'manual' lets us tell a redirect apart from a network error. A caller
    // who asked for 'manual' gets the redirect response; 'error' keeps fetch's TypeError.
    const callerRedirect = init?.redirect ?? (isRequest(input) ? input.redirect : undefined)
    const redirect: RequestRedirect = callerRedirect === 'error' ? 'error' : 'manual'
    const preparing = urlOnly
      ? undefined
      : prepareReplayable(isRequest(input) ? input : href, { ...init, redirect }, signal)
    const loading = loadKey(signal)
    const tokenAsked = getAccessToken?.(signal ? { signal } : {})
    const pending =
      typeof (tokenAsked as Partial<PromiseLike<unknown>> | undefined)?.then === 'function'
    // Await only what is pending: settled values still cost turns of the microtask queue.
    const [replay, keyPair, firstToken]: [ReplayableRequest | undefined, CryptoKeyPair, unknown] =
      preparing || loading instanceof Promise || pending
        ? await Promise.all([
            preparing,
            loading,
            pending ? raceAbort(tokenAsked, signal) : tokenAsked,
          ])
        : [preparing, loading, tokenAsked]
    // The URL checked is the URL sent: a Request look-alike whose `url` names an API origin
    // while it converts to another URL must not get a token for the origin it names.
    if (replay && !isSameTarget(replay.request.url, target)) {
      throw invalidArgument(
        'The Request\'s "url" is not the URL it sends to: pass a real Request or a URL string.',
      )
    }
    let token =
      firstToken === lastToken ? lastToken : checkToken(firstToken, '"options.getAccessToken"')
    // Upper-case: the wire method and the proof's `htm`.
    const method = replay ? replay.request.method : (initMethod ?? 'GET').toUpperCase()
    // Without caller headers, each attempt sends a record of its own: fetch validates and copies
    // header values once when it builds its Request, so a Headers object of ours would do it twice.
    let headers = replay
      ? replay.request.headers
      : init?.headers === undefined
        ? undefined
        : new Headers(init.headers)
    // `DPoP <token>`, or `undefined` to leave the caller's Authorization as it is.
    let authorization: string | undefined
    if (token !== undefined) {
      if (token !== lastToken) {
        lastToken = token
        lastAuthorization = `DPoP ${token}`
      }
      authorization = lastAuthorization
    } else {
      const callerAuth = headers?.get('Authorization')?.trim()
      const callerDPoP =
        callerAuth === undefined ? null : /^DPoP +([\x21-\x7e]+)$/i.exec(callerAuth)
      if (callerDPoP) token = callerDPoP[1]
      else if (callerAuth !== undefined && /^Bearer(?:\s|$)/i.test(callerAuth))
        headers?.delete('Authorization')
    }

    const send = underlying()
    // The reasons this request may still be sent again for, made at its first refusal: one
    // retry each, and a new token only when one was sent and there is someone to ask.
    let open: Set<DPoPRetryReason> | undefined
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted()
      // A retry without a Request gets headers of its own: the first attempt's were handed out.
      if (headers && !replay && attempt > 1) headers = new Headers(headers)
      const nonce = nonces.get(origin)
      // The API origin's own clock (or the authorization server's, until this origin answers).
      const signedWithOffset = clock.offset(origin)
      const proof = await createProof(keyPair, {
        htm: method,
        htu,
        accessToken: token,
        nonce,
        now: clock.now(origin),
      })
      let sent: HeadersInit
      if (headers) {
        if (authorization) headers.set('Authorization', authorization)
        headers.set('DPoP', proof)
        sent = headers
      } else {
        sent = authorization ? { Authorization: authorization, DPoP: proof } : { DPoP: proof }
      }
      emit?.(proofEvent(proof, method, htu, attempt))
      const request = replay ? replay.attempt() : { ...init, method, headers: sent, redirect }
      markSent(request)
      // Local times, for the response's Date.
      const startedAt = clock.local()
      const response = await (replay ? send(request as Request) : send(href, request))
      const endedAt = clock.local()
      const { status } = response

      if (
        response.type === 'opaqueredirect' ||
        (REDIRECTS.has(status) && response.headers.has('Location'))
      ) {
        emit?.({ type: 'response', method, url: htu, status, attempt })
        if (callerRedirect === 'manual') return response
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
      if (nonceHeader !== null && nonces.set(origin, nonceHeader))
        emit?.({ type: 'nonce', origin, nonce: nonceHeader })
      const dateHeader = response.headers.get('Date')
      if (clock.observeDate(dateHeader, startedAt, endedAt, origin))
        emit?.({ type: 'clock', offsetMs: clock.offset(origin), source: 'date' })
      emit?.({ type: 'response', method, url: htu, status, attempt })
      if (status < 400 || status > 499) return response

      // Whether to send again, and why: retry.ts decides, this loop applies the decision.
      open ??= new Set(
        renew && token !== undefined
          ? ['use_dpop_nonce', 'iat', 'invalid_token']
          : ['use_dpop_nonce', 'iat'],
      )
      const nonceNow = nonces.get(origin)
      const decision = await decideRetry(
        response,
        origin,
        open,
        jwsAlgorithmOf(keyPair.privateKey),
        [
          nonceNow !== undefined && nonceNow !== nonce,
          signedWithOffset,
          clock.offset(origin),
          offsetFromDate(dateHeader, startedAt, endedAt),
        ],
        signal,
      )
      if (decision instanceof DPoPError) {
        discard(response)
        throw decision
      }
      let reason = decision?.reason
      if (decision?.reason === 'iat') {
        const before = clock.offset(origin)
        // The clock's bounds still apply: an offset it refuses is no reason to send again.
        if (!clock.adjust(decision.offsetMs, origin)) reason = undefined
        else if (clock.offset(origin) !== before)
          emit?.({ type: 'clock', offsetMs: clock.offset(origin), source: 'iat' })
      }
      if (reason === 'invalid_token') {
        const next = await raceAbort((renew as Renew)(token as string), signal)
        if (next === undefined || next === token) reason = undefined
        else {
          token = next
          authorization = `DPoP ${token}`
        }
      }
      if (!reason) return response
      open.delete(reason)
      discard(response)
      emit?.({ type: 'retry', reason, url: htu, attempt })
    }
  }
}
