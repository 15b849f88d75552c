/**
 * Request bodies that survive a retry. A DPoP retry (new nonce, new token, corrected
 * clock) must send exactly the same bytes with exactly the same `Content-Type` as the
 * first attempt; a body stream can be read only once, so the request is fixed up front
 * and every attempt is a `Request.clone()` of it. Internal to the signed fetch.
 */
import { raceAbort } from '../base/abort.js'
import { DPoPError, invalidArgument } from '../base/errors.js'

/** @internal A request prepared once and sent any number of times. */
export interface ReplayableRequest {
  /** The prepared request; never sent itself, only cloned. */
  readonly request: Request
  /** A fresh copy for one attempt, with the whole body. */
  attempt(): Request
}

const notReplayable = (why: string) =>
  new DPoPError(
    'ERR_BODY_NOT_REPLAYABLE',
    `The request body ${why}, so it cannot be sent (or resent on a retry): pass a fresh body per call.`,
  )

/** @internal `mode: 'no-cors'` cannot carry the Authorization and DPoP headers. */
export const noCors = () => invalidArgument('Mode "no-cors" cannot carry DPoP headers: use "cors".')

function isStream(body: unknown): body is ReadableStream<Uint8Array> {
  return typeof ReadableStream === 'function' && body instanceof ReadableStream
}

/**
 * @internal Prepares `fetch(input, init)` for replay.
 *
 * - Strings, Blobs, buffers, typed arrays, DataViews, FormData and URLSearchParams are
 *   turned into a `Request` once: the browser serializes them there and then (a FormData
 *   boundary is fixed in `Content-Type`), and each clone repeats the same bytes.
 * - A `ReadableStream` body is read into an `ArrayBuffer` before the first send: a stream
 *   can be read only once, and Chromium uploads streams only over HTTP/2 with
 *   `duplex: 'half'`. Its `Content-Type` header (if any) is kept. A locked or already read
 *   stream is an error.
 * - A `Request` input's body is kept and teed by `clone()` (a Request made from a stream
 *   is thus held in memory too). Like `fetch`, this consumes the caller's Request.
 * - The method is upper-cased on the wire, because `fetch` normalizes only the six
 *   standard methods and the proof's `htm` is upper-case.
 *
 * @throws {DPoPError} `ERR_BODY_NOT_REPLAYABLE` when the body (stream or Request) was
 *   already read or is locked; `ERR_INVALID_ARGUMENT` for `mode: 'no-cors'`, which cannot
 *   carry the `Authorization` and `DPoP` headers. Rejects with the signal's reason when
 *   it aborts while a stream is being read; `TypeError` as `new Request()` would.
 */
export async function prepareReplayable(
  input: string | URL | Request,
  init: RequestInit | undefined,
  signal: AbortSignal | undefined,
): Promise<ReplayableRequest> {
  // `input` may be a URL already resolved by the caller: the signed fetch passes the very
  // URL whose origin it checked, so the URL checked and the URL sent cannot differ.
  let requestInit = init
  const body = init?.body
  if (isStream(body)) {
    if (body.locked) throw notReplayable('is a locked or read ReadableStream')
    const bytes = await raceAbort(new Response(body).arrayBuffer(), signal)
    requestInit = { ...init, body: bytes }
  } else if (input instanceof Request && input.bodyUsed && (body === undefined || body === null)) {
    throw notReplayable('of the Request was read')
  }
  let request = new Request(input, requestInit)
  const method = request.method.toUpperCase()
  // Moves the body into a new Request; `request` is ours, so nothing of the caller's is lost.
  if (method !== request.method) request = new Request(request, { method })
  if (request.mode === 'no-cors') throw noCors()
  const prepared = request
  return {
    request: prepared,
    attempt() {
      // Never send a half-read body: the prepared request is only ever cloned, not sent.
      if (prepared.bodyUsed) throw notReplayable('was consumed')
      return prepared.clone()
    },
  }
}
