/**
 * Whether the signed fetch sends a refused request again, and why: a new nonce, a corrected
 * clock, or a new token. One function decides and returns its decision; the attempt loop
 * (signed-request.ts) applies it, the clock included. At most one retry per reason (the
 * caller keeps count), so never a loop; only answers of the request's own origin that no
 * redirect produced are asked about. A request the server may have processed is never sent
 * again on a guess: only an answer that says why (nonce, time, token) is retried. An answer
 * that cannot work (a hidden header, a refused algorithm) is decided as an error to fail
 * with, returned like any other decision. Internal.
 */
import { raceAbort } from '../base/abort.js'
import {
  parseOAuthErrorBody,
  parseWWWAuthenticate,
  readDPoPChallenge,
  type DPoPChallengeInfo,
} from '../server-state/challenge.js'
import { DPoPError, ServerResponseError } from '../base/errors.js'

/** Why a request was sent again. */
export type DPoPRetryReason = 'use_dpop_nonce' | 'invalid_token' | 'iat'

/** @internal What this answer's `Date` says of the server's clock (see `offsetFromDate`). */
export type DateOffset = { readonly offsetMs: number; readonly uncertaintyMs: number }

/**
 * @internal What was learned since the refused proof was signed: whether the origin's nonce
 * is now another than the one the proof carried; the clock offset the proof was signed with
 * and the origin's offset now (after this answer's `Date` was observed); what this answer's
 * `Date` says, when it has a usable one.
 */
export type SinceSigned = readonly [
  newNonce: boolean,
  signedWithOffset: number,
  offsetNow: number,
  seen: DateOffset | undefined,
]

/**
 * @internal What to do about a refused answer: send again (why, and for `iat` on which clock
 * offset), or fail with the error (the attempt loop discards the response first).
 */
export type Retry =
  | { readonly reason: 'use_dpop_nonce' | 'invalid_token' }
  | { readonly reason: 'iat'; readonly offsetMs: number }

// A rejected `iat` as RFC 9449 §11.1 servers word it: "iat", "issued at", time, clock.
const IAT_REJECTION = /\biat\b|issued|time|clock/i
// A proof whose iat was further than this from the server's own time (its `Date`) when it
// answered is outside every verifier's window we know, so the refusal was the proof's time
// and nothing was processed: Auth0 and oauth4webapi accept 300 s, oidc-provider 300 s, the
// Community Solid Server 240 s, Duende 5 min of skew plus a 1 min proof lifetime. Closer
// than this, a 400 may be the application's answer to a request it processed.
const OUTSIDE_ANY_WINDOW_MS = 360_000
// The error body is read only when it is small JSON that arrives quickly: a body is looked
// at for RFC 9449 §8's {"error":"use_dpop_nonce"} or an iat refusal, never waited for.
const ERROR_BODY_BYTES = 4096
const ERROR_BODY_MS = 1500
const JSON_TYPE = /^application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i

/** @internal Frees a response's connection; an error here changes nothing for the caller. */
export function discard(response: Response): void {
  // Frees the connection; an error here changes nothing for the retry.
  response.body?.cancel().catch(() => undefined)
}

// A response type of 'cors' is the browser's word for it; pages on another origin than the
// API get 'cors' responses, so the location test covers fetch implementations that do not set it.
function isCrossOrigin(response: Response, origin: string): boolean {
  if (response.type === 'cors') return true
  return (
    typeof location !== 'undefined' &&
    typeof location.origin === 'string' &&
    location.origin !== origin
  )
}

function hidden(origin: string, status: number, header: string): ServerResponseError {
  return new ServerResponseError(
    'ERR_CORS_HEADER_HIDDEN',
    `The API at ${origin} answered ${status}; CORS hid its ${header} header. The API must send ` +
      '"Access-Control-Expose-Headers: WWW-Authenticate, DPoP-Nonce, Date".',
    { status },
  )
}

function unsupported(origin: string, alg: string, algs: readonly string[]): DPoPError {
  const names = algs
    .slice(0, 12)
    .map((name) => name.slice(0, 20))
    .join(', ')
  return new DPoPError(
    'ERR_UNSUPPORTED_ALGORITHM',
    `The API at ${origin} accepts proofs signed with ${names}, not ${alg}: use a key of one of those (ES256, EdDSA).`,
  )
}

/**
 * @internal At most {@link ERROR_BODY_BYTES} of a JSON error body, read from a clone (the
 * caller still gets the whole body) within {@link ERROR_BODY_MS}; `undefined` for any other
 * content type, a larger or slower body, or one that is not JSON. Rejects only with the
 * signal's reason.
 */
export async function readErrorBody(
  response: Response,
  signal: AbortSignal | undefined,
): Promise<unknown> {
  if (!JSON_TYPE.test(response.headers.get('Content-Type') ?? '')) return undefined
  const reader = response.clone().body?.getReader()
  if (!reader) return undefined
  const bytes = new Uint8Array(ERROR_BODY_BYTES)
  let size = 0
  let late = false
  const timer = setTimeout(() => {
    late = true
    reader.cancel().catch(() => undefined)
  }, ERROR_BODY_MS)
  try {
    for (;;) {
      const { done, value } = await raceAbort(reader.read(), signal)
      if (late) return undefined
      if (done) break
      if (size + value.byteLength > ERROR_BODY_BYTES) return undefined
      bytes.set(value, size)
      size += value.byteLength
    }
    return JSON.parse(new TextDecoder().decode(bytes.subarray(0, size))) as unknown
  } catch (e) {
    if (signal?.aborted) throw e
    return undefined
  } finally {
    clearTimeout(timer)
    // The rest is never read; the caller's copy of the body is not affected.
    reader.cancel().catch(() => undefined)
  }
}

