/**
 * A fake network edge for signed-fetch unit tests: a `fetch` function that records every
 * call and checks each DPoP proof the way a resource server would, with jose (never with
 * our own code). Real-server tests live in e2e/.
 */
import {
  EmbeddedJWK,
  calculateJwkThumbprint,
  jwtVerify,
  type JWTPayload,
  type JWTHeaderParameters,
} from 'jose'

export interface Call {
  /** 1-based call number. */
  n: number
  /** Exactly what the fetch received. */
  input: unknown
  init: RequestInit | undefined
  /** The request as the network would see it. */
  url: string
  method: string
  headers: Headers
  body: Uint8Array<ArrayBuffer>
  /** Verified proof, when a DPoP header was sent. */
  proof?: {
    payload: JWTPayload & { htm?: string; htu?: string; ath?: string; nonce?: string }
    header: JWTHeaderParameters
    jkt: string
    raw: string
  }
}

export async function sha256b64url(value: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(value)))
  return Buffer.from(d).toString('base64url')
}

/** A fetch stub: records and verifies, then answers with `respond`. */
export function stubFetch(
  respond: (call: Call) => Response | Promise<Response> = () => new Response('ok'),
) {
  const calls: Call[] = []
  const fetch = async (input: unknown, init?: RequestInit): Promise<Response> => {
    const n = calls.length + 1
    let request: Request | undefined
    try {
      // Like the real fetch, consume a Request's body: sending one Request twice must fail here.
      request = input instanceof Request ? input : new Request(input as string, init)
    } catch {
      // A URL fetch itself would reject (javascript:, relative without a base): record it raw.
    }
    const body = request ? new Uint8Array(await request.arrayBuffer()) : new Uint8Array()
    const headers = request?.headers ?? new Headers()
    const call: Call = {
      n,
      input,
      init,
      url: request?.url ?? String(input),
      method: request?.method ?? '',
      headers,
      body,
    }
    const dpop = headers.get('dpop')
    if (dpop !== null) {
      const { payload, protectedHeader } = await jwtVerify(dpop, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['ES256', 'EdDSA'],
      })
      call.proof = {
        payload,
        header: protectedHeader,
        jkt: await calculateJwkThumbprint(protectedHeader.jwk!),
        raw: dpop,
      }
    }
    calls.push(call)
    return respond(call)
  }
  return { fetch: fetch as typeof globalThis.fetch, calls }
}

/** A DPoP challenge response (RFC 9449 §7.1). */
export function challenge(
  error: string,
  extra: Record<string, string> = {},
  description?: string,
): Response {
  const params = [
    `error="${error}"`,
    ...(description ? [`error_description="${description}"`] : []),
    'algs="ES256"',
  ]
  return new Response(null, {
    status: 401,
    headers: { 'WWW-Authenticate': `DPoP ${params.join(', ')}`, ...extra },
  })
}

/** A promise with its resolvers, for holding responses until the test says so. */
export function deferred<T = void>() {
  let resolve!: (v: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** What `p` rejects with; fails the test when it resolves. The one way these tests expect a rejection. */
export async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (e) {
    return e
  }
  throw new Error('expected a rejection')
}
