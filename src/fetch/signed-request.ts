/**
 * The attempts of one signed request: a fresh proof each (new `jti`, `iat` from the
 * corrected clock, the origin's nonce, `ath` of the token sent), nonces and time learned
 * only from the API origin's own answers, redirects refused, and a retry where retry.ts
 * says so. Internal to the signed fetch.
 */
import { raceAbort } from '../base/abort.js'
import { decodeJwtPart } from '../base/base64url.js'
import type { ReplayableRequest } from './body.js'
import type { DPoPClock } from '../server-state/clock.js'
import type { DPoPFetchEvent } from './fetch-events.js'
import { ServerResponseError } from '../base/errors.js'
import { markSent } from './install.js'
import { jwsAlgorithmOf } from '../proof/keys.js'
import type { NonceCache } from '../server-state/nonces.js'
import { createProof } from '../proof/proof.js'
import { decideRetry, discard, type DPoPRetryReason } from './retry.js'
import { answeredBy, type Target } from './targets.js'

/** @internal One request, prepared: what every attempt sends. */
export interface PreparedRequest {
  readonly target: Target
  /** Upper-case: the wire method and the proof's `htm`. */
  readonly method: string
  readonly init: RequestInit | undefined
  /** The request prepared for replay; `undefined` for a bare request (URL, no body). */
  readonly replay: ReplayableRequest | undefined
  readonly headers: Headers | undefined
  readonly token: string | undefined
  /** `DPoP <token>`, or `undefined` to leave the caller's Authorization as it is. */
  readonly authorization: string | undefined
  /** What goes to fetch: never 'follow'. */
  readonly redirect: RequestRedirect
  /** What the caller asked for. */
  readonly asked: RequestRedirect | undefined
  readonly signal: AbortSignal | undefined
  readonly keyPair: CryptoKeyPair
}

/** @internal What all requests of one signed fetch share. */
export interface SignedFetchState {
  readonly send: typeof fetch
  readonly clock: DPoPClock
  readonly nonces: NonceCache
  readonly emit: ((event: DPoPFetchEvent) => void) | undefined
  /** Asks for a new token after `invalid_token`; single flight per token. */
  readonly renew: ((failed: string) => Promise<string | undefined>) | undefined
}

// Statuses that carry a Location to follow (304 is not one).
const REDIRECTS = new Set([301, 302, 303, 307, 308])

function redirected(origin: string, status: number): ServerResponseError {
  return new ServerResponseError(
    'ERR_REDIRECT',
    `The API at ${origin} answered a signed request with a redirect. dpop-spa does not follow redirects of signed ` +
      'requests: the proof names the first URL, and the token and proof must not travel to another origin. ' +
      'Call the final URL directly, or pass redirect: "manual" to handle the redirect yourself.',
    { status },
  )
}

/**
 * @internal Sends `r` until an answer is final: at most one retry per reason.
 * @throws {ServerResponseError} `ERR_REDIRECT`, `ERR_CORS_HEADER_HIDDEN`; {@link DPoPError}
 *   `ERR_UNSUPPORTED_ALGORITHM`; what fetch, the proof and `renew` throw; the signal's reason.
 */
export async function sendSigned(r: PreparedRequest, s: SignedFetchState): Promise<Response> {
  const { target: { origin, htu, href }, method, init, replay, keyPair, signal, redirect, asked } = r
  const { send, clock, nonces, emit, renew } = s
  let { headers, token, authorization } = r
  const retried = new Set<DPoPRetryReason>()
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted()
    // A retry without a Request gets headers of its own: the first attempt's were handed out.
    if (headers && !replay && attempt > 1) headers = new Headers(headers)
    const nonce = nonces.get(origin)
    // The API origin's own clock (or the authorization server's, until this origin answers).
    const signedWithOffset = clock.offset(origin)
    const proof = await createProof(keyPair, { htm: method, htu, accessToken: token, nonce, now: clock.now(origin) })
    let sent: HeadersInit
    if (headers) {
      if (authorization) headers.set('Authorization', authorization)
      headers.set('DPoP', proof)
      sent = headers
    } else {
      sent = authorization ? { Authorization: authorization, DPoP: proof } : { DPoP: proof }
    }
    if (emit) {
      emit({ type: 'proof', method, url: htu, attempt, header: decodeJwtPart(proof, 0), claims: decodeJwtPart(proof, 1) } as DPoPFetchEvent)
    }
    const request = replay ? replay.attempt() : { ...init, method, headers: sent, redirect }
    markSent(request)
    // Local times, for the response's Date: any offset is as good as another here.
    const startedAt = clock.local()
    const response = await (replay ? send(request as Request) : send(href, request))
    const endedAt = clock.local()
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
    if (clock.observeDate(dateHeader, startedAt, endedAt, origin)) emit?.({ type: 'clock', offsetMs: clock.offset(origin), source: 'date' })
    emit?.({ type: 'response', method, url: htu, status, attempt })
    if (status < 400 || status > 499) return response

    // Whether to send again, and why: one function decides (retry.ts), this loop applies it.
    const retry = await decideRetry({
      response, origin, nonceSent: nonce, signedWithOffset, offsetNow: clock.offset(origin), startedAt, endedAt,
      alg: jwsAlgorithmOf(keyPair.privateKey), retried, canRenew: !!renew && token !== undefined, nonces, signal,
    })
    let reason = retry?.reason
    if (retry?.reason === 'iat') {
      const before = clock.offset(origin)
      // The clock's bounds still apply: an offset it refuses is no reason to send again.
      if (!clock.adjust(retry.offsetMs, origin)) reason = undefined
      else if (clock.offset(origin) !== before) emit?.({ type: 'clock', offsetMs: clock.offset(origin), source: 'iat' })
    }
    if (reason === 'invalid_token') {
      const next = await raceAbort((renew as NonNullable<typeof renew>)(token as string), signal)
      if (next === undefined || next === token) reason = undefined
      else {
        token = next
        authorization = `DPoP ${token}`
      }
    }
    if (!reason) return response
    retried.add(reason)
    discard(response)
    emit?.({ type: 'retry', reason, url: htu, attempt })
  }
}
