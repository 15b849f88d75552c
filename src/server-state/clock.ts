/**
 * A server-corrected clock for proof `iat` values. Resource servers reject proofs whose
 * `iat` is outside a short window (RFC 9449 §11.1), so a device clock that is minutes off
 * would break every request; the server's `Date` header tells us by how much.
 */
import { setBounded } from '../base/bounded-map.js'
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
   * The largest offset, either way, and the most one change may move an offset. A device
   * clock can be minutes or hours off; a `Date` decades off is a broken or hostile server,
   * not a correction.
   * @default 86400000 (one day)
   */
  maxOffsetMs?: number
  /**
   * How many origins' offsets to remember; the one set longest ago is forgotten first (its
   * proofs then use the default offset until it answers again).
   * @default 32
   */
  maxOrigins?: number
}

/** Defaults of {@link ClockOptions}. */
export const CLOCK_DEFAULTS = {
  /** The local clock. */
  now: Date.now,
  /** Differences below this (plus the measurement's uncertainty) are noise, ms. */
  thresholdMs: 5000,
  /** The largest offset, and the largest move of one change, ms (one day). */
  maxOffsetMs: 86_400_000,
  /** Origins whose offset is kept; the oldest is dropped beyond. */
  maxOrigins: 32,
} as const satisfies Required<ClockOptions>

/**
 * A clock that adds a learned offset to the local time, per server origin: what one
 * server's `Date` teaches applies to proofs for that server only. An origin that has not
 * answered with a usable `Date` yet uses the default offset (learned without an origin;
 * the client learns it from the authorization server). Share one between fetch and token
 * client. Origins are written as `URL.origin` writes them.
 */
export interface DPoPClock {
  /**
   * Server-corrected time in milliseconds since the epoch: local time + {@link DPoPClock.offset}.
   * @param origin - the server the time is for; omitted, the default offset applies.
   * @returns the corrected time.
   */
  now(origin?: string): number
  /**
   * The local (uncorrected) time in milliseconds since the epoch: the device's clock, the
   * `now` option. For timing a request around a response's `Date` (see
   * {@link DPoPClock.observeDate}); never for a proof's `iat`. Never throws.
   * @returns the local time.
   */
  local(): number
  /**
   * The offset in milliseconds (server minus local) for `origin`: its own once it has
   * answered with a usable `Date`, else the default one; 0 until learned.
   * @param origin - the server; omitted, the default offset.
   * @returns the offset.
   */
  offset(origin?: string): number
  /**
   * Learns from a response's `Date` header, for `origin` (or the default offset when
   * omitted). `requestStartMs` and `responseMs` are LOCAL (uncorrected) times, taken just
   * before the request and when its response arrived. The first usable `Date` of an origin
   * gives it an offset of its own (from then on the default no longer applies to it); after
   * that the offset changes only when the server's time differs from ours by more than the
   * threshold plus the measurement's uncertainty (half the round trip plus half a second).
   * Ignores a missing or non-IMF-fixdate `Date`, and one that would set an offset beyond
   * `maxOffsetMs` or move it by more than `maxOffsetMs`. Returns whether the offset changed.
   * Never throws.
   * @param dateHeader - the response's `Date` header, or `null`.
   * @param requestStartMs - local time just before the request.
   * @param responseMs - local time when the response arrived.
   * @param origin - the server that answered; omitted, the default offset learns.
   * @returns whether the offset changed.
   */
  observeDate(
    dateHeader: string | null,
    requestStartMs: number,
    responseMs: number,
    origin?: string,
  ): boolean
  /**
   * Learns from a response that refused a proof's time (an `iat` rejection): adopts the
   * offset its `Date` implies whenever it differs by more than the measurement's own
   * uncertainty, below the `observeDate` threshold too, within the `maxOffsetMs` bounds.
   * Times and origin as for {@link DPoPClock.observeDate}. Returns whether the offset
   * changed. Never throws.
   * @param dateHeader - the response's `Date` header.
   * @param requestStartMs - local time just before the request.
   * @param responseMs - local time when the response arrived.
   * @param origin - the server that answered; omitted, the default offset.
   * @returns whether the offset changed.
   */
  correct(
    dateHeader: string | null,
    requestStartMs: number,
    responseMs: number,
    origin?: string,
  ): boolean
  /**
   * Sets the offset (milliseconds, server minus local) of `origin`, or the default one,
   * for example after a server rejected a proof's `iat`. An offset beyond `maxOffsetMs`,
   * or a move by more than `maxOffsetMs`, is refused. Returns whether the offset was set.
   * @param offsetMs - server time minus local time, in milliseconds.
   * @param origin - the server; omitted, the default offset.
   * @returns whether the offset was set.
   * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when `offsetMs` is not a finite number.
   */
  adjust(offsetMs: number, origin?: string): boolean
}

