// @vitest-environment node
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { normalizeHtu } from '../src/proof/proof.ts'

const host = fc.oneof(
  fc.domain(),
  fc.constantFrom(
    'LOCALHOST',
    'Api.Example.COM',
    '127.0.0.1',
    '[::1]',
    'xn--bcher-kva.example',
    'bücher.example',
  ),
)
const scheme = fc.constantFrom('http', 'https', 'HTTP', 'HttpS')
const port = fc.oneof(
  fc.constant(''),
  fc.integer({ min: 1, max: 65535 }).map((p) => `:${p}`),
  fc.constantFrom(':80', ':443'),
)
const segment = fc
  .stringMatching(/^[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,12}$/)
  .filter((s) => !/%(?![0-9A-Fa-f]{2})/.test(s))
const path = fc.array(segment, { maxLength: 5 }).map((segs) => `/${segs.join('/')}`)
const query = fc.oneof(
  fc.constant(''),
  fc.stringMatching(/^[A-Za-z0-9=&%._-]{0,16}$/).map((q) => `?${q}`),
)
const fragment = fc.oneof(
  fc.constant(''),
  fc.stringMatching(/^[A-Za-z0-9?#/=._-]{0,16}$/).map((f) => `#${f}`),
)
const url = fc
  .tuple(scheme, host, port, path, query, fragment)
  .map(([s, h, p, pa, q, f]) => `${s}://${h}${p}${pa}${q}${f}`)

describe('htu (fast-check)', () => {
  it('has no query and no fragment', () => {
    fc.assert(
      fc.property(url, (u) => {
        const htu = normalizeHtu(u)
        expect(htu).not.toContain('?')
        expect(htu).not.toContain('#')
      }),
    )
  })

  it('has a lower-case scheme and host and no default port', () => {
    fc.assert(
      fc.property(url, (u) => {
        const out = new URL(normalizeHtu(u))
        expect(out.protocol).toBe(out.protocol.toLowerCase())
        expect(out.hostname).toBe(out.hostname.toLowerCase())
        const htu = normalizeHtu(u)
        expect(htu).not.toMatch(/^http:\/\/[^/]+:80(\/|$)/)
        expect(htu).not.toMatch(/^https:\/\/[^/]+:443(\/|$)/)
      }),
    )
  })

  it('keeps the path exactly as the URL parser gives it (percent-encoding kept)', () => {
    fc.assert(
      fc.property(url, (u) => {
        expect(new URL(normalizeHtu(u)).pathname).toBe(new URL(u).pathname)
        expect(normalizeHtu(u).endsWith(new URL(u).pathname)).toBe(true)
      }),
    )
  })

  it('is idempotent', () => {
    fc.assert(
      fc.property(url, (u) => {
        const once = normalizeHtu(u)
        expect(normalizeHtu(once)).toBe(once)
      }),
    )
  })

  it('drops userinfo, keeps non-default ports', () => {
    expect(normalizeHtu('https://user:pw@API.example.com:8443/p?q#f')).toBe(
      'https://api.example.com:8443/p',
    )
    expect(normalizeHtu('https://example.com')).toBe('https://example.com/')
    expect(normalizeHtu('https://example.com/a%2fb/%7E')).toBe('https://example.com/a%2fb/%7E')
  })
})
