/**
 * The server's own DPoP nonce (RFC 9449 §9): one current value plus the previous one,
 * so a request that was in flight while the nonce rotated is not challenged for it.
 */
import { randomBytes } from 'node:crypto'

/** A nonce source with rotation. */
export interface NonceIssuer {
  /** The nonce to hand out now. Rotates first when the interval has passed. */
  current(): string
  /** Is `nonce` the current or the previous nonce? Rotates first when the interval has passed. */
  accepts(nonce: string): boolean
  /** Replaces the current nonce; the old current becomes the previous one. Returns the new nonce. */
  rotate(): string
  /** Forgets both values (a reset): no nonce issued before is accepted any more. */
  reset(): void
}

/** Options of {@link createNonceIssuer}. */
export interface NonceIssuerOptions {
  /** Rotate when this many milliseconds have passed since the last rotation; 0 = only on demand. @default 0 */
  rotateEveryMs?: number
  /** Monotonic milliseconds, injectable for tests. @default performance.now */
  monotonicNow?: () => number
}

// 128 bits, base64url: only NQCHAR (RFC 9449 §8.1).
const fresh = (): string => randomBytes(16).toString('base64url')

/**
 * Creates a nonce issuer. Rotation runs on a monotonic clock, not on the server's
 * (offsettable) wall clock, so simulating clock skew does not rotate nonces.
 * @throws {TypeError} when `rotateEveryMs` is negative or not finite.
 */
export function createNonceIssuer(options: NonceIssuerOptions = {}): NonceIssuer {
  const every = options.rotateEveryMs ?? 0
  if (!Number.isFinite(every) || every < 0)
    throw new TypeError('"rotateEveryMs" must be a finite number >= 0')
  const monotonicNow = options.monotonicNow ?? (() => performance.now())
  let current = fresh()
  let previous: string | undefined
  let rotatedAt = monotonicNow()

  const rotate = (): string => {
    previous = current
    current = fresh()
    rotatedAt = monotonicNow()
    return current
  }
  const tick = (): void => {
    if (every > 0 && monotonicNow() - rotatedAt >= every) rotate()
  }
  return {
    current() {
      tick()
      return current
    },
    accepts(nonce) {
      tick()
      return nonce === current || (previous !== undefined && nonce === previous)
    },
    rotate,
    reset() {
      current = fresh()
      previous = undefined
      rotatedAt = monotonicNow()
    },
  }
}
