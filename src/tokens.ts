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
  processPushedAuthorizationResponse,
  pushedAuthorizationRequest,
  processRefreshTokenResponse,
  processRevocationResponse,
  refreshTokenGrantRequest,
  revocationRequest,
  validateAuthResponse,
  type AuthorizationServer,
  type Client,
  type TokenEndpointResponse,
} from 'oauth4webapi'
import { del, entries, get, set } from 'idb-keyval'
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
  /** The subject: the user's identifier at the issuer. */
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
  | {
    /** A session started (here, or in another tab). */
    readonly type: 'login'
    /** The ID token claims. */
    readonly user: UserClaims | undefined
    /** Whether another tab logged in. */
    readonly fromOtherTab: boolean
  }
  | {
    /** The tokens were refreshed (here, or by another tab). */
    readonly type: 'refresh'
    /** Local-clock ms when the new access token expires. */
    readonly expiresAt: number
    /** Whether another tab refreshed. */
    readonly fromOtherTab: boolean
  }
  | {
    /** The session ended. */
    readonly type: 'logout'
    /** Why. */
    readonly reason: LogoutReason
  }
  | {
    /** Something failed in the background (a revocation, a refresh). */
    readonly type: 'error'
    /** What failed. */
    readonly error: DPoPError
  }

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
   * @param url - the authorization request URL.
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
  /**
   * Cuts the revocation requests short. The local sign-out (tokens forgotten, key replaced,
   * every tab told) happens first and is never undone by an abort.
   */
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
  /** Push the authorization request (RFC 9126) even when the server does not require it. */
  readonly par?: boolean
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
// Revocation is best effort after the local sign-out: a slow server must not hold up the
// end-session redirect for long.
const REVOCATION_TIMEOUT_MS = 5_000
// RFC 6750 b64token is narrower; anything that fits an Authorization header value is accepted.
const TOKEN = /^[\x21-\x7e]+$/
const MAX_TOKEN_LENGTH = 16_384
const REASONS: ReadonlySet<string> = new Set<LogoutReason>(['user', 'other-tab', 'invalid_grant', 'key-mismatch', 'expired'])
const SESSION = 'session'
const TX_PREFIX = 'tx:'
const TX_MAX_AGE_MS = 15 * 60_000
const AUTH_RESPONSE_PARAMS = ['code', 'state', 'iss', 'error', 'error_description', 'error_uri', 'session_state']


/**
 * @internal What may be kept of an underlying error as a `cause`: its name, message and
 * code, nothing deeper. oauth4webapi's errors carry the whole response body (access,
 * refresh and ID tokens included) as their own `cause`, and the Response itself; those
 * must never reach `console.error`, an error tracker or `util.inspect`.
 */
export function redactedCause(e: unknown): Error | undefined {
  if (!(e instanceof Error)) return undefined
  // JSON.parse's messages quote the input, which may be the token response itself.
  const copy = new Error(e instanceof SyntaxError ? 'the response body could not be parsed' : e.message)
  copy.name = e.name
  const code = (e as { code?: unknown }).code
  if (typeof code === 'string') Object.defineProperty(copy, 'code', { value: code, enumerable: true })
  copy.stack = `${e.name}: ${copy.message}`
  return copy
}

