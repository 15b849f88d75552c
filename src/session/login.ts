/**
 * The authorization code flow, bound to the key: the authorization request (PKCE S256,
 * `state`, OIDC `nonce`, `dpop_jkt`, optionally pushed with a proof), and the redirect back
 * (checked `state`, the code exchanged with a proof from the key the code was bound to).
 * Internal: `tokens.ts` wires it to the session.
 */
import {
  authorizationCodeGrantRequest,
  calculatePKCECodeChallenge,
  expectNoNonce,
  generateRandomCodeVerifier,
  generateRandomNonce,
  generateRandomState,
  processAuthorizationCodeResponse,
  processPushedAuthorizationResponse,
  pushedAuthorizationRequest,
  validateAuthResponse,
  type TokenEndpointResponse,
} from 'oauth4webapi'
import type { AuthorizationServerRequests } from './authorization-server.js'
import { toDPoPError } from './server-errors.js'
import { AUTH_RESPONSE_PARAMS, appPath } from './login-urls.js'
import { userInfoWanted, withoutTokens } from './user.js'
import {
  DPoPError,
  OAuthError,
  ServerResponseError,
  invalidArgument,
  isDPoPError,
} from '../base/errors.js'
import type { KeyStore } from '../key-store/key-store.js'
import { keyPairThumbprint } from '../proof/proof.js'
import type { DPoPClientEvent } from './events.js'
import type { SessionRecords } from './session-records.js'
import { TRANSACTION_MAX_AGE_MS, sessionFromTokens, type Session } from './session.js'
import type { UserClaims, UserInfoMode, VerifyUser } from './user.js'

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

/** What `handleRedirect()` returns when the URL was an authorization response. */
export interface RedirectResult {
  /** The `returnTo` given to `login()`. */
  readonly returnTo: string | undefined
  /** The ID token claims, when an ID token was issued. */
  readonly user: UserClaims | undefined
}

/** @internal What the app asked of its logins (`DPoPClientConfig`). */
export interface LoginChoices {
  /** Push the authorization request (RFC 9126) even when the server does not require it. */
  readonly par?: boolean | undefined
  /** When to ask the UserInfo endpoint. @default 'auto' */
  readonly userInfo?: UserInfoMode | undefined
  /** The app's check of the user before the session is stored. */
  readonly verifyUser?: VerifyUser | undefined
}

/** @internal */
export interface LoginFlow {
  readonly login: (options?: LoginOptions) => Promise<void>
  readonly handleRedirect: (url: string | URL) => Promise<RedirectResult | undefined>
}

/**
 * @internal The login of the client `server.id` at `server.as`, bound to `keys`, kept in
 * `sessions`; `fallbackLifetimeMs` is the lifetime of an access token without `expires_in`;
 * background failures (an optional UserInfo request) go to `emit`.
 */
