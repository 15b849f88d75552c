import { describe, expect, it } from 'vitest'
import { createNonceCache } from '../src/server-state/nonces.ts'
import { MAX_STORED, NONCE_MAX_AGE_MS, rememberNonces } from '../src/server-state/nonce-storage.ts'

const KEY = 'dpop-spa:test:nonces'
const AS = 'https://as.example'
const API = 'https://api.example'

/** A Storage of one tab, as two page loads see it. */
function tabStorage() {
  const items = new Map<string, string>()
  return {
    items,
    getItem: (k: string) => items.get(k) ?? null,
    setItem: (k: string, v: string) => {
      items.set(k, v)
    },
  }
}
const page = (storage: ReturnType<typeof tabStorage>, now = Date.now) =>
  rememberNonces(createNonceCache(), storage, KEY, now)

describe('nonces kept across page loads', () => {
  it('a nonce learned on one page is there on the next page load, for its own origin only', () => {
    const storage = tabStorage()
    const first = page(storage)
    expect(first.set(AS, 'as-nonce-1')).toBe(true)
    first.set(API, 'api-nonce-1')
    const next = page(storage)
    expect(next.get(AS)).toBe('as-nonce-1')
    expect(next.get(API)).toBe('api-nonce-1')
    expect(next.get('https://other.example')).toBeUndefined()
    expect(next.get('https://as.example:443')).toBeUndefined()
  })

  it('a use_dpop_nonce answer replaces the kept nonce; delete and clear forget it on the next page too', () => {
    const storage = tabStorage()
    const first = page(storage)
    first.set(AS, 'stale')
    first.set(AS, 'fresh')
    expect(page(storage).get(AS)).toBe('fresh')
    first.set(API, 'api')
    first.delete(AS)
    expect(page(storage).get(AS)).toBeUndefined()
    expect(page(storage).get(API)).toBe('api')
    first.clear()
    expect(page(storage).get(API)).toBeUndefined()
  })

  it('bounded by age: a nonce the server last sent more than 5 minutes ago is not used after a reload; a repeated one stays fresh', () => {
    const storage = tabStorage()
    let now = 1_000_000_000_000
    const first = page(storage, () => now)
    first.set(AS, 'as-nonce')
    first.set(API, 'api-nonce')
    now += NONCE_MAX_AGE_MS - 1000
    first.set(API, 'api-nonce') // the server sent it again: fresh as of now
    now += 2000
    const next = page(storage, () => now)
    expect(next.get(AS)).toBeUndefined()
    expect(next.get(API)).toBe('api-nonce')
  })

  it('bounded by count: at most 32 origins are kept, the oldest dropped first', () => {
    const storage = tabStorage()
    const first = page(storage)
    for (let i = 0; i < MAX_STORED + 5; i++) first.set(`https://s${i}.example`, `n${i}`)
    const kept = JSON.parse(storage.items.get(KEY)!) as unknown[]
    expect(kept).toHaveLength(MAX_STORED)
    const next = page(storage)
    expect(next.get('https://s4.example')).toBeUndefined()
    expect(next.get('https://s5.example')).toBe('n5')
    expect(next.get(`https://s${MAX_STORED + 4}.example`)).toBe(`n${MAX_STORED + 4}`)
  })

  it('what is read back is validated like input: bad JSON, shapes, origins, nonces and times are dropped, the rest kept', () => {
    const now = Date.now()
    const cases: [string, string][] = [
      ['not json', '{'],
      ['an object', JSON.stringify({ [AS]: 'n' })],
      ['a number', '42'],
    ]
    for (const [, raw] of cases) {
      const storage = tabStorage()
      storage.items.set(KEY, raw)
      const next = page(storage)
      expect(next.get(AS)).toBeUndefined()
      // Still works in memory, and overwrites the bad value.
      next.set(AS, 'ok')
      expect(page(storage).get(AS)).toBe('ok')
    }
    const storage = tabStorage()
    storage.items.set(
      KEY,
      JSON.stringify([
        'just a string',
        [`${AS}/path`, 'n1', now],
        ['HTTPS://AS.EXAMPLE', 'n2', now],
        ['null', 'n3', now],
        ['https://quote.example', 'has"quote', now],
        ['https://space.example', 'has space', now],
        ['https://long.example', 'x'.repeat(5000), now],
        ['https://future.example', 'n4', now + 60_000],
        ['https://old.example', 'n5', now - NONCE_MAX_AGE_MS - 1],
        ['https://nan.example', 'n6', 'yesterday'],
        ['https://num.example', 7, now],
        [AS, 'good', now - 1000],
      ]),
    )
    const next = page(storage)
    expect(next.get(AS)).toBe('good')
    for (const o of [
      `${AS}/path`,
      'HTTPS://AS.EXAMPLE',
      'null',
      'https://quote.example',
      'https://space.example',
      'https://long.example',
      'https://future.example',
      'https://old.example',
      'https://nan.example',
      'https://num.example',
    ]) {
      expect(next.get(o), o).toBeUndefined()
    }
  })

  it('storage that throws (disabled, full) leaves the nonces in memory, never an error', () => {
    const broken = {
      getItem: () => {
        throw new DOMException('denied', 'SecurityError')
      },
      setItem: () => {
        throw new DOMException('full', 'QuotaExceededError')
      },
    }
    const cache = rememberNonces(createNonceCache(), broken, KEY)
    expect(cache.set(AS, 'n')).toBe(true)
    expect(cache.get(AS)).toBe('n')
    const none = rememberNonces(createNonceCache(), undefined, KEY)
    none.set(AS, 'n')
    expect(none.get(AS)).toBe('n')
  })
})
