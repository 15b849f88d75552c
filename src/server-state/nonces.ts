/**
 * Server-provided DPoP nonces (RFC 9449 §8, §9), one per server origin, learned from the
 * `DPoP-Nonce` header of any response and put into the next proof for that origin.
 */
import { invalidArgument } from '../base/errors.js'
import { setBounded } from '../base/bounded-map.js'

/** Options of {@link createNonceCache}. */
export interface NonceCacheOptions {
  /**
   * How many origins to remember; the least recently used is forgotten first.
   * @default 32
   */
  maxOrigins?: number
}

/** Defaults of {@link NonceCacheOptions}. */
export const NONCE_CACHE_DEFAULTS = {
  /** Origins whose nonce is kept; the oldest is dropped beyond. */
  maxOrigins: 32,
} as const satisfies Required<NonceCacheOptions>

/**
 * The latest nonce of each server origin. Keys are origins exactly as `URL.origin`
 * serializes them (`'https://api.example.com'`, lower-case, no default port, no slash);
 * share one cache between the signed fetch and the token client so they learn together.
 */
export interface NonceCache {
  /**
   * The latest nonce of `origin`, or `undefined` when none is known. Never throws.
   * @param origin - a server origin as `URL.origin` writes it.
   * @returns the nonce, or `undefined`.
   */
  get(origin: string): string | undefined
  /**
   * Remembers `nonce` for `origin`. A value that is not a valid nonce (RFC 9449 §8.1:
   * `1*NQCHAR`, at most 4096 characters here) is ignored, so a broken server cannot make
   * every later proof unsignable. Returns whether the cache changed. Never throws.
   * @param origin - a server origin as `URL.origin` writes it.
   * @param nonce - the value of a `DPoP-Nonce` header.
   * @returns whether the cache changed.
   */
  set(origin: string, nonce: string): boolean
  /**
   * Forgets the nonce of `origin`. Never throws.
   * @param origin - a server origin as `URL.origin` writes it.
   */
  delete(origin: string): void
  /** Forgets every nonce (for example on logout). Never throws. */
  clear(): void
}

// RFC 9449 §8.1: nonce = 1*NQCHAR; NQCHAR = %x21 / %x23-5B / %x5D-7E. The cap keeps a hostile
// server from inflating every proof (real nonces are tens of characters).
const NONCE = /^[\x21\x23-\x5b\x5d-\x7e]{1,4096}$/

/**
 * Creates a bounded, least-recently-used nonce cache.
 *
 * @param options - the size bound; see {@link NonceCacheOptions}.
 * @returns an empty cache.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when `options.maxOrigins` is not a positive integer.
 * @example
 * ```ts
 * const nonces = createNonceCache()
 * const dpopFetch = createDPoPFetch({ keys, origins: ['https://api.example.com'], nonces })
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-8
 */
export function createNonceCache(options?: NonceCacheOptions): NonceCache {
  const maxOrigins = options?.maxOrigins ?? NONCE_CACHE_DEFAULTS.maxOrigins
  if (!Number.isSafeInteger(maxOrigins) || maxOrigins < 1) {
    throw invalidArgument('"options.maxOrigins" must be a positive integer.')
  }
  return nonceCacheOf(maxOrigins)
}

/** @internal A nonce cache with the defaults ({@link NONCE_CACHE_DEFAULTS}): nothing to check. */
export function defaultNonceCache(): NonceCache {
  return nonceCacheOf(NONCE_CACHE_DEFAULTS.maxOrigins)
}

/** A nonce cache of at most `maxOrigins` origins (checked). */
function nonceCacheOf(maxOrigins: number): NonceCache {
  // A Map iterates in insertion order: re-inserting on use makes the first key the LRU one.
  const map = new Map<string, string>()
  return {
    get(origin) {
      const nonce = map.get(origin)
      if (nonce !== undefined && map.size > 1) {
        map.delete(origin)
        map.set(origin, nonce)
      }
      return nonce
    },
    set(origin, nonce) {
      const old = map.get(origin)
      // Most responses repeat the nonce already held: it was checked when it was stored.
      if (old !== undefined && old === nonce) {
        if (map.size > 1) {
          map.delete(origin)
          map.set(origin, nonce)
        }
        return false
      }
      if (typeof origin !== 'string' || typeof nonce !== 'string' || !NONCE.test(nonce))
        return false
      setBounded(map, origin, nonce, maxOrigins)
      return old !== nonce
    },
    delete(origin) {
      map.delete(origin)
    },
    clear() {
      map.clear()
    },
  }
}
