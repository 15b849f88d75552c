// @vitest-environment node
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { createNonceCache } from '../src/server-state/nonces.ts'
import { isDPoPError } from '../src/base/errors.ts'

const A = 'https://a.example'
const B = 'https://b.example'

describe('createNonceCache', () => {
  it('keeps the latest nonce per origin and reports changes', () => {
    const cache = createNonceCache()
    expect(cache.get(A)).toBeUndefined()
    expect(cache.set(A, 'n1')).toBe(true)
    expect(cache.set(A, 'n1')).toBe(false)
    expect(cache.set(B, 'm1')).toBe(true)
    expect(cache.set(A, 'n2')).toBe(true)
    expect(cache.get(A)).toBe('n2')
    expect(cache.get(B)).toBe('m1')
    cache.delete(A)
    expect(cache.get(A)).toBeUndefined()
    cache.clear()
    expect(cache.get(B)).toBeUndefined()
  })

  it('ignores values that are not 1*NQCHAR (RFC 9449 §8.1) and keeps the old nonce', () => {
    const cache = createNonceCache()
    cache.set(A, 'good')
    for (const bad of [
      '',
      'has space',
      'quote"',
      'back\\slash',
      'nl\n',
      'é',
      'x'.repeat(4097),
      5 as unknown as string,
    ]) {
      expect(cache.set(A, bad)).toBe(false)
      expect(cache.get(A)).toBe('good')
    }
    expect(cache.set(A, '!#[]~' + 'x'.repeat(4091))).toBe(true)
  })

  it('accepts exactly the NQCHAR strings (property)', () => {
    const cache = createNonceCache()
    fc.assert(
      fc.property(fc.string({ unit: 'binary-ascii', maxLength: 20 }), (s) => {
        const valid =
          s.length > 0 &&
          [...s].every((c) => {
            const n = c.charCodeAt(0)
            return n === 0x21 || (n >= 0x23 && n <= 0x5b) || (n >= 0x5d && n <= 0x7e)
          })
        cache.clear()
        expect(cache.set(A, s)).toBe(valid)
        expect(cache.get(A)).toBe(valid ? s : undefined)
      }),
    )
  })

  it('is bounded and forgets the least recently used origin first', () => {
    const cache = createNonceCache({ maxOrigins: 3 })
    cache.set('https://1.example', 'a')
    cache.set('https://2.example', 'b')
    cache.set('https://3.example', 'c')
    expect(cache.get('https://1.example')).toBe('a') // 1 is now the most recently used
    cache.set('https://4.example', 'd')
    expect(cache.get('https://2.example')).toBeUndefined()
    expect(cache.get('https://1.example')).toBe('a')
    expect(cache.get('https://3.example')).toBe('c')
    expect(cache.get('https://4.example')).toBe('d')
  })

  it('never holds more than maxOrigins origins (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.boolean())),
        (max, ops) => {
          const cache = createNonceCache({ maxOrigins: max })
          for (const [i, isSet] of ops) {
            if (isSet) cache.set(`https://${i}.example`, `n${i}`)
            else cache.get(`https://${i}.example`)
          }
          let held = 0
          for (let i = 0; i < 10; i++) if (cache.get(`https://${i}.example`) !== undefined) held++
          expect(held).toBeLessThanOrEqual(max)
        },
      ),
    )
  })

  it('validates maxOrigins', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, '3' as unknown as number]) {
      let caught: unknown
      try {
        createNonceCache({ maxOrigins: bad })
      } catch (e) {
        caught = e
      }
      expect(isDPoPError(caught, 'ERR_INVALID_ARGUMENT')).toBe(true)
      expect((caught as Error).message).toContain('options.maxOrigins')
    }
  })
})
