// @vitest-environment node
import { describe, expect, it } from 'vitest'
import { createClock, offsetFromDate } from '../src/server-state/clock.ts'
import { isDPoPError } from '../src/base/errors.ts'

const LOCAL = Date.UTC(2025, 0, 15, 12, 0, 0) // 12:00:00.000 local
const httpDate = (ms: number) => new Date(ms).toUTCString()

function fakeClock(start = LOCAL) {
  let t = start
  const clock = createClock({ now: () => t })
  return { clock, advance: (ms: number) => { t += ms }, local: () => t }
}

describe('createClock', () => {
  it('uses the injected local clock and starts with no offset', () => {
    const { clock, advance } = fakeClock()
    expect(clock.now()).toBe(LOCAL)
    expect(clock.offset()).toBe(0)
    advance(1234)
    expect(clock.now()).toBe(LOCAL + 1234)
  })

  it('learns a server clock that is minutes ahead from the Date header', () => {
    const { clock } = fakeClock()
    const server = LOCAL + 7 * 60_000 // server is 7 minutes ahead
    expect(clock.observeDate(httpDate(server), LOCAL - 100, LOCAL + 100)).toBe(true)
    // Within Date's one-second resolution plus the round trip.
    expect(Math.abs(clock.offset() - 7 * 60_000)).toBeLessThanOrEqual(600)
    expect(Math.abs(clock.now() - server)).toBeLessThanOrEqual(600)
  })

  it('learns a server clock that is behind', () => {
    const { clock } = fakeClock()
    expect(clock.observeDate(httpDate(LOCAL - 3_600_000), LOCAL, LOCAL)).toBe(true)
    expect(Math.abs(clock.offset() + 3_600_000)).toBeLessThanOrEqual(600)
  })

  it('ignores differences of a few seconds (HTTP Date has 1 s resolution)', () => {
    const { clock } = fakeClock()
    for (const skew of [0, 900, -900, 3000, -4000]) {
      expect(clock.observeDate(httpDate(LOCAL + skew), LOCAL, LOCAL + 50)).toBe(false)
    }
    expect(clock.offset()).toBe(0)
  })

  it('does not move for a date that agrees with the learned offset, but follows a corrected device clock', () => {
    const { clock, advance, local } = fakeClock()
    clock.observeDate(httpDate(LOCAL + 120_000), LOCAL, LOCAL)
    const learned = clock.offset()
    advance(10_000)
    expect(clock.observeDate(httpDate(local() + 120_000), local(), local())).toBe(false)
    expect(clock.offset()).toBe(learned)
    // The device clock was fixed (NTP): now the server agrees with local time again.
    expect(clock.observeDate(httpDate(local()), local(), local())).toBe(true)
    expect(Math.abs(clock.offset())).toBeLessThanOrEqual(600)
  })

  it('does not trust a date when the round trip was too slow to tell', () => {
    const { clock } = fakeClock()
    // 6 s off, but the response took 20 s: the server may have stamped it anywhere in there.
    expect(clock.observeDate(httpDate(LOCAL + 16_000), LOCAL, LOCAL + 20_000)).toBe(false)
    expect(clock.offset()).toBe(0)
  })

  it('ignores missing, garbage and non-IMF-fixdate Date headers', () => {
    const { clock } = fakeClock()
    for (const bad of [null, '', '1', 'yesterday', '2030-01-01T00:00:00Z', 'Sunday, 06-Nov-94 08:49:37 GMT', 'Wed, 32 Jan 2030 00:00:00 GMT']) {
      expect(clock.observeDate(bad, LOCAL, LOCAL)).toBe(false)
    }
    expect(clock.observeDate(httpDate(LOCAL + 600_000), LOCAL + 10, LOCAL)).toBe(false) // response before request
    expect(clock.offset()).toBe(0)
  })

  it('adjust() sets the offset and validates it', () => {
    const { clock } = fakeClock()
    clock.adjust(-90_000.4)
    expect(clock.offset()).toBe(-90_000)
    expect(clock.now()).toBe(LOCAL - 90_000)
    for (const bad of [Number.NaN, Infinity, '5' as unknown as number]) {
      let caught: unknown
      try { clock.adjust(bad) } catch (e) { caught = e }
      expect(isDPoPError(caught, 'ERR_INVALID_ARGUMENT')).toBe(true)
    }
  })

  it('validates its options', () => {
    expect(() => createClock({ now: 5 as unknown as () => number })).toThrow(/options\.now/)
    expect(() => createClock({ thresholdMs: -1 })).toThrow(/options\.thresholdMs/)
    expect(createClock().now()).toBeGreaterThan(LOCAL)
  })
})

describe('offsetFromDate', () => {
  it('assumes the middle of the round trip and half a second of truncation', () => {
    const server = Date.UTC(2025, 0, 15, 12, 10, 0)
    expect(offsetFromDate(httpDate(server), LOCAL, LOCAL + 2000)).toEqual({ offsetMs: server + 500 - (LOCAL + 1000), uncertaintyMs: 1500 })
  })
})
