/**
 * WebCrypto key pairs for DPoP: generation with a non-extractable private key,
 * the public JWK, and the RFC 7638 thumbprint.
 */
import { encodeBase64url, utf8 } from '../base/base64url.js'
import { DPoPError, invalidArgument } from '../base/errors.js'

/**
 * A JWS algorithm dpop-spa can sign proofs with: `'ES256'` (ECDSA P-256, the default) or
 * `'EdDSA'` (Ed25519, where the browser's WebCrypto has it).
 */
export type DPoPAlgorithm = 'ES256' | 'EdDSA'

/** Options of {@link generateKeyPair}. */
export interface GenerateKeyPairOptions {
  /**
   * JWS algorithm of the key pair.
   * @default 'ES256'
   */
  alg?: DPoPAlgorithm
}

/** A public JWK as it appears in a proof header: public members only. */
export interface PublicJwk {
  /** Key type: `EC` (ES256), `OKP` or `RSA`. */
  kty: string
  /** Curve of an `EC` or `OKP` key, e.g. `P-256`. */
  crv?: string
  /** Public x coordinate (`EC`) or public key (`OKP`), base64url. */
  x?: string
  /** Public y coordinate of an `EC` key, base64url. */
  y?: string
  /** Modulus of an `RSA` key, base64url. */
  n?: string
  /** Public exponent of an `RSA` key, base64url. */
  e?: string
}

/** Defaults of {@link GenerateKeyPairOptions}. */
export const KEY_DEFAULTS = { alg: 'ES256' } as const satisfies Required<GenerateKeyPairOptions>

// Two algorithms: a branch each here, in generateKeyPair and in algorithmOf.
const P256: EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' }
// WebCrypto's ECDSA signature is already the raw r||s form JWS wants (RFC 7518 §3.4).
const ES256_SIGN: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' }
// Ed25519 signatures are the 64 raw bytes JWS wants too (RFC 8037 §3.1).
const ED25519: Algorithm = { name: 'Ed25519' }

/** @internal */
export function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle
  if (!s)
    throw new DPoPError(
      'ERR_CRYPTO_UNAVAILABLE',
      'No crypto.subtle: serve the page over https:// or from http://localhost.',
    )
  return s
}

/** @internal The JWS alg of a key, or undefined when we cannot sign with it. */
export function jwsAlgorithmOf(key: CryptoKey): DPoPAlgorithm | undefined {
  const a = key.algorithm as EcKeyAlgorithm
  return a.name === 'ECDSA' && a.namedCurve === 'P-256'
    ? 'ES256'
    : a.name === 'Ed25519'
      ? 'EdDSA'
      : undefined
}

/** @internal The JWS alg and WebCrypto sign parameters of a private key. Throws ERR_UNSUPPORTED_ALGORITHM. */
export function algorithmOf(key: CryptoKey): { alg: DPoPAlgorithm; sign: EcdsaParams | Algorithm } {
  const alg = jwsAlgorithmOf(key)
  if (alg) return { alg, sign: alg === 'ES256' ? ES256_SIGN : ED25519 }
  throw new DPoPError(
    'ERR_UNSUPPORTED_ALGORITHM',
    `A ${key.algorithm.name} key cannot sign proofs: use generateKeyPair().`,
  )
}

/** @internal Checks an `alg` option. Throws ERR_UNSUPPORTED_ALGORITHM naming the option. */
export function checkAlgorithm(alg: unknown, option: string): DPoPAlgorithm {
  if (alg === 'ES256' || alg === 'EdDSA') return alg
  throw new DPoPError(
    'ERR_UNSUPPORTED_ALGORITHM',
    `"${option}" must be "ES256" or "EdDSA"; got ${JSON.stringify(String(alg)).slice(0, 40)}.`,
  )
}

/**
 * Generates a DPoP key pair whose private key cannot be exported.
 *
 * The private key is created with `extractable: false`; WebCrypto keeps the public key
 * extractable so that its JWK can go into proofs.
 *
 * @param options - the algorithm; see {@link GenerateKeyPairOptions}.
 * @returns the key pair; `privateKey.extractable` is `false`.
 * @throws {DPoPError} `ERR_UNSUPPORTED_ALGORITHM` for an unknown `options.alg`, or for
 *   `'EdDSA'` where this browser's WebCrypto has no Ed25519; `ERR_CRYPTO_UNAVAILABLE`
 *   outside a secure context.
 * @example
 * ```ts
 * const keyPair = await generateKeyPair() // ES256
 * const edKeyPair = await generateKeyPair({ alg: 'EdDSA' }) // Ed25519
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-2
 */
