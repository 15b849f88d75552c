// @vitest-environment node
/**
 * The verifying resource server (demo/api/) against proofs made with jose's SignJWT
 * only, so these tests do not lean on dpop-spa's own proof code. Each rule gets a
 * proof (or request) that is broken in exactly that one way; the same request with
 * the break undone passes (the "valid" cases), so a failing check cannot hide.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  SignJWT,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  base64url,
  type JWK,
  type CryptoKey as JoseKey,
} from 'jose'
import { startApiServer, type ApiServer } from '../../demo/api/server.ts'
import { createReplayCache } from '../../demo/api/replay.ts'
import { createNonceIssuer } from '../../demo/api/nonces.ts'

interface KeyPair {
  privateKey: JoseKey
  publicKey: JoseKey
  jwk: JWK
  jkt: string
}

async function keyPair(alg = 'ES256'): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(
    alg,
    alg === 'EdDSA' ? { crv: 'Ed25519' } : {},
  )
  const jwk = await exportJWK(publicKey)
  return { privateKey, publicKey, jwk, jkt: await calculateJwkThumbprint(jwk, 'sha256') }
}

const ath = (token: string): string => createHash('sha256').update(token).digest('base64url')

interface ProofSpec {
  key: KeyPair
  alg?: string
  header?: Record<string, unknown>
  claims?: Record<string, unknown>
  /** Claim names to leave out. */
  omit?: string[]
}

async function proof(spec: ProofSpec): Promise<string> {
  const claims: Record<string, unknown> = {
    jti: crypto.randomUUID(),
    iat: Math.floor(Date.now() / 1000),
    ...spec.claims,
  }
  for (const name of spec.omit ?? []) delete claims[name]
  return new SignJWT(claims)
    .setProtectedHeader({
      alg: spec.alg ?? 'ES256',
      typ: 'dpop+jwt',
      jwk: spec.key.jwk,
      ...spec.header,
    })
    .sign(spec.key.privateKey)
}

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  json: any
}

/** Raw HTTP so that repeated header lines (two DPoP fields) can be sent as such. */
function send(
  url: string,
  init: {
    method?: string
    headers?: Record<string, string | string[]>
    body?: string | Buffer
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: init.method ?? 'GET', headers: init.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let json: unknown
          try {
            json = JSON.parse(text)
          } catch {
            json = undefined
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json })
        })
      },
    )
    req.on('error', reject)
    req.end(init.body)
  })
}

let api: ApiServer
let base: string
let key: KeyPair
let token: string
let nonce: string

beforeAll(async () => {
  api = await startApiServer({ port: 0, corsOrigins: ['http://localhost:5199'] })
  base = `http://127.0.0.1:${api.port}`
  key = await keyPair()
})
afterAll(async () => {
  await api.close()
})
beforeEach(() => {
  api.reset()
  token = api.mintToken({ jkt: key.jkt }).access_token
  nonce = api.rotateNonce()
})

/** A request that passes every check, with one thing changed by `change`. */
async function call(
  change: {
    proof?: Partial<ProofSpec>
    method?: string
    path?: string
    authorization?: string | null
    dpop?: string[] | null
    body?: string
  } = {},
): Promise<Reply> {
  const method = change.method ?? 'GET'
  const path = change.path ?? '/api/echo'
  const htu = `${base}${path.split('?')[0]}`
  const p = await proof({
    key,
    ...change.proof,
    claims: { htm: method, htu, nonce, ath: ath(token), ...change.proof?.claims },
  })
  const headers: Record<string, string | string[]> = {}
  if (change.authorization !== null) headers.authorization = change.authorization ?? `DPoP ${token}`
  if (change.dpop !== null) headers.dpop = change.dpop ?? p
  return send(`${base}${path}`, {
    method,
    headers,
    ...(change.body === undefined ? {} : { body: change.body }),
  })
}

function expectRejected(reply: Reply, error: string | undefined, check: string): void {
  expect(reply.status).toBe(401)
  expect(reply.json).toMatchObject({ check })
  const challenge = String(reply.headers['www-authenticate'])
  expect(challenge).toMatch(/^DPoP /)
  expect(challenge).toContain('algs="ES256 EdDSA RS256 PS256"')
  if (error === undefined) {
    expect(challenge).not.toContain('error=')
  } else {
    expect(reply.json.error).toBe(error)
    expect(challenge).toContain(`error="${error}"`)
    expect(challenge).toMatch(/error_description="[^"\\]+"/)
  }
  // RFC 6750 §3 / our own rule: a token never travels back in an error.
  expect(reply.text).not.toContain(token)
  expect(challenge).not.toContain(token)
}

