/**
 * Other people's DPoP verifiers, each fronting GET and POST routes, for e2e/interop.spec.ts.
 * Started by Playwright's webServer. Nothing here checks a proof itself: every accept or
 * refusal comes from the library named, configured as its documentation says.
 *
 * - `auth0` (port base+1): Auth0's `express-oauth2-jwt-bearer` in Express 5, DPoP enabled
 *   (its default), errors answered by Express's own error handler, as an app that writes none.
 * - `oauth4webapi` (base+2): `validateJwtAccessToken` with `requireDPoP`, behind a plain
 *   node:http handler that answers 401 `WWW-Authenticate: DPoP error="invalid_dpop_proof"`
 *   (or `invalid_token`) without a description and the reason in a JSON body.
 * - `solid` (base+3): `@solid/access-token-verifier`, the verifier of the Community Solid
 *   Server, answering like that server does: 400 text/plain, no challenge at all.
 * - the issuer (base): the access-token signing key's JWKS, OpenID metadata, the WebID
 *   document the Solid verifier reads, and a control API: mint a token bound to a `jkt`,
 *   read and reset the log of every request and response.
 *
 * Under `/nonce/` the auth0 and oauth4webapi servers add a nonce layer of this file's own
 * (none of the three libraries has one): oauth4webapi's answers 401
 * `WWW-Authenticate: DPoP error="use_dpop_nonce"` as RFC 9449 §9 says; auth0's answers 400
 * with a JSON body `{"error":"use_dpop_nonce"}`, like servers that pick the wrong status.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import express, {
  type NextFunction,
  type Request as ExpressRequest,
  type Response as ExpressResponse,
} from 'express'
import { auth } from 'express-oauth2-jwt-bearer'
import { createSolidTokenVerifier, type RequestMethod } from '@solid/access-token-verifier'
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair } from 'jose'
import * as oauth from 'oauth4webapi'
import { PORTS } from './ports.ts'

/** Ports: the issuer on `base`, then one per verifier. */
export const INTEROP_BASE_PORT = PORTS.interop
export const INTEROP_PORTS = {
  issuer: INTEROP_BASE_PORT,
  auth0: INTEROP_BASE_PORT + 1,
  oauth4webapi: INTEROP_BASE_PORT + 2,
  solid: INTEROP_BASE_PORT + 3,
} as const
export type VerifierName = Exclude<keyof typeof INTEROP_PORTS, 'issuer'>
const VITE_ORIGIN = `http://localhost:${PORTS.vite}`
const ISSUER = `http://localhost:${INTEROP_PORTS.issuer}`
const WEBID = `${ISSUER}/profile/card#me`
const AUDIENCE = 'interop-api'
const HOST = '127.0.0.1'

/** One request as a verifier's server saw and answered it. */
export interface InteropRecord {
  seq: number
  verifier: VerifierName
  method: string
  url: string
  scheme?: string
  proof?:
    | { htm?: unknown; htu?: unknown; iat?: unknown; jti?: unknown; nonce?: unknown; alg?: unknown }
    | undefined
  status: number
  wwwAuthenticate?: string | undefined
  dpopNonce?: string | undefined
  contentType?: string | undefined
  body: string
}

const log: InteropRecord[] = []
// Rows of the spec's verifier × variant table, kept here because Playwright restarts its worker after a failure.
const rows = new Map<string, unknown>()
let seq = 0
const nonces: Record<'auth0' | 'oauth4webapi', string> = { auth0: '', oauth4webapi: '' }
const rotate = () => {
  nonces.auth0 = randomBytes(16).toString('base64url')
  nonces.oauth4webapi = randomBytes(16).toString('base64url')
}
rotate()

function proofOf(header: string | string[] | undefined): InteropRecord['proof'] {
  if (typeof header !== 'string') return undefined
  try {
    const { htm, htu, iat, jti, nonce } = decodeJwt(header)
    return { htm, htu, iat, jti, nonce, alg: decodeProtectedHeader(header).alg }
  } catch {
    return { htu: 'undecodable' }
  }
}