export async function generateKeyPair(
  options: GenerateKeyPairOptions = {},
): Promise<CryptoKeyPair> {
  const alg = checkAlgorithm(options.alg ?? KEY_DEFAULTS.alg, 'options.alg')
  const s = subtle()
  if (alg === 'ES256') return s.generateKey(P256, false, ['sign', 'verify'])
  try {
    return (await s.generateKey(ED25519, false, ['sign', 'verify'])) as CryptoKeyPair
  } catch (e) {
    throw new DPoPError(
      'ERR_UNSUPPORTED_ALGORITHM',
      'This browser\'s WebCrypto has no Ed25519: use alg "ES256".',
      { cause: e },
    )
  }
}

// RFC 7638 §3.2: the required members of each key type, in lexicographic order. OKP and
// RSA are here for thumbprints of keys we do not sign with (and the RFC's RSA example).
const REQUIRED_MEMBERS: Readonly<Record<string, readonly (keyof PublicJwk)[]>> = {
  EC: ['crv', 'kty', 'x', 'y'],
  OKP: ['crv', 'kty', 'x'],
  RSA: ['e', 'kty', 'n'],
}

/**
 * The public members of a JWK that a DPoP proof header carries (RFC 7638 §3.2's
 * required members: never `d`, `key_ops` or `ext`).
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` for an unknown `kty` or missing members.
 */
export function publicJwk(jwk: JsonWebKey): PublicJwk {
  const kty = String(jwk.kty)
  const members = Object.hasOwn(REQUIRED_MEMBERS, kty) ? REQUIRED_MEMBERS[kty] : undefined
  const out: Record<string, unknown> = {}
  for (const m of members ?? []) out[m] = (jwk as Record<string, unknown>)[m]
  if (!members || !members.every((m) => typeof out[m] === 'string' && out[m] !== '')) {
    throw invalidArgument('The JWK must be a whole EC, OKP or RSA public key.')
  }
  return out as unknown as PublicJwk
}

/**
 * Exports the public JWK of a public key (public members only).
 * @param publicKey - the public key of a key pair.
 * @returns the public JWK (`kty`, `crv`, `x`, `y` for ES256).
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when the key is not an extractable public key.
 * @example
 * ```ts
 * const jwk = await exportPublicJwk(keyPair.publicKey) // { kty: 'EC', crv: 'P-256', x, y }
 * ```
 */
export async function exportPublicJwk(publicKey: CryptoKey): Promise<PublicJwk> {
  if (!(publicKey instanceof CryptoKey) || publicKey.type !== 'public')
    throw invalidArgument('"publicKey" must be the public key of a key pair.')
  return publicJwk(await subtle().exportKey('jwk', publicKey))
}

/**
 * RFC 7638 JWK SHA-256 thumbprint, base64url: the value of `dpop_jkt` and `cnf.jkt`.
 *
 * Accepts the public CryptoKey of a pair, or a JWK (private members are ignored).
 *
 * @param publicKey - a public `CryptoKey`, or a JWK (EC, OKP or RSA).
 * @returns the base64url SHA-256 thumbprint.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when the key is not a public key or a JWK of
 *   kty EC, OKP or RSA with its required members.
 * @example
 * ```ts
 * const jkt = await calculateThumbprint(keyPair.publicKey)
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc7638#section-3
 */
export async function calculateThumbprint(publicKey: CryptoKey | JsonWebKey): Promise<string> {
  return thumbprintOfPublicJwk(
    publicKey instanceof CryptoKey ? await exportPublicJwk(publicKey) : publicJwk(publicKey),
  )
}

/** @internal Thumbprint of an already reduced public JWK. */
export async function thumbprintOfPublicJwk(jwk: PublicJwk): Promise<string> {
  // publicJwk() kept the required members only, in lexicographic order: JSON.stringify
  // gives the canonical form with no white space (RFC 7638 §3.3).
  return encodeBase64url(await subtle().digest('SHA-256', utf8(JSON.stringify(jwk))))
}
