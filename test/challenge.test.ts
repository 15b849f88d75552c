// @vitest-environment node
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import {
  MAX_CHALLENGES,
  MAX_WWW_AUTHENTICATE_LENGTH,
  parseOAuthErrorBody,
  parseWWWAuthenticate,
  readDPoPChallenge,
} from '../src/server-state/challenge.ts'

const plain = (challenges: ReturnType<typeof parseWWWAuthenticate>) =>
  challenges.map((c) => ({ ...c, params: { ...c.params } }))

describe('parseWWWAuthenticate', () => {
  it('parses the RFC 9110 §11.6.1 example with two challenges, escapes and commas between params', () => {
    const header = 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"'
    expect(plain(parseWWWAuthenticate(header))).toEqual([
      { scheme: 'newauth', params: { realm: 'apps', type: '1', title: 'Login to "apps"' } },
      { scheme: 'basic', params: { realm: 'simple' } },
    ])
  })

  it('parses the RFC 9449 §7.1 and §9 DPoP challenges', () => {
    expect(plain(parseWWWAuthenticate('DPoP algs="ES256 PS256"'))).toEqual([
      { scheme: 'dpop', params: { algs: 'ES256 PS256' } },
    ])
    const s9 =
      'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"'
    expect(plain(parseWWWAuthenticate(s9))).toEqual([
      {
        scheme: 'dpop',
        params: {
          error: 'use_dpop_nonce',
          error_description: 'Resource server requires nonce in DPoP proof',
        },
      },
    ])
    expect(
      plain(
        parseWWWAuthenticate(
          'DPoP error="invalid_token", error_description="Invalid DPoP key binding", algs="ES256"',
        ),
      ),
    ).toEqual([
      {
        scheme: 'dpop',
        params: {
          error: 'invalid_token',
          error_description: 'Invalid DPoP key binding',
          algs: 'ES256',
        },
      },
    ])
  })

  it('keeps commas, equals signs and escaped backslashes inside quoted strings', () => {
    const [c] = parseWWWAuthenticate('DPoP error_description="a, b=c, \\\\ d", error="x"')
    expect(c?.params).toEqual({ error_description: 'a, b=c, \\ d', error: 'x' })
  })

  it('lower-cases schemes and param names, keeps values as sent', () => {
    expect(plain(parseWWWAuthenticate('DPOP ERROR="Use_DPoP_Nonce", Bearer Realm=API'))).toEqual([
      { scheme: 'dpop', params: { error: 'Use_DPoP_Nonce' } },
      { scheme: 'bearer', params: { realm: 'API' } },
    ])
  })

  it('reads token68, bare schemes, BWS around "=" and empty list elements', () => {
    expect(
      plain(
        parseWWWAuthenticate('Basic dXNlcjpwYXNz==, , Negotiate,DPoP algs = "ES256" ,, Bearer'),
      ),
    ).toEqual([
      { scheme: 'basic', params: {}, token68: 'dXNlcjpwYXNz==' },
      { scheme: 'negotiate', params: {} },
      { scheme: 'dpop', params: { algs: 'ES256' } },
      { scheme: 'bearer', params: {} },
    ])
  })

  it('tells a param from the next scheme after a comma', () => {
    expect(
      plain(parseWWWAuthenticate('Bearer realm="a", DPoP error="invalid_token", algs="ES256"')),
    ).toEqual([
      { scheme: 'bearer', params: { realm: 'a' } },
      { scheme: 'dpop', params: { error: 'invalid_token', algs: 'ES256' } },
    ])
  })

  it('skips malformed elements and keeps the well-formed rest', () => {
    expect(
      plain(
        parseWWWAuthenticate(
          'DPoP error=bad value, algs="ES256", ="x", Bearer realm="unterminated',
        ),
      ),
    ).toEqual([
      { scheme: 'dpop', params: { algs: 'ES256' } },
      { scheme: 'bearer', params: {} },
    ])
    expect(plain(parseWWWAuthenticate('"quoted", DPoP error="x"'))).toEqual([
      { scheme: 'dpop', params: { error: 'x' } },
    ])
  })

  it('keeps the first of duplicate params and treats __proto__ / constructor as plain data', () => {
    const [c] = parseWWWAuthenticate(
      'DPoP error="first", error="second", __proto__="p", constructor="c"',
    )
    expect(c?.params.error).toBe('first')
    expect(c?.params.__proto__).toBe('p')
    expect(c?.params.constructor).toBe('c')
    const [d] = parseWWWAuthenticate('DPoP error="x"')
    expect(d?.params.constructor).toBeUndefined()
    expect(Object.getPrototypeOf({})).not.toHaveProperty('p')
  })

  it('returns [] for null, empty and non-string input', () => {
    expect(parseWWWAuthenticate(null)).toEqual([])
    expect(parseWWWAuthenticate('')).toEqual([])
    expect(parseWWWAuthenticate(' , ,')).toEqual([])
    expect(parseWWWAuthenticate(42 as unknown as string)).toEqual([])
  })

  it('is bounded: a hostile 256 KiB header yields at most MAX_CHALLENGES challenges, read from the first 8 KiB', () => {
    const hostile = 'a,'.repeat(131_072)
    const out = parseWWWAuthenticate(hostile)
    expect(out.length).toBeLessThanOrEqual(MAX_CHALLENGES)
    // A DPoP challenge past the cap is not read; one inside it is.
    expect(
      readDPoPChallenge(
        parseWWWAuthenticate(
          `${'x'.repeat(MAX_WWW_AUTHENTICATE_LENGTH)}, DPoP error="use_dpop_nonce"`,
        ),
      ),
    ).toBeUndefined()
    const params = Array.from({ length: 20_000 }, (_, i) => `p${i}="v"`).join(', ')
    const big = parseWWWAuthenticate(`DPoP error="use_dpop_nonce", ${params}`)
    expect(big).toHaveLength(1)
    expect(Object.keys(big[0]!.params).length).toBeLessThan(1000)
  })

  it('with { until: "dpop" } stops once the DPoP challenge and its params are read', () => {
    const header = `Bearer realm="api", DPoP error="invalid_token", algs="ES256", ${'Basic x, '.repeat(1000)}`
    expect(plain(parseWWWAuthenticate(header, { until: 'dpop' }))).toEqual([
      { scheme: 'bearer', params: { realm: 'api' } },
      { scheme: 'dpop', params: { error: 'invalid_token', algs: 'ES256' } },
    ])
  })

  it('never throws and returns well-formed challenges for any string (fuzz)', () => {
    const alphabet = fc.constantFrom(...'aZ09 ,="\\\t=/+-._~!#é\u0000'.split(''))
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: alphabet, maxLength: 80 }),
          fc.string({ maxLength: 80 }),
          fc.string({ unit: 'binary', maxLength: 80 }),
        ),
        (s) => {
          const out = parseWWWAuthenticate(s)
          expect(Array.isArray(out)).toBe(true)
          for (const c of out) {
            expect(c.scheme).toMatch(/^[!#$%&'*+\-.^_`|~0-9a-z]+$/)
            for (const [k, v] of Object.entries(c.params)) {
              expect(k).toMatch(/^[!#$%&'*+\-.^_`|~0-9a-z]+$/)
              expect(typeof v).toBe('string')
            }
          }
        },
      ),
      { numRuns: 3000 },
    )
  })

  it('round-trips generated challenges (fuzz)', () => {
    const tchar = fc.constantFrom(..."abcXYZ019!#$%&'*+-.^_`|~".split(''))
    const token = fc.string({ unit: tchar, minLength: 1, maxLength: 8 })
    const qdtext = fc.string({ unit: fc.constantFrom(...'ab ,=;"\\\t'.split('')), maxLength: 12 })
    const challenge = fc.record({
      scheme: token,
      params: fc.uniqueArray(fc.tuple(token, qdtext), {
        selector: ([k]) => k.toLowerCase(),
        maxLength: 4,
      }),
    })
    fc.assert(
      fc.property(fc.array(challenge, { minLength: 1, maxLength: 4 }), (challenges) => {
        const header = challenges
          .map(
            (c) =>
              `${c.scheme}${c.params.length ? ' ' : ''}${c.params.map(([k, v]) => `${k}="${v.replace(/[\\"]/g, '\\$&')}"`).join(', ')}`,
          )
          .join(', ')
        const parsed = plain(parseWWWAuthenticate(header))
        expect(parsed).toEqual(
          challenges.map((c) => ({
            scheme: c.scheme.toLowerCase(),
            params: Object.fromEntries(c.params.map(([k, v]) => [k.toLowerCase(), v])),
          })),
        )
      }),
      { numRuns: 1000 },
    )
  })
})

