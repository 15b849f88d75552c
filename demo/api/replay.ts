/**
 * The `jti` replay cache (RFC 9449 §11.1). An entry only needs to live as long as a
 * proof with that `iat` would still pass the `iat` window; after that the window
 * check rejects the replay on its own. A size cap bounds memory against a flood; when it
 * is reached by entries still inside their window, new proofs are refused (`'full'`) rather
 * than an unexpired entry forgotten: forgetting one would let its proof be replayed.
 * Record a `jti` only once the proof and its token verified, so that proofs from an
 * attacker's own key cannot fill the cache.
 */

/** What {@link ReplayCache.remember} did: recorded the jti, saw it before, or had no room. */
export type Remembered = 'recorded' | 'replayed' | 'full'

/** Remembers proof `jti`s. */
export interface ReplayCache {
  /** Records `jti`; `'replayed'` when it was already seen, `'full'` when there is no room (nothing recorded). */
  remember(jti: string, iat: number): Remembered
  /** Forgets everything. */
  clear(): void
  /** Entries held now. */
  readonly size: number
}

/** Options of {@link createReplayCache}. */
export interface ReplayCacheOptions {
  /** Seconds a proof is accepted either side of the server clock: entries live until iat + window. */
  windowSec: number
  /** Server clock, milliseconds. */
  now: () => number
  /** Hard cap on unexpired entries; past it, proofs are refused. @default 100_000 */
  maxEntries?: number
}

/** Creates a bounded replay cache. Never throws. */
export function createReplayCache(options: ReplayCacheOptions): ReplayCache {
  const max = options.maxEntries ?? 100_000
  // Insertion-ordered: the first entries are the oldest inserted.
  const seen = new Map<string, number>()

  // Expired entries only. Entries are inserted with non-decreasing expiry in the common
  // case; one with a later expiry ahead of earlier ones only delays their removal.
  const sweep = (nowSec: number): void => {
    for (const [jti, expires] of seen) {
      if (expires >= nowSec) break
      seen.delete(jti)
    }
  }
  return {
    remember(jti, iat) {
      const nowSec = Math.floor(options.now() / 1000)
      sweep(nowSec)
      if (seen.has(jti)) return 'replayed'
      if (seen.size >= max) return 'full'
      // Keep it at least a full window from now, even if iat is in the past, so that
      // moving the server clock back does not resurrect a replayable proof.
      seen.set(jti, Math.max(iat, nowSec) + options.windowSec)
      return 'recorded'
    },
    clear() {
      seen.clear()
    },
    get size() {
      return seen.size
    },
  }
}
