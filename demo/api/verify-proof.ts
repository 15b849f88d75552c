/**
 * Checks one DPoP proof the way RFC 9449 §4.3 lists it, with jose for everything
 * cryptographic, and names the check that failed. Independent of dpop-spa's own code
 * on purpose: the browser SDK is tested against this, so it must not share its bugs.
 */
import { createHash } from 'node:crypto'
import {
  EmbeddedJWK,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  jwtVerify,
  type JWK,
  type JWTPayload,
} from 'jose'
import { AuthError, type CheckName } from './auth-error.ts'
import type { NonceIssuer } from './nonces.ts'
import type { ReplayCache } from './replay.ts'

/** Asymmetric JWS algorithms the server accepts by default; advertised in `algs`. */
export const DEFAULT_ALGORITHMS: readonly string[] = ['ES256', 'EdDSA', 'RS256', 'PS256']

/** The claims of a proof that passed every check. */
export interface DPoPClaims extends JWTPayload {
  jti: string
  htm: string
  htu: string
  iat: number
  ath?: string
  nonce?: string
}

/** A proof that passed every check. */
export interface VerifiedProof {
  claims: DPoPClaims
  /** The proof's public JWK, as sent. */
  jwk: JWK
  /** RFC 7638 thumbprint of `jwk` (jose's calculateJwkThumbprint). */
  jkt: string
  /** The proof's `alg`. */
  alg: string
  /**
   * Call once the access token verified and is bound to `jkt`: records the proof's `jti`.
   * @throws {AuthError} `jti-replay` when it was used before; `jti-capacity` when the replay
   *   cache is full of unexpired entries (answer 503: nothing is forgotten to make room).
   */
  accept(): void
}

/** What the verifier needs to know about the request. */
export interface ProofRequest {
  /** Every value of the `DPoP` request header, as received (each a separate field line). */
  dpop: readonly string[]
  /** The request method. */
  method: string
  /** The absolute request URL as the server's public origin sees it (query is ignored). */
  url: string
  /** The access token from `Authorization: DPoP <token>`; its hash must be `ath`. */
  accessToken?: string | undefined
}

/** Options of {@link createProofVerifier}. */
export interface ProofVerifierOptions {
  /** Accepted `alg` values. @default DEFAULT_ALGORITHMS */
  algorithms?: readonly string[]
  /** Accepted distance of `iat` from the server clock, seconds, either side. @default 60 */
  iatWindowSec?: number
  /** Server clock in milliseconds (may carry a simulated offset). */
  now: () => number
  /** The server's nonce; omit to not require nonces. */
  nonces?: NonceIssuer | undefined
  /** Remembers `jti`s (through {@link VerifiedProof.accept}); must use the same window as `iatWindowSec`. */
  replay: ReplayCache
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
// JWK members that only private (or symmetric) keys have (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const

/** `ath`: base64url of the SHA-256 of the token's ASCII octets (RFC 9449 §4.2). */
export function athOf(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'ascii').digest('base64url')
}

/** `htu` comparison form: WHATWG-normalized origin + path; undefined when not an absolute http(s) URL. */
export function htuForm(url: string): string | undefined {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return undefined
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined
  return `${u.origin}${u.pathname}`
}

// Which check a jose error stands for, so the 401 names the real reason.
function joseFailure(cause: unknown): AuthError {
  const code = (cause as { code?: unknown } | null)?.code
  const claim = (cause as { claim?: unknown } | null)?.claim
  const invalid = (check: CheckName, description: string): AuthError =>
    new AuthError('invalid_dpop_proof', check, description, { cause })
  switch (code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return invalid('signature', 'DPoP proof signature does not verify with its jwk')
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return claim === 'iat'
        ? invalid('iat', 'iat claim is not a number')
        : invalid('claims', `${String(claim)} claim is invalid`)
    case 'ERR_JWT_EXPIRED':
      return invalid('claims', 'exp claim says the proof expired')
    case 'ERR_JWT_INVALID':
      return invalid('claims', 'DPoP proof payload is not a JSON object of claims')
    case 'ERR_JWS_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return invalid(
        'jwk',
        'jwk cannot be used to verify this proof (wrong key type for alg, or malformed)',
      )
    default:
      return invalid('signature', 'DPoP proof did not verify')
  }
}

/**
 * Creates the proof verifier. The returned function resolves with the verified proof
 * or rejects with an {@link AuthError} naming the failed check.
 * @throws {TypeError} for a bad option.
 */