/** @internal Turns what oauth4webapi or fetch threw into a typed error (never with tokens in it, at any depth). */
export function toDPoPError(e: unknown, doing: string): DPoPError {
  if (isDPoPError(e)) return e
  const cause = redactedCause(e)
  const refused = (error: string, description: string | undefined) =>
    new OAuthError(error, description, `The authorization server refused ${doing}: ${error}${description ? ` (${description})` : ''}.`, { cause })
  if (e instanceof ResponseBodyError || e instanceof AuthorizationResponseError) return refused(e.error, e.error_description)
  if (e instanceof WWWAuthenticateChallengeError) {
    const c = e.cause[0]
    return refused(c?.parameters.error ?? 'invalid_request', c?.parameters.error_description)
  }
  if (e instanceof OperationProcessingError || e instanceof UnsupportedOperationError) {
    return new ServerResponseError('ERR_INVALID_RESPONSE', `Invalid answer to ${doing} (${e.message}): check the authorization server's settings for this client.`, { cause })
  }
  if (e instanceof TypeError) {
    return new DPoPError('ERR_NETWORK', `No answer to ${doing}: check the network, the issuer URL and the server's CORS settings.`, { cause })
  }
  if (e instanceof DOMException && e.name === 'TimeoutError') {
    return new DPoPError('ERR_TIMEOUT', `The authorization server did not answer ${doing} in time: check that it is up and reachable, then try again.`, { cause })
  }
  // The caller's own abort goes back as it came, like fetch does.
  if (e instanceof DOMException && e.name === 'AbortError') throw e
  return new DPoPError('ERR_INVALID_RESPONSE', `Unexpected failure during ${doing}.`, { cause })
}

const isToken = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_TOKEN_LENGTH && TOKEN.test(v)
const isOptional = <T>(v: unknown, check: (v: unknown) => v is T): boolean => v === undefined || check(v)
const isString = (v: unknown): v is string => typeof v === 'string'
const isUser = (v: unknown): v is UserClaims => typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as UserClaims).sub === 'string'
const isTime = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0

/**
 * @internal Whether `v` is a session as this version writes it: every field of the right
 * type, tokens that fit an Authorization header. Stored sessions and sessions from other
 * tabs are checked alike (and then against this key's thumbprint), like user input.
 */
export function isSession(v: unknown): v is Session {
  if (typeof v !== 'object' || v === null) return false
  const s = v as Record<keyof Session, unknown>
  return s.v === 1 && isToken(s.accessToken) && isOptional(s.refreshToken, isToken) && isTime(s.expiresAt) &&
    isTime(s.lifetimeMs) && isOptional(s.idToken, isToken) && isOptional(s.user, isUser) &&
    typeof s.jkt === 'string' && /^[A-Za-z0-9_-]{43}$/.test(s.jkt) && isOptional(s.scope, isString)
}

/**
 * @internal `returnTo` as a path of this app (path + query + hash), or `undefined` when it
 * points anywhere else: another origin, `//host`, `javascript:`, `data:`.
 */
