// @vitest-environment node
import { describe, expect, it } from 'vitest'
import { EmbeddedJWK, calculateJwkThumbprint, decodeProtectedHeader, jwtVerify } from 'jose'
import { createProof, calculateAth, keyPairThumbprint } from '../src/proof/proof.ts'
import { generateKeyPair, calculateThumbprint } from '../src/proof/keys.ts'
import { isDPoPError } from '../src/base/errors.ts'

const TOKEN = 'a'.repeat(1024)

async function sha256b64url(value: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(value)))
  return Buffer.from(d).toString('base64url')
}

/** What a resource server checks (RFC 9449 §4.3), done with jose, not with our code. */
async function verifyLikeAServer(
  proof: string,
  expect_: { htm: string; htu: string; accessToken?: string; nonce?: string; now: number },
) {
  const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
    typ: 'dpop+jwt',
    algorithms: ['ES256'],
    currentDate: new Date(expect_.now),
  })
  expect(protectedHeader.typ).toBe('dpop+jwt')
  expect(protectedHeader.alg).toBe('ES256')
  expect(protectedHeader.jwk).toBeDefined()
  expect(protectedHeader.jwk).not.toHaveProperty('d')
  expect(Object.keys(protectedHeader.jwk ?? {}).sort()).toEqual(['crv', 'kty', 'x', 'y'])
  expect(payload.htm).toBe(expect_.htm)
  expect(payload.htu).toBe(expect_.htu)
  expect(typeof payload.jti).toBe('string')
  expect(Math.abs((payload.iat ?? 0) - Math.floor(expect_.now / 1000))).toBeLessThanOrEqual(1)
  if (expect_.accessToken) expect(payload.ath).toBe(await sha256b64url(expect_.accessToken))
  else expect(payload).not.toHaveProperty('ath')
  if (expect_.nonce) expect(payload.nonce).toBe(expect_.nonce)
  else expect(payload).not.toHaveProperty('nonce')
  return { payload, protectedHeader }
}

