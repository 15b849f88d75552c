// @vitest-environment node
import { describe, expect, it } from 'vitest'
import { calculateJwkThumbprint } from 'jose'
import rfc7638 from './vectors/rfc7638.json' with { type: 'json' }
import rfc9449 from './vectors/rfc9449.json' with { type: 'json' }
import { calculateThumbprint } from '../src/proof/keys.ts'
import { calculateAth } from '../src/proof/proof.ts'
import { decodeBase64url, fromUtf8, utf8 } from '../src/base/base64url.ts'

describe('RFC 7638 §3.1', () => {
  it('thumbprint of the example RSA JWK (optional members ignored)', async () => {
    expect(await calculateThumbprint(rfc7638.jwk)).toBe(rfc7638.thumbprint)
  })

  it('thumbprint of the same key imported as a CryptoKey', async () => {
    const key = await crypto.subtle.importKey(
      'jwk',
      rfc7638.jwk,
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      true,
      ['verify'],
    )
    expect(await calculateThumbprint(key)).toBe(rfc7638.thumbprint)
  })
})

describe('RFC 9449 examples', () => {
  it('§7.1 ath of the example access token', async () => {
    expect(await calculateAth(rfc9449.ath.accessToken)).toBe(rfc9449.ath.ath)
  })

  it('thumbprint of the example key (§6.1 cnf.jkt), and jose agrees', async () => {
    expect(await calculateThumbprint(rfc9449.exampleJwk.jwk)).toBe(rfc9449.exampleJwk.thumbprint)
    expect(await calculateJwkThumbprint(rfc9449.exampleJwk.jwk)).toBe(rfc9449.exampleJwk.thumbprint)
  })

  for (const vector of rfc9449.proofs) {
    it(`${vector.source}: verifies with WebCrypto and decodes to the RFC's claims`, async () => {
      const [h, p, s] = vector.jwt.split('.') as [string, string, string]
      const header = JSON.parse(fromUtf8(decodeBase64url(h)))
      expect(header).toEqual({ typ: 'dpop+jwt', alg: 'ES256', jwk: rfc9449.exampleJwk.jwk })
      const key = await crypto.subtle.importKey(
        'jwk',
        header.jwk,
        { name: 'ECDSA', namedCurve: 'P-256' },
        false,
        ['verify'],
      )
      const ok = await crypto.subtle.verify(
        { name: 'ECDSA', hash: 'SHA-256' },
        key,
        decodeBase64url(s),
        utf8(`${h}.${p}`),
      )
      expect(ok).toBe(true)
      // A flipped bit in the payload must not verify: the check above can fail.
      const tampered = await crypto.subtle.verify(
        { name: 'ECDSA', hash: 'SHA-256' },
        key,
        decodeBase64url(s),
        utf8(`${h}.${p.slice(0, 10)}${p[10] === 'A' ? 'B' : 'A'}${p.slice(11)}`),
      )
      expect(tampered).toBe(false)
      expect(JSON.parse(fromUtf8(decodeBase64url(p)))).toEqual(vector.claims)
    })
  }
})
