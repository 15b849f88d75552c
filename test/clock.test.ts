// @vitest-environment node
import { describe, expect, it } from 'vitest'
import { createClock, offsetFromDate } from '../src/server-state/clock.ts'
import { isDPoPError } from '../src/base/errors.ts'

const LOCAL = Date.UTC(2025, 0, 15, 12, 0, 0) // 12:00:00.000 local
const httpDate = (ms: number) => new Date(ms).toUTCString()

function fakeClock(start = LOCAL) {
  let t = start
  const clock = createClock({ now: () => t })
  return {
    clock,
    advance: (ms: number) => {
      t += ms
    },
    local: () => t,
  }
}

describe('createClock', () => {
  it('uses the injected local clock and starts with no offset', () => {
    const { clock, advance } = fakeClock()
    expect(clock.now()).toBe(LOCAL)
    expect(clock.offset()).toBe(0)
    advance(1234)
    expect(clock.now()).toBe(LOCAL + 1234)
  })

  it('local() reads the device clock, whatever offset the default or an origin has learned', () => {
    const { clock, advance } = fakeClock()
    expect(clock.local()).toBe(LOCAL)
    clock.adjust(90_000)
    clock.adjust(-30_000, 'https://api.example.com')
    advance(250)
    expect(clock.local()).toBe(LOCAL + 250)
    expect(clock.now()).toBe(LOCAL + 250 + 90_000)
    expect(clock.now('https://api.example.com')).toBe(LOCAL + 250 - 30_000)
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
    for (const bad of [
      null,
      '',
      '1',
      'yesterday',
      '2030-01-01T00:00:00Z',
      'Sunday, 06-Nov-94 08:49:37 GMT',
      'Wed, 32 Jan 2030 00:00:00 GMT',
    ]) {
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
      try {
        clock.adjust(bad)
      } catch (e) {
        caught = e
      }
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
    expect(offsetFromDate(httpDate(server), LOCAL, LOCAL + 2000)).toEqual({
      offsetMs: server + 500 - (LOCAL + 1000),
      uncertaintyMs: 1500,
    })
  })
})

describe('per origin (issue 19)', () => {
  const A = 'https://a.example'
  const B = 'https://b.example'

  it("an origin's Date sets that origin's offset only; the default seeds origins that have not answered", () => {
    const { clock } = fakeClock()
    expect(clock.observeDate(httpDate(LOCAL + 23 * 3_600_000), LOCAL, LOCAL, A)).toBe(true)
    expect(Math.abs(clock.offset(A) - 23 * 3_600_000)).toBeLessThanOrEqual(600)
    expect(clock.offset(B)).toBe(0)
    expect(clock.offset()).toBe(0)
    expect(clock.now(B)).toBe(LOCAL)
    // The default (what the client learns from the authorization server) seeds B...
    clock.observeDate(httpDate(LOCAL + 600_000), LOCAL, LOCAL)
    expect(Math.abs(clock.offset(B) - 600_000)).toBeLessThanOrEqual(600)
    // ...until B answers itself, even with a Date that agrees with the local clock.
    expect(clock.observeDate(httpDate(LOCAL), LOCAL, LOCAL, B)).toBe(true)
    expect(Math.abs(clock.offset(B))).toBeLessThanOrEqual(600)
    clock.observeDate(httpDate(LOCAL + 1_200_000), LOCAL, LOCAL)
    expect(Math.abs(clock.offset(B))).toBeLessThanOrEqual(600)
  })

  it("an origin's first Date within the noise of the default pins it to the default", () => {
    const { clock } = fakeClock()
    clock.adjust(600_000)
    expect(clock.observeDate(httpDate(LOCAL + 601_000), LOCAL, LOCAL, A)).toBe(false)
    clock.adjust(0)
    expect(clock.offset(A)).toBe(600_000)
  })

  it('one change moves an offset by at most maxOffsetMs, and no offset goes beyond it', () => {
    const { clock } = fakeClock()
    expect(clock.adjust(-23 * 3_600_000, A)).toBe(true)
    // +23 h is within the total bound but 46 h from where A is: refused, from Date, correct() and adjust().
    expect(clock.observeDate(httpDate(LOCAL + 23 * 3_600_000), LOCAL, LOCAL, A)).toBe(false)
    expect(clock.correct(httpDate(LOCAL + 23 * 3_600_000), LOCAL, LOCAL, A)).toBe(false)
    expect(clock.adjust(23 * 3_600_000, A)).toBe(false)
    expect(clock.offset(A)).toBe(-23 * 3_600_000)
    // Back towards zero in one step is fine.
    expect(clock.adjust(0, A)).toBe(true)
  })

  it('adjust() refuses an offset beyond maxOffsetMs, for the default and for an origin', () => {
    const { clock } = fakeClock()
    const small = createClock({ now: () => LOCAL, maxOffsetMs: 60_000 })
    expect(small.adjust(60_001)).toBe(false)
    expect(small.adjust(-60_001, A)).toBe(false)
    expect(small.offset()).toBe(0)
    expect(small.offset(A)).toBe(0)
    expect(small.adjust(60_000)).toBe(true)
    // Each step within the bound, the total beyond it.
    expect(small.adjust(10_000, A)).toBe(true)
    expect(small.adjust(65_000, A)).toBe(false)
    expect(small.offset(A)).toBe(10_000)
    expect(clock.adjust(86_400_001)).toBe(false)
    expect(clock.offset()).toBe(0)
  })

  it('keeps at most maxOrigins offsets; a forgotten origin falls back to the default', () => {
    const clock = createClock({ now: () => LOCAL, maxOrigins: 2 })
    clock.adjust(60_000, A)
    clock.adjust(120_000, B)
    clock.adjust(180_000, 'https://c.example')
    expect(clock.offset(A)).toBe(0)
    expect(clock.offset(B)).toBe(120_000)
    expect(() => createClock({ maxOrigins: 0 })).toThrow(/options\.maxOrigins/)
  })
})

describe('only IMF-fixdate is read (issue 19)', () => {
  it('other date forms of a plausible time (an hour ahead) are ignored: ISO 8601, RFC 850, a lower-case or numeric zone', () => {
    const { clock } = fakeClock()
    const hourAhead = new Date(LOCAL + 3_600_000) // Sun, 15 Jan 2025 13:00:00 GMT
    for (const other of [
      hourAhead.toISOString(),
      'Wednesday, 15-Jan-25 13:00:00 GMT',
      'Wed, 15 Jan 2025 13:00:00 gmt',
      'Wed, 15 Jan 2025 13:00:00 +0000',
    ]) {
      expect(Date.parse(other)).toBe(hourAhead.getTime()) // each is a date JavaScript would take
      expect(clock.observeDate(other, LOCAL, LOCAL), other).toBe(false)
      expect(clock.correct(other, LOCAL, LOCAL), other).toBe(false)
    }
    expect(clock.offset()).toBe(0)
    expect(clock.observeDate(httpDate(hourAhead.getTime()), LOCAL, LOCAL)).toBe(true)
  })
})
