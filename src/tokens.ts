/**
 * The token manager: authorization code + PKCE bound to the key (`dpop_jkt`), DPoP-bound
 * code exchange and refresh through oauth4webapi, one refresh per expiry across requests
 * and tabs, and logout that revokes, forgets and rotates the key.
 *
 * oauth4webapi speaks the protocol; this module decides when, how often and in which tab.
 */
import {
  AuthorizationResponseError,
  None,
  OperationProcessingError,
  ResponseBodyError,
  UnsupportedOperationError,
  WWWAuthenticateChallengeError,
  allowInsecureRequests,
  authorizationCodeGrantRequest,
  calculatePKCECodeChallenge,
  clockSkew,
  customFetch,
  expectNoNonce,
  generateRandomCodeVerifier,
  generateRandomNonce,
  generateRandomState,
  getValidatedIdTokenClaims,
  isDPoPNonceError,
  processAuthorizationCodeResponse,
  processRefreshTokenResponse,
  processRevocationResponse,
  refreshTokenGrantRequest,
  revocationRequest,
  validateAuthResponse,
  type AuthorizationServer,
  type Client,
  type TokenEndpointResponse,
} from 'oauth4webapi'
import { del, get, set } from 'idb-keyval'
import { decodeBase64url, fromUtf8 } from './base64url.js'
import { DPoPError, OAuthError, ServerResponseError, isDPoPError } from './errors.js'
import type { IdbStore } from './idb.js'
import type { KeyStore } from './key-store.js'
import { createNonceCache, type NonceCache } from './nonces.js'
import { createProof, keyPairThumbprint } from './proof.js'
import { openTabChannel, withLock } from './tabs.js'
import { anySignal, raceAbort, timeoutSignal } from './abort.js'

/** Claims of the ID token of the session (OpenID Connect Core §2). */
export interface UserClaims {
  readonly sub: string
  readonly [claim: string]: unknown
}

/** Why a session ended. */
export type LogoutReason =
  /** The app called `logout()` in this tab. */
  | 'user'
  /** Another tab logged out. */
  | 'other-tab'
  /** The refresh token was refused (`invalid_grant`): revoked, expired or reused. */
  | 'invalid_grant'
  /** The stored tokens are bound to a key this browser no longer has. */
  | 'key-mismatch'
  /** The access token expired and there is no refresh token. */
  | 'expired'

/** What {@link DPoPClient.subscribe} listeners receive. */
export type DPoPClientEvent =
  | { readonly type: 'login'; readonly user: UserClaims | undefined; readonly fromOtherTab: boolean }
  | { readonly type: 'refresh'; readonly expiresAt: number; readonly fromOtherTab: boolean }
  | { readonly type: 'logout'; readonly reason: LogoutReason }
  | { readonly type: 'error'; readonly error: DPoPError }

/** Options of `login()`. */
export interface LoginOptions {
  /** OIDC `prompt`, e.g. `'login'` or `'consent'`. */
  prompt?: string
  /** OIDC `login_hint`. */
  loginHint?: string
  /** A path or URL of this app that `handleRedirect()` hands back after login. */
  returnTo?: string
  /** More authorization request parameters. `dpop_jkt`, PKCE, `state` and `nonce` cannot be overridden. */
  extraParams?: Readonly<Record<string, string>>
  /**
   * Navigates to the authorization URL.
   * @default (url) => location.assign(url)
   */
  redirect?: (url: URL) => void
  /** Aborts waiting for the key. */
  signal?: AbortSignal
}

/** Options of `logout()`. */
export interface LogoutOptions {
  /**
   * Go to the authorization server's end-session endpoint afterwards (RP-initiated logout),
   * when it has one.
   * @default false
   */
  redirect?: boolean
  /** Where the end-session endpoint sends the user back; defaults to the client's `postLogoutRedirectUri`. */
  postLogoutRedirectUri?: string
  /** Bounds the revocation requests. */
  signal?: AbortSignal
}

/** What `handleRedirect()` returns when the URL was an authorization response. */
export interface RedirectResult {
  /** The `returnTo` given to `login()`. */
  readonly returnTo: string | undefined
  /** The ID token claims, when an ID token was issued. */
  readonly user: UserClaims | undefined
}

