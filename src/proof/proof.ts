/**
 * DPoP proof JWTs (RFC 9449 §4.2): one compact JWS per request, signed with the
 * key pair's private key and carrying its public JWK.
 */
import { asciiInto, encodeBase64url, utf8 } from '../base/base64url.js'
import { DPoPError, invalidArgument } from '../base/errors.js'
import {
  algorithmOf,
  exportPublicJwk,
  subtle,
  thumbprintOfPublicJwk,
  type PublicJwk,
} from './keys.js'
import { setBounded } from '../base/bounded-map.js'

/** What one proof is about. */
export interface ProofClaims {
  /** HTTP method of the request (`htm`); upper-cased. */
  htm: string
  /** Request URL (`htu`); query and fragment are removed (RFC 9449 §4.2). */
  htu: string | URL
  /** The access token sent with the request; its hash goes into `ath` (RFC 9449 §4.2). */
  accessToken?: string | undefined
  /** The server-provided nonce (RFC 9449 §8, §9). */
  nonce?: string | undefined
  /**
   * The time the proof is made, in milliseconds since the epoch (`iat` is this in whole
   * seconds). Pass the server-corrected clock here.
   * @default Date.now()
   */
  now?: number | undefined
}

/** @internal What never changes for one key: computed once per key, not per proof. */
interface SignerState {
  /** The private key this state was made for (the pair object could be mutated). */
  readonly key: CryptoKey
  readonly sign: EcdsaParams | Algorithm
  readonly jwk: PublicJwk
  /** base64url(header) + '.' */
  readonly headerPrefix: string
  /** The same as bytes: the start of every signing input. */
  readonly headerBytes: Uint8Array
  /** `crypto.subtle`, looked up once: its getter is a measurable part of a proof's JavaScript. */
  readonly subtle: SubtleCrypto
  /** RFC 7638 thumbprint, computed lazily. */
  jkt?: Promise<string>
}

// Per key pair object: a KeyStore hands out the same object until rotation, so a hit skips
// the key checks too. A WeakMap, so pairs that are dropped (rotation) are collected.
const signers = new WeakMap<object, SignerState | Promise<SignerState>>()

async function prepare(keyPair: CryptoKeyPair): Promise<SignerState> {
  const { alg, sign } = algorithmOf(keyPair.privateKey)
  const jwk = await exportPublicJwk(keyPair.publicKey)
  const headerPrefix = `${encodeBase64url(utf8(JSON.stringify({ typ: 'dpop+jwt', alg, jwk })))}.`
  return {
    key: keyPair.privateKey,
    sign,
    jwk,
    headerPrefix,
    headerBytes: utf8(headerPrefix),
    subtle: subtle(),
  }
}

function signerOf(keyPair: CryptoKeyPair): SignerState | Promise<SignerState> {
  const hit = signers.get(keyPair)
  if (hit && (hit instanceof Promise || hit.key === keyPair.privateKey)) return hit
  const { privateKey, publicKey } = (keyPair ?? {}) as Partial<CryptoKeyPair>
  if (
    !(privateKey instanceof CryptoKey) ||
    privateKey.type !== 'private' ||
    !(publicKey instanceof CryptoKey)
  ) {
    throw invalidArgument(
      '"keyPair" must be a CryptoKeyPair from generateKeyPair() or keyStore.load().',
    )
  }
  const p = prepare(keyPair)
  signers.set(keyPair, p)
  // Settled, the state is a plain value: later proofs await nothing but the sign. A failed
  // export must not stay cached.
  p.then(
    (state) => {
      if (signers.get(keyPair) === p) signers.set(keyPair, state)
    },
    () => signers.delete(keyPair),
  )
  return p
}

// ath per access token: the digest is computed once per token, not once per request.
// Small and bounded: an app holds one or two live tokens at a time.
const ATH_CACHE_SIZE = 8
const athCache = new Map<string, string | Promise<string>>()

/**
 * `ath` of an access token: base64url SHA-256 of its ASCII octets (RFC 9449 §4.2).
 * Cached per token, so repeated calls cost no digest.
 * @param accessToken - the access token as sent in `Authorization: DPoP`.
 * @returns base64url(SHA-256(token)).
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when the token is empty or not ASCII.
 * @example
 * ```ts
 * const ath = await calculateAth(accessToken) // the proof's ath claim
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-4.2
 */