export function createLoginFlow(
  server: AuthorizationServerRequests,
  keys: KeyStore,
  sessions: SessionRecords,
  fallbackLifetimeMs: number,
  choices: LoginChoices,
  emit: (event: DPoPClientEvent) => void,
): LoginFlow {
  const { as, id, client, clientAuth } = server
  const openid = id.scope.split(' ').includes('openid')
  const appUrl = (): string =>
    typeof location !== 'undefined' && typeof location.href === 'string'
      ? location.href
      : id.redirectUri

  /** The authorization request's parameters: PKCE S256, state, nonce, and the code bound to the key. */
  const authorizationParams = async (
    params: URLSearchParams,
    options: LoginOptions,
    jkt: string,
  ) => {
    const codeVerifier = generateRandomCodeVerifier()
    const state = generateRandomState()
    const nonce = openid ? generateRandomNonce() : undefined
    for (const [name, value] of Object.entries(options.extraParams ?? {})) params.set(name, value)
    if (options.prompt) params.set('prompt', options.prompt)
    if (options.loginHint) params.set('login_hint', options.loginHint)
    params.set('client_id', id.clientId)
    params.set('redirect_uri', id.redirectUri)
    params.set('response_type', 'code')
    params.set('scope', id.scope)
    params.set('code_challenge', await calculatePKCECodeChallenge(codeVerifier))
    params.set('code_challenge_method', 'S256')
    params.set('state', state)
    if (nonce) params.set('nonce', nonce)
    else params.delete('nonce')
    // RFC 9449 §10: bind the authorization code to our key.
    params.set('dpop_jkt', jkt)
    params.delete('resource')
    for (const uri of id.resource) params.append('resource', uri)
    return { codeVerifier, state, nonce }
  }

  /**
   * A server that is no OpenID provider for this client refuses `openid`: `invalid_scope`, or
   * (atproto) `invalid_request` "Unsupported \"nonce\" parameter". Said as what to set.
   */
  const openidRefused = (e: unknown): unknown => {
    if (
      !openid ||
      !(e instanceof OAuthError) ||
      !(
        e.error === 'invalid_scope' ||
        (e.error === 'invalid_request' && /\b(nonce|openid)\b/i.test(e.errorDescription ?? ''))
      )
    )
      return e
    const listed = (Array.isArray(as.scopes_supported) ? as.scopes_supported : [])
      .filter(
        (scope): scope is string =>
          typeof scope === 'string' &&
          scope !== 'openid' &&
          /^[\x21\x23-\x5b\x5d-\x7e]{1,40}$/.test(scope),
      )
      .slice(0, 10)
    return new OAuthError(
      e.error,
      e.errorDescription,
      `The authorization server refused OpenID Connect (${e.error}${e.errorDescription ? `: ${e.errorDescription}` : ''}). ` +
        `Set "scope" in createDPoPClient without "openid" (the default), to scopes this server knows${listed.length ? `; it lists: ${listed.join(' ')}` : ''}.`,
      { cause: e },
    )
  }

  /** RFC 9126 with a proof from the same key (RFC 9449 §10.1); the browser then carries only request_uri. */
  const push = async (url: URL, signal: AbortSignal | undefined): Promise<void> => {
    if (!as.pushed_authorization_request_endpoint) {
      throw new ServerResponseError(
        'ERR_INVALID_RESPONSE',
        'PAR is required or asked for, but the metadata has no pushed_authorization_request_endpoint.',
      )
    }
    const keyPair = await keys.load()
    const pushed = await server
      .request(
        'the pushed authorization request',
        () =>
          pushedAuthorizationRequest(
            as,
            client,
            clientAuth,
            url.searchParams,
            server.options(keyPair, signal),
          ),
        (response) => processPushedAuthorizationResponse(as, client, response),
      )
      .catch((e: unknown) => {
        throw openidRefused(e)
      })
    // The endpoint's own query stays (Azure AD B2C names its policy there: `?p=`).
    url.search = new URL(as.authorization_endpoint!).search
    url.searchParams.set('client_id', id.clientId)
    url.searchParams.set('request_uri', pushed.request_uri)
  }

  /** The UserInfo claims merged into the user, when `userInfo` asks for them; `sub` must not change. */
  const withUserInfo = async (next: Session, keyPair: CryptoKeyPair): Promise<Session> => {
    const mode = choices.userInfo ?? 'auto'
    if (!openid || !userInfoWanted(mode, id.scope, next.user) || !as.userinfo_endpoint) return next
    let info: Record<string, unknown> & { sub: string }
    try {
      info = await server.userInfo(next.accessToken, keyPair)
    } catch (e) {
      if (mode === 'always' || !isDPoPError(e)) throw e
      emit({ type: 'error', error: e })
      return next
    }
    if (next.user && info.sub !== next.user.sub) {
      throw new ServerResponseError(
        'ERR_INVALID_RESPONSE',
        'UserInfo names another user (sub) than the ID token; nothing was stored. Log in again.',
      )
    }
    return { ...next, user: { ...next.user, ...info } }
  }

  /** The app's verdict on the user; a refusal stores nothing and revokes what was issued. */
  const verify = async (
    next: Session,
    result: TokenEndpointResponse,
    keyPair: CryptoKeyPair,
  ): Promise<void> => {
    if (!choices.verifyUser) return
    const tokenResponse = withoutTokens(result)
    let cause: unknown
    try {
      if (
        (await choices.verifyUser(next.user, {
          issuer: as.issuer,
          scope: next.scope,
          tokenResponse,
        })) !== false
      )
        return
    } catch (e) {
      cause = e
    }
    if (result.refresh_token)
      await server.revoke(result.refresh_token, 'refresh_token', keyPair, undefined)
    throw new DPoPError(
      'ERR_USER_REFUSED',
      'The app refused this user (config.verifyUser); nothing was stored.',
      cause === undefined ? undefined : { cause },
    )
  }

  return {
    login: async (options = {}) => {
      const { signal } = options
      const returnTo =
        options.returnTo === undefined ? undefined : appPath(options.returnTo, appUrl())
      if (options.returnTo !== undefined && returnTo === undefined) {
        throw invalidArgument(
          '"options.returnTo" must be a path or URL of this app (same origin), e.g. "/orders?page=2".',
        )
      }
      await sessions.sweep().catch(() => undefined)
      const jkt = await keys.thumbprint(signal ? { signal } : undefined)
      const url = new URL(as.authorization_endpoint!)
      const { codeVerifier, state, nonce } = await authorizationParams(
        url.searchParams,
        options,
        jkt,
      )
      if (choices.par || as.require_pushed_authorization_requests === true) await push(url, signal)
      await sessions.saveTransaction({
        state,
        codeVerifier,
        nonce,
        jkt,
        returnTo,
        createdAt: Date.now(),
      })
      signal?.throwIfAborted()
      ;(options.redirect ?? ((to: URL) => location.assign(to)))(url)
    },

    handleRedirect: async (input) => {
      const url = new URL(input)
      const params = url.searchParams
      if (!params.has('code') && !params.has('error')) return undefined
      // Take the response out of the address bar (and history) whatever happens next,
      // so a reload never replays it.
      if (
        typeof history !== 'undefined' &&
        typeof location !== 'undefined' &&
        url.href === location.href
      ) {
        const clean = new URL(url)
        for (const param of AUTH_RESPONSE_PARAMS) clean.searchParams.delete(param)
        history.replaceState(history.state, '', clean)
      }
      const state = params.get('state')
      const tx = state ? await sessions.takeTransaction(state) : undefined
      if (!tx || Date.now() - tx.createdAt > TRANSACTION_MAX_AGE_MS) {
        throw new DPoPError(
          'ERR_STATE_MISMATCH',
          'Unknown or expired state: no login started here matches. Call login() again.',
        )
      }
      let callback: URLSearchParams
      try {
        callback = validateAuthResponse(as, client, params, tx.state)
      } catch (e) {
        throw openidRefused(toDPoPError(e, 'the login'))
      }
      const keyPair = await keys.load()
      const jkt = await keyPairThumbprint(keyPair)
      if (jkt !== tx.jkt) {
        throw new DPoPError(
          'ERR_LOGIN_REQUIRED',
          'The key changed during login (another tab logged out). Log in again.',
        )
      }
      const result = await server.request(
        'the code exchange',
        () =>
          authorizationCodeGrantRequest(
            as,
            client,
            clientAuth,
            callback,
            id.redirectUri,
            tx.codeVerifier,
            server.options(keyPair),
          ),
        (response) =>
          processAuthorizationCodeResponse(as, client, response, {
            expectedNonce: tx.nonce ?? expectNoNonce,
            requireIdToken: openid,
          }),
      )
      const next = await withUserInfo(
        sessionFromTokens(result, jkt, undefined, fallbackLifetimeMs, as.issuer),
        keyPair,
      )
      await verify(next, result, keyPair)
      await sessions.commit(next, true)
      // Checked again on the way out: the record may come from an older version of the app.
      return { returnTo: appPath(tx.returnTo, appUrl()), user: next.user }
    },
  }
}