/** @internal The persisted session: tokens bound to the key with thumbprint `jkt`. */
export interface Session {
  readonly v: 1
  readonly accessToken: string
  readonly refreshToken: string | undefined
  /** Local-clock ms when the access token expires. */
  readonly expiresAt: number
  /** Lifetime in ms the server gave the access token. */
  readonly lifetimeMs: number
  readonly idToken: string | undefined
  readonly user: UserClaims | undefined
  readonly jkt: string
  readonly scope: string | undefined
}

interface Transaction {
  readonly state: string
  readonly codeVerifier: string
  readonly nonce: string | undefined
  readonly jkt: string
  readonly returnTo: string | undefined
  readonly createdAt: number
}

type TabMessage =
  | { readonly type: 'session'; readonly session: Session; readonly login: boolean }
  | { readonly type: 'logout'; readonly reason: LogoutReason }

/** @internal */
export interface TokenManagerOptions {
  readonly name: string
  readonly as: AuthorizationServer
  readonly clientId: string
  readonly redirectUri: string
  readonly postLogoutRedirectUri: string | undefined
  readonly scope: string
  readonly resource: readonly string[]
  readonly keys: KeyStore
  readonly store: IdbStore | undefined
  readonly fetch: typeof fetch | undefined
  readonly insecure: boolean
  /** Server-corrected clock offset, ms. */
  readonly clockOffset: () => number
  /** Nonces shared with the signed fetch. @default a new {@link createNonceCache}() */
  readonly nonces?: NonceCache
  readonly refreshLeewayMs: number
  readonly lockTimeoutMs: number
  /** Bound on each authorization-server request. @default 30000 */
  readonly requestTimeoutMs?: number
  readonly emit: (event: DPoPClientEvent) => void
}

/** @internal */
export interface TokenManager {
  restore(): Promise<void>
  login(options?: LoginOptions): Promise<void>
  handleRedirect(url: string | URL): Promise<RedirectResult | undefined>
  getAccessToken(options?: { signal?: AbortSignal }): Promise<string | undefined>
  /** A resource server said `invalid_token` for `failedToken`: refresh once (shared). */
  onInvalidToken(failedToken: string | undefined, signal?: AbortSignal): Promise<string | undefined>
  logout(options?: LogoutOptions): Promise<void>
  isAuthenticated(): boolean
  getUser(): UserClaims | undefined
  close(): void
}

const REQUEST_TIMEOUT_MS = 30_000
const SESSION = 'session'
const TX_PREFIX = 'tx:'
const TX_MAX_AGE_MS = 15 * 60_000
const AUTH_RESPONSE_PARAMS = ['code', 'state', 'iss', 'error', 'error_description', 'error_uri', 'session_state']


/** @internal Turns what oauth4webapi or fetch threw into a typed error (never with tokens in it). */
export function toDPoPError(e: unknown, doing: string): DPoPError {
  if (isDPoPError(e)) return e
  const refused = (error: string, description: string | undefined) =>
    new OAuthError(error, description, `The authorization server refused ${doing}: ${error}${description ? ` (${description})` : ''}.`, { cause: e })
  if (e instanceof ResponseBodyError || e instanceof AuthorizationResponseError) return refused(e.error, e.error_description)
  if (e instanceof WWWAuthenticateChallengeError) {
    const c = e.cause[0]
    return refused(c?.parameters.error ?? 'invalid_request', c?.parameters.error_description)
  }
  if (e instanceof OperationProcessingError || e instanceof UnsupportedOperationError) {
    return new ServerResponseError('ERR_INVALID_RESPONSE', `Invalid answer to ${doing} (${e.message}): check the authorization server's settings for this client.`, { cause: e })
  }
  if (e instanceof TypeError) {
    return new DPoPError('ERR_NETWORK', `No answer to ${doing}: check the network, the issuer URL and the server's CORS settings.`, { cause: e })
  }
  if (e instanceof DOMException && e.name === 'TimeoutError') {
    return new DPoPError('ERR_TIMEOUT', `The authorization server did not answer ${doing} in time: check that it is up and reachable, then try again.`, { cause: e })
  }
  // The caller's own abort goes back as it came, like fetch does.
  if (e instanceof DOMException && e.name === 'AbortError') throw e
  return new DPoPError('ERR_INVALID_RESPONSE', `Unexpected failure during ${doing}.`, { cause: e })
}

