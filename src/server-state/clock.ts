/**
 * A server-corrected clock for proof `iat` values. Resource servers reject proofs whose
 * `iat` is outside a short window (RFC 9449 §11.1), so a device clock that is minutes off
 * would break every request; the server's `Date` header tells us by how much.
 */
import { invalidArgument } from '../base/errors.js'

/** Options of {@link createClock}. */
export interface ClockOptions {
  /**
   * The local clock, in milliseconds since the epoch. Inject a fake in tests.
   * @default Date.now
   */
  now?: () => number
  /**
   * How far (beyond the measurement's own uncertainty) the server's `Date` must be from
   * our corrected time before {@link DPoPClock.observeDate} changes the offset. HTTP
   * dates have one-second resolution, so small differences are noise.
   * @default 5000
   */
  thresholdMs?: number
  /**
   * The largest offset one server may set, either way. A device clock can be minutes or
   * hours off; a `Date` decades off is a broken or hostile server, not a correction.
   * @default 86400000 (one day)
   */
  maxOffsetMs?: number
}

/** Defaults of {@link ClockOptions}. */
export const CLOCK_DEFAULTS = {
  /** The local clock. */
  now: Date.now,
  /** Differences below this (plus the measurement's uncertainty) are noise, ms. */
  thresholdMs: 5000,
  /** The largest offset one server may set, ms (one day). */
  maxOffsetMs: 86_400_000,
} as const satisfies Required<ClockOptions>

/** A clock that adds a learned offset to the local time. Share one between fetch and token client. */
export interface DPoPClock {
  /** Server-corrected time in milliseconds since the epoch: local time + {@link DPoPClock.offset}. */
  now(): number
  /** The learned offset in milliseconds (server minus local); 0 until learned. */
  offset(): number
  /**
   * Learns from a response's `Date` header. `requestStartMs` and `responseMs` are LOCAL
   * (uncorrected) times, `now() - offset()`, taken just before the request and when its
   * response arrived. The offset changes only when the server's time differs from ours by
   * more than the threshold plus the measurement's uncertainty (half the round trip plus
   * half a second). Ignores a missing or non-IMF-fixdate `Date`, and one that would set an
   * offset beyond `maxOffsetMs`. Returns whether the offset changed. Never throws.
   * @param dateHeader - the response's `Date` header, or `null`.
   * @param requestStartMs - local time just before the request.
   * @param responseMs - local time when the response arrived.
   * @returns whether the offset changed.
   */
  observeDate(dateHeader: string | null, requestStartMs: number, responseMs: number): boolean
  /**
   * Learns from a response that refused a proof's time (an `iat` rejection): adopts the
   * offset its `Date` implies whenever it differs by more than the measurement's own
   * uncertainty, below the `observeDate` threshold too, and within `maxOffsetMs`. Times
   * as for {@link DPoPClock.observeDate}. Returns whether the offset changed. Never throws.
   * @param dateHeader - the response's `Date` header.
   * @param requestStartMs - local time just before the request.
   * @param responseMs - local time when the response arrived.
   * @returns whether the offset changed.
   */
  correct(dateHeader: string | null, requestStartMs: number, responseMs: number): boolean
  /**
   * Sets the offset (milliseconds, server minus local), for example after a server
   * rejected a proof's `iat`. An offset beyond `maxOffsetMs` is refused. Returns whether
   * the offset was set.
   * @param offsetMs - server time minus local time, in milliseconds.
   * @returns whether the offset was set.
   * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when `offsetMs` is not a finite number.
   */
  adjust(offsetMs: number): boolean
}

// IMF-fixdate (RFC 9110 §5.6.7), the only form servers generate. Date.parse alone would
// accept "1" as the year 2001: a garbage header must not move the clock by decades.
const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/

/**
 * @internal The server-minus-local offset a `Date` header implies, and how uncertain it is.
 * The server stamped `Date` somewhere between request start and response; we assume the
 * middle, and add half a second because `Date` truncates to whole seconds.
 */
export function offsetFromDate(
  dateHeader: string | null | undefined,
  requestStartMs: number,
  responseMs: number,
): { offsetMs: number; uncertaintyMs: number } | undefined {
  if (typeof dateHeader !== 'string') return undefined
  const text = dateHeader.trim()
  if (!IMF_FIXDATE.test(text)) return undefined
  const serverMs = Date.parse(text)
  if (!Number.isFinite(serverMs) || !Number.isFinite(requestStartMs) || !Number.isFinite(responseMs) || responseMs < requestStartMs) {
    return undefined
  }
  const rtt = responseMs - requestStartMs
  return {
    offsetMs: Math.round(serverMs + 500 - (requestStartMs + rtt / 2)),
    uncertaintyMs: 500 + rtt / 2,
  }
}

/**
 * Creates a clock whose offset from the local clock is learned from servers.
 *
 * @param options - the local clock and the threshold; see {@link ClockOptions}.
 * @returns a clock with offset 0.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when `options.now` is not a function or
 *   `options.thresholdMs` is not a non-negative finite number.
 * @example
 * ```ts
 * const clock = createClock()
 * const dpopFetch = createDPoPFetch({ keys, origins: ['https://api.example.com'], clock })
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9449#section-11.1
 */
export function createClock(options?: ClockOptions): DPoPClock {
  const local = options?.now ?? CLOCK_DEFAULTS.now
  if (typeof local !== 'function') throw invalidArgument('"options.now" must be a function.')
  const thresholdMs = options?.thresholdMs ?? CLOCK_DEFAULTS.thresholdMs
  if (!Number.isFinite(thresholdMs) || thresholdMs < 0) throw invalidArgument('"options.thresholdMs" must be a non-negative number.')
  const maxOffsetMs = options?.maxOffsetMs ?? CLOCK_DEFAULTS.maxOffsetMs
  if (!(maxOffsetMs >= 0)) throw invalidArgument('"options.maxOffsetMs" must be a non-negative number.')
  let offset = 0
  return {
    now: () => local() + offset,
    offset: () => offset,
    observeDate(dateHeader, requestStartMs, responseMs) {
      const seen = offsetFromDate(dateHeader, requestStartMs, responseMs)
      if (!seen || Math.abs(seen.offsetMs) > maxOffsetMs || Math.abs(seen.offsetMs - offset) <= thresholdMs + seen.uncertaintyMs) return false
      offset = seen.offsetMs
      return true
    },
    correct(dateHeader, requestStartMs, responseMs) {
      const seen = offsetFromDate(dateHeader, requestStartMs, responseMs)
      if (!seen || Math.abs(seen.offsetMs) > maxOffsetMs || Math.abs(seen.offsetMs - offset) <= seen.uncertaintyMs) return false
      offset = seen.offsetMs
      return true
    },
    adjust(offsetMs) {
      if (!Number.isFinite(offsetMs)) throw invalidArgument('"offsetMs" must be a finite number.')
      if (Math.abs(offsetMs) > maxOffsetMs) return false
      offset = Math.round(offsetMs)
      return true
    },
  }
}
