/**
 * Nonces remembered across page loads. The login redirect and a reload start a new page: with
 * nonces in memory only, its first pushed authorization request, code exchange or refresh
 * meets `use_dpop_nonce` and pays a second round trip (RFC 9449 §8). Internal: the client's.
 *
 * sessionStorage, not IndexedDB: it is synchronous, so the nonces are there before the page's
 * first request (no wait added to start-up) and a nonce is written before `login()` leaves the
 * page (no write lost to the navigation); it belongs to one tab, so tabs never race to write
 * it, and it ends with the tab. A new tab pays one nonce retry, as before. Nonces are not
 * secrets, but what is read back is validated like any input: an exact origin, a nonce that
 * passes the cache's own check, an age under {@link NONCE_MAX_AGE_MS}, at most
 * {@link MAX_STORED} origins.
 */
import { setBounded } from '../base/bounded-map.js'
import type { NonceCache } from './nonces.js'

/**
 * @internal How long a remembered nonce is used after the server last sent it. Older ones are
 * dropped when read back: most servers stop accepting a nonce within minutes (oidc-provider
 * after 2–3), and sending one that is stale costs the same retry as sending none.
 */
export const NONCE_MAX_AGE_MS = 300_000
/** @internal Origins whose nonce is kept across page loads, the oldest dropped first. */
export const MAX_STORED = 32

/** @internal The sessionStorage of this context, or undefined (sandboxed frames throw on access). */
export function defaultSessionStorage(): Storage | undefined {
  try {
    return globalThis.sessionStorage
  } catch {
    return undefined
  }
}

/**
 * @internal Wraps `cache` so that what it learns is kept in `storage` under `key`, and first
 * fills it with what an earlier page of this tab kept there (each entry checked). Never throws:
 * storage that is unreadable, full or disabled leaves the nonces in memory, as before.
 * `now` is the device's wall clock, for ages only (never a proof's `iat`).
 */
export function rememberNonces(
  cache: NonceCache,
  storage: Pick<Storage, 'getItem' | 'setItem'> | undefined,
  key: string,
  now: () => number = Date.now,
): NonceCache {
  // [origin, nonce, when the server last sent it], by origin
  const learned = new Map<string, [string, string, number]>()
  const save = () => {
    try {
      storage?.setItem(key, JSON.stringify([...learned.values()]))
    } catch {
      // Full or disabled: the nonces stay in memory.
    }
  }
  let stored: unknown
  try {
    stored = JSON.parse(storage?.getItem(key) ?? '')
  } catch {
    // Unreadable or none: start with none, as a new tab does.
  }
  for (const entry of Array.isArray(stored) ? stored.slice(-MAX_STORED) : []) {
    const [storedOrigin, storedNonce, storedAt] = Array.isArray(entry) ? (entry as unknown[]) : []
    const age = typeof storedAt === 'number' ? now() - storedAt : NaN
    try {
      // cache.set checks the nonce itself (RFC 9449 §8.1 characters, length).
      if (
        age >= 0 &&
        age < NONCE_MAX_AGE_MS &&
        new URL(storedOrigin as string).origin === storedOrigin &&
        cache.set(storedOrigin, storedNonce as string)
      ) {
        setBounded(
          learned,
          storedOrigin,
          [storedOrigin, storedNonce as string, storedAt as number],
          MAX_STORED,
        )
      }
    } catch {
      // Not a URL: skip it.
    }
  }
  return {
    get: (origin) => cache.get(origin),
    set(origin, nonce) {
      const changed = cache.set(origin, nonce)
      // Kept (new or repeated): the server's word is fresh as of now.
      if (cache.get(origin) === nonce) {
        setBounded(learned, origin, [origin, nonce, now()], MAX_STORED)
        save()
      }
      return changed
    },
    delete(origin) {
      cache.delete(origin)
      learned.delete(origin)
      save()
    },
    clear() {
      cache.clear()
      learned.clear()
      save()
    },
  }
}