describe('a valid DPoP request', () => {
  it('passes and echoes the verified claims and the thumbprint computed by jose', async () => {
    const body = 'héllo\u0000bytes'
    const reply = await call({ method: 'POST', body, path: '/api/echo?x=1#frag' })
    expect(reply.status).toBe(200)
    expect(reply.json.jkt).toBe(key.jkt)
    expect(reply.json.tokenJkt).toBe(key.jkt)
    expect(reply.json.method).toBe('POST')
    expect(reply.json.query).toBe('x=1')
    expect(reply.json.claims).toMatchObject({
      htm: 'POST',
      htu: `${base}/api/echo`,
      nonce,
      ath: ath(token),
    })
    expect(Buffer.from(reply.json.body, 'base64').toString('utf8')).toBe(body)
    // The nonce is current: no new one is pushed.
    expect(reply.headers['dpop-nonce']).toBeUndefined()
  })

  it('accepts every method of /api/echo and GET /api/me', async () => {
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
      expect((await call({ method })).status).toBe(200)
    }
    const me = await call({ path: '/api/me' })
    expect(me.status).toBe(200)
    expect(me.json).toMatchObject({ sub: 'test-user', jkt: key.jkt })
  })

  it('accepts EdDSA and RS256 proofs too', async () => {
    for (const alg of ['EdDSA', 'RS256']) {
      const k = await keyPair(alg)
      const t = api.mintToken({ jkt: k.jkt }).access_token
      const p = await proof({
        key: k,
        alg,
        claims: { htm: 'GET', htu: `${base}/api/echo`, nonce, ath: ath(t) },
      })
      const reply = await send(`${base}/api/echo`, {
        headers: { authorization: `DPoP ${t}`, dpop: p },
      })
      expect(reply.status, alg).toBe(200)
      expect(reply.json.jkt).toBe(k.jkt)
    }
  })

  it('accepts an htu with a query and fragment (they are ignored) and a differently spelled but equal URL', async () => {
    expect((await call({ proof: { claims: { htu: `${base}/api/echo?other=1#x` } } })).status).toBe(
      200,
    )
    expect(
      (await call({ proof: { claims: { htu: `HTTP://127.0.0.1:${api.port}/api/../api/echo` } } }))
        .status,
    ).toBe(200)
  })
})

