// The fake authorization server of the unit tests, at the network edge only: it verifies
// every proof with jose (never with our code), requires nonces, binds codes to the key's
// thumbprint, checks the PKCE verifier and always rotates refresh tokens. The real
// oidc-provider runs in e2e/tokens.spec.ts.
import { createHash } from 'node:crypto'
import { afterEach, expect } from 'vitest'
import { IDBFactory } from 'fake-indexeddb'
import {
  EmbeddedJWK,
  SignJWT,
  calculateJwkThumbprint,
  generateKeyPair as joseKeyPair,
  jwtVerify,
} from 'jose'
import { calculatePKCECodeChallenge, type AuthorizationServer } from 'oauth4webapi'
import { openKeyStore, type KeyStore } from '../../src/key-store/key-store.ts'
import { openIdbStore } from '../../src/browser/idb.ts'
import { CLIENT_DEFAULTS } from '../../src/client/client-config.ts'
import { createClock } from '../../src/server-state/clock.ts'
import { createNonceCache } from '../../src/server-state/nonces.ts'
import {
  createAuthorizationServerRequests,
  linkServer,
} from '../../src/session/authorization-server.ts'
import type { DPoPClientEvent } from '../../src/session/events.ts'
import { createLoginFlow, type LoginChoices, type LoginFlow } from '../../src/session/login.ts'
import { createSessionRecords } from '../../src/session/session-records.ts'
import { createTokenManager, type TokenManager } from '../../src/session/tokens.ts'
import type { UserClaims } from '../../src/session/user.ts'

/** The token manager, the login flow and the session records of one client, as the client wires them. */
export type Tokens = TokenManager &
  LoginFlow & {
    restore(): Promise<void>
    isAuthenticated(): boolean
    getUser(): UserClaims | undefined
    close(): void
  }

export const ISSUER = 'https://as.example'
export const REDIRECT = 'https://app.example/cb'
export const as: AuthorizationServer = {
  issuer: ISSUER,
  authorization_endpoint: `${ISSUER}/authorize`,
  token_endpoint: `${ISSUER}/token`,
  revocation_endpoint: `${ISSUER}/revoke`,
  userinfo_endpoint: `${ISSUER}/userinfo`,
  end_session_endpoint: `${ISSUER}/logout`,
}

export interface FakeAs {
  /** Pushed authorization requests (RFC 9126): the proof's key, its nonce and the pushed parameters. */
  pushed: { jkt: string; nonce: unknown; params: URLSearchParams }[]
  fetch: typeof fetch
  tokenRequests: { grant: string; jkt: string; nonce: unknown; resource: string[] }[]
  revoked: string[]
  /** The DPoP proofs revocation requests carried, checked with jose: their key's thumbprint and claims. */
  revocationProofs: {
    hint: string
    jkt: string
    nonce: unknown
    htm: unknown
    htu: unknown
    keepalive: boolean | undefined
  }[]
  /** Whether a refresh token is still valid at the server (not revoked, not rotated). */
  hasRefreshToken(token: string): boolean
  mode: {
    tokenType: string
    failRefresh?: string
    ttl: number
    bindTo?: string
    rotateNonceOnSuccess?: boolean
    /** Revocation of a bound refresh token needs a proof from its key (invalid_dpop_proof otherwise). */
    requireRevocationProof?: boolean
    /** A revocation proof without the current nonce gets use_dpop_nonce. */
    revocationNonce?: boolean
    /** Issue an ID token at the code exchange (default true), with profile claims (default true). */
    idToken?: boolean
    idTokenProfile?: boolean
    /** A `sub` member in every token response (atproto names the account's DID there). */
    responseSub?: string
    /** The `sub` of the UserInfo response (default the ID token's, `alice`). */
    userinfoSub?: string
  }
  /** UserInfo requests: their proof's key, nonce and whether `ath` matched the token. */
  userinfo: { jkt: string; nonce: unknown; athOk: boolean; scheme: string }[]
  /** The nonce the token endpoint requires now. */
  nonce(): string
  /** The server moves to a new nonce (clients holding the old one meet use_dpop_nonce). */
  newNonce(): void
  codes: Map<string, { jkt: string; challenge: string; nonce?: string }>
  /** Registers a code for an authorization URL this client built (its dpop_jkt, PKCE challenge and nonce); returns the code. */
  issueCode(url: URL): string
}

