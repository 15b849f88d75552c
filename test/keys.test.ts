// @vitest-environment node
import { describe, expect, it, vi } from 'vitest'
import { EmbeddedJWK, calculateJwkThumbprint, jwtVerify } from 'jose'
import { generateKeyPair, calculateThumbprint, exportPublicJwk } from '../src/proof/keys.ts'
import { createProof } from '../src/proof/proof.ts'
import { DPoPError, isDPoPError } from '../src/base/errors.ts'

describe('generateKeyPair', () => {
  it('makes an ES256 pair whose private key cannot be exported', async () => {
    const { privateKey, publicKey } = await generateKeyPair()
    expect(privateKey.extractable).toBe(false)
    expect(privateKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' })
    expect(privateKey.usages).toEqual(['sign'])
    await expect(crypto.subtle.exportKey('jwk', privateKey)).rejects.toThrow()
    await expect(crypto.subtle.exportKey('pkcs8', privateKey)).rejects.toThrow()
    expect(publicKey.extractable).toBe(true)
    const jwk = await exportPublicJwk(publicKey)
    expect(jwk).toEqual({ kty: 'EC', crv: 'P-256', x: expect.any(String), y: expect.any(String) })
  })

  it('makes an EdDSA (Ed25519) pair on request; jose verifies its proofs and agrees on the OKP thumbprint', async () => {
    const keyPair = await generateKeyPair({ alg: 'EdDSA' })
    expect(keyPair.privateKey.extractable).toBe(false)
    expect(keyPair.privateKey.algorithm.name).toBe('Ed25519')
    await expect(crypto.subtle.exportKey('pkcs8', keyPair.privateKey)).rejects.toThrow()
    const jwk = await exportPublicJwk(keyPair.publicKey)
    expect(jwk).toEqual({ kty: 'OKP', crv: 'Ed25519', x: expect.any(String) })
    expect(await calculateThumbprint(keyPair.publicKey)).toBe(
      await calculateJwkThumbprint(jwk as never),
    )
    const proof = await createProof(keyPair, {
      htm: 'GET',
      htu: 'https://api.example/x',
      accessToken: 'tok',
    })
    const { protectedHeader, payload } = await jwtVerify(proof, EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: ['EdDSA'],
    })
    expect(protectedHeader.alg).toBe('EdDSA')
    expect(payload.htu).toBe('https://api.example/x')
  })

  it('says so with ERR_UNSUPPORTED_ALGORITHM where WebCrypto has no Ed25519', async () => {
    const generateKey = vi
      .spyOn(crypto.subtle, 'generateKey')
      .mockRejectedValueOnce(new DOMException('Unrecognized name.', 'NotSupportedError'))
    const error = await generateKeyPair({ alg: 'EdDSA' }).catch((e: unknown) => e)
    generateKey.mockRestore()
    expect(isDPoPError(error, 'ERR_UNSUPPORTED_ALGORITHM')).toBe(true)
    expect((error as Error).message).toContain('ES256')
  })

  it('rejects an unsupported algorithm with a typed error', async () => {
    const error = await generateKeyPair({ alg: 'HS256' as never }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DPoPError)
    expect(isDPoPError(error, 'ERR_UNSUPPORTED_ALGORITHM')).toBe(true)
    expect((error as Error).message).toContain('ES256')
  })
})

describe('calculateThumbprint', () => {
  it('agrees with jose for generated keys', async () => {
    for (let i = 0; i < 5; i++) {
      const { publicKey } = await generateKeyPair()
      const jwk = await crypto.subtle.exportKey('jwk', publicKey)
      expect(await calculateThumbprint(publicKey)).toBe(await calculateJwkThumbprint(jwk as never))
    }
  })

  it('ignores private and optional members of a JWK', async () => {
    const jwk = {
      kty: 'EC',
      crv: 'P-256',
      x: 'l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs',
      y: '9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA',
    }
    const withExtras = { ...jwk, d: 'ignored', kid: 'k', use: 'sig', key_ops: ['verify'] }
    expect(await calculateThumbprint(withExtras)).toBe(await calculateThumbprint(jwk))
  })

  it('rejects a private key and a JWK without its required members', async () => {
    const { privateKey } = await generateKeyPair()
    expect(
      isDPoPError(
        await calculateThumbprint(privateKey).catch((e: unknown) => e),
        'ERR_INVALID_ARGUMENT',
      ),
    ).toBe(true)
    expect(
      isDPoPError(
        await calculateThumbprint({ kty: 'EC', crv: 'P-256', x: 'a' }).catch((e: unknown) => e),
        'ERR_INVALID_ARGUMENT',
      ),
    ).toBe(true)
    expect(
      isDPoPError(
        await calculateThumbprint({ kty: 'oct', k: 'a' }).catch((e: unknown) => e),
        'ERR_INVALID_ARGUMENT',
      ),
    ).toBe(true)
  })
})

describe('outside a secure context', () => {
  it('generateKeyPair says what to do instead of throwing a TypeError', async () => {
    vi.stubGlobal('crypto', { getRandomValues: crypto.getRandomValues.bind(crypto) })
    try {
      const error = await generateKeyPair().catch((e: unknown) => e)
      expect(isDPoPError(error, 'ERR_CRYPTO_UNAVAILABLE')).toBe(true)
      expect((error as Error).message).toMatch(/https|localhost/)
    } finally {
      vi.unstubAllGlobals()
    }
  })
})