export function calculateAth(accessToken: string): Promise<string> {
  const hit = athCache.get(accessToken)
  if (hit !== undefined) return Promise.resolve(hit)
  if (typeof accessToken !== 'string' || !/^[\x20-\x7e]+$/.test(accessToken)) {
    return Promise.reject(invalidArgument('"accessToken" must be a non-empty ASCII string.'))
  }
  const p = subtle()
    .digest('SHA-256', utf8(accessToken))
    .then((d) => {
      const ath = encodeBase64url(d)
      if (athCache.get(accessToken) === p) athCache.set(accessToken, ath)
      return ath
    })
  setBounded(athCache, accessToken, p, ATH_CACHE_SIZE)
  p.catch(() => athCache.delete(accessToken))
  return p
}

const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// RFC 9449 §8.1: nonce = 1*NQCHAR
const NONCE = /^[\x21\x23-\x5b\x5d-\x7e]+$/

/**
 * `htu` of a request URL: the WHATWG-normalized absolute URL without query, fragment
 * and userinfo (lower-case scheme and host, default port dropped, path encoding kept).
 * @param url - the request URL.
 * @returns the `htu` claim for that URL.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when `url` is not an absolute http(s) URL.
 * @example
 * ```ts
 * normalizeHtu('HTTPS://API.example.com:443/a?q=1#f') // 'https://api.example.com/a'
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-4.2
 */
export function normalizeHtu(url: string | URL): string {
  let u: URL | undefined
  try {
    u = new URL(url)
  } catch {
    // reported below
  }
  if (u?.protocol !== 'https:' && u?.protocol !== 'http:')
    throw invalidArgument('"htu" must be an absolute http(s) URL.')
  return u.origin + u.pathname
}

// htu per request URL string: parsing a URL is about a fifth of a proof's own JavaScript, and an app
// calls few distinct endpoints. Strings only (a URL object can change); bounded.
const HTU_CACHE_SIZE = 32
const htuCache = new Map<string, string>()

function cacheHtu(url: string): string {
  const htu = normalizeHtu(url)
  setBounded(htuCache, url, htu, HTU_CACHE_SIZE)
  return htu
}

// jti: 22 base64url characters, 132 bits from the CSPRNG (RFC 9449 §11.1 asks for enough
// entropy to be unique). They are cut from a pool: 768 random bytes encode to exactly 1024
// characters, each carrying 6 fresh bits, so one getRandomValues and one encoding serve 46
// proofs instead of one each. Every character is used once. (Cut inline in createProof.)
const JTI_LENGTH = 22
let jtiPool = ''
let jtiNext = 0

// The signing input of every proof is written into this one buffer: sign() copies its input
// before it returns (WebCrypto §14.3.3: "a copy of the bytes held by the data parameter"), so
// the next proof may overwrite it, and no proof allocates an ArrayBuffer for it.
let input: Uint8Array<ArrayBuffer> | undefined

/**
 * Creates and signs one DPoP proof JWT for one HTTP request.
 *
 * Header: `typ: "dpop+jwt"`, `alg`, `jwk` (public members only). Claims: `jti` (132
 * random bits), `htm`, `htu`, `iat`, `ath` when `accessToken` is given, `nonce` when given.
 * The header and the public JWK are computed once per key; `ath` once per token.
 *
 * @param keyPair - the DPoP key pair (its private key signs).
 * @param claims - `htm`, `htu`, and optionally `accessToken` (for `ath`), `nonce`, `iat`, `jti`; see {@link ProofClaims}.
 * @returns the proof JWT, for the `DPoP` request header.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` for a bad key pair, method, URL, token or
 *   nonce; `ERR_UNSUPPORTED_ALGORITHM` for a key that is neither ES256 (P-256) nor EdDSA (Ed25519); `ERR_PROOF_FAILED`
 *   when WebCrypto refuses to sign.
 * @example
 * ```ts
 * const proof = await createProof(keyPair, { htm: 'GET', htu: 'https://api.example.com/me', accessToken })
 * await fetch('https://api.example.com/me', { headers: { Authorization: `DPoP ${accessToken}`, DPoP: proof } })
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-4.2
 */
