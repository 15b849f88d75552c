// @vitest-environment node
// createDPoPClient's start-up: config validation and discovery, with the network faked at
// the fetch edge. Login, refresh and logout against a real server are in e2e/tokens.spec.ts.
import { describe, expect, it } from 'vitest'
import { IDBFactory } from 'fake-indexeddb'
import { createDPoPClient } from '../src/client/client.ts'
import type { DPoPClientConfig } from '../src/client/client-config.ts'
import { isDPoPError } from '../src/base/errors.ts'

const ISSUER = 'https://as.example'
const metadata = {
  issuer: ISSUER,
  authorization_endpoint: `${ISSUER}/authorize`,
  token_endpoint: `${ISSUER}/token`,
}

function config(fetchImpl: typeof fetch, extra: Partial<DPoPClientConfig> = {}): DPoPClientConfig {
  return {
    issuer: ISSUER,
    clientId: 'spa',
    redirectUri: 'https://app.example/cb',
    apiOrigins: ['https://api.example'],
    fetch: fetchImpl,
    indexedDB: new IDBFactory(),
    ...extra,
  }
}

describe('createDPoPClient', () => {
  it('discovers an OpenID provider', async () => {
    const seen: string[] = []
    const auth = await createDPoPClient(
      config(async (url) => {
        seen.push(url instanceof Request ? url.url : url.toString())
        return Response.json(metadata)
      }),
    )
    expect(seen).toEqual([`${ISSUER}/.well-known/openid-configuration`])
    expect(auth.authorizationServer.token_endpoint).toBe(`${ISSUER}/token`)
    expect(auth.isAuthenticated()).toBe(false)
    auth.close()
  })

  it("the first API request is signed on the clock the authorization server's Date taught", async () => {
    const ahead = 10 * 60_000
    const proofs: string[] = []
    const auth = await createDPoPClient(
      config(async (input, init) => {
        const request = new Request(input, init)
        if (request.url.startsWith('https://api.example/')) {
          proofs.push(request.headers.get('dpop') ?? '')
          return new Response('ok')
        }
        return Response.json(metadata, {
          headers: { Date: new Date(Date.now() + ahead).toUTCString() },
        })
      }),
    )
    expect((await auth.fetch('https://api.example/me')).status).toBe(200)
    const { iat } = JSON.parse(
      Buffer.from(proofs[0]?.split('.')[1] ?? '', 'base64url').toString(),
    ) as { iat: number }
    expect(Math.abs(iat - (Date.now() + ahead) / 1000)).toBeLessThan(5)
    auth.close()
  })

  it('a bad apiOrigins, fetch or debug is refused before any request is made', async () => {
    const seen: string[] = []
    const recording: typeof fetch = async (url) => {
      seen.push(url instanceof Request ? url.url : url.toString())
      return Response.json(metadata)
    }
    const bad: Partial<DPoPClientConfig>[] = [
      { apiOrigins: ['https://api.example/path'] },
      { debug: 'yes' as never },
    ]
    for (const extra of bad) {
      const refused = await createDPoPClient(config(recording, extra)).catch((e: unknown) => e)
      expect(isDPoPError(refused, 'ERR_INVALID_ARGUMENT'), JSON.stringify(extra)).toBe(true)
    }
    const noFetch = await createDPoPClient(config(recording, { fetch: 'fetch' as never })).catch(
      (e: unknown) => e,
    )
    expect(isDPoPError(noFetch, 'ERR_INVALID_ARGUMENT')).toBe(true)
    expect((noFetch as Error).message).toContain('fetch')
    expect(seen).toEqual([])
  })

  it('negotiates the algorithm: fails with ERR_UNSUPPORTED_ALGORITHM naming what the server accepts', async () => {
    const only = (algs: string[]) => async () =>
      Response.json({ ...metadata, dpop_signing_alg_values_supported: algs })
    const refused = await createDPoPClient(
      config(only(['ES256', 'PS256']), { alg: 'EdDSA' }),
    ).catch((e: unknown) => e)
    expect(isDPoPError(refused, 'ERR_UNSUPPORTED_ALGORITHM')).toBe(true)
    expect((refused as Error).message).toContain('ES256, PS256')
    const edOnly = await createDPoPClient(config(only(['EdDSA']))).catch((e: unknown) => e)
    expect(isDPoPError(edOnly, 'ERR_UNSUPPORTED_ALGORITHM')).toBe(true)
    const ed = await createDPoPClient(config(only(['ES256', 'EdDSA']), { alg: 'EdDSA' }))
    expect((await ed.keys.load()).privateKey.algorithm.name).toBe('Ed25519')
    ed.close()
    const unlisted = await createDPoPClient(
      config(async () => Response.json(metadata), { alg: 'EdDSA' }),
    )
    unlisted.close()
    expect(
      isDPoPError(
        await createDPoPClient(config(only(['ES256']), { alg: 'RS256' as never })).catch(
          (e: unknown) => e,
        ),
        'ERR_UNSUPPORTED_ALGORITHM',
      ),
    ).toBe(true)
  })

  it('falls back to RFC 8414 metadata for a plain OAuth server', async () => {
    const seen: string[] = []
    const auth = await createDPoPClient(
      config(async (url) => {
        seen.push(new URL(url instanceof Request ? url.url : url.toString()).pathname)
        return new URL(url instanceof Request ? url.url : url.toString()).pathname ===
          '/.well-known/oauth-authorization-server'
          ? Response.json(metadata)
          : new Response('not found', { status: 404 })
      }),
    )
    expect(seen).toEqual([
      '/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server',
    ])
    expect(auth.authorizationServer.issuer).toBe(ISSUER)
    auth.close()
  })

  it('discovery fits the server: without openid in scope RFC 8414 is read first (one request); discovery picks one document only', async () => {
    const paths: string[] = []
    const oauthOnly = async (url: RequestInfo | URL) => {
      const path = new URL(url instanceof Request ? url.url : url.toString()).pathname
      paths.push(path)
      return path === '/.well-known/oauth-authorization-server'
        ? Response.json(metadata)
        : new Response('not found', { status: 404 })
    }
    const plain = await createDPoPClient(config(oauthOnly, { scope: 'atproto transition:generic' }))
    plain.close()
    expect(paths).toEqual(['/.well-known/oauth-authorization-server'])
    paths.length = 0
    const told = await createDPoPClient(config(oauthOnly, { discovery: 'oauth' })) // openid in scope, yet RFC 8414 only
    told.close()
    expect(paths).toEqual(['/.well-known/oauth-authorization-server'])
    paths.length = 0
    const oidcOnly = await createDPoPClient(config(oauthOnly, { discovery: 'oidc' })).catch(
      (e: unknown) => e,
    )
    expect(isDPoPError(oidcOnly, 'ERR_INVALID_RESPONSE')).toBe(true)
    expect(paths).toEqual(['/.well-known/openid-configuration'])
    paths.length = 0
    // Without openid, a server that publishes only OIDC Discovery is still found (second request).
    const oidcServer = await createDPoPClient(
      config(
        async (url) => {
          const path = new URL(url instanceof Request ? url.url : url.toString()).pathname
          paths.push(path)
          return path === '/.well-known/openid-configuration'
            ? Response.json(metadata)
            : new Response('not found', { status: 404 })
        },
        { scope: 'api' },
      ),
    )
    oidcServer.close()
    expect(paths).toEqual([
      '/.well-known/oauth-authorization-server',
      '/.well-known/openid-configuration',
    ])
    const bad = await createDPoPClient(config(oauthOnly, { discovery: 'openid' as never })).catch(
      (e: unknown) => e,
    )
    expect(isDPoPError(bad, 'ERR_INVALID_ARGUMENT')).toBe(true)
    expect((bad as Error).message).toContain('config.discovery')
  })

  it('a server that cannot be reached or answers nonsense gets a typed error', async () => {
    const down = await createDPoPClient(
      config(async () => {
        throw new TypeError('Failed to fetch')
      }),
    ).catch((e: unknown) => e)
    expect(isDPoPError(down, 'ERR_NETWORK')).toBe(true)
    const wrong = await createDPoPClient(
      config(async () => Response.json({ ...metadata, issuer: 'https://evil.example' })),
    ).catch((e: unknown) => e)
    expect(isDPoPError(wrong, 'ERR_INVALID_RESPONSE')).toBe(true)
    const html = await createDPoPClient(
      config(
        async () =>
          new Response('<html>login</html>', { headers: { 'content-type': 'text/html' } }),
      ),
    ).catch((e: unknown) => e)
    expect(isDPoPError(html, 'ERR_INVALID_RESPONSE')).toBe(true)
  })

  it('validates the config at the boundary, naming the option', async () => {
    const never = (async () => {
      throw new Error('no network expected')
    }) as typeof fetch
    for (const [extra, name] of [
      [{ issuer: 'http://login.example.com' }, 'issuer'],
      [{ issuer: 'not a url' }, 'issuer'],
      [{ redirectUri: 'http://app.example/cb' }, 'redirectUri'],
      [{ clientId: '' }, 'clientId'],
      [{ apiOrigins: 'https://api.example' as never }, 'apiOrigins'],
    ] as const) {
      const error = await createDPoPClient(config(never, extra)).catch((e: unknown) => e)
      expect(isDPoPError(error, 'ERR_INVALID_ARGUMENT')).toBe(true)
      expect((error as Error).message).toContain(name)
    }
  })

  it('without IndexedDB: a typed error, or a memory-only key and session when asked for', async () => {
    const meta = (async () => Response.json(metadata)) as typeof fetch
    const refused = await createDPoPClient(config(meta, { indexedDB: null })).catch(
      (e: unknown) => e,
    )
    expect(isDPoPError(refused, 'ERR_KEY_STORE_UNAVAILABLE')).toBe(true)
    const auth = await createDPoPClient(
      config(meta, { indexedDB: null, storageFallback: 'memory' }),
    )
    expect(auth.keys.storage).toBe('memory')
    expect((await auth.keys.load()).privateKey.extractable).toBe(false)
    auth.close()
  })

  it('the bounds are options: a bad one is ERR_INVALID_ARGUMENT naming it; requestTimeoutMs bounds discovery', async () => {
    const hang: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal!.reason as Error))
      })
    for (const name of [
      'requestTimeoutMs',
      'revocationTimeoutMs',
      'fallbackLifetimeSeconds',
      'storageTimeoutMs',
      'lockTimeoutMs',
      'refreshLeewaySeconds',
    ] as const) {
      for (const bad of [0, -1, Number.NaN, Infinity]) {
        const error = await createDPoPClient(config(hang, { [name]: bad })).catch((e: unknown) => e)
        expect(isDPoPError(error, 'ERR_INVALID_ARGUMENT'), `${name}=${bad}`).toBe(true)
        expect((error as Error).message).toContain(`"config.${name}"`)
      }
    }
    const started = Date.now()
    const error = await createDPoPClient(config(hang, { requestTimeoutMs: 200 })).catch(
      (e: unknown) => e,
    )
    expect(isDPoPError(error, 'ERR_TIMEOUT')).toBe(true)
    // Both discovery documents (OIDC, then RFC 8414) were tried, each bounded by 200 ms, not 30 s.
    expect(Date.now() - started).toBeLessThan(10_000)
  })
})