/** Records the answer once it is complete: whatever wrote it (the library, Express, us). */
function record(verifier: VerifierName, req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'OPTIONS') return
  const chunks: Buffer[] = []
  const write = res.write.bind(res) as (...a: unknown[]) => boolean
  const end = res.end.bind(res) as (...a: unknown[]) => ServerResponse
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (chunk) chunks.push(Buffer.from(chunk as string))
    return write(chunk, ...rest)
  }) as typeof res.write
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (chunk && typeof chunk !== 'function') chunks.push(Buffer.from(chunk as string))
    return end(chunk, ...rest)
  }) as typeof res.end
  res.once('finish', () => {
    const authz = req.headers.authorization
    const header = (name: string) => {
      const v = res.getHeader(name)
      return v === undefined ? undefined : String(v)
    }
    log.push({
      seq: ++seq,
      verifier,
      method: req.method ?? '',
      url: req.url ?? '',
      ...(authz ? { scheme: authz.split(' ')[0] } : {}),
      ...(req.headers.dpop ? { proof: proofOf(req.headers.dpop) } : {}),
      status: res.statusCode,
      ...(header('www-authenticate') ? { wwwAuthenticate: header('www-authenticate') } : {}),
      ...(header('dpop-nonce') ? { dpopNonce: header('dpop-nonce') } : {}),
      ...(header('content-type') ? { contentType: header('content-type') } : {}),
      // Enough to see why; Express's default handler adds a stack trace in development.
      body: Buffer.concat(chunks).toString('utf8').slice(0, 300),
    })
    if (log.length > 500) log.shift()
  })
}

function cors(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.headers.origin === VITE_ORIGIN) {
    res.setHeader('Access-Control-Allow-Origin', VITE_ORIGIN)
    res.setHeader('Access-Control-Expose-Headers', 'WWW-Authenticate, DPoP-Nonce, Date')
    res.setHeader('Vary', 'Origin')
  }
  if (req.method !== 'OPTIONS') return false
  res.setHeader('Access-Control-Allow-Methods', 'GET, POST')
  res.setHeader('Access-Control-Allow-Headers', 'Authorization, DPoP, Content-Type')
  res.statusCode = 204
  res.end()
  return true
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, HOST, () => resolve())
  })
}

// The authorization server's signing key: tokens are minted here, verifiers fetch the JWKS.
const signing = await generateKeyPair('ES256')
const publicJwk = {
  ...(await exportJWK(signing.publicKey)),
  kid: 'interop-1',
  alg: 'ES256',
  use: 'sig',
}

async function mint(jkt: string): Promise<string> {
  return new SignJWT({ client_id: 'interop-spa', scope: 'read write', webid: WEBID, cnf: { jkt } })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: publicJwk.kid })
    .setIssuer(ISSUER)
    .setSubject('interop-user')
    .setAudience([AUDIENCE, 'solid'])
    .setIssuedAt()
    .setExpirationTime('15m')
    .setJti(randomUUID())
    .sign(signing.privateKey)
}

// What each route answers once the verifier accepted: enough to see the request arrived whole.
function accepted(method: string, url: string, body: string): string {
  return JSON.stringify({ ok: true, method, url, body })
}

// --- issuer + control -------------------------------------------------------------------
const issuer = createServer((req, res) => {
  void (async () => {
    const url = new URL(req.url ?? '/', ISSUER)
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value))
    }
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(200, {
        issuer: ISSUER,
        jwks_uri: `${ISSUER}/jwks`,
        dpop_signing_alg_values_supported: ['ES256', 'EdDSA'],
      })
    }
    if (url.pathname === '/jwks') return json(200, { keys: [publicJwk] })
    if (url.pathname === '/profile/card') {
      res.writeHead(200, { 'content-type': 'text/turtle' })
      return res.end(`<#me> <http://www.w3.org/ns/solid/terms#oidcIssuer> <${ISSUER}> .\n`)
    }
    if (url.pathname === '/__control/health') return json(200, { ok: true })
    if (url.pathname === '/__control/log') return json(200, log)
    if (req.method === 'POST' && url.pathname === '/__control/reset') {
      log.length = 0
      rotate()
      return json(200, { ok: true })
    }
    if (url.pathname === '/__control/rows') {
      if (req.method === 'POST') {
        const row = JSON.parse(await readBody(req)) as { verifier: string; variant: string }
        rows.set(`${row.verifier} ${row.variant}`, row)
      }
      return json(200, [...rows.values()])
    }
    if (req.method === 'POST' && url.pathname === '/__control/token') {
      const { jkt } = JSON.parse(await readBody(req)) as { jkt?: unknown }
      if (typeof jkt !== 'string') return json(400, { error: 'jkt' })
      return json(200, { access_token: await mint(jkt) })
    }
    json(404, { error: 'not_found' })
  })().catch((e: unknown) => {
    res.writeHead(500).end(String(e))
  })
})

