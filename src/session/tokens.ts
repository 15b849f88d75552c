/**
 * The token manager: authorization code + PKCE bound to the key (`dpop_jkt`), DPoP-bound
 * code exchange and refresh, one refresh per expiry across requests and tabs, and logout
 * that signs out locally first, then revokes.
 *
 * It decides when, how often and in which tab; `authorization-server.ts` makes the requests
 * and `session-records.ts` keeps and shares the session. The login itself is `login.ts`.
 */
import {
  processRefreshTokenResponse,
  refreshTokenGrantRequest,
  type TokenEndpointResponse,
} from 'oauth4webapi'
import { raceAbort } from '../base/abort.js'
import type { AuthorizationServerRequests } from './authorization-server.js'
import { KeyStoreError, OAuthError, isDPoPError } from '../base/errors.js'
import type { KeyStore } from '../key-store/key-store.js'
import { activeWorker, askWorker, type RefreshRequest } from './refresh-worker.js'
import { keyPairThumbprint } from '../proof/proof.js'
import { isLogoutReason, type DPoPClientEvent } from './events.js'
import type { SessionRecords } from './session-records.js'
import { isSession, sessionFromTokens, type Session } from './session.js'
import { withLock } from '../browser/tabs.js'

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

/** @internal The waits and lifetimes of refreshes (`DPoPClientConfig`, in ms). */
export interface RefreshTiming {
  /** Refresh this long before expiry (at most a quarter of the token's life). */
  readonly refreshLeewayMs: number
  /** How long to wait for another tab's refresh. */
  readonly lockTimeoutMs: number
  /** The bound on each authorization-server request (the refresh worker's wait is made of it). */
  readonly requestTimeoutMs: number
  /** Lifetime of an access token whose response has no `expires_in`. */
  readonly fallbackLifetimeMs: number
}

/**
 * @internal The refresh worker (`dpop-spa/sw`) that makes refresh-token requests, so that
 * their answers outlive this page; without it (or while it is not active) the page refreshes.
 */
export interface RefreshWorkerLink {
  readonly registration: ServiceWorkerRegistration | Promise<ServiceWorkerRegistration>
  readonly request: Omit<RefreshRequest, 'failedToken'>
}

/** @internal */
export interface TokenManager {
  readonly getAccessToken: (options?: { signal?: AbortSignal }) => Promise<string | undefined>
  /** A resource server said `invalid_token` for `failedToken`: refresh once (shared). */
  onInvalidToken(failedToken: string | undefined, signal?: AbortSignal): Promise<string | undefined>
  logout(options?: LogoutOptions): Promise<void>
  /** The refresh worker's entry: refresh the stored session under the cross-tab lock; the session after it. */
  refreshStored(failedToken: string | undefined): Promise<Session | undefined>
}

/**
 * @internal The tokens of the app `name` (its refresh lock is `dpop-spa:<name>:refresh`):
 * refreshed through `server` (or `worker`, when given and active) with `keys`, kept in
 * `sessions`, on `timing`; background failures go to `emit`.
 */