describe('each check rejects a request broken in that one way', () => {
  it('authorization: no credentials → a bare DPoP challenge', async () => {
    expectRejected(await call({ authorization: null }), undefined, 'authorization')
  })

  it('scheme: Bearer is refused (DPoP required)', async () => {
    expectRejected(await call({ authorization: `Bearer ${token}` }), 'invalid_request', 'scheme')
  })

  it('proof-present: no DPoP header', async () => {
    expectRejected(await call({ dpop: null }), 'invalid_dpop_proof', 'proof-present')
  })

  it('proof-single: two DPoP header fields, or two folded into one', async () => {
    const other = await proof({
      key,
      claims: { htm: 'GET', htu: `${base}/api/echo`, nonce, ath: ath(token) },
    })
    const p = await proof({
      key,
      claims: { htm: 'GET', htu: `${base}/api/echo`, nonce, ath: ath(token) },
    })
    expectRejected(await call({ dpop: [p, other] }), 'invalid_dpop_proof', 'proof-single')
    expectRejected(await call({ dpop: [`${p}, ${other}`] }), 'invalid_dpop_proof', 'proof-single')
  })

  it('compact-jws: not three base64url parts', async () => {
    const p = await proof({
      key,
      claims: { htm: 'GET', htu: `${base}/api/echo`, nonce, ath: ath(token) },
    })
    const [h, c] = p.split('.')
    expectRejected(await call({ dpop: [`${h}.${c}`] }), 'invalid_dpop_proof', 'compact-jws')
    expectRejected(await call({ dpop: [`${h}.${c}.`] }), 'invalid_dpop_proof', 'compact-jws')
  })

  it('typ: must be dpop+jwt', async () => {
    expectRejected(await call({ proof: { header: { typ: 'JWT' } } }), 'invalid_dpop_proof', 'typ')
    expectRejected(
      await call({ proof: { header: { typ: undefined } } }),
      'invalid_dpop_proof',
      'typ',
    )
  })

  it('alg: none and symmetric algorithms are refused', async () => {
    const enc = (o: unknown): string => base64url.encode(JSON.stringify(o))
    const claims = {
      jti: 'x',
      htm: 'GET',
      htu: `${base}/api/echo`,
      iat: Math.floor(Date.now() / 1000),
      nonce,
      ath: ath(token),
    }
    const none = `${enc({ alg: 'none', typ: 'dpop+jwt', jwk: key.jwk })}.${enc(claims)}.AAAA`
    expectRejected(await call({ dpop: [none] }), 'invalid_dpop_proof', 'alg')
    const secret = new Uint8Array(32)
    const oct: JWK = { kty: 'oct', k: base64url.encode(secret) }
    const hs = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'dpop+jwt', jwk: oct })
      .sign(secret)
    expectRejected(await call({ dpop: [hs] }), 'invalid_dpop_proof', 'alg')
  })

  it('jwk: missing, or a private key', async () => {
    expectRejected(
      await call({ proof: { header: { jwk: undefined } } }),
      'invalid_dpop_proof',
      'jwk',
    )
    const priv = await exportJWK((await generateKeyPair('ES256', { extractable: true })).privateKey)
    expectRejected(await call({ proof: { header: { jwk: priv } } }), 'invalid_dpop_proof', 'jwk')
  })

  it('signature: signed by another key than the embedded one, or payload altered', async () => {
    const other = await keyPair()
    expectRejected(
      await call({ proof: { key: { ...other, jwk: key.jwk } } }),
      'invalid_dpop_proof',
      'signature',
    )
    const p = await proof({
      key,
      claims: { htm: 'GET', htu: `${base}/api/echo`, nonce, ath: ath(token) },
    })
    const [h, c, s] = p.split('.') as [string, string, string]
    const altered = {
      ...JSON.parse(new TextDecoder().decode(base64url.decode(c))),
      htu: `${base}/api/me`,
    }
    const tampered = `${h}.${base64url.encode(JSON.stringify(altered))}.${s}`
    expectRejected(await call({ dpop: [tampered] }), 'invalid_dpop_proof', 'signature')
  })

  it('claims: jti, htm, htu, iat must be present', async () => {
    for (const name of ['jti', 'htm', 'htu', 'iat']) {
      const reply = await call({ proof: { omit: [name] } })
      expectRejected(reply, 'invalid_dpop_proof', 'claims')
      expect(reply.json.error_description).toContain(name)
    }
  })

  it('htm: must equal the request method exactly', async () => {
    expectRejected(
      await call({ method: 'GET', proof: { claims: { htm: 'POST' } } }),
      'invalid_dpop_proof',
      'htm',
    )
    expectRejected(
      await call({ method: 'GET', proof: { claims: { htm: 'get' } } }),
      'invalid_dpop_proof',
      'htm',
    )
  })

  it('htu: another path, port, scheme or host is refused', async () => {
    const wrong = [
      `${base}/api/me`,
      `http://127.0.0.1:${api.port + 1}/api/echo`,
      `https://127.0.0.1:${api.port}/api/echo`,
      `http://localhost:${api.port}/api/echo`, // the request's Host was 127.0.0.1
      '/api/echo',
    ]
    for (const htu of wrong)
      expectRejected(await call({ proof: { claims: { htu } } }), 'invalid_dpop_proof', 'htu')
  })

  it('iat: outside ±60 s of the server clock, in either direction, and the description says iat', async () => {
    for (const delta of [-120, 120]) {
      const reply = await call({
        proof: { claims: { iat: Math.floor(Date.now() / 1000) + delta } },
      })
      expectRejected(reply, 'invalid_dpop_proof', 'iat')
      expect(reply.json.error_description).toMatch(/\biat\b/)
      expect(String(reply.headers['www-authenticate'])).toMatch(/error_description="[^"]*\biat\b/)
    }
    // Inside the window on both sides.
    expect(
      (await call({ proof: { claims: { iat: Math.floor(Date.now() / 1000) - 50 } } })).status,
    ).toBe(200)
    expect(
      (await call({ proof: { claims: { iat: Math.floor(Date.now() / 1000) + 50 } } })).status,
    ).toBe(200)
  })

  it('iat: judged by the server clock, whose Date header shows its offset', async () => {
    api.setClockOffset(10 * 60_000)
    const device = Math.floor(Date.now() / 1000)
    const reply = await call({ proof: { claims: { iat: device } } })
    expectRejected(reply, 'invalid_dpop_proof', 'iat')
    const serverDate = Date.parse(String(reply.headers.date))
    expect(Math.abs(serverDate - (Date.now() + 10 * 60_000))).toBeLessThan(5_000)
    expect((await call({ proof: { claims: { iat: device + 600 } } })).status).toBe(200)
  })

  it('jti-replay: the same proof twice', async () => {
    const p = await proof({
      key,
      claims: { htm: 'GET', htu: `${base}/api/echo`, nonce, ath: ath(token) },
    })
    expect((await call({ dpop: [p] })).status).toBe(200)
    expectRejected(await call({ dpop: [p] }), 'invalid_dpop_proof', 'jti-replay')
  })

  it('nonce: missing or stale → use_dpop_nonce with the current nonce in DPoP-Nonce', async () => {
    const missing = await call({ proof: { omit: ['nonce'] } })
    expectRejected(missing, 'use_dpop_nonce', 'nonce')
    expect(missing.headers['dpop-nonce']).toBe(nonce)
    const unknown = await call({ proof: { claims: { nonce: 'never-issued' } } })
    expectRejected(unknown, 'use_dpop_nonce', 'nonce')

    const old = nonce
    api.rotateNonce()
    const newest = api.rotateNonce()
    const stale = await call({ proof: { claims: { nonce: old } } })
    expectRejected(stale, 'use_dpop_nonce', 'nonce')
    expect(stale.headers['dpop-nonce']).toBe(newest)
  })

  it('nonce: the previous nonce still passes, and the 2xx carries the new one', async () => {
    const previous = nonce
    const current = api.rotateNonce()
    const reply = await call({ proof: { claims: { nonce: previous } } })
    expect(reply.status).toBe(200)
    expect(reply.headers['dpop-nonce']).toBe(current)
  })

  it('nonce: a route that challenges every time rotates the nonce each time', async () => {
    const first = await call({ path: '/api/always-challenge' })
    expectRejected(first, 'use_dpop_nonce', 'challenge')
    const next = String(first.headers['dpop-nonce'])
    expect(next).not.toBe(nonce)
    const second = await call({ path: '/api/always-challenge', proof: { claims: { nonce: next } } })
    expectRejected(second, 'use_dpop_nonce', 'challenge')
    expect(second.headers['dpop-nonce']).not.toBe(next)
  })

  it('ath: missing, or the hash of another token', async () => {
    expectRejected(await call({ proof: { omit: ['ath'] } }), 'invalid_dpop_proof', 'ath')
    expectRejected(
      await call({ proof: { claims: { ath: ath(`${token}x`) } } }),
      'invalid_dpop_proof',
      'ath',
    )
  })

  it('token: unknown, revoked or expired → invalid_token', async () => {
    expectRejected(
      await call({
        authorization: 'DPoP not-a-token',
        proof: { claims: { ath: ath('not-a-token') } },
      }),
      'invalid_token',
      'token',
    )
    const short = api.mintToken({ jkt: key.jkt, expiresIn: 60 }).access_token
    const withShort = { authorization: `DPoP ${short}`, proof: { claims: { ath: ath(short) } } }
    expect((await call(withShort)).status).toBe(200)
    api.setClockOffset(61_000)
    const expired = await call({
      ...withShort,
      proof: { claims: { ath: ath(short), iat: Math.floor(Date.now() / 1000) + 61 } },
    })
    expectRejected(expired, 'invalid_token', 'token')
    expect(expired.text).not.toContain(short)
    api.setClockOffset(0)
    expect(api.revokeTokens(token)).toBe(1)
    expectRejected(await call(), 'invalid_token', 'token')
  })

  it("jkt: a token bound to another key than the proof's", async () => {
    const other = await keyPair()
    const foreign = api.mintToken({ jkt: other.jkt }).access_token
    const reply = await call({
      authorization: `DPoP ${foreign}`,
      proof: { claims: { ath: ath(foreign) } },
    })
    expectRejected(reply, 'invalid_token', 'jkt')
    expect(reply.text).not.toContain(foreign)
  })
})