// --- Auth0: express-oauth2-jwt-bearer ---------------------------------------------------
const app = express()
app.disable('x-powered-by')
// Express's final handler prints every refusal's stack to stderr unless env is 'test'; the
// answer (status, headers, HTML body) is the same.
app.set('env', 'test')
app.use((req, res, next) => {
  record('auth0', req, res)
  if (!cors(req, res)) next()
})
// The nonce layer of ours, answering with the wrong status and a JSON body (see top).
app.use('/nonce', (req: ExpressRequest, res: ExpressResponse, next: NextFunction) => {
  res.setHeader('DPoP-Nonce', nonces.auth0)
  if (proofOf(req.headers.dpop)?.nonce === nonces.auth0) return next()
  res.status(400).json({
    error: 'use_dpop_nonce',
    error_description: 'Authorization server requires nonce in DPoP proof',
  })
})
app.use(
  auth({ issuer: ISSUER, jwksUri: `${ISSUER}/jwks`, audience: AUDIENCE, tokenSigningAlg: 'ES256' }),
)
app.use(express.text({ type: '*/*' }))
app.all(/.*/, (req, res) => {
  res
    .set('Cache-Control', 'no-store')
    .type('application/json')
    .send(accepted(req.method, req.originalUrl, typeof req.body === 'string' ? req.body : ''))
})
const auth0 = createServer(app)

// --- oauth4webapi: validateJwtAccessToken -------------------------------------------------
const as: oauth.AuthorizationServer = { issuer: ISSUER, jwks_uri: `${ISSUER}/jwks` }
const o4w = createServer((req, res) => {
  record('oauth4webapi', req, res)
  if (cors(req, res)) return
  void (async () => {
    const body = await readBody(req)
    // How a Node resource server hands a request to oauth4webapi: its URL as the client saw it.
    const url = `http://${req.headers.host ?? ''}${req.url ?? '/'}`
    const headers = new Headers()
    for (const [name, value] of Object.entries(req.headers))
      if (typeof value === 'string') headers.set(name, value)
    if (url.includes('/nonce/')) {
      res.setHeader('DPoP-Nonce', nonces.oauth4webapi)
      if (proofOf(req.headers.dpop)?.nonce !== nonces.oauth4webapi) {
        res.writeHead(401, {
          'www-authenticate':
            'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"',
        })
        return res.end()
      }
    }
    try {
      await oauth.validateJwtAccessToken(
        as,
        new Request(url, { method: req.method ?? 'GET', headers }),
        AUDIENCE,
        {
          requireDPoP: true,
          [oauth.allowInsecureRequests]: true,
        },
      )
    } catch (e) {
      // invalid_token when the token itself is wrong, invalid_dpop_proof for the proof.
      const message = e instanceof Error ? e.message : String(e)
      const error = /DPoP|jkt|confirmation/i.test(message) ? 'invalid_dpop_proof' : 'invalid_token'
      res.writeHead(401, {
        'www-authenticate': `DPoP error="${error}", algs="ES256 EdDSA"`,
        'content-type': 'application/json',
      })
      return res.end(JSON.stringify({ error, reason: message }))
    }
    res
      .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(accepted(req.method ?? '', req.url ?? '', body))
  })().catch((e: unknown) => {
    res.writeHead(500).end(String(e))
  })
})

// --- Solid: @solid/access-token-verifier ---------------------------------------------------
const verifySolid = createSolidTokenVerifier()
const solid = createServer((req, res) => {
  record('solid', req, res)
  if (cors(req, res)) return
  void (async () => {
    const body = await readBody(req)
    try {
      await verifySolid(req.headers.authorization ?? '', {
        header: typeof req.headers.dpop === 'string' ? req.headers.dpop : '',
        method: (req.method ?? 'GET') as RequestMethod,
        url: `http://${req.headers.host ?? ''}${req.url ?? '/'}`,
      })
    } catch (e) {
      // The Community Solid Server's DPoPWebIdExtractor turns any failure into a 400.
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' })
      return res.end(
        `Error verifying WebID via DPoP-bound access token: ${e instanceof Error ? e.message : String(e)}`,
      )
    }
    res
      .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(accepted(req.method ?? '', req.url ?? '', body))
  })().catch((e: unknown) => {
    res.writeHead(500).end(String(e))
  })
})

await listen(issuer, INTEROP_PORTS.issuer)
await listen(auth0, INTEROP_PORTS.auth0)
await listen(o4w, INTEROP_PORTS.oauth4webapi)
await listen(solid, INTEROP_PORTS.solid)
console.log(
  `interop: issuer ${ISSUER}, auth0 :${INTEROP_PORTS.auth0}, oauth4webapi :${INTEROP_PORTS.oauth4webapi}, solid :${INTEROP_PORTS.solid}`,
)
const stop = () => {
  for (const s of [issuer, auth0, o4w, solid]) s.close()
  process.exit(0)
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