export function createProofVerifier(
  options: ProofVerifierOptions,
): (request: ProofRequest) => Promise<VerifiedProof> {
  const algorithms = [...(options.algorithms ?? DEFAULT_ALGORITHMS)]
  const windowSec = options.iatWindowSec ?? 60
  if (!Number.isFinite(windowSec) || windowSec <= 0)
    throw new TypeError('"iatWindowSec" must be a positive number')
  if (algorithms.length === 0 || algorithms.some((a) => a === 'none' || a.startsWith('HS'))) {
    throw new TypeError('"algorithms" must list asymmetric JWS algorithms only')
  }
  const { now, nonces, replay } = options

  return async function verifyProof(request) {
    const invalid = (check: CheckName, description: string, cause?: unknown): AuthError =>
      new AuthError(
        'invalid_dpop_proof',
        check,
        description,
        cause === undefined ? undefined : { cause },
      )

    // §4.3 (1): exactly one DPoP header field. A proxy may have folded two into one
    // comma-separated line; a compact JWS never contains a comma.
    const values = request.dpop.flatMap((v) => v.split(',')).map((v) => v.trim())
    if (values.length === 0 || (values.length === 1 && values[0] === ''))
      throw invalid('proof-present', 'DPoP proof missing')
    if (values.length > 1) throw invalid('proof-single', 'more than one DPoP proof')
    const proof = values[0] ?? ''
    // §4.3 (2): a well-formed compact JWS (no JSON serialization, no unsigned form).
    if (!COMPACT_JWS.test(proof)) throw invalid('compact-jws', 'DPoP proof is not a compact JWS')

    let header: ReturnType<typeof decodeProtectedHeader>
    try {
      header = decodeProtectedHeader(proof)
    } catch (cause) {
      throw invalid('compact-jws', 'DPoP proof header is not a JSON object', cause)
    }
    // §4.3 (4)-(7): typ, alg, jwk.
    if (header.typ !== 'dpop+jwt') throw invalid('typ', 'typ must be dpop+jwt')
    if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) {
      throw invalid('alg', `alg must be one of ${algorithms.join(' ')}`)
    }
    const jwk = header.jwk
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk))
      throw invalid('jwk', 'jwk header parameter missing')
    if (PRIVATE_MEMBERS.some((m) => Object.hasOwn(jwk, m)))
      throw invalid('jwk', 'jwk must be a public key')

    // §4.3 (6): the signature verifies with the embedded key. jose also re-checks typ
    // and alg here, and validates iat/exp/nbf types against our clock.
    let claims: DPoPClaims
    try {
      const result = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms,
        currentDate: new Date(now()),
        clockTolerance: windowSec,
      })
      claims = result.payload as DPoPClaims
    } catch (cause) {
      throw joseFailure(cause)
    }

    // §4.3 (8): the required claims, with the right types.
    if (typeof claims.jti !== 'string' || claims.jti === '')
      throw invalid('claims', 'jti claim missing')
    if (typeof claims.htm !== 'string') throw invalid('claims', 'htm claim missing')
    if (typeof claims.htu !== 'string') throw invalid('claims', 'htu claim missing')
    if (typeof claims.iat !== 'number') throw invalid('claims', 'iat claim missing')

    // §4.3 (9): htm is the request's method (case-sensitive, RFC 9110 §9.1).
    if (claims.htm !== request.method) throw invalid('htm', 'htm does not match the request method')
    // §4.3 (10): htu is the request URI without query and fragment, after normalization.
    const expected = htuForm(request.url)
    const got = htuForm(claims.htu)
    if (got === undefined || got !== expected)
      throw invalid('htu', 'htu does not match the request URL')

    // §4.3 (11)-(12): iat within the window of the SERVER's clock.
    const nowSec = Math.floor(now() / 1000)
    if (Math.abs(claims.iat - nowSec) > windowSec) {
      throw invalid(
        'iat',
        `iat is outside the accepted window of ${windowSec} s around the server time`,
      )
    }

    // §8, §9: the nonce is one the server issued and still accepts.
    if (nonces) {
      if (typeof claims.nonce !== 'string')
        throw new AuthError(
          'use_dpop_nonce',
          'nonce',
          'Resource server requires nonce in DPoP proof',
        )
      if (!nonces.accepts(claims.nonce))
        throw new AuthError('use_dpop_nonce', 'nonce', 'DPoP proof nonce is stale or unknown')
    }

    // §4.3 (13)/§7: with an access token, ath is its hash.
    if (request.accessToken !== undefined) {
      if (typeof claims.ath !== 'string') throw invalid('ath', 'ath claim missing')
      if (claims.ath !== athOf(request.accessToken))
        throw invalid('ath', 'ath does not match the access token')
    }

    const jkt = await calculateJwkThumbprint(jwk, 'sha256')
    return {
      claims,
      jwk: jwk,
      jkt,
      alg: header.alg,
      accept() {
        // §11.1: jti seen once. Recorded only now, after every check of the proof and of its
        // token: a proof refused for any reason (its own key's, a bad token, a stale nonce)
        // takes no room, so a flood of such proofs cannot fill the cache.
        const remembered = replay.remember(claims.jti, claims.iat)
        if (remembered === 'replayed')
          throw invalid('jti-replay', 'jti was already used (replayed proof)')
        if (remembered === 'full')
          throw new AuthError(
            'invalid_dpop_proof',
            'jti-capacity',
            'too many recent proofs to check for replay; try again later',
          )
      },
    }
  }
}
