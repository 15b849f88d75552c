/**
 * The token manager: authorization code + PKCE bound to the key (`dpop_jkt`), DPoP-bound
 * code exchange and refresh, one refresh per expiry across requests and tabs, and logout
 * that signs out locally first, then revokes.
 *
 * It decides when, how often and in which tab; `authorization-server.ts` makes the requests
 * and `session.ts` keeps and shares the session.
 */
import {
  processRefreshTokenResponse,
  refreshTokenGrantRequest,
  type AuthorizationServer,
  type TokenEndpointResponse,
} from 'oauth4webapi'
import { raceAbort } from '../base/abort.js'
import { createAuthorizationServerRequests } from './authorization-server.js'
import type { DPoPClientConfig } from '../client/client-config.js'
import type { DPoPClock } from '../server-state/clock.js'
import { KeyStoreError, OAuthError, isDPoPError } from '../base/errors.js'
import type { IdbStore } from '../browser/idb.js'
import type { KeyStore } from '../key-store/key-store.js'
import { createLoginFlow, type LoginOptions, type RedirectResult } from './login.js'
import type { NonceCache } from '../server-state/nonces.js'
import { keyPairThumbprint } from '../proof/proof.js'
import { createSessionStore, sessionFromTokens, type DPoPClientEvent, type Session, type UserClaims } from './session.js'
import { withLock } from '../browser/tabs.js'

export type { LoginOptions, RedirectResult } from './login.js'
export type { DPoPClientEvent, LogoutReason, UserClaims } from './session.js'

/** Options of `logout()`. */
export interface LogoutOptions {
  /**
   * Go to the authorization server's end-session endpoint afterwards (RP-initiated logout),
   * when it has one.
   * @default false
   */
  redirect?: boolean
  /**
   * With `redirect`: put the ID token in the end-session URL as `id_token_hint` (OpenID
   * Connect RP-Initiated Logout §2), which many servers need to skip a confirmation page.
   * The ID token then appears in the browser's history and the server's logs; it is no
   * access or refresh token, but it names the user. `false` sends `client_id` only.
   * @default true
   */
  idTokenHint?: boolean
  /** Where the end-session endpoint sends the user back; defaults to the client's `postLogoutRedirectUri`. */
  postLogoutRedirectUri?: string
  /**
   * Cuts the revocation requests short. The local sign-out (tokens forgotten, key replaced,
   * every tab told) happens first and is never undone by an abort.
   */
  signal?: AbortSignal
}

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
  /** The clock shared with the signed fetch. */
  readonly clock: DPoPClock
  /** Nonces shared with the signed fetch. */
  readonly nonces: NonceCache
  readonly refreshLeewayMs: number
  readonly lockTimeoutMs: number
  /** Bound on each authorization-server request. */
  readonly requestTimeoutMs: number
  /** Bound on each revocation request. */
  readonly revocationTimeoutMs: number
  /** Lifetime of an access token whose response has no `expires_in`. */
  readonly fallbackLifetimeMs: number
  /** When to ask the UserInfo endpoint at login (`DPoPClientConfig.userInfo`). */
  readonly userInfo?: 'auto' | 'always' | 'never'
  /** The app's check of the user before a login's session is stored. */
  readonly verifyUser?: DPoPClientConfig['verifyUser']
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