/** RFC 9449 §5: a proof was sent, so anything but a DPoP token is refused, never used as bearer. */
function requireDPoPTokenType(result: TokenEndpointResponse): void {
  if (result.token_type !== 'dpop') {
    throw new ServerResponseError(
      'ERR_TOKEN_TYPE_MISMATCH',
      `Got a "${result.token_type}" token for a DPoP proof; dpop-spa never uses bearer tokens. ` +
        'Turn on DPoP-bound tokens for this client at the authorization server (e.g. dpop_bound_access_tokens).',
    )
  }
}

/** `cnf.jkt` of a JWT access token, when the token is a readable JWT (RFC 9449 §6.1). */
function boundJkt(accessToken: string): string | undefined {
  const parts = accessToken.split('.')
  if (parts.length !== 3) return undefined
  try {
    const payload: unknown = JSON.parse(fromUtf8(decodeBase64url(parts[1] ?? '')))
    const cnf = (payload as { cnf?: { jkt?: unknown } } | null)?.cnf
    return typeof cnf?.jkt === 'string' ? cnf.jkt : undefined
  } catch {
    return undefined
  }
}

/** @internal */
export function createTokenManager(o: TokenManagerOptions): TokenManager {
  const client: Client = { client_id: o.clientId, token_endpoint_auth_method: 'none' }
  const clientAuth = None()
  const openid = o.scope.split(' ').includes('openid')
  let session: Session | undefined
  let refreshing: Promise<string | undefined> | undefined
  const memory = new Map<string, unknown>()

  // Storage beside the key; memory only when the key itself is memory-only.
  const read = async <T>(key: string): Promise<T | undefined> => (o.store ? get<T>(key, o.store.use) : (memory.get(key) as T | undefined))
  const write = async (key: string, value: unknown): Promise<void> => { if (o.store) await set(key, value, o.store.use); else memory.set(key, value) }
  const remove = async (key: string): Promise<void> => { if (o.store) await del(key, o.store.use); else memory.delete(key) }

  const nonces = o.nonces ?? createNonceCache()

  // Token endpoint requests get their proof here, through oauth4webapi's customFetch, rather
  // than from its DPoP handle: that would bundle a second JWS signer (about 1.2 kB gzip) beside
  // createProof, and keep nonces apart from the signed fetch's. RFC 9449 §4.2 claims as
  // always; the nonce (§8) is learned from every answer and the retry is tokenEndpoint's.
  const withProof = (keyPair: CryptoKeyPair): typeof fetch => async (url, init) => {
    const { origin } = new URL(url as string)
    const proof = await createProof(keyPair, { htm: init?.method ?? 'POST', htu: url as string, nonce: nonces.get(origin), now: Date.now() + o.clockOffset() })
    // oauth4webapi hands over its headers as a plain object with lower-case names.
    const response = await (o.fetch ?? fetch)(url, { ...init, headers: { ...(init?.headers as Record<string, string>), dpop: proof } })
    const nonce = response.headers.get('DPoP-Nonce')
    if (nonce !== null) nonces.set(origin, nonce)
    return response
  }

  // Every authorization-server request is bounded: a server that never answers must not
  // leave a refresh (and every request waiting for it) pending forever.
  const requestOptions = (keyPair: CryptoKeyPair | undefined, signal?: AbortSignal) => {
    const send = keyPair ? withProof(keyPair) : o.fetch
    const timeout = timeoutSignal(o.requestTimeoutMs ?? REQUEST_TIMEOUT_MS)
    return {
      signal: signal ? anySignal([signal, timeout]) : timeout,
      ...(send ? { [customFetch]: send } : {}),
      ...(o.insecure ? { [allowInsecureRequests]: true } : {}),
      ...(o.resource.length ? { additionalParameters: o.resource.map((r) => ['resource', r] as [string, string]) } : {}),
    }
  }

  /** The key pair that signs the next token request. */
  const proofKey = async (): Promise<CryptoKeyPair> => {
    const keyPair = await o.keys.load()
    // oauth4webapi checks ID token times against the client's clock skew (seconds).
    client[clockSkew] = Math.round(o.clockOffset() / 1000)
    return keyPair
  }

  /** One token endpoint call, retried once on `use_dpop_nonce` (RFC 9449 §8) with a fresh proof. */
  const tokenEndpoint = async <T>(doing: string, make: () => Promise<Response>, process: (r: Response) => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await process(await make())
      } catch (e) {
        if (attempt === 0 && isDPoPNonceError(e)) continue
        throw toDPoPError(e, doing)
      }
    }
  }

  /** A session another tab made (told over the channel, or found in storage): use it and say so. */
  const adopt = (next: Session, login: boolean): void => {
    const had = session !== undefined
    session = next
    o.emit(login || !had ? { type: 'login', user: next.user, fromOtherTab: true } : { type: 'refresh', expiresAt: next.expiresAt, fromOtherTab: true })
  }

  const channel = openTabChannel<TabMessage>(`dpop-spa:${o.name}:session`, (m) => {
    if (m.type === 'session') {
      adopt(m.session, m.login)
    } else if (m.type === 'logout') {
      const had = session !== undefined
      session = undefined
      // A user logout elsewhere is "other-tab"; a refused refresh keeps its reason in every tab.
      if (had) o.emit({ type: 'logout', reason: m.reason === 'user' ? 'other-tab' : m.reason })
    }
  })

  /** A session this tab made: store it beside the key, share it with the other tabs, say so. */
  const commit = async (next: Session, login: boolean): Promise<void> => {
    await write(SESSION, next)
    session = next
    channel.post({ type: 'session', session: next, login })
    o.emit(login ? { type: 'login', user: next.user, fromOtherTab: false } : { type: 'refresh', expiresAt: next.expiresAt, fromOtherTab: false })
  }

  const endSession = async (reason: LogoutReason): Promise<void> => {
    const had = session !== undefined
    session = undefined
    await remove(SESSION).catch(() => undefined)
    channel.post({ type: 'logout', reason })
    if (had || reason !== 'user') o.emit({ type: 'logout', reason })
  }

  const newSession = async (result: TokenEndpointResponse, jkt: string, previous: Session | undefined): Promise<Session> => {
    requireDPoPTokenType(result)
    const bound = boundJkt(result.access_token)
    if (bound !== undefined && bound !== jkt) {
      throw new ServerResponseError('ERR_INVALID_RESPONSE', 'The access token is bound (cnf.jkt) to another key than the proof\'s: check the server\'s DPoP settings.')
    }
    const lifetimeMs = typeof result.expires_in === 'number' && result.expires_in > 0 ? result.expires_in * 1000 : 3600_000
    let user = previous?.user
    if (result.id_token) {
      const claims = getValidatedIdTokenClaims(result)
      if (claims) user = { ...claims }
    }
    return {
      v: 1,
      accessToken: result.access_token,
      refreshToken: result.refresh_token ?? previous?.refreshToken,
      expiresAt: Date.now() + lifetimeMs,
      lifetimeMs,
      idToken: result.id_token ?? previous?.idToken,
      user,
      jkt,
      scope: result.scope ?? previous?.scope,
    }
  }

  // Refresh this long before expiry: the configured leeway, but at most a quarter of the
  // token's life, so that very short-lived tokens are not refreshed on every request.
  const expiring = (s: Session) => s.expiresAt - Date.now() <= Math.min(o.refreshLeewayMs, s.lifetimeMs / 4)

  const isSession = (v: unknown): v is Session =>
    typeof v === 'object' && v !== null && (v as Session).v === 1 && typeof (v as Session).accessToken === 'string' && typeof (v as Session).jkt === 'string'

  /** The refresh itself, run under the cross-tab lock. */
  const refreshLocked = async (failedToken: string | undefined): Promise<string | undefined> => {
    // Another tab may have refreshed while we waited for the lock: read what is stored.
    const storedRaw = await read<unknown>(SESSION)
    const stored = isSession(storedRaw) ? storedRaw : undefined
    if (!stored) {
      if (session) await endSession('other-tab')
      return undefined
    }
    if (stored.accessToken !== session?.accessToken) adopt(stored, false)
    const needed = failedToken !== undefined ? stored.accessToken === failedToken : expiring(stored)
    if (!needed) return stored.accessToken
    if (!stored.refreshToken) {
      if (stored.expiresAt > Date.now() && failedToken === undefined) return stored.accessToken
      await endSession('expired')
      return undefined
    }
    const refreshToken = stored.refreshToken
    const keyPair = await proofKey()
    const jkt = await keyPairThumbprint(keyPair)
    if (jkt !== stored.jkt) {
      await endSession('key-mismatch')
      return undefined
    }
    let result: TokenEndpointResponse
    try {
      result = await tokenEndpoint(
        'the token refresh',
        () => refreshTokenGrantRequest(o.as, client, clientAuth, refreshToken, requestOptions(keyPair)),
        (r) => processRefreshTokenResponse(o.as, client, r),
      )
    } catch (e) {
      if (e instanceof OAuthError && e.error === 'invalid_grant') {
        await endSession('invalid_grant')
        throw new OAuthError(e.error, e.errorDescription, 'The refresh token was refused (invalid_grant); the session ended in every tab. Log in again.', { cause: e })
      }
      throw e
    }
    const next = await newSession(result, jkt, stored)
    await commit(next, false)
    return next.accessToken
  }

  /** Single-flight in this tab, one at a time across tabs. */
  const refresh = (failedToken: string | undefined, signal?: AbortSignal): Promise<string | undefined> => {
    if (!refreshing) {
      const p = withLock(`dpop-spa:${o.name}:refresh`, o.lockTimeoutMs, () => refreshLocked(failedToken))
      refreshing = p
      p.catch((e: unknown) => { if (isDPoPError(e)) o.emit({ type: 'error', error: e }) }).finally(() => { if (refreshing === p) refreshing = undefined })
    }
    return raceAbort(refreshing, signal)
  }

  return {
    async restore() {
      const stored = await read<unknown>(SESSION)
      if (!isSession(stored)) return
      const jkt = await o.keys.thumbprint()
      if (jkt !== stored.jkt) {
        // The tokens are bound to a key this browser no longer has: useless, drop them.
        await remove(SESSION)
        o.emit({ type: 'logout', reason: 'key-mismatch' })
        return
      }
      session = stored
    },

    async login(options = {}) {
      const { signal } = options
      const jkt = await o.keys.thumbprint(signal ? { signal } : undefined)
      const codeVerifier = generateRandomCodeVerifier()
      const state = generateRandomState()
      const nonce = openid ? generateRandomNonce() : undefined
      const url = new URL(o.as.authorization_endpoint!)
      const params = url.searchParams
      for (const [k, v] of Object.entries(options.extraParams ?? {})) params.set(k, v)
      if (options.prompt) params.set('prompt', options.prompt)
      if (options.loginHint) params.set('login_hint', options.loginHint)
      params.set('client_id', o.clientId)
      params.set('redirect_uri', o.redirectUri)
      params.set('response_type', 'code')
      params.set('scope', o.scope)
      params.set('code_challenge', await calculatePKCECodeChallenge(codeVerifier))
      params.set('code_challenge_method', 'S256')
      params.set('state', state)
      if (nonce) params.set('nonce', nonce)
      else params.delete('nonce')
      // RFC 9449 §10: bind the authorization code to our key.
      params.set('dpop_jkt', jkt)
      params.delete('resource')
      for (const r of o.resource) params.append('resource', r)
      const tx: Transaction = { state, codeVerifier, nonce, jkt, returnTo: options.returnTo, createdAt: Date.now() }
      await write(TX_PREFIX + state, tx)
      signal?.throwIfAborted()
      ;(options.redirect ?? ((u: URL) => location.assign(u)))(url)
    },

    async handleRedirect(input) {
      const url = new URL(input)
      const params = url.searchParams
      if (!params.has('code') && !params.has('error')) return undefined
      // Take the response out of the address bar (and history) whatever happens next,
      // so a reload never replays it.
      if (typeof history !== 'undefined' && typeof location !== 'undefined' && url.href === location.href) {
        const clean = new URL(url)
        for (const p of AUTH_RESPONSE_PARAMS) clean.searchParams.delete(p)
        history.replaceState(history.state, '', clean)
      }
      const state = params.get('state')
      const txRaw = state ? await read<Transaction>(TX_PREFIX + state) : undefined
      if (state) await remove(TX_PREFIX + state)
      if (!state || !txRaw || Date.now() - txRaw.createdAt > TX_MAX_AGE_MS) {
        throw new DPoPError('ERR_STATE_MISMATCH', 'Unknown or expired state: this response matches no login started here. Call login() again.')
      }
      let callback: URLSearchParams
      try {
        callback = validateAuthResponse(o.as, client, params, txRaw.state)
      } catch (e) {
        throw toDPoPError(e, 'the login')
      }
      const keyPair = await proofKey()
      const jkt = await keyPairThumbprint(keyPair)
      if (jkt !== txRaw.jkt) {
        throw new DPoPError('ERR_LOGIN_REQUIRED', 'The key changed during login (another tab logged out). Log in again.')
      }
      const result = await tokenEndpoint(
        'the code exchange',
        () => authorizationCodeGrantRequest(o.as, client, clientAuth, callback, o.redirectUri, txRaw.codeVerifier, requestOptions(keyPair)),
        (r) => processAuthorizationCodeResponse(o.as, client, r, {
          expectedNonce: txRaw.nonce ?? expectNoNonce,
          requireIdToken: openid,
        }),
      )
      const next = await newSession(result, jkt, undefined)
      await commit(next, true)
      return { returnTo: txRaw.returnTo, user: next.user }
    },

    async getAccessToken(options = {}) {
      const s = session
      if (!s) return undefined
      if (!expiring(s)) return s.accessToken
      return refresh(undefined, options.signal)
    },

    onInvalidToken(failedToken, signal) {
      if (!session) return Promise.resolve(undefined)
      // A token other than the failed one is already here: use it, no refresh.
      if (failedToken !== undefined && session.accessToken !== failedToken) return Promise.resolve(session.accessToken)
      return refresh(failedToken ?? session.accessToken, signal)
    },

    async logout(options = {}) {
      const s = session ?? (await read<unknown>(SESSION).then((v) => (isSession(v) ? v : undefined)))
      const { signal } = options
      // Revoke what the server can revoke; a failure here must not keep the user logged in.
      const revoke = async (token: string, hint: 'refresh_token' | 'access_token') => {
        if (!o.as.revocation_endpoint) return
        try {
          const r = await revocationRequest(o.as, client, clientAuth, token, { ...requestOptions(undefined, signal), additionalParameters: { token_type_hint: hint } })
          await processRevocationResponse(r)
        } catch (e) {
          // JWT access tokens often cannot be revoked (unsupported_token_type): expected.
          if (e instanceof ResponseBodyError && e.error === 'unsupported_token_type') return
          o.emit({ type: 'error', error: toDPoPError(e, 'the token revocation') })
        }
      }
      if (s?.refreshToken) await revoke(s.refreshToken, 'refresh_token')
      if (s) await revoke(s.accessToken, 'access_token')
      session = undefined
      await remove(SESSION)
      // A new key for the next login: a stolen refresh token and the old key stop working together.
      await o.keys.rotate()
      channel.post({ type: 'logout', reason: 'user' })
      o.emit({ type: 'logout', reason: 'user' })
      if (options.redirect && o.as.end_session_endpoint) {
        const url = new URL(o.as.end_session_endpoint)
        url.searchParams.set('client_id', o.clientId)
        if (s?.idToken) url.searchParams.set('id_token_hint', s.idToken)
        const back = options.postLogoutRedirectUri ?? o.postLogoutRedirectUri
        if (back) url.searchParams.set('post_logout_redirect_uri', back)
        location.assign(url)
      }
    },

    isAuthenticated: () => session !== undefined,
    getUser: () => session?.user,
    close() {
      channel.close()
    },
  }
}