describe('readDPoPChallenge', () => {
  it('reads error, error_description and algs of the DPoP challenge among others', () => {
    const challenges = parseWWWAuthenticate(
      'Bearer error="invalid_token", DPoP error="invalid_dpop_proof", error_description="iat too old", algs="ES256  EdDSA"',
    )
    expect(readDPoPChallenge(challenges)).toEqual({
      error: 'invalid_dpop_proof',
      errorDescription: 'iat too old',
      algs: ['ES256', 'EdDSA'],
    })
  })
  it('returns only what is present, and undefined without a DPoP challenge', () => {
    expect(readDPoPChallenge(parseWWWAuthenticate('DPoP'))).toEqual({})
    expect(readDPoPChallenge(parseWWWAuthenticate('Bearer error="use_dpop_nonce"'))).toBeUndefined()
    expect(readDPoPChallenge([])).toBeUndefined()
    expect(readDPoPChallenge(null as never)).toBeUndefined()
  })
})

describe('parseOAuthErrorBody', () => {
  it('reads RFC 6749 §5.2 error bodies, as a value or JSON text', () => {
    expect(
      parseOAuthErrorBody({
        error: 'use_dpop_nonce',
        error_description: 'Authorization server requires nonce in DPoP proof',
      }),
    ).toEqual({
      error: 'use_dpop_nonce',
      errorDescription: 'Authorization server requires nonce in DPoP proof',
    })
    expect(
      parseOAuthErrorBody('{"error":"invalid_grant","error_uri":"https://as.example/e"}'),
    ).toEqual({ error: 'invalid_grant', errorUri: 'https://as.example/e' })
  })
  it('returns undefined for anything that is not an error body, and drops malformed optional members', () => {
    for (const body of [
      undefined,
      null,
      1,
      'nope',
      '{',
      [],
      {},
      { error: 1 },
      { error: '' },
      { error: 'a"b' },
      { error: 'x\n' },
    ]) {
      expect(parseOAuthErrorBody(body)).toBeUndefined()
    }
    expect(
      parseOAuthErrorBody({
        error: 'x',
        error_description: 'quote " not allowed',
        error_uri: 'has space',
      }),
    ).toEqual({ error: 'x' })
  })
  it('never throws, even on hostile objects (fuzz)', () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('boom')
        },
      },
    )
    const getter = Object.defineProperty({}, 'error', {
      get() {
        throw new Error('boom')
      },
      enumerable: true,
    })
    expect(parseOAuthErrorBody(hostile)).toBeUndefined()
    expect(parseOAuthErrorBody(getter)).toBeUndefined()
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.json()), (v) => {
        const out = parseOAuthErrorBody(v)
        if (out !== undefined) expect(typeof out.error).toBe('string')
      }),
      { numRuns: 2000 },
    )
  })
})