// IMF-fixdate (RFC 9110 §5.6.7), the only form servers generate. Date.parse alone would
// accept "1" as the year 2001: a garbage header must not move the clock by decades.
const IMF_FIXDATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/

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
  if (
    !Number.isFinite(serverMs) ||
    !Number.isFinite(requestStartMs) ||
    !Number.isFinite(responseMs) ||
    responseMs < requestStartMs
  ) {
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
 * @param options - the local clock, the threshold and the bounds; see {@link ClockOptions}.
 * @returns a clock with offset 0 for every origin.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when `options.now` is not a function,
 *   `options.thresholdMs` or `options.maxOffsetMs` is not a non-negative number, or
 *   `options.maxOrigins` is not a positive integer.
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
  if (!Number.isFinite(thresholdMs) || thresholdMs < 0)
    throw invalidArgument('"options.thresholdMs" must be a non-negative number.')
  const maxOffsetMs = options?.maxOffsetMs ?? CLOCK_DEFAULTS.maxOffsetMs
  if (!(maxOffsetMs >= 0))
    throw invalidArgument('"options.maxOffsetMs" must be a non-negative number.')
  const maxOrigins = options?.maxOrigins ?? CLOCK_DEFAULTS.maxOrigins
  if (!Number.isSafeInteger(maxOrigins) || maxOrigins < 1)
    throw invalidArgument('"options.maxOrigins" must be a positive integer.')
  return clockOf(local, thresholdMs, maxOffsetMs, maxOrigins)
}

/** @internal A clock with the defaults ({@link CLOCK_DEFAULTS}): nothing to check. */
export function defaultClock(): DPoPClock {
  return clockOf(
    CLOCK_DEFAULTS.now,
    CLOCK_DEFAULTS.thresholdMs,
    CLOCK_DEFAULTS.maxOffsetMs,
    CLOCK_DEFAULTS.maxOrigins,
  )
}

/** A clock from checked values: see {@link ClockOptions}. */
function clockOf(
  local: () => number,
  thresholdMs: number,
  maxOffsetMs: number,
  maxOrigins: number,
): DPoPClock {
  // The default offset, and each origin's own once it answered (bounded like the nonces).
  let fallback = 0
  const own = new Map<string, number>()
  const offset = (origin?: string) =>
    (origin === undefined ? undefined : own.get(origin)) ?? fallback
  // Both bounds: the total (no offset beyond a day) and one change's move (no step beyond a
  // day either, so an offset at -23 h cannot jump to +23 h in one answer).
  const set = (next: number, origin: string | undefined, margin: number): boolean => {
    const before = offset(origin)
    const first = origin !== undefined && !own.has(origin)
    if (Math.abs(next) > maxOffsetMs || Math.abs(next - before) > maxOffsetMs) return false
    // An origin's first answer gives it an offset of its own, even one that agrees with the default.
    const moved = Math.abs(next - before) > margin
    if (!moved && !first) return false
    if (origin === undefined) fallback = next
    else setBounded(own, origin, moved ? next : before, maxOrigins)
    return moved
  }
  return {
    now: (origin) => local() + offset(origin),
    local: () => local(),
    offset,
    observeDate(dateHeader, requestStartMs, responseMs, origin) {
      const seen = offsetFromDate(dateHeader, requestStartMs, responseMs)
      return !!seen && set(seen.offsetMs, origin, thresholdMs + seen.uncertaintyMs)
    },
    correct(dateHeader, requestStartMs, responseMs, origin) {
      const seen = offsetFromDate(dateHeader, requestStartMs, responseMs)
      return !!seen && set(seen.offsetMs, origin, seen.uncertaintyMs)
    },
    adjust(offsetMs, origin) {
      if (!Number.isFinite(offsetMs)) throw invalidArgument('"offsetMs" must be a finite number.')
      // A margin below zero: the offset is set even when it does not change.
      return set(Math.round(offsetMs), origin, -1)
    },
  }
}
