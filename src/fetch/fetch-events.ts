/**
 * What the signed fetch reports for logs and the demo (`debug`), and the one emitter that
 * delivers it: never the access token or a signature, and a logger that throws never
 * breaks a request.
 */
import { invalidArgument } from '../base/errors.js'
import type { PublicJwk } from '../proof/keys.js'
import type { DPoPRetryReason } from './retry.js'

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

/**
 * @internal The `proof` event of one attempt: the proof's header and claims, decoded, never its
 * signature. A proof is ASCII throughout (base64url members, a method token, a serialized URL,
 * NQCHAR nonce, digits), so `atob` alone decodes its parts.
 */
export function proofEvent(
  proof: string,
  method: string,
  url: string,
  attempt: number,
): DPoPFetchEvent {
  type ProofEvent = Extract<DPoPFetchEvent, { type: 'proof' }>
  const [header, claims] = proof
    .split('.', 2)
    .map((part): unknown => JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/')))) as [
    ProofEvent['header'],
    ProofEvent['claims'],
  ]
  return { type: 'proof', method, url, attempt, header, claims }
}

/**
 * @internal The emitter for `options.debug`: `true` logs with `console.debug`, a function
 * receives the events, `false` gives `undefined` (nothing is built per request).
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` for anything else.
 */
export function debugEmitter(debug: unknown): ((event: DPoPFetchEvent) => void) | undefined {
  if (typeof debug !== 'boolean' && typeof debug !== 'function')
    throw invalidArgument('"options.debug" must be a boolean or a function.')
  const listener =
    debug === true ? (e: DPoPFetchEvent) => console.debug('[dpop-spa]', e) : debug || undefined
  if (!listener) return undefined
  return (e) => {
    try {
      ;(listener as (event: DPoPFetchEvent) => void)(e)
    } catch {
      // A logger must never break a request.
    }
  }
}