describe('CORS', () => {
  const origin = 'http://localhost:5199'

  it('answers a preflight from an allowed origin with the DPoP headers allowed', async () => {
    const reply = await send(`${base}/api/echo`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'PUT',
        'access-control-request-headers': 'authorization,dpop,content-type',
      },
    })
    expect(reply.status).toBe(204)
    expect(reply.headers['access-control-allow-origin']).toBe(origin)
    expect(
      String(reply.headers['access-control-allow-headers']).toLowerCase().split(/,\s*/).sort(),
    ).toEqual(['authorization', 'content-type', 'dpop', 'last-event-id'])
    expect(reply.headers['access-control-allow-methods']).toContain('PUT')
  })

  it('gives nothing to an origin that is not configured', async () => {
    const reply = await send(`${base}/api/echo`, {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.localhost:5199', 'access-control-request-method': 'GET' },
    })
    expect(reply.headers['access-control-allow-origin']).toBeUndefined()
    const get = await call({ authorization: null })
    expect(get.headers['access-control-allow-origin']).toBeUndefined()
  })

  it('exposes DPoP-Nonce and WWW-Authenticate on /api, and deliberately not on /hidden', async () => {
    const api1 = await send(`${base}/api/echo`, { headers: { origin } })
    expect(String(api1.headers['access-control-expose-headers']).toLowerCase()).toMatch(
      /dpop-nonce.*www-authenticate/,
    )
    const hidden = await send(`${base}/hidden/echo`, { headers: { origin } })
    expect(hidden.status).toBe(401)
    expect(hidden.headers['access-control-allow-origin']).toBe(origin)
    expect(hidden.headers['access-control-expose-headers']).toBeUndefined()
  })
})

