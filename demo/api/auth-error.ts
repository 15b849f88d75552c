/**
 * The one error the resource server throws while checking a request: it carries what
 * the 401 response says (RFC 9449 §7.1, RFC 6750 §3) and the name of the failed check.
 */

/** `error` values of a DPoP challenge; `undefined` when the request carried no credentials at all. */
export type AuthErrorCode =
  'invalid_request' | 'invalid_token' | 'invalid_dpop_proof' | 'use_dpop_nonce'

/**
 * Names of the checks, stable so that tests and the stats can say which one failed.
 * The order follows RFC 9449 §4.3 and §7.1.
 */
export type CheckName =
  | 'authorization' // an Authorization header with the DPoP scheme is present
  | 'scheme' // the scheme is DPoP, not Bearer or another one
  | 'proof-present'
  | 'proof-single'
  | 'compact-jws'
  | 'typ'
  | 'alg'
  | 'jwk'
  | 'signature'
  | 'claims' // jti, htm, htu, iat have the right types
  | 'htm'
  | 'htu'
  | 'iat'
  | 'jti-replay'
  | 'jti-capacity' // the replay cache is full of unexpired entries: refused (503), nothing evicted
  | 'nonce'
  | 'ath'
  | 'token' // the access token is known / verifies and is not expired
  | 'jkt' // the token's bound key thumbprint is the proof's key thumbprint
  | 'challenge' // a route that always asks for a fresh nonce

/** A request failed authentication; the server answers 401 with a DPoP challenge. Never thrown with a token in the message. */
export class AuthError extends Error {
  /** The challenge's `error`; undefined when no credentials were sent (RFC 6750 §3.1). */
  readonly error: AuthErrorCode | undefined
  /** Which check failed. */
  readonly check: CheckName

  /** `description` becomes `error_description`; keep it free of `"` and `\` and of token values. */
  constructor(
    error: AuthErrorCode | undefined,
    check: CheckName,
    description: string,
    options?: { cause?: unknown },
  ) {
    super(description, options)
    this.name = 'AuthError'
    this.error = error
    this.check = check
  }
}