export function appPath(returnTo: unknown, appUrl: string): string | undefined {
  if (typeof returnTo !== 'string') return undefined
  let url: URL
  try {
    url = new URL(returnTo, appUrl)
  } catch {
    return undefined
  }
  if (url.origin !== new URL(appUrl).origin || !/^https?:$/.test(url.protocol)) return undefined
  return url.pathname + url.search + url.hash
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

  /**
   * Deletes login transactions (each holds a PKCE verifier) that can no longer complete:
   * older than the 15-minute limit, from the future, or not readable. Abandoned logins
   * would otherwise stay in IndexedDB forever. Best effort: never fails the caller.
   */
  const sweep = async (): Promise<void> => {
    const now = Date.now()
    const all: [IDBValidKey, unknown][] = o.store ? await entries(o.store.use) : [...memory.entries()]
    const stale = all.filter(([k, v]) => {
      if (typeof k !== 'string' || !k.startsWith(TX_PREFIX)) return false
      const createdAt = (v as Partial<Transaction> | undefined)?.createdAt
      return typeof createdAt !== 'number' || !(Math.abs(now - createdAt) <= TX_MAX_AGE_MS)
    })
    await Promise.all(stale.map(([k]) => remove(k as string)))
  }
  const appUrl = (): string => (typeof location !== 'undefined' && typeof location.href === 'string' ? location.href : o.redirectUri)

  // Token endpoint requests get their proof here, through oauth4webapi's customFetch, rather
  // than from its DPoP handle: that would bundle a second JWS signer (about 1.2 kB gzip) beside
  // createProof, and keep nonces apart from the signed fetch's. RFC 9449 §4.2 claims as
  // always; the nonce (§8) is learned from every answer and the retry is tokenEndpoint's.
  const withProof = (keyPair: CryptoKeyPair): typeof fetch => async (url, init) => {
    const { origin } = new URL(url as string)
    const proof = await createProof(keyPair, { htm: init?.method ?? 'POST', htu: url as string, nonce: nonces.get(origin), now: Date.now() + o.clockOffset() })
    // oauth4webapi hands over its headers as a plain object with lower-case names.
    const response = await (o.fetch ?? fetch)(url, { ...init, headers: { ...(init?.headers as Record<string, string>), dpop: proof } })
    // Learned from any answer of that server (2xx included, §8.2), never from a redirect's target.
    const nonce = response.redirected ? null : response.headers.get('DPoP-Nonce')
    if (nonce !== null) nonces.set(origin, nonce)
    return response
  }

  // Every authorization-server request is bounded: a server that never answers must not
  // leave a refresh (and every request waiting for it) pending forever.
  const requestOptions = (keyPair: CryptoKeyPair | undefined, signal?: AbortSignal, timeoutMs = o.requestTimeoutMs ?? REQUEST_TIMEOUT_MS) => {
    const send = keyPair ? withProof(keyPair) : o.fetch
    const timeout = timeoutSignal(timeoutMs)
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

  // Messages from other tabs are untrusted input (another version of the app during a
  // deploy, or anything on this origin): validated like a stored session, handled one at a
  // time in arrival order, and never allowed to throw.
  const onTabMessage = async (m: unknown): Promise<void> => {
    if (typeof m !== 'object' || m === null) return
    const { type } = m as { type?: unknown }
    if (type === 'session') {
      const { session: next, login } = m as { session?: unknown; login?: unknown }
      if (!isSession(next) || next.jkt !== (await o.keys.thumbprint())) return
      adopt(next, login === true)
    } else if (type === 'logout') {
      const { reason } = m as { reason?: unknown }
      const had = session !== undefined
      session = undefined
      // A user logout elsewhere is "other-tab"; a refused refresh keeps its reason in every tab.
      if (had) o.emit({ type: 'logout', reason: reason === 'user' || typeof reason !== 'string' || !REASONS.has(reason) ? 'other-tab' : (reason as LogoutReason) })
    }
  }
  let inbox: Promise<void> = Promise.resolve()
  const channel = openTabChannel<TabMessage>(`dpop-spa:${o.name}:session`, (m) => {
    inbox = inbox.then(() => onTabMessage(m)).catch(() => undefined)
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

  /** The refresh itself, run under the cross-tab lock. */
  const refreshLocked = async (failedToken: string | undefined): Promise<string | undefined> => {
    // Another tab may have refreshed while we waited for the lock: read what is stored.
    const storedRaw = await read<unknown>(SESSION)
    const stored = isSession(storedRaw) ? storedRaw : undefined
    if (!stored) {
      if (session) await endSession('other-tab')
      return undefined
    }
    const keyPair = await proofKey()
    const jkt = await keyPairThumbprint(keyPair)
    // Tokens bound to another key are useless here, and refreshing them with this key
    // would only make the server revoke the grant.
    if (jkt !== stored.jkt) {
      await endSession('key-mismatch')
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
      await sweep().catch(() => undefined)
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
      const returnTo = options.returnTo === undefined ? undefined : appPath(options.returnTo, appUrl())
      if (options.returnTo !== undefined && returnTo === undefined) {
        throw new DPoPError('ERR_INVALID_ARGUMENT', '"options.returnTo" must be a path or URL of this app (same origin), e.g. "/orders?page=2".')
      }
      await sweep().catch(() => undefined)
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
      if (o.par || o.as.require_pushed_authorization_requests === true) {
        // RFC 9126 with a proof from the same key (RFC 9449 §10.1, which binds the code as
        // dpop_jkt does; both are sent and agree). The browser then carries only request_uri.
        if (!o.as.pushed_authorization_request_endpoint) {
          throw new DPoPError('ERR_INVALID_RESPONSE', 'Pushed authorization requests are required or asked for, but the server metadata has no pushed_authorization_request_endpoint.')
        }
        const keyPair = await proofKey()
        const pushed = await tokenEndpoint(
          'the pushed authorization request',
          () => pushedAuthorizationRequest(o.as, client, clientAuth, params, requestOptions(keyPair, signal)),
          (r) => processPushedAuthorizationResponse(o.as, client, r),
        )
        url.search = ''
        url.searchParams.set('client_id', o.clientId)
        url.searchParams.set('request_uri', pushed.request_uri)
      }
      const tx: Transaction = { state, codeVerifier, nonce, jkt, returnTo, createdAt: Date.now() }
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
      // Checked again on the way out: the record may come from an older version of the app.
      return { returnTo: appPath(txRaw.returnTo, appUrl()), user: next.user }
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
      const { signal } = options
      // Local state goes first, and nothing below can undo it: this tab, every other tab and
      // a reload are signed out before any request to the server is made.
      const stored = session ? undefined : await read<unknown>(SESSION).catch(() => undefined)
      const s = session ?? (isSession(stored) ? stored : undefined)
      session = undefined
      let failure: Error | undefined
      const keep = (e: unknown) => { failure ??= e instanceof Error ? e : new DPoPError('ERR_KEY_STORE_FAILED', 'Signing out could not update IndexedDB; the key is replaced at the next start.') }
      await remove(SESSION).catch(keep)
      // A new key for the next login: a stolen refresh token and the old key stop working
      // together, and tokens that a failed remove left behind are dropped at start-up as
      // bound to another key.
      await o.keys.rotate().catch(keep)
      channel.post({ type: 'logout', reason: 'user' })
      o.emit({ type: 'logout', reason: 'user' })

      // Then revoke what the server can revoke: best effort, bounded, `keepalive` so that the
      // end-session redirect does not cancel it. A failure is an `error` event, nothing more.
      const revoke = async (token: string, hint: 'refresh_token' | 'access_token') => {
        if (!o.as.revocation_endpoint || signal?.aborted) return
        try {
          const send = o.fetch ?? fetch
          const r = await revocationRequest(o.as, client, clientAuth, token, {
            ...requestOptions(undefined, signal, REVOCATION_TIMEOUT_MS),
            [customFetch]: (url: string, init: RequestInit) => send(url, { ...init, keepalive: true }),
            additionalParameters: { token_type_hint: hint },
          })
          await processRevocationResponse(r)
        } catch (e) {
          // The caller cut it short: the user is signed out, the rest is moot.
          if (signal?.aborted) return
          // JWT access tokens often cannot be revoked (unsupported_token_type): expected.
          if (e instanceof ResponseBodyError && e.error === 'unsupported_token_type') return
          o.emit({ type: 'error', error: toDPoPError(e, 'the token revocation') })
        }
      }
      if (s?.refreshToken) await revoke(s.refreshToken, 'refresh_token')
      if (s) await revoke(s.accessToken, 'access_token')
      if (options.redirect && o.as.end_session_endpoint) {
        const url = new URL(o.as.end_session_endpoint)
        url.searchParams.set('client_id', o.clientId)
        if (s?.idToken) url.searchParams.set('id_token_hint', s.idToken)
        const back = options.postLogoutRedirectUri ?? o.postLogoutRedirectUri
        if (back) url.searchParams.set('post_logout_redirect_uri', back)
        location.assign(url)
      }
      if (failure !== undefined) throw failure
    },

    isAuthenticated: () => session !== undefined,
    getUser: () => session?.user,
    close() {
      channel.close()
    },
  }
}