describe('control and stats', () => {
  it('counts per route and outcome, and keeps no token in the recorded headers', async () => {
    await call()
    await call({ proof: { omit: ['nonce'] } })
    await call({ path: '/api/me' })
    const stats = (await send(`${base}/__control/stats`)).json
    expect(stats.routes['/api/echo']).toEqual({ ok: 1, use_dpop_nonce: 1 })
    expect(stats.routes['/api/me']).toEqual({ ok: 1 })
    expect(stats.recent).toHaveLength(3)
    expect(stats.recent[0].headers.authorization).toEqual(['DPoP'])
    expect(stats.recent[0].tokenAth).toBe(ath(token))
    expect(JSON.stringify(stats)).not.toContain(token)
  })

  it('mints tokens bound to a jkt, rotates nonces after N requests, and moves the clock', async () => {
    const minted = (
      await send(`${base}/__control/token`, {
        method: 'POST',
        body: JSON.stringify({ jkt: key.jkt }),
      })
    ).json
    expect(minted.token_type).toBe('DPoP')
    token = minted.access_token
    expect(
      (await send(`${base}/__control/rotate-nonce`, { method: 'POST', body: '{"after":2}' }))
        .status,
    ).toBe(200)
    expect((await call()).headers['dpop-nonce']).toBeUndefined() // request 1
    const second = await call() // request 2 triggers the rotation before it is checked
    expect(second.status).toBe(200)
    expect(second.headers['dpop-nonce']).toBeDefined()
    expect(second.headers['dpop-nonce']).not.toBe(nonce)
    const clock = (
      await send(`${base}/__control/clock`, { method: 'POST', body: '{"offsetMs":600000}' })
    ).json
    expect(clock.offsetMs).toBe(600_000)
    expect(
      (await send(`${base}/__control/token`, { method: 'POST', body: '{"jkt":"short"}' })).status,
    ).toBe(400)
  })
})