/** @internal */
export function createTokenManager(o: TokenManagerOptions): TokenManager {
  const server = createAuthorizationServerRequests(o)
  const { client, clientAuth } = server
  const sessions = createSessionStore({ name: o.name, store: o.store, thumbprint: () => o.keys.thumbprint(), emit: o.emit })
  const flow = createLoginFlow({ ...o, par: o.par === true, server, sessions })
  let refreshing: Promise<string | undefined> | undefined

  // Refresh this long before expiry: the configured leeway, but at most a quarter of the
  // token's life, so that very short-lived tokens are not refreshed on every request.
  const expiring = (s: Session) => s.expiresAt - Date.now() <= Math.min(o.refreshLeewayMs, s.lifetimeMs / 4)

  /** The refresh itself, run under the cross-tab lock. */
  const refreshLocked = async (failedToken: string | undefined): Promise<string | undefined> => {
    // Another tab may have refreshed while we waited for the lock: read what is stored.
    const stored = await sessions.stored()
    if (!stored) {
      if (sessions.current()) await sessions.end('other-tab')
      return undefined
    }
    const keyPair = await o.keys.load()
    const jkt = await keyPairThumbprint(keyPair)
    // Tokens bound to another key are useless here, and refreshing them with this key
    // would only make the server revoke the grant.
    if (jkt !== stored.jkt) {
      await sessions.end('key-mismatch')
      return undefined
    }
    if (stored.accessToken !== sessions.current()?.accessToken) sessions.adopt(stored, false)
    const needed = failedToken !== undefined ? stored.accessToken === failedToken : expiring(stored)
    if (!needed) return stored.accessToken
    const { refreshToken } = stored
    if (!refreshToken) {
      if (stored.expiresAt > Date.now() && failedToken === undefined) return stored.accessToken
      await sessions.end('expired')
      return undefined
    }
    let result: TokenEndpointResponse
    try {
      result = await server.call(
        'the token refresh',
        () => refreshTokenGrantRequest(o.as, client, clientAuth, refreshToken, server.options(keyPair)),
        (r) => processRefreshTokenResponse(o.as, client, r),
      )
    } catch (e) {
      if (e instanceof OAuthError && e.error === 'invalid_grant') {
        await sessions.end('invalid_grant')
        throw new OAuthError(e.error, e.errorDescription, 'The refresh token was refused (invalid_grant); the session ended in every tab. Log in again.', { cause: e })
      }
      throw e
    }
    const next = sessionFromTokens(result, jkt, stored, o.fallbackLifetimeMs, o.as.issuer)
    await sessions.commit(next, false)
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
    restore: () => sessions.restore(),
    login: (options) => flow.login(options),
    handleRedirect: (url) => flow.handleRedirect(url),

    async getAccessToken(options = {}) {
      const s = sessions.current()
      if (!s) return undefined
      if (!expiring(s)) return s.accessToken
      return refresh(undefined, options.signal)
    },

    onInvalidToken(failedToken, signal) {
      const s = sessions.current()
      if (!s) return Promise.resolve(undefined)
      // A token other than the failed one is already here: use it, no refresh.
      if (failedToken !== undefined && s.accessToken !== failedToken) return Promise.resolve(s.accessToken)
      return refresh(failedToken ?? s.accessToken, signal)
    },

    async logout(options = {}) {
      const { signal } = options
      // Local state goes first, and nothing below can undo it: this tab, every other tab and
      // a reload are signed out before any request to the server is made. The new key means
      // a stolen refresh token and the old key stop working together.
      const s = sessions.current() ?? (await sessions.stored().catch(() => undefined))
      // The key the tokens are bound to, held in this closure only (never stored again) until
      // revocation ends: servers that bind a public client's tokens revoke them only on a
      // proof from that key (atproto). The rotation below replaces it everywhere else.
      const bound = s ? await o.keys.load().catch(() => undefined) : undefined
      const oldKey = bound && (await keyPairThumbprint(bound)) === s?.jkt ? bound : undefined
      let failure: Error | undefined
      await sessions.end('user', () => o.keys.rotate()).catch((e: unknown) => {
        failure = e instanceof Error ? e : new KeyStoreError('ERR_KEY_STORE_FAILED', 'The key could not be replaced at sign-out (IndexedDB failed); the session was forgotten all the same. Reload and sign out again to replace the key.')
      })
      // Then revocation: best effort, bounded; a failure is an `error` event, nothing more.
      for (const [token, hint] of [[s?.refreshToken, 'refresh_token'], [s?.accessToken, 'access_token']] as const) {
        const error = token ? await server.revoke(token, hint, oldKey, signal) : undefined
        if (error) o.emit({ type: 'error', error })
      }
      if (options.redirect && o.as.end_session_endpoint) {
        const url = new URL(o.as.end_session_endpoint)
        url.searchParams.set('client_id', o.clientId)
        if (s?.idToken && options.idTokenHint !== false) url.searchParams.set('id_token_hint', s.idToken)
        const back = options.postLogoutRedirectUri ?? o.postLogoutRedirectUri
        if (back) url.searchParams.set('post_logout_redirect_uri', back)
        location.assign(url)
      }
      if (failure !== undefined) throw failure
    },

    isAuthenticated: () => sessions.current() !== undefined,
    getUser: () => sessions.current()?.user,
    close: () => sessions.close(),
  }
}
