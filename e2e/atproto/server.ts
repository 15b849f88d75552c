/**
 * atproto's OAuth server, unmodified, for e2e/atproto.spec.ts: `@atproto/oauth-provider`
 * (the authorization server every Bluesky/atproto PDS runs) with its own sign-in and consent
 * pages, plus a resource server on a second origin that checks every request the way a PDS
 * does, with `provider.authenticateRequest()`.
 *
 * Runs under Node >= 22.19 (the provider's requirement), started by Playwright through
 * e2e/atproto/runtime.ts: `<node 22> e2e/atproto/server.ts` (Node strips the types itself).
 * Environment: DPOP_TEST_ATPROTO_PORT (authorization server), DPOP_TEST_ATPROTO_API_PORT
 * (resource server), DPOP_TEST_VITE_PORT (the app's origin, for CORS),
 * DPOP_TEST_ATPROTO_TOKEN_TTL (access-token lifetime in seconds, short so a refresh happens).
 *
 * Configuration choices, and why:
 * - The provider's defaults wherever a PDS keeps them: DPoP required with server nonces,
 *   PAR required, refresh tokens rotated, public loopback clients (`http://localhost?…`
 *   client ids, redirect URIs on 127.0.0.1) described by the provider itself.
 * - `accessTokenMode: stateful`: each access token is checked against the token store when a
 *   resource sees it, so a revoked grant is refused at the resource too, not only at the
 *   token endpoint (stateless tokens would stay valid until they expire).
 * - `tokenMaxAge` of a few seconds, so the browser test sees a refresh.
 * - The resource server shares the provider's nonce secret (as a PDS does) and answers
 *   `DPoP-Nonce` on every response; its CORS exposes `DPoP-Nonce` and `WWW-Authenticate`
 *   (not `Date`, like the provider's own endpoints).
 * - Recording, for tests to count at the server: every request to the provider's endpoints
 *   with its status and OAuth error, the DPoP proof's key thumbprint and whether it carried a
 *   nonce; every resource request with its outcome; the grants the token store holds.
 *   `/__control/*` (stats, reset, clear-log, forget-access-tokens, health) never returns token values.
 * - One change to what the browser receives, not to the provider: `Secure` is taken off the
 *   sign-in pages' cookies, which WebKit refuses on plain-http localhost (see `answerAs`).
 * - Found while writing it: in stateful mode the provider deletes the whole grant (refresh
 *   token included) when a resource is shown an expired access token, so a client that
 *   refreshes only after `invalid_token` would lose the session there; dpop-spa refreshes ahead.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { calculateJwkThumbprint, decodeProtectedHeader, decodeJwt } from 'jose'
import { AccessTokenMode, JoseKey, Keyset, OAuthProvider } from '@atproto/oauth-provider/provider'
import { oauthMiddleware } from '@atproto/oauth-provider/middleware'
import { OAuthError, WWWAuthenticateError } from '@atproto/oauth-provider/errors'
import { PORTS } from '../ports.ts'
import { ATPROTO_USER, type AtprotoStats, type AsRequest, type ApiRequest } from './fixture.ts'
import { createMemoryStore } from './stores.ts'

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  console.error(
    `atproto server: @atproto/oauth-provider needs Node >= 22.19, this is ${process.version} (see e2e/atproto/runtime.ts)`,
  )
  process.exit(1)
}

const issuer = `http://localhost:${PORTS.atproto.as}`
const apiOrigin = `http://localhost:${PORTS.atproto.api}`
const appOrigin = `http://127.0.0.1:${PORTS.vite}`
const tokenTtlSeconds = Number(process.env.DPOP_TEST_ATPROTO_TOKEN_TTL ?? 12)

const store = createMemoryStore({ account: ATPROTO_USER.account, password: ATPROTO_USER.password })
const provider = new OAuthProvider({
  issuer,
  keyset: new Keyset([await JoseKey.generate(['ES256'], 'atproto-e2e')]),
  store,
  accessTokenMode: AccessTokenMode.stateful,
  tokenMaxAge: tokenTtlSeconds * 1000,
  // Recording hooks (they change nothing).
  onTokenCreated: () => {
    grantLog.push('authorization_code')
  },
  onTokenRefreshed: () => {
    grantLog.push('refresh_token')
  },
})

let asLog: AsRequest[] = []
let apiLog: ApiRequest[] = []
let grantLog: string[] = []
const pending = new WeakMap<IncomingMessage, AsRequest>()

/** What a DPoP header says about itself: the key's thumbprint, whether it has a nonce. */
async function describeProof(
  header: string | string[] | undefined,
): Promise<{ jkt?: string; nonce?: boolean }> {
  if (typeof header !== 'string') return {}
  try {
    const { jwk } = decodeProtectedHeader(header)
    return {
      ...(jwk ? { jkt: await calculateJwkThumbprint(jwk) } : {}),
      nonce: typeof decodeJwt(header).nonce === 'string',
    }
  } catch {
    return {}
  }
}

const handle = oauthMiddleware(provider, {
  onError: (req, _res, err, message) => {
    const entry = pending.get(req)
    if (entry) entry.failure = `${message}: ${err instanceof Error ? err.message : String(err)}`
  },
})

const json = (res: ServerResponse, status: number, body: unknown) => {
  res
    .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    .end(JSON.stringify(body))
}

