/**
 * Whether the signed fetch sends a refused request again, and why: a new nonce, a corrected
 * clock, or a new token. One function, one answer, so the rules can be read in one place.
 * At most one retry per reason (the caller keeps count), so never a loop; only answers of
 * the request's own origin that no redirect produced are asked about. Internal.
 */
import { parseOAuthErrorBody, parseWWWAuthenticate, readDPoPChallenge } from '../server-state/challenge.js'
import type { DPoPClock } from '../server-state/clock.js'
import { DPoPError, ServerResponseError } from '../base/errors.js'
import type { NonceCache } from '../server-state/nonces.js'

/** Why a request was sent again. */
export type DPoPRetryReason = 'use_dpop_nonce' | 'invalid_token' | 'iat'

/** @internal One refused answer and what the request that got it was signed with. */
export interface RefusedAnswer {
  readonly response: Response
  readonly origin: string
  /** The nonce the refused proof carried. */
  readonly nonceSent: string | undefined
  /** The clock offset the refused proof was signed with. */
  readonly signedWithOffset: number
  /** Local (uncorrected) times around the request, for the response's `Date`. */
  readonly startedAt: number
  readonly endedAt: number
  /** The JWS algorithm of the key that signed, when known. */
  readonly alg: string | undefined
  /** Reasons already used for this request. */
  readonly retried: ReadonlySet<DPoPRetryReason>
  /** Whether a new token can be asked for (a token was sent and there is `onInvalidToken`). */
  readonly canRenew: boolean
  readonly nonces: NonceCache
  readonly clock: DPoPClock
}

// A rejected `iat` as RFC 9449 §11.1 servers word it: "iat", "issued at", time, clock.
const IAT_REJECTION = /\biat\b|issued|time|clock/i

/** @internal Frees a response's connection; an error here changes nothing for the caller. */
export function discard(response: Response): void {
  // Frees the connection; an error here changes nothing for the retry.
  response.body?.cancel().catch(() => undefined)
}

// A response type of 'cors' is the browser's word for it; pages on another origin than the
// API get 'cors' responses, so the location test covers fetch implementations that do not set it.
function isCrossOrigin(response: Response, origin: string): boolean {
  if (response.type === 'cors') return true
  return typeof location !== 'undefined' && typeof location.origin === 'string' && location.origin !== origin
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

/**
 * @internal Why to send a refused (4xx) request again, or `undefined` to hand the response
 * to the caller. The nonce cache and the clock have already learned from this response.
 * - `use_dpop_nonce`: a DPoP challenge saying so (on 401, or 400 as Auth0's middleware
 *   sends it), or RFC 9449 §8's JSON body `{"error":"use_dpop_nonce"}` on any 4xx (servers
 *   exist that send it with the wrong status), with a nonce we did not send.
 * - `iat`: a 400 or 401 to a proof signed before the clock offset moved materially (this
 *   answer's `Date`, an `invalid_dpop_proof` naming iat/time/clock, or another answer
 *   meanwhile), whatever the challenge or description say: verifiers word it many ways.
 * - `invalid_token`: the challenge says so and a new token can be asked for; the caller asks.
 * @throws {ServerResponseError} `ERR_CORS_HEADER_HIDDEN` when a cross-origin answer hides the
 *   challenge or the nonce; {@link DPoPError} `ERR_UNSUPPORTED_ALGORITHM` when the challenge's
 *   `algs` leave out the key's algorithm (every proof would be refused). The response is
 *   discarded first.
 */
export async function retryReason(a: RefusedAnswer): Promise<DPoPRetryReason | undefined> {
  const { response, origin, nonces, clock } = a
  const { status } = response
  const nonceHeader = response.headers.get('DPoP-Nonce')
  // RFC 9449 §7.1 says 401; servers also send the DPoP challenge on 400.
  const wwwAuthenticate = status === 401 || status === 400 ? response.headers.get('WWW-Authenticate') : null
  const challenge = wwwAuthenticate === null ? undefined : readDPoPChallenge(parseWWWAuthenticate(wwwAuthenticate, { until: 'dpop' }))
  const freshNonce = () => {
    const fresh = nonces.get(origin)
    return fresh !== undefined && fresh !== a.nonceSent
  }
  const fail = (error: DPoPError): never => {
    discard(response)
    throw error
  }
  // RFC 9449 §7.1 `algs`: a server that does not take our algorithm refuses every proof.
  if (a.alg && challenge?.algs?.length && !challenge.algs.includes(a.alg)) fail(unsupported(origin, a.alg, challenge.algs))

  if (!a.retried.has('use_dpop_nonce')) {
    if (challenge?.error === 'use_dpop_nonce') {
      if (nonceHeader === null && isCrossOrigin(response, origin)) fail(hidden(origin, status, 'DPoP-Nonce'))
      if (freshNonce()) return 'use_dpop_nonce'
    } else if (nonceHeader !== null && freshNonce()) {
      // Read only with a new nonce: otherwise there is nothing to retry with.
      const body: unknown = await response.clone().json().catch(() => undefined)
      if (parseOAuthErrorBody(body)?.error === 'use_dpop_nonce') return 'use_dpop_nonce'
    }
  }
  if (!a.retried.has('iat') && (status === 400 || status === 401)) {
    if (challenge?.error === 'invalid_dpop_proof' && IAT_REJECTION.test(challenge.errorDescription ?? '')) {
      // The Date of this very response says where the server's clock is, even below the Date threshold.
      clock.correct(response.headers.get('Date'), a.startedAt, a.endedAt)
    }
    // If nothing moved, a retry cannot help.
    if (clock.offset() !== a.signedWithOffset) return 'iat'
  }
  if (!a.retried.has('invalid_token') && challenge?.error === 'invalid_token' && a.canRenew) return 'invalid_token'
  // A cross-origin 401 with no readable challenge at all: the API's CORS hides it.
  if (status === 401 && wwwAuthenticate === null && isCrossOrigin(response, origin)) fail(hidden(origin, status, 'WWW-Authenticate'))
  return undefined
}
