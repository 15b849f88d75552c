/**
 * WebCrypto key pairs for DPoP: generation with a non-extractable private key,
 * the public JWK, and the RFC 7638 thumbprint.
 */
import { encodeBase64url, utf8 } from './base64url.js'
import { DPoPError } from './errors.js'

/**
 * A JWS algorithm dpop-spa can sign proofs with. A union so that more algorithms
 * (for example `'Ed25519'`) can be added without changing any signature.
 */
export type DPoPAlgorithm = 'ES256'

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
  kty: string
  crv?: string
  x?: string
  y?: string
  n?: string
  e?: string
}

interface AlgorithmSpec {
  readonly generate: EcKeyGenParams
  readonly sign: EcdsaParams
  /** Does a CryptoKey's `algorithm` belong to this JWS alg? */
  readonly matches: (algorithm: KeyAlgorithm) => boolean
}

// The one table to extend when an algorithm is added.
const ALGORITHMS: Readonly<Record<DPoPAlgorithm, AlgorithmSpec>> = {
  ES256: {
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    // WebCrypto's ECDSA signature is already the raw r||s form JWS wants (RFC 7518 §3.4).
    sign: { name: 'ECDSA', hash: 'SHA-256' },
    matches: (a) => a.name === 'ECDSA' && (a as EcKeyAlgorithm).namedCurve === 'P-256',
  },
}

/** Defaults of {@link GenerateKeyPairOptions}. */
export const KEY_DEFAULTS = { alg: 'ES256' } as const satisfies Required<GenerateKeyPairOptions>

/** @internal */
export function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle
  if (!s) {
    throw new DPoPError(
      'ERR_CRYPTO_UNAVAILABLE',
      'WebCrypto (crypto.subtle) is not available. DPoP needs a secure context: serve the page over https:// or from http://localhost.',
    )
  }
  return s
}

function spec(alg: unknown): AlgorithmSpec {
  if (typeof alg === 'string' && Object.hasOwn(ALGORITHMS, alg)) return ALGORITHMS[alg as DPoPAlgorithm]
  throw new DPoPError(
    'ERR_UNSUPPORTED_ALGORITHM',
    `"options.alg" must be one of ${Object.keys(ALGORITHMS).join(', ')}; got ${JSON.stringify(String(alg))}.`,
  )
}

/** @internal The JWS alg and WebCrypto sign parameters of a private key. Throws ERR_UNSUPPORTED_ALGORITHM. */
export function algorithmOf(key: CryptoKey): { alg: DPoPAlgorithm; sign: EcdsaParams } {
  for (const alg of Object.keys(ALGORITHMS) as DPoPAlgorithm[]) {
    const s = ALGORITHMS[alg]
    if (s.matches(key.algorithm)) return { alg, sign: s.sign }
  }
  throw new DPoPError(
    'ERR_UNSUPPORTED_ALGORITHM',
    `The key's algorithm (${key.algorithm.name}) cannot sign DPoP proofs; use generateKeyPair() to make an ES256 key pair.`,
  )
}

/**
 * Generates a DPoP key pair whose private key cannot be exported.
 *
 * The private key is created with `extractable: false`; WebCrypto keeps the public key
 * extractable so that its JWK can go into proofs.
 *
 * @throws {DPoPError} `ERR_UNSUPPORTED_ALGORITHM` for an unknown `options.alg`;
 *   `ERR_CRYPTO_UNAVAILABLE` outside a secure context.
 * @example
 * ```ts
 * const keyPair = await generateKeyPair() // ES256
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-2
 */
export async function generateKeyPair(options: GenerateKeyPairOptions = {}): Promise<CryptoKeyPair> {
  const s = spec(options.alg ?? KEY_DEFAULTS.alg)
  return subtle().generateKey(s.generate, false, ['sign', 'verify'])
}

// RFC 7638 §3.2: the required members of each key type, in lexicographic order.
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
  const members = typeof jwk.kty === 'string' ? REQUIRED_MEMBERS[jwk.kty] : undefined
  if (!members) throw new DPoPError('ERR_INVALID_ARGUMENT', `JWK "kty" must be EC, OKP or RSA; got ${String(jwk.kty)}.`)
  const out: Record<string, string> = {}
  for (const m of members) {
    const v = (jwk as Record<string, unknown>)[m]
    if (typeof v !== 'string' || v === '') {
      throw new DPoPError('ERR_INVALID_ARGUMENT', `JWK of kty ${jwk.kty} must have a string "${m}".`)
    }
    out[m] = v
  }
  return out as unknown as PublicJwk
}

/**
 * Exports the public JWK of a public key (public members only).
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when the key is not an extractable public key.
 */
export async function exportPublicJwk(publicKey: CryptoKey): Promise<PublicJwk> {
  if (!(publicKey instanceof CryptoKey) || publicKey.type !== 'public') {
    throw new DPoPError('ERR_INVALID_ARGUMENT', '"publicKey" must be the public CryptoKey of a key pair.')
  }
  return publicJwk(await subtle().exportKey('jwk', publicKey))
}

/**
 * RFC 7638 JWK SHA-256 thumbprint, base64url: the value of `dpop_jkt` and `cnf.jkt`.
 *
 * Accepts the public CryptoKey of a pair, or a JWK (private members are ignored).
 *
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when the key is not a public key or a JWK of
 *   kty EC, OKP or RSA with its required members.
 * @example
 * ```ts
 * const jkt = await calculateThumbprint(keyPair.publicKey)
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc7638#section-3
 */
export async function calculateThumbprint(publicKey: CryptoKey | JsonWebKey): Promise<string> {
  const jwk = publicKey instanceof CryptoKey ? await exportPublicJwk(publicKey) : publicJwk(publicKey)
  return thumbprintOfPublicJwk(jwk)
}

/** @internal Thumbprint of an already reduced public JWK. */
export async function thumbprintOfPublicJwk(jwk: PublicJwk): Promise<string> {
  const members = REQUIRED_MEMBERS[jwk.kty] ?? []
  // JSON with members in lexicographic order and no white space (RFC 7638 §3.3).
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`
  return encodeBase64url(await subtle().digest('SHA-256', utf8(canonical)))
}