let counter = 0
/** A unique suffix for names, codes and tokens. */
export const nextId = (): number => ++counter
export async function fakeAs(): Promise<FakeAs> {
  const idKey = await joseKeyPair('RS256')
  let nonce = 'server-nonce-1'
  let nonces = 1
  const refreshTokens = new Map<string, string>() // token -> jkt
  const state: FakeAs = {
    tokenRequests: [],
    pushed: [],
    revoked: [],
    revocationProofs: [],
    userinfo: [],
    hasRefreshToken: (token) => refreshTokens.has(token),
    mode: { tokenType: 'DPoP', ttl: 60 },
    codes: new Map(),
    nonce: () => nonce,
    newNonce: () => {
      nonce = `server-nonce-${++nonces}`
    },
    issueCode(url) {
      const code = `code-${++counter}`
      const nonce = url.searchParams.get('nonce')
      state.codes.set(code, {
        jkt: url.searchParams.get('dpop_jkt') ?? '',
        challenge: url.searchParams.get('code_challenge') ?? '',
        ...(nonce ? { nonce } : {}),
      })
      return code
    },
    fetch: async (input, init) => {
      const request = new Request(input, init)
      const url = new URL(request.url)
      const form = new URLSearchParams(await request.text())
      if (url.pathname === '/revoke') {
        const hint = form.get('token_type_hint') ?? ''
        const token = form.get('token') ?? ''
        const proof = request.headers.get('dpop')
        let jkt: string | undefined
        if (proof) {
          const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
            typ: 'dpop+jwt',
            algorithms: ['ES256', 'EdDSA'],
          })
          jkt = await calculateJwkThumbprint(protectedHeader.jwk!)
          state.revocationProofs.push({
            hint,
            jkt,
            nonce: payload.nonce,
            htm: payload.htm,
            htu: payload.htu,
            keepalive: init?.keepalive,
          })
          if (state.mode.revocationNonce && payload.nonce !== nonce) {
            return Response.json(
              { error: 'use_dpop_nonce' },
              { status: 400, headers: { 'DPoP-Nonce': nonce } },
            )
          }
        }
        // atproto's rule: a bound refresh token is revoked only on a proof from its key.
        if (
          state.mode.requireRevocationProof &&
          refreshTokens.has(token) &&
          refreshTokens.get(token) !== jkt
        ) {
          return Response.json(
            {
              error: 'invalid_dpop_proof',
              error_description: 'DPoP proof from the bound key required',
            },
            { status: 400 },
          )
        }
        state.revoked.push(hint)
        refreshTokens.delete(token)
        return new Response('', { status: 200 })
      }
      if (url.pathname === '/userinfo') {
        // A DPoP-bound access token at a resource (RFC 9449 §7): proof with ath, the token's key, a nonce.
        const [scheme = '', token = ''] = (request.headers.get('authorization') ?? '').split(' ')
        const proof = request.headers.get('dpop') ?? ''
        const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
          typ: 'dpop+jwt',
          algorithms: ['ES256', 'EdDSA'],
        })
        expect([payload.htm, payload.htu]).toEqual(['GET', `${ISSUER}/userinfo`])
        const jkt = await calculateJwkThumbprint(protectedHeader.jwk!)
        const athOk = payload.ath === createHash('sha256').update(token).digest('base64url')
        state.userinfo.push({ jkt, nonce: payload.nonce, athOk, scheme })
        if (payload.nonce !== nonce) {
          return new Response(null, {
            status: 401,
            headers: { 'WWW-Authenticate': 'DPoP error="use_dpop_nonce"', 'DPoP-Nonce': nonce },
          })
        }
        if (scheme !== 'DPoP' || !athOk || !token.endsWith(`.${jkt}`))
          return new Response(null, {
            status: 401,
            headers: { 'WWW-Authenticate': 'DPoP error="invalid_token"' },
          })
        return Response.json({
          sub: state.mode.userinfoSub ?? 'alice',
          name: 'Alice (userinfo)',
          email: 'alice@example.com',
        })
      }
      if (url.pathname !== '/token' && url.pathname !== '/par')
        return new Response('not found', { status: 404 })
      const proof = request.headers.get('dpop')
      if (!proof) return Response.json({ error: 'invalid_dpop_proof' }, { status: 400 })
      const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['ES256', 'EdDSA'],
      })
      expect(payload.htm).toBe('POST')
      expect(payload.htu).toBe(`${ISSUER}${url.pathname}`)
      expect(payload).not.toHaveProperty('ath')
      const jkt = await calculateJwkThumbprint(protectedHeader.jwk!)
      if (url.pathname === '/par') {
        state.pushed.push({ jkt, nonce: payload.nonce, params: form })
        if (payload.nonce !== nonce)
          return Response.json(
            { error: 'use_dpop_nonce' },
            { status: 400, headers: { 'DPoP-Nonce': nonce } },
          )
        // RFC 9449 §10.1: a dpop_jkt sent beside a proof must name the proof's key.
        if (form.get('dpop_jkt') !== jkt)
          return Response.json({ error: 'invalid_request' }, { status: 400 })
        return Response.json(
          { request_uri: `urn:ietf:params:oauth:request_uri:${++counter}`, expires_in: 60 },
          { status: 201 },
        )
      }
      const grant = form.get('grant_type') ?? ''
      state.tokenRequests.push({
        grant,
        jkt,
        nonce: payload.nonce,
        resource: form.getAll('resource'),
      })
      if (payload.nonce !== nonce) {
        return Response.json(
          { error: 'use_dpop_nonce', error_description: 'nonce required' },
          { status: 400, headers: { 'DPoP-Nonce': nonce } },
        )
      }
      let sub = 'alice'
      let idNonce: string | undefined
      if (grant === 'authorization_code') {
        const code = state.codes.get(form.get('code') ?? '')
        if (!code || code.jkt !== jkt)
          return Response.json(
            { error: 'invalid_grant', error_description: 'code not bound to this key' },
            { status: 400 },
          )
        if (
          (await calculatePKCECodeChallenge(form.get('code_verifier') ?? '')) !== code.challenge
        ) {
          return Response.json(
            { error: 'invalid_grant', error_description: 'PKCE verification failed' },
            { status: 400 },
          )
        }
        idNonce = code.nonce
      } else if (grant === 'refresh_token') {
        if (state.mode.failRefresh)
          return Response.json({ error: state.mode.failRefresh }, { status: 400 })
        const rt = form.get('refresh_token') ?? ''
        if (refreshTokens.get(rt) !== jkt)
          return Response.json(
            { error: 'invalid_grant', error_description: 'unknown or rotated refresh token' },
            { status: 400 },
          )
        refreshTokens.delete(rt) // always rotate
        sub = 'alice'
      }
      const refresh = `rt-${++counter}`
      refreshTokens.set(refresh, jkt)
      const now = Math.floor(Date.now() / 1000)
      const body: Record<string, unknown> = {
        access_token: `at-${++counter}.${state.mode.bindTo ?? jkt}`,
        token_type: state.mode.tokenType,
        expires_in: state.mode.ttl,
        refresh_token: refresh,
        scope: 'openid api',
      }
      if (state.mode.responseSub !== undefined) body.sub = state.mode.responseSub
      if (grant === 'authorization_code' && state.mode.idToken !== false) {
        body.id_token = await new SignJWT({
          ...(idNonce ? { nonce: idNonce } : {}),
          ...(state.mode.idTokenProfile === false ? {} : { name: 'Alice' }),
        })
          .setProtectedHeader({ alg: 'RS256' })
          .setIssuer(ISSUER)
          .setAudience('spa')
          .setSubject(sub)
          .setIssuedAt(now)
          .setExpirationTime(now + 300)
          .sign(idKey.privateKey)
      }
      // RFC 9449 §8.2: a server may hand out the next nonce on a successful response.
      if (state.mode.rotateNonceOnSuccess) nonce = `server-nonce-${++nonces}`
      return Response.json(body, { headers: { 'DPoP-Nonce': nonce, 'Cache-Control': 'no-store' } })
    },
  }
  return state
}

