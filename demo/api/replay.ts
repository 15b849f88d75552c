/**
 * The `jti` replay cache (RFC 9449 §11.1). An entry only needs to live as long as a
 * proof with that `iat` would still pass the `iat` window; after that the window
 * check rejects the replay on its own. A size cap bounds memory against a flood.
 */

/** Remembers proof `jti`s. */
export interface ReplayCache {
  /** Records `jti`; returns false when it was already seen (a replay). */
  remember(jti: string, iat: number): boolean
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
  /** Hard cap on entries; the oldest go first. @default 100_000 */
  maxEntries?: number
}

/** Creates a bounded replay cache. Never throws. */
export function createReplayCache(options: ReplayCacheOptions): ReplayCache {
  const max = options.maxEntries ?? 100_000
  // Insertion-ordered: the first entries are the oldest inserted.
  const seen = new Map<string, number>()

  const sweep = (nowSec: number): void => {
    for (const [jti, expires] of seen) {
      if (expires >= nowSec && seen.size < max) break
      seen.delete(jti)
    }
  }
  return {
    remember(jti, iat) {
      const nowSec = Math.floor(options.now() / 1000)
      sweep(nowSec)
      if (seen.has(jti)) return false
      // Keep it at least a full window from now, even if iat is in the past, so that
      // moving the server clock back does not resurrect a replayable proof.
      seen.set(jti, Math.max(iat, nowSec) + options.windowSec)
      return true
    },
    clear() {
      seen.clear()
    },
    get size() {
      return seen.size
    },
  }
}