async function answerAs(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', issuer)
  if (url.pathname.startsWith('/__control/')) {
    switch (`${req.method} ${url.pathname}`) {
      case 'GET /__control/health':
        return json(res, 200, { ok: true, issuer, api: apiOrigin, tokenTtlSeconds })
      case 'GET /__control/stats': {
        const stats: AtprotoStats = {
          as: asLog,
          api: apiLog,
          grantsIssued: grantLog,
          grants: store.grants(),
        }
        return json(res, 200, stats)
      }
      case 'POST /__control/reset':
        asLog = []
        apiLog = []
        grantLog = []
        store.reset()
        return json(res, 200, { ok: true })
      case 'POST /__control/clear-log':
        asLog = []
        apiLog = []
        grantLog = []
        return json(res, 200, { ok: true })
      case 'POST /__control/forget-access-tokens':
        return json(res, 200, { forgotten: store.forgetAccessTokens() })
      default:
        return json(res, 404, { error: 'unknown control endpoint' })
    }
  }
  // The sign-in pages' CSRF cookie is always `Secure` (the provider hard-codes it; its device
  // cookie is not Secure on an http issuer). Chromium and Firefox keep Secure cookies from
  // http://localhost, WebKit drops them, and its sign-in then fails with "Missing CSRF header".
  // On this plain-http loopback test server only, the flag is taken off the cookies; nothing of
  // the OAuth or DPoP protocol changes (a PDS runs on https, where the flag is right).
  const setHeader = res.setHeader.bind(res)
  res.setHeader = (name: string, value: number | string | readonly string[]) => {
    if (name.toLowerCase() !== 'set-cookie') return setHeader(name, value)
    const drop = (c: string) => c.replace(/;\s*Secure(?=;|$)/gi, '')
    return setHeader(
      name,
      typeof value === 'string'
        ? drop(value)
        : Array.isArray(value)
          ? value.map((c: string) => drop(c))
          : value,
    )
  }
  if (req.method !== 'OPTIONS') {
    const entry: AsRequest = {
      method: req.method ?? '',
      path: url.pathname,
      status: 0,
      ...(await describeProof(req.headers.dpop)),
    }
    asLog.push(entry)
    pending.set(req, entry)
    // The answer's status and OAuth error, read as the provider writes it.
    const chunks: Buffer[] = []
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse
    res.end = ((...args: unknown[]) => {
      const [chunk] = args
      if (typeof chunk === 'string' || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk))
      entry.status = res.statusCode
      if (res.statusCode >= 400 && String(res.getHeader('content-type') ?? '').includes('json')) {
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: unknown }
          if (typeof body.error === 'string') entry.error = body.error
        } catch {
          /* not JSON after all */
        }
      }
      return end(...args)
    }) as typeof res.end
    const write = res.write.bind(res) as (...args: unknown[]) => boolean
    res.write = ((...args: unknown[]) => {
      const [chunk] = args
      if (typeof chunk === 'string' || chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk))
      return write(...args)
    }) as typeof res.write
  }
  handle(req, res, (err?: unknown) => {
    if (err) console.error('atproto server:', err)
    if (!res.headersSent) json(res, err ? 500 : 404, { error: err ? 'server_error' : 'not_found' })
  })
}

// The resource server: a second origin, checking each request as a PDS does.
const cors = (req: IncomingMessage, res: ServerResponse) => {
  if (req.headers.origin === appOrigin) {
    res.setHeader('Access-Control-Allow-Origin', appOrigin)
    res.setHeader('Vary', 'Origin')
    res.setHeader('Access-Control-Expose-Headers', 'DPoP-Nonce, WWW-Authenticate')
  }
}
async function answerApi(req: IncomingMessage, res: ServerResponse): Promise<void> {
  cors(req, res)
  if (req.method === 'OPTIONS') {
    res
      .writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, POST',
        'Access-Control-Allow-Headers': 'Authorization, DPoP, Content-Type',
        'Access-Control-Max-Age': '600',
      })
      .end()
    return
  }
  const url = new URL(req.url ?? '/', apiOrigin)
  const nonce = provider.nextDpopNonce()
  if (nonce) res.setHeader('DPoP-Nonce', nonce)
  const entry: ApiRequest = {
    method: req.method ?? '',
    path: url.pathname,
    status: 0,
    ...(await describeProof(req.headers.dpop)),
  }
  apiLog.push(entry)
  if (url.pathname !== '/xrpc/com.example.whoami') {
    entry.status = 404
    return json(res, 404, { error: 'NotFound' })
  }
  try {
    const payload = await provider.authenticateRequest(req.method ?? 'GET', url, req.headers, {
      audience: [ATPROTO_USER.account.pds],
      scope: ['atproto'],
    })
    entry.status = 200
    entry.sub = payload.sub
    json(res, 200, { sub: payload.sub, client_id: payload.client_id, jkt: payload.cnf?.jkt })
  } catch (err) {
    if (err instanceof WWWAuthenticateError)
      res.setHeader('WWW-Authenticate', err.wwwAuthenticateHeader)
    const status = err instanceof OAuthError ? err.status : 500
    entry.status = status
    entry.error = err instanceof OAuthError ? err.error : 'server_error'
    entry.description = err instanceof Error ? err.message : String(err)
    json(res, status, { error: entry.error, message: entry.description })
  }
}

const failed = (res: ServerResponse) => (err: unknown) => {
  console.error('atproto server:', err)
  if (!res.headersSent) json(res, 500, { error: 'server_error' })
}
const as = createServer((req, res) => {
  answerAs(req, res).catch(failed(res))
})
const api = createServer((req, res) => {
  answerApi(req, res).catch(failed(res))
})

await Promise.all([
  new Promise<void>((r) => as.listen(PORTS.atproto.as, '127.0.0.1', r)),
  new Promise<void>((r) => api.listen(PORTS.atproto.api, '127.0.0.1', r)),
])
console.log(
  `atproto server (Node ${process.version}): issuer ${issuer}, resource ${apiOrigin}, access tokens ${tokenTtlSeconds} s`,
)
const stop = () => {
  as.close()
  api.close()
  process.exit(0)
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