export interface Harness {
  server: FakeAs
  keys: KeyStore
  tokens: Tokens
  events: DPoPClientEvent[]
  redirects: URL[]
  login(): Promise<void>
}

const opened: Tokens[] = []
afterEach(() => {
  for (const t of opened.splice(0)) t.close()
})

export async function harness(
  options: {
    idb?: IDBFactory
    scope?: string
    resource?: string[]
    server?: FakeAs
    name?: string
    requestTimeoutMs?: number
    /** The key's algorithm, the `par` option, and metadata over the default `as`. */
    alg?: 'ES256' | 'EdDSA'
    par?: boolean
    metadata?: Partial<AuthorizationServer>
    /** The identity options of the client config. */
    userInfo?: LoginChoices['userInfo']
    verifyUser?: LoginChoices['verifyUser']
  } = {},
): Promise<Harness> {
  const idb = options.idb ?? new IDBFactory()
  const server = options.server ?? (await fakeAs())
  const name = options.name ?? `t${++counter}`
  const keys = await openKeyStore({
    name,
    indexedDB: idb,
    persist: false,
    ...(options.alg ? { alg: options.alg } : {}),
  })
  const events: DPoPClientEvent[] = []
  const redirects: URL[] = []
  const requestTimeoutMs = options.requestTimeoutMs ?? CLIENT_DEFAULTS.requestTimeoutMs
  const fallbackLifetimeMs = CLIENT_DEFAULTS.fallbackLifetimeSeconds * 1000
  const emit = (e: DPoPClientEvent) => {
    events.push(e)
  }
  const requests = createAuthorizationServerRequests(
    { ...as, ...options.metadata },
    {
      clientId: 'spa',
      redirectUri: REDIRECT,
      scope: options.scope ?? 'openid api',
      resource: options.resource ?? [],
    },
    linkServer((i, init) => server.fetch(i, init), false, createClock(), createNonceCache()),
    requestTimeoutMs,
    CLIENT_DEFAULTS.revocationTimeoutMs,
  )
  const sessions = createSessionRecords(
    name,
    openIdbStore(`dpop-spa:${name}:session`, idb, 5000),
    options.alg,
    () => keys.thumbprint(),
    emit,
  )
  const flow = createLoginFlow(
    requests,
    keys,
    sessions,
    fallbackLifetimeMs,
    {
      ...(options.par ? { par: true } : {}),
      ...(options.userInfo ? { userInfo: options.userInfo } : {}),
      ...(options.verifyUser ? { verifyUser: options.verifyUser } : {}),
    },
    emit,
  )
  const manager = createTokenManager(
    name,
    requests,
    keys,
    sessions,
    { refreshLeewayMs: 30_000, lockTimeoutMs: 5000, requestTimeoutMs, fallbackLifetimeMs },
    emit,
  )
  const tokens: Tokens = {
    ...manager,
    ...flow,
    restore: () => sessions.restore(),
    isAuthenticated: () => sessions.current() !== undefined,
    getUser: () => sessions.current()?.user,
    close: () => sessions.close(),
  }
  opened.push(tokens)
  await tokens.restore()
  return {
    server,
    keys,
    tokens,
    events,
    redirects,
    async login() {
      await tokens.login({ redirect: (u) => redirects.push(u) })
      const url = redirects.at(-1)!
      const code = server.issueCode(url)
      await tokens.handleRedirect(`${REDIRECT}?code=${code}&state=${url.searchParams.get('state')}`)
    },
  }
}