describe('jwt mode: JWT access tokens verified against the issuer JWKS', () => {
  let as: Server
  let issuer: string
  let signer: { privateKey: JoseKey; jwk: JWK }
  let jwtApi: ApiServer
  let jwtBase: string

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256')
    signer = {
      privateKey: pair.privateKey,
      jwk: { ...(await exportJWK(pair.publicKey)), kid: 'as-1', alg: 'ES256', use: 'sig' },
    }
    // A minimal authorization server: discovery and JWKS, on loopback.
    as = createServer((req, res) => {
      res.setHeader('Content-Type', 'application/json')
      if (req.url === '/.well-known/openid-configuration')
        res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }))
      else if (req.url === '/jwks') res.end(JSON.stringify({ keys: [signer.jwk] }))
      else res.writeHead(404).end()
    })
    await new Promise<void>((r) => as.listen(0, '127.0.0.1', r))
    issuer = `http://127.0.0.1:${(as.address() as AddressInfo).port}`
    jwtApi = await startApiServer({
      port: 0,
      tokens: { jwt: { issuer, audience: 'https://api.test' } },
      requireNonce: false,
    })
    jwtBase = `http://127.0.0.1:${jwtApi.port}`
  })
  afterAll(async () => {
    await jwtApi.close()
    await new Promise((r) => as.close(r))
  })

  async function at(
    claims: Record<string, unknown>,
    signWith = signer.privateKey,
  ): Promise<string> {
    const nowSec = Math.floor(Date.now() / 1000)
    return new SignJWT({
      iss: issuer,
      aud: 'https://api.test',
      sub: 'alice',
      scope: 'read',
      cnf: { jkt: key.jkt },
      iat: nowSec,
      exp: nowSec + 300,
      ...claims,
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'as-1' })
      .sign(signWith)
  }
  async function callJwt(accessToken: string): Promise<Reply> {
    const p = await proof({
      key,
      claims: { htm: 'GET', htu: `${jwtBase}/api/me`, ath: ath(accessToken) },
    })
    return send(`${jwtBase}/api/me`, { headers: { authorization: `DPoP ${accessToken}`, dpop: p } })
  }

  it('accepts a token from the issuer bound to the proof key (JWKS found by discovery)', async () => {
    const reply = await callJwt(await at({}))
    expect(reply.status).toBe(200)
    expect(reply.json).toEqual({ sub: 'alice', jkt: key.jkt, scope: 'read' })
  })

  it('refuses cnf.jkt of another key, no cnf, another issuer, another audience, a foreign signer, an expired token', async () => {
    const other = await keyPair()
    expectRejectedJwt(await callJwt(await at({ cnf: { jkt: other.jkt } })), 'jkt')
    expectRejectedJwt(await callJwt(await at({ cnf: undefined })), 'token')
    expectRejectedJwt(await callJwt(await at({ iss: 'http://127.0.0.1:1' })), 'token')
    expectRejectedJwt(await callJwt(await at({ aud: 'https://other.test' })), 'token')
    expectRejectedJwt(await callJwt(await at({}, other.privateKey)), 'token')
    expectRejectedJwt(
      await callJwt(await at({ exp: Math.floor(Date.now() / 1000) - 3600 })),
      'token',
    )
  })

  function expectRejectedJwt(reply: Reply, check: string): void {
    expect(reply.status).toBe(401)
    expect(reply.json).toMatchObject({ error: 'invalid_token', check })
  }
})

