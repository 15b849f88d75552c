/**
 * What an app holds: the {@link DPoPClient} that `createDPoPClient` (./client.ts) returns.
 */
import type { AuthorizationServer } from 'oauth4webapi'
import type { DPoPFetch } from '../fetch/dpop-fetch.js'
import type { KeyStore } from '../key-store/key-store.js'
import type { DPoPClientEvent } from '../session/events.js'
import type { LoginOptions, RedirectResult } from '../session/login.js'
import type { LogoutOptions } from '../session/tokens.js'
import type { UserClaims } from '../session/user.js'

/** The client returned by `createDPoPClient`. */
export interface DPoPClient {
  /**
   * Redirects to the authorization server: authorization code + PKCE S256, `state`, OIDC
   * `nonce` with `openid`, and `dpop_jkt` binding the code to this browser's key (RFC 9449 §10);
   * pushed first (PAR, RFC 9126, with a DPoP proof) when `par` is set or the server requires it.
   * Expired login transactions left by abandoned logins are deleted first.
   * @param options - `prompt`, `loginHint`, `returnTo`, extra parameters, a custom `redirect`; see {@link LoginOptions}.
   * @returns a promise that settles when the browser is sent away (it does not resolve to a session).
   * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when `returnTo` is not a path or URL of this app's
   *   origin; `ERR_INVALID_RESPONSE` when PAR is needed but the metadata has no PAR endpoint;
   *   errors of the pushed request (`OAuthError`, `ERR_NETWORK`, `ERR_TIMEOUT`).
   * @throws {KeyStoreError} when the key cannot be loaded.
   */
  login(options?: LoginOptions): Promise<void>
  /**
   * On the redirect URI: checks `state`, exchanges the code with a DPoP proof (one retry on
   * `use_dpop_nonce`), validates the ID token, requires `token_type: DPoP`, stores the
   * session and removes `code`/`state` from the address bar. Resolves `undefined` when the
   * URL is not an authorization response.
   * @param url - the URL to read the authorization response from; `location.href` by default.
   * @returns the login's `returnTo` and user, or `undefined` when `url` is no authorization response.
   * @throws {OAuthError} for an error redirect (`access_denied`, ...) or a refused exchange;
   *   {@link DPoPError} `ERR_STATE_MISMATCH`, `ERR_TOKEN_TYPE_MISMATCH`, `ERR_INVALID_RESPONSE`
   *   (also when the server names two different users), `ERR_NETWORK`, `ERR_USER_REFUSED` (the
   *   app's `verifyUser` refused the user; nothing is stored).
   */
  handleRedirect(url?: string | URL): Promise<RedirectResult | undefined>
  /** The signed fetch: `fetch` with DPoP for `apiOrigins`, refresh-aware. Rejects like `fetch`, plus typed DPoP errors. */
  readonly fetch: DPoPFetch
  /** Makes `window.fetch` sign calls to `apiOrigins`; returns the function that undoes it. Never throws. */
  install(): () => void
  /**
   * Signs out locally first (forgets the tokens, replaces the key, logs out every tab, emits
   * `logout`), then revokes the refresh token (and the access token where the server allows)
   * as best effort, each request signed by the old key (kept in memory until then), bounded to
   * 5 s and sent `keepalive`, and optionally goes to the
   * end-session endpoint. An aborted `signal` cuts revocation short; the local sign-out
   * stands. Nothing the server does keeps the user signed in.
   * @param options - `redirect` to the end-session endpoint, `postLogoutRedirectUri`, `signal`; see {@link LogoutOptions}.
   * @throws {KeyStoreError} when the key cannot be replaced (the session is forgotten and the
   *   tabs told all the same). Revocation failures are reported as `error` events instead.
   */
  logout(options?: LogoutOptions): Promise<void>
  /** Whether this tab holds a session. Never throws. */
  isAuthenticated(): boolean
  /**
   * The session's user: the ID token's claims (with UserInfo's when asked for), or `sub` and
   * `iss` from a token response without an ID token (atproto); `undefined` without a session
   * or when the server names no user. Never throws.
   */
  getUser(): UserClaims | undefined
  /**
   * The current access token, refreshed first when it is about to expire.
   * @param options - `signal` aborts waiting for a refresh.
   * @returns the access token, or `undefined` without a session.
   * @throws {OAuthError} `invalid_grant` when the refresh token was refused (the session ends).
   */
  getAccessToken(options?: { signal?: AbortSignal }): Promise<string | undefined>
  /**
   * Listens to `login`, `refresh`, `logout` (also from other tabs) and `error` events.
   * Also `storage-fallback` (IndexedDB failed; this page runs on a memory key). Events from
   * before the first listener ever (a session dropped at start-up, a storage fallback) are
   * delivered to it, the latest 16; later, events nobody listens to are not kept. Returns the
   * unsubscribe function.
   * @param listener - receives each {@link DPoPClientEvent}; a throwing listener does not disturb the others.
   * @returns the function that removes the listener.
   */
  subscribe(listener: (event: DPoPClientEvent) => void): () => void
  /** The key store (thumbprint, storage kind, persistence). */
  readonly keys: KeyStore
  /** The authorization server metadata in use. */
  readonly authorizationServer: AuthorizationServer
  /** Releases channels and database connections. */
  close(): void
}