/** Whether a server's error says the proof's time was refused (`invalid_dpop_proof` naming iat/time/clock). */
function refusesTime(error: DPoPChallengeInfo | undefined): boolean {
  return error?.error === 'invalid_dpop_proof' && IAT_REJECTION.test(error.errorDescription ?? '')
}

/**
 * @internal Whether to send a refused (4xx) request again, and why; `undefined` hands the
 * response to the caller, an error is what the request fails with. Reads the answer; changes
 * nothing, throws nothing of its own: the nonce cache and clock have already learned from its
 * headers, and the attempt loop applies the decision (a new clock offset included).
 * - `use_dpop_nonce`: a DPoP challenge saying so (on 401, or 400 as Auth0's middleware
 *   sends it), or RFC 9449 §8's JSON body `{"error":"use_dpop_nonce"}` (small, JSON
 *   Content-Type) on any 4xx that brings a nonce we did not send.
 * - `iat`, on a 400 or 401 only: when the answer shows the proof's time was refused — a
 *   challenge or JSON error `invalid_dpop_proof` naming iat/time/clock, or this answer's own
 *   `Date` more than 6 minutes from the proof's `iat` (outside any verifier's window) — and a
 *   different offset is known: this answer's `Date`, else what another answer taught meanwhile.
 * - `invalid_token`: the challenge (on 400 or 401) says so; the caller asks for a new token.
 * Only reasons still in `open` are given.
 * @param response - the refused answer, of `origin` itself.
 * @param origin - the API origin the request went to.
 * @param open - the reasons this request may still be retried for.
 * @param alg - the JWS algorithm of the key that signed, when known.
 * @param since - what was learned since the proof was signed; see {@link SinceSigned}.
 * @param signal - the request's signal: reading the error body stops when it aborts.
 * @returns the retry, or a {@link ServerResponseError} `ERR_CORS_HEADER_HIDDEN` when a
 *   cross-origin answer hides the challenge or the nonce, or a {@link DPoPError}
 *   `ERR_UNSUPPORTED_ALGORITHM` when the challenge's `algs` leave out the key's algorithm
 *   (every proof would be refused), or `undefined`. Rejects only with the signal's reason
 *   when it aborts while the body is read.
 */
export async function decideRetry(
  response: Response,
  origin: string,
  open: ReadonlySet<DPoPRetryReason>,
  alg: string | undefined,
  since: SinceSigned,
  signal: AbortSignal | undefined,
): Promise<Retry | DPoPError | undefined> {
  const [newNonce, signed, offsetNow, seen] = since
  const { status } = response
  const nonceHeader = response.headers.get('DPoP-Nonce')
  // RFC 9449 §7.1 says 401; servers also send the DPoP challenge on 400. Other statuses are
  // not about the proof or the token (a 403 invalid_token must not cause a refresh).
  const proofStatus = status === 401 || status === 400
  const wwwAuthenticate = proofStatus ? response.headers.get('WWW-Authenticate') : null
  const challenge =
    wwwAuthenticate === null
      ? undefined
      : readDPoPChallenge(parseWWWAuthenticate(wwwAuthenticate, { until: 'dpop' }))
  // The JSON error body, read at most once and only when a rule needs it.
  let body: Promise<ReturnType<typeof parseOAuthErrorBody>> | undefined
  const errorBody = () => (body ??= readErrorBody(response, signal).then(parseOAuthErrorBody))
  // RFC 9449 §7.1 `algs`: a server that does not take our algorithm refuses every proof.
  if (alg && challenge?.algs?.length && !challenge.algs.includes(alg))
    return unsupported(origin, alg, challenge.algs)

  if (open.has('use_dpop_nonce')) {
    if (challenge?.error === 'use_dpop_nonce') {
      if (nonceHeader === null && isCrossOrigin(response, origin))
        return hidden(origin, status, 'DPoP-Nonce')
      if (newNonce) return { reason: 'use_dpop_nonce' }
    } else if (
      nonceHeader !== null &&
      newNonce &&
      (await errorBody())?.error === 'use_dpop_nonce'
    ) {
      // Read only with a new nonce in this answer: otherwise there is nothing to retry with.
      return { reason: 'use_dpop_nonce' }
    }
  }
  if (open.has('iat') && proofStatus) {
    const refused =
      (seen !== undefined &&
        Math.abs(seen.offsetMs - signed) > OUTSIDE_ANY_WINDOW_MS + seen.uncertaintyMs) ||
      refusesTime(challenge) ||
      (challenge?.error === undefined && refusesTime(await errorBody()))
    // This answer's Date says where the server's clock is, even below the Date threshold;
    // without one, what another answer of this origin taught while the request was out.
    const offsetMs = !seen
      ? offsetNow
      : Math.abs(seen.offsetMs - signed) > seen.uncertaintyMs
        ? seen.offsetMs
        : signed
    // If nothing moved, a retry cannot help.
    if (refused && offsetMs !== signed) return { reason: 'iat', offsetMs }
  }
  if (open.has('invalid_token') && challenge?.error === 'invalid_token')
    return { reason: 'invalid_token' }
  // A cross-origin 401 with no readable challenge at all: the API's CORS hides it.
  if (status === 401 && wwwAuthenticate === null && isCrossOrigin(response, origin))
    return hidden(origin, status, 'WWW-Authenticate')
  return undefined
}