export async function createProof(keyPair: CryptoKeyPair, claims: ProofClaims): Promise<string> {
  const signer = signerOf(keyPair)
  const { htm, accessToken, nonce } = claims
  if (typeof htm !== 'string' || !METHOD.test(htm))
    throw invalidArgument('"htm" must be an HTTP method.')
  const htu =
    typeof claims.htu === 'string'
      ? (htuCache.get(claims.htu) ?? cacheHtu(claims.htu))
      : normalizeHtu(claims.htu)
  if (nonce !== undefined && (typeof nonce !== 'string' || !NONCE.test(nonce)))
    throw invalidArgument('"nonce" must be a DPoP-Nonce value (RFC 9449 §8.1).')
  const time = claims.now ?? Date.now()
  if (!Number.isFinite(time)) throw invalidArgument('"now" must be a number of milliseconds.')
  // Once the key and the token have been seen, both are plain values and the sign is the
  // only await on the path (awaiting settled promises still costs turns of the microtask
  // queue). The first proof of a key or token starts both and awaits them together.
  const athOrPending =
    accessToken === undefined ? undefined : (athCache.get(accessToken) ?? calculateAth(accessToken))
  const [s, ath] =
    signer instanceof Promise || typeof athOrPending === 'object'
      ? await Promise.all([signer, athOrPending])
      : [signer, athOrPending]
  if (jtiNext + JTI_LENGTH > jtiPool.length) {
    jtiPool = encodeBase64url(crypto.getRandomValues(new Uint8Array(768)))
    jtiNext = 0
  }
  // The payload is written as JSON text directly, skipping an object per proof: jti and ath
  // are base64url, htm a method token and the nonce NQCHAR, none with `"` or `\`. Only htu
  // is escaped: WHATWG URL hosts may contain `"`.
  const payload = `{"jti":"${jtiPool.slice(jtiNext, (jtiNext += JTI_LENGTH))}","htm":"${htm.toUpperCase()}","htu":${JSON.stringify(htu)},"iat":${Math.floor(time / 1000)}${
    ath === undefined ? '' : `,"ath":"${ath}"`
  }${nonce === undefined ? '' : `,"nonce":"${nonce}"`}}`
  // The buffer holds the payload's bytes, then (once they are encoded) the signing input:
  // the header's base64url and the payload's, which is at most twice the payload's length.
  // The payload is ASCII by construction (jti and ath base64url, htm and nonce validated
  // above, htu a serialized URL, iat digits), so its char codes are its UTF-8 bytes.
  const { headerPrefix, headerBytes } = s
  const size = headerBytes.length + 2 * payload.length
  if (!input || input.length < size) input = new Uint8Array(size * 2)
  asciiInto(payload, input, 0)
  const encoded = encodeBase64url(input.subarray(0, payload.length))
  input.set(headerBytes)
  asciiInto(encoded, input, headerBytes.length)
  const signingInput = headerPrefix + encoded
  let signature: ArrayBuffer
  try {
    signature = await s.subtle.sign(
      s.sign,
      keyPair.privateKey,
      input.subarray(0, signingInput.length),
    )
  } catch (cause) {
    throw new DPoPError(
      'ERR_PROOF_FAILED',
      'WebCrypto could not sign (key deleted?): load the key pair again.',
      { cause },
    )
  }
  return `${signingInput}.${encodeBase64url(signature)}`
}

/**
 * The RFC 7638 thumbprint of a key pair's public key, computed once per key and cached:
 * the value for `dpop_jkt` and for comparing with a token's `cnf.jkt`.
 * @param keyPair - the DPoP key pair.
 * @returns the base64url RFC 7638 thumbprint of its public key.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` for something that is not a key pair.
 * @example
 * ```ts
 * const jkt = await keyPairThumbprint(keyPair) // compare with the token's cnf.jkt
 * ```
 */
export async function keyPairThumbprint(keyPair: CryptoKeyPair): Promise<string> {
  const s = await signerOf(keyPair)
  return (s.jkt ??= thumbprintOfPublicJwk(s.jwk))
}
