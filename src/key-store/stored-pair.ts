/**
 * The key pair's record in IndexedDB: the `CryptoKeyPair` itself (structured clone of the
 * CryptoKey objects; the private key stays non-extractable), one record per algorithm, and
 * load-or-create in one transaction that adds only if absent, so two tabs that start
 * together end with one pair. Internal to the key store.
 */
import { get, update, type UseStore } from 'idb-keyval'
import { KeyStoreError } from '../base/errors.js'
import { generateKeyPair, jwsAlgorithmOf, type DPoPAlgorithm } from '../proof/keys.js'

interface StoredKeyPair {
  readonly v: 1
  /** The JWS algorithm the pair signs with (also readable from the keys themselves). */
  readonly alg?: DPoPAlgorithm
  readonly privateKey: CryptoKey
  readonly publicKey: CryptoKey
}

/** The record of the ES256 pair (the name of every pair before there was a record per algorithm). */
const RECORD = 'keypair'

/** @internal The record of `alg`'s pair: ES256 keeps the original name, so existing keys stay. */
export function recordOf(alg: DPoPAlgorithm): string {
  return alg === 'ES256' ? RECORD : `${RECORD}:${alg}`
}

function isUsable(value: unknown): value is StoredKeyPair {
  if (typeof value !== 'object' || value === null) return false
  const { privateKey, publicKey } = value as Partial<StoredKeyPair>
  // A private key that is extractable did not come from us: never use it.
  return (
    privateKey instanceof CryptoKey &&
    privateKey.type === 'private' &&
    !privateKey.extractable &&
    publicKey instanceof CryptoKey &&
    publicKey.type === 'public'
  )
}

/** A stored pair is used only when it signs with the configured algorithm. */
function fits(value: unknown, alg: DPoPAlgorithm): value is StoredKeyPair {
  return isUsable(value) && jwsAlgorithmOf(value.privateKey) === alg
}

/** @internal Writes `pair` as the record of `alg`, replacing what was there. */
export async function storePair(
  use: UseStore,
  alg: DPoPAlgorithm,
  pair: CryptoKeyPair,
): Promise<void> {
  const value: StoredKeyPair = { v: 1, alg, ...pair }
  await update(recordOf(alg), () => value, use)
}

/**
 * @internal The stored pair of `alg`, or a new one added in one transaction only if no usable
 * pair is there yet: a tab that lost the race adopts the winner's pair.
 * @returns the pair, and whether a pair of another algorithm was replaced (an older version's
 *   EdDSA pair under the ES256 name), which the store announces as a rotation.
 * @throws {KeyStoreError} what IndexedDB throws; `ERR_KEY_STORE_FAILED` when the pair cannot be
 *   read back.
 */
export async function loadOrCreatePair(
  use: UseStore,
  alg: DPoPAlgorithm,
): Promise<[CryptoKeyPair, boolean]> {
  const record = recordOf(alg)
  const found = await get<unknown>(record, use)
  if (fits(found, alg)) return [{ privateKey: found.privateKey, publicKey: found.publicKey }, false]
  const fresh = await generateKeyPair({ alg })
  const value: StoredKeyPair = { v: 1, alg, ...fresh }
  let replaced = false
  await update<unknown>(
    record,
    (old) => {
      if (fits(old, alg)) return old
      replaced = isUsable(old)
      return value
    },
    use,
  )
  const winner = await get<unknown>(record, use)
  if (!fits(winner, alg))
    throw new KeyStoreError(
      'ERR_KEY_STORE_FAILED',
      'The stored key pair could not be read back: reload, or else clear site data.',
    )
  return [{ privateKey: winner.privateKey, publicKey: winner.publicKey }, replaced]
}