describe('createProof', () => {
  it('makes a proof that jose verifies and that passes every resource-server check', async () => {
    const keyPair = await generateKeyPair()
    const now = Date.now()
    const proof = await createProof(keyPair, {
      htm: 'post',
      htu: 'https://API.example.com:443/a/b%2Fc?x=1#frag',
      accessToken: TOKEN,
      nonce: 'n-1_abc',
      now,
    })
    const { protectedHeader } = await verifyLikeAServer(proof, {
      htm: 'POST',
      htu: 'https://api.example.com/a/b%2Fc',
      accessToken: TOKEN,
      nonce: 'n-1_abc',
      now,
    })
    // The embedded key is the key pair's public key: its thumbprint matches.
    expect(await calculateJwkThumbprint(protectedHeader.jwk!)).toBe(
      await calculateThumbprint(keyPair.publicKey),
    )
    expect(await keyPairThumbprint(keyPair)).toBe(await calculateThumbprint(keyPair.publicKey))
  })

  it('omits ath and nonce when not given; iat follows `now`', async () => {
    const keyPair = await generateKeyPair()
    const now = Date.UTC(2030, 0, 1, 12, 0, 0, 999)
    const proof = await createProof(keyPair, { htm: 'GET', htu: 'http://localhost:8080/x', now })
    const { payload } = await verifyLikeAServer(proof, {
      htm: 'GET',
      htu: 'http://localhost:8080/x',
      now,
    })
    expect(payload.iat).toBe(Math.floor(now / 1000))
  })

  it('a proof signed by another key does not verify against this key (the check can fail)', async () => {
    const a = await generateKeyPair()
    const b = await generateKeyPair()
    const proof = await createProof(a, { htm: 'GET', htu: 'https://x.example/' })
    const [, payload, signature] = proof.split('.')
    const other = await createProof(b, { htm: 'GET', htu: 'https://x.example/' })
    const forged = `${other.split('.')[0]}.${payload}.${signature}`
    await expect(jwtVerify(forged, EmbeddedJWK, { typ: 'dpop+jwt' })).rejects.toThrow()
  })

  it('signatures are raw r||s (64 bytes for ES256)', async () => {
    const proof = await createProof(await generateKeyPair(), {
      htm: 'GET',
      htu: 'https://x.example/',
    })
    expect(Buffer.from(proof.split('.')[2]!, 'base64url')).toHaveLength(64)
  })

  it('jti is unique over 10,000 proofs and carries at least 96 bits', async () => {
    const keyPair = await generateKeyPair()
    const jtis = new Set<string>()
    for (let i = 0; i < 10_000; i += 500) {
      const batch = await Promise.all(
        Array.from({ length: 500 }, () =>
          createProof(keyPair, { htm: 'GET', htu: 'https://x.example/' }),
        ),
      )
      for (const p of batch) {
        const jti = JSON.parse(Buffer.from(p.split('.')[1]!, 'base64url').toString()).jti as string
        expect(Buffer.from(jti, 'base64url').length * 8).toBeGreaterThanOrEqual(96)
        jtis.add(jti)
      }
    }
    expect(jtis.size).toBe(10_000)
  })

  it('the header is the same for every proof of one key and differs between keys', async () => {
    const a = await generateKeyPair()
    const b = await generateKeyPair()
    const [p1, p2, p3] = await Promise.all([
      createProof(a, { htm: 'GET', htu: 'https://x.example/' }),
      createProof(a, { htm: 'PUT', htu: 'https://y.example/' }),
      createProof(b, { htm: 'GET', htu: 'https://x.example/' }),
    ])
    expect(p1.split('.')[0]).toBe(p2.split('.')[0])
    expect(p1.split('.')[0]).not.toBe(p3.split('.')[0])
    const exported = await crypto.subtle.exportKey('jwk', b.publicKey)
    expect(decodeProtectedHeader(p3).jwk).toEqual({
      kty: 'EC',
      crv: 'P-256',
      x: exported.x,
      y: exported.y,
    })
  })

  it('ath changes with the token actually sent', async () => {
    const keyPair = await generateKeyPair()
    const now = Date.now()
    for (const token of ['token-one', 'token-two', TOKEN]) {
      const proof = await createProof(keyPair, {
        htm: 'GET',
        htu: 'https://x.example/',
        accessToken: token,
        now,
      })
      await verifyLikeAServer(proof, {
        htm: 'GET',
        htu: 'https://x.example/',
        accessToken: token,
        now,
      })
    }
    expect(await calculateAth('token-one')).toBe(await sha256b64url('token-one'))
  })

  it.each([
    [
      'a key pair that is not one',
      () => createProof({} as CryptoKeyPair, { htm: 'GET', htu: 'https://x.example/' }),
    ],
    [
      'an empty method',
      async () => createProof(await generateKeyPair(), { htm: '', htu: 'https://x.example/' }),
    ],
    [
      'a method with spaces',
      async () => createProof(await generateKeyPair(), { htm: 'G ET', htu: 'https://x.example/' }),
    ],
    [
      'a relative URL',
      async () => createProof(await generateKeyPair(), { htm: 'GET', htu: '/relative' }),
    ],
    [
      'a javascript: URL',
      async () => createProof(await generateKeyPair(), { htm: 'GET', htu: 'javascript:alert(1)' }),
    ],
    [
      'a nonce with a quote',
      async () =>
        createProof(await generateKeyPair(), {
          htm: 'GET',
          htu: 'https://x.example/',
          nonce: 'a"b',
        }),
    ],
    [
      'a non-ASCII token',
      async () =>
        createProof(await generateKeyPair(), {
          htm: 'GET',
          htu: 'https://x.example/',
          accessToken: 'tökén',
        }),
    ],
    [
      'a NaN time',
      async () =>
        createProof(await generateKeyPair(), {
          htm: 'GET',
          htu: 'https://x.example/',
          now: Number.NaN,
        }),
    ],
  ])('rejects %s with ERR_INVALID_ARGUMENT', async (_name, make) => {
    const error = await make().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isDPoPError(error, 'ERR_INVALID_ARGUMENT')).toBe(true)
  })

  it('never puts the access token into an error message', async () => {
    const secret = 'secret-token-ä'
    const error = await createProof(await generateKeyPair(), {
      htm: 'GET',
      htu: 'https://x.example/',
      accessToken: secret,
    }).catch((e: unknown) => e)
    expect(String((error as Error).message)).not.toContain('secret')
  })
})