export function createTokenManager(
  name: string,
  server: AuthorizationServerRequests,
  keys: KeyStore,
  sessions: SessionRecords,
  timing: RefreshTiming,
  emit: (event: DPoPClientEvent) => void,
  worker?: RefreshWorkerLink,
): TokenManager {
  const { as, id, client, clientAuth } = server
  const { refreshLeewayMs, lockTimeoutMs, requestTimeoutMs, fallbackLifetimeMs } = timing
  let refreshing: Promise<string | undefined> | undefined

  // Refresh this long before expiry: the configured leeway, but at most a quarter of the
  // token's life, so that very short-lived tokens are not refreshed on every request.
  const expiring = (session: Session) =>
    session.expiresAt - Date.now() <= Math.min(refreshLeewayMs, session.lifetimeMs / 4)

  /** The refresh itself, run under the cross-tab lock. */
  const refreshLocked = async (failedToken: string | undefined): Promise<string | undefined> => {
    // Another tab may have refreshed while we waited for the lock: read what is stored.
    let stored = await sessions.stored()
    // Unless what this tab holds is newer: refreshed tokens whose write failed (here, or in
    // the tab that shared them) are the only ones the server still takes after a rotation.
    const held = sessions.current()
    if (stored && held && held.jkt === stored.jkt && held.expiresAt > stored.expiresAt)
      stored = held
    if (!stored) {
      if (sessions.current()) await sessions.end('other-tab')
      return undefined
    }
    const keyPair = await keys.load()
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
    // The record says whether an earlier refresh with this token lost its answer (a reload,
    // a closed tab, a dropped connection): a refusal then means the server had rotated.
    const lost = await sessions.beginRefresh(refreshToken)
    const exchange = () =>
      server.request(
        'the token refresh',
        () =>
          refreshTokenGrantRequest(as, client, clientAuth, refreshToken, server.options(keyPair)),
        (response) => processRefreshTokenResponse(as, client, response),
      )
    let result: TokenEndpointResponse
    try {
      try {
        result = await exchange()
      } catch (e) {
        // Once, with a fresh proof: the refusal may be of a copy the browser sent by itself.
        // Chromium re-sends a request whose kept-alive connection dropped before any answer,
        // with the same proof, and oidc-provider refuses that copy as a replayed proof with
        // `invalid_grant` while the first copy went through. A server that does not rotate
        // then takes the retry; one that rotated refuses it too, as it would anyway.
        // (Not after a known lost answer: that refusal is the rotation, a retry changes nothing.)
        if (lost || !(e instanceof OAuthError && e.error === 'invalid_grant')) throw e
        result = await exchange()
      }
    } catch (e) {
      // An answer (a refusal) came: nothing is in flight any more. A network failure or a
      // timeout keeps the record, so that the next attempt knows the answer may be lost.
      if (e instanceof OAuthError) await sessions.endRefresh()
      if (e instanceof OAuthError && e.error === 'invalid_grant') {
        const reason = lost ? 'refresh-lost' : 'invalid_grant'
        await sessions.end(reason)
        throw new OAuthError(
          e.error,
          e.errorDescription,
          lost
            ? 'An earlier refresh lost its answer (reload, closed tab, dropped connection) and the server had rotated the refresh token: the session ended in every tab. Log in again; the refresh worker (dpop-spa/sw) avoids this.'
            : 'The refresh token was refused (invalid_grant): the session ended in every tab. Log in again.',
          { cause: e },
        )
      }
      throw e
    }
    const next = sessionFromTokens(result, jkt, stored, fallbackLifetimeMs, as.issuer)
    await sessions.commit(next, false)
    return next.accessToken
  }

  const lockName = `dpop-spa:${name}:refresh`
  const inPage = (failedToken: string | undefined) =>
    withLock(lockName, lockTimeoutMs, () => refreshLocked(failedToken))

  // The refresh worker takes the same lock and does the same as inPage() in a service
  // worker, whose requests a reload or a closed tab does not cancel. Its answer is the
  // session after the refresh, checked here like a session from another tab.
  let active: Promise<ServiceWorker | undefined> | undefined
  const viaWorker = async (
    link: RefreshWorkerLink,
    failedToken: string | undefined,
  ): Promise<string | undefined> => {
    const serviceWorker = await (active ??= activeWorker(link.registration, lockTimeoutMs))
    if (!serviceWorker) return inPage(failedToken)
    let reply
    try {
      reply = await askWorker(
        serviceWorker,
        { ...link.request, failedToken },
        lockTimeoutMs + 3 * requestTimeoutMs,
      )
    } catch (e) {
      const { ended } = e as { ended?: unknown }
      if (isLogoutReason(ended)) sessions.ended(ended)
      throw e
    }
    const next = reply.session
    if (reply.ended !== undefined || !isSession(next) || next.jkt !== (await keys.thumbprint())) {
      sessions.ended(isLogoutReason(reply.ended) ? reply.ended : 'other-tab')
      return undefined
    }
    if (next.accessToken !== sessions.current()?.accessToken) sessions.adopt(next, false)
    return next.accessToken
  }

  /** Single-flight in this tab, one at a time across tabs. */
  const refresh = (
    failedToken: string | undefined,
    signal?: AbortSignal,
  ): Promise<string | undefined> => {
    if (!refreshing) {
      const flight = worker ? viaWorker(worker, failedToken) : inPage(failedToken)
      refreshing = flight
      flight
        .catch((e: unknown) => {
          if (isDPoPError(e)) emit({ type: 'error', error: e })
        })
        .finally(() => {
          if (refreshing === flight) refreshing = undefined
        })
    }
    return raceAbort(refreshing, signal)
  }

  return {
    getAccessToken: async (options = {}) => {
      const session = sessions.current()
      if (!session) return undefined
      if (!expiring(session)) return session.accessToken
      return refresh(undefined, options.signal)
    },

    onInvalidToken(failedToken, signal) {
      const session = sessions.current()
      if (!session) return Promise.resolve(undefined)
      // A token other than the failed one is already here: use it, no refresh.
      if (failedToken !== undefined && session.accessToken !== failedToken)
        return Promise.resolve(session.accessToken)
      return refresh(failedToken ?? session.accessToken, signal)
    },

    async logout(options = {}) {
      const { signal } = options
      // Local state goes first, and nothing below can undo it: this tab, every other tab and
      // a reload are signed out before any request to the server is made. The new key means
      // a stolen refresh token and the old key stop working together.
      const session = sessions.current() ?? (await sessions.stored().catch(() => undefined))
      // The key the tokens are bound to, held in this closure only (never stored again) until
      // revocation ends: servers that bind a public client's tokens revoke them only on a
      // proof from that key (atproto). The rotation below replaces it everywhere else.
      const bound = session ? await keys.load().catch(() => undefined) : undefined
      const oldKey = bound && (await keyPairThumbprint(bound)) === session?.jkt ? bound : undefined
      let failure: Error | undefined
      await sessions
        .end('user', () => keys.rotate())
        .catch((e: unknown) => {
          failure =
            e instanceof Error
              ? e
              : new KeyStoreError(
                  'ERR_KEY_STORE_FAILED',
                  'The key could not be replaced at sign-out (IndexedDB failed); the session is gone. Reload and sign out again to replace the key.',
                )
        })
      // Then revocation: best effort, bounded; a failure is an `error` event, nothing more.
      for (const [token, hint] of [
        [session?.refreshToken, 'refresh_token'],
        [session?.accessToken, 'access_token'],
      ] as const) {
        const error = token ? await server.revoke(token, hint, oldKey, signal) : undefined
        if (error) emit({ type: 'error', error })
      }
      if (options.redirect && as.end_session_endpoint) {
        const url = new URL(as.end_session_endpoint)
        url.searchParams.set('client_id', id.clientId)
        if (session?.idToken && options.idTokenHint !== false)
          url.searchParams.set('id_token_hint', session.idToken)
        const back = options.postLogoutRedirectUri ?? id.postLogoutRedirectUri
        if (back) url.searchParams.set('post_logout_redirect_uri', back)
        location.assign(url)
      }
      if (failure !== undefined) throw failure
    },

    async refreshStored(failedToken) {
      await inPage(failedToken)
      return sessions.current()
    },
  }
}