describe('the jti cache records only verified proofs and refuses rather than forgets (issue 19)', () => {
  let small: ApiServer
  let smallBase: string
  beforeAll(async () => {
    small = await startApiServer({ port: 0, replayCacheSize: 2 })
    smallBase = `http://127.0.0.1:${small.port}`
  })
  afterAll(async () => {
    await small.close()
  })
  beforeEach(() => {
    small.reset()
  })

  const signed = async (signer: KeyPair, accessToken: string, n: string): Promise<string> =>
    proof({
      key: signer,
      claims: { htm: 'GET', htu: `${smallBase}/api/echo`, nonce: n, ath: ath(accessToken) },
    })
  const get = (accessToken: string, p: string) =>
    send(`${smallBase}/api/echo`, { headers: { authorization: `DPoP ${accessToken}`, dpop: p } })

  it("a proof from an attacker's own key (token bound elsewhere) takes no jti: not the victim's next one, not room in the cache", async () => {
    const victim = small.mintToken({ jkt: key.jkt }).access_token
    const n = small.rotateNonce()
    const attacker = await keyPair()
    // The attacker guesses (or learned) the jti the victim's next proof carries.
    const jti = crypto.randomUUID()
    const forged = await proof({
      key: attacker,
      claims: { jti, htm: 'GET', htu: `${smallBase}/api/echo`, nonce: n, ath: ath(victim) },
    })
    expect((await get(victim, forged)).json).toMatchObject({ error: 'invalid_token', check: 'jkt' })
    const real = await proof({
      key,
      claims: { jti, htm: 'GET', htu: `${smallBase}/api/echo`, nonce: n, ath: ath(victim) },
    })
    expect((await get(victim, real)).status).toBe(200)
    // A flood of such proofs does not push the victim's proof out of the (2-entry) cache.
    for (let i = 0; i < 5; i++) {
      const flood = await get(victim, await signed(attacker, victim, n))
      expect(flood.json).toMatchObject({ error: 'invalid_token', check: 'jkt' })
    }
    const replayed = await get(victim, real)
    expect(replayed.status).toBe(401)
    expect(replayed.json).toMatchObject({ error: 'invalid_dpop_proof', check: 'jti-replay' })
  })

  it('a full cache of unexpired jtis answers 503 with Retry-After, and still refuses a replay of the oldest', async () => {
    const t = small.mintToken({ jkt: key.jkt }).access_token
    const n = small.rotateNonce()
    const first = await signed(key, t, n)
    expect((await get(t, first)).status).toBe(200)
    expect((await get(t, await signed(key, t, n))).status).toBe(200)
    const third = await get(t, await signed(key, t, n))
    expect(third.status).toBe(503)
    expect(third.headers['retry-after']).toBe('60')
    expect(third.json).toMatchObject({ error: 'invalid_dpop_proof', check: 'jti-capacity' })
    const replayed = await get(t, first)
    expect(replayed.status).toBe(401)
    expect(replayed.json).toMatchObject({ check: 'jti-replay' })
  })

  it('a proof refused for its nonce is not recorded: the jti is still free once a valid proof carries it', async () => {
    const t = small.mintToken({ jkt: key.jkt }).access_token
    const jti = crypto.randomUUID()
    const stale = await proof({
      key,
      claims: { jti, htm: 'GET', htu: `${smallBase}/api/echo`, nonce: 'not-a-nonce', ath: ath(t) },
    })
    expect((await get(t, stale)).json).toMatchObject({ error: 'use_dpop_nonce' })
    const fresh = await proof({
      key,
      claims: {
        jti,
        htm: 'GET',
        htu: `${smallBase}/api/echo`,
        nonce: small.rotateNonce(),
        ath: ath(t),
      },
    })
    expect((await get(t, fresh)).status).toBe(200)
  })
})

describe('pieces', () => {
  it('the replay cache is bounded and forgets entries past the iat window', () => {
    let now = 1_000_000_000
    const cache = createReplayCache({ windowSec: 60, now: () => now, maxEntries: 3 })
    expect(cache.remember('a', 1_000_000)).toBe('recorded')
    expect(cache.remember('a', 1_000_000)).toBe('replayed')
    for (const j of ['b', 'c', 'd', 'e']) cache.remember(j, 1_000_000)
    expect(cache.size).toBeLessThanOrEqual(3)
    now += 61_000
    cache.remember('f', 1_000_061)
    expect(cache.size).toBe(1)
  })

  it('the nonce issuer rotates on its interval and accepts current and previous only', () => {
    let t = 0
    const n = createNonceIssuer({ rotateEveryMs: 1000, monotonicNow: () => t })
    const first = n.current()
    t = 999
    expect(n.current()).toBe(first)
    t = 1000
    const second = n.current()
    expect(second).not.toBe(first)
    expect(n.accepts(first)).toBe(true)
    t = 2000
    expect(n.accepts(first)).toBe(false)
    expect(n.accepts(second)).toBe(true)
    expect(second).toMatch(/^[A-Za-z0-9_-]{22}$/)
  })
})

describe('busy port', () => {
  it('startApiServer rejects with a message that says what to change', async () => {
    await expect(startApiServer({ port: api.port })).rejects.toThrow(
      new RegExp(`^port ${api.port} is in use; set DPOP_API_PORT \\(or --port\\) to another port$`),
    )
  })

  it('the CLI prints it and exits with 1', () => {
    const run = spawnSync('npx', ['tsx', 'demo/api/server.ts', '--port', String(api.port)], {
      encoding: 'utf8',
      timeout: 30_000,
    })
    expect(run.status).toBe(1)
    expect(run.stderr).toContain(
      `port ${api.port} is in use; set DPOP_API_PORT (or --port) to another port`,
    )
  })
})
