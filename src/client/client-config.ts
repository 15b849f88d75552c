/**
 * What an app configures in `createDPoPClient`, every default of it, and the checks of its
 * URLs and numbers, done once at the boundary.
 */
import type { AuthorizationServer } from 'oauth4webapi'
import type { DPoPFetchOptions } from '../fetch/dpop-fetch.js'
import { invalidArgument } from '../base/errors.js'
import type { DPoPAlgorithm } from '../proof/keys.js'
import type { UserInfoMode, VerifyUser } from '../session/user.js'

/** Configuration of {@link createDPoPClient}. */
export interface DPoPClientConfig {
  /** The authorization server's issuer identifier; its metadata is discovered (RFC 8414 / OIDC Discovery). */
  issuer: string
  /** The public client's `client_id`. */
  clientId: string
  /** Where the authorization server sends the user back; call `handleRedirect()` there. */
  redirectUri: string
  /**
   * Scopes to ask for.
   * @default 'openid'
   */
  scope?: string
  /** Exact origins of the APIs that get tokens and proofs; every other origin gets neither. */
  apiOrigins: readonly string[]
  /** RFC 8707 resource indicator(s) of the API, sent on the authorization and token requests. */
  resource?: string | readonly string[]
  /** Where the end-session endpoint sends the user after `logout({ redirect: true })`. */
  postLogoutRedirectUri?: string
  /**
   * Name of the key store and session databases (letters, digits, `._-`).
   * @default the clientId, with other characters replaced by `_`
   */
  name?: string
  /** The authorization server's metadata, to skip discovery. */
  metadata?: AuthorizationServer
  /**
   * Which metadata document to read: `'oidc'` (`/.well-known/openid-configuration`) or
   * `'oauth'` (RFC 8414, `/.well-known/oauth-authorization-server`), that one only. Left out,
   * the one the scope points to is read first (OIDC with `openid` in `scope`, else RFC 8414),
   * then the other, so a plain OAuth server costs no failed request.
   * @default inferred from `scope`
   */
  discovery?: 'oidc' | 'oauth'
  /**
   * The algorithm of the DPoP key: `'ES256'`, or `'EdDSA'` (Ed25519) where the browser's
   * WebCrypto has it. Changing it replaces the stored key (and so ends the session bound to
   * the old one). When the authorization server's `dpop_signing_alg_values_supported` does
   * not list it, `createDPoPClient` rejects with `ERR_UNSUPPORTED_ALGORITHM`.
   * @default 'ES256'
   */
  alg?: DPoPAlgorithm
  /**
   * Push the authorization request (RFC 9126) with a DPoP proof from the key (RFC 9449 §10.1)
   * and send the browser with `request_uri` only. Done anyway when the server's metadata has
   * `require_pushed_authorization_requests: true`.
   * @default false
   */
  par?: boolean
  /**
   * The fetch used for the authorization server and under the signed fetch.
   * @default globalThis.fetch, read at call time
   */
  fetch?: typeof fetch
  /**
   * What to do when IndexedDB cannot keep the key: see `KeyStoreOptions.fallback`. With
   * `'memory'`, the move to a memory key is announced with a `storage-fallback` event, and the
   * session stored before is ended (stored session and keys deleted) as soon as IndexedDB
   * answers again: at a logout on that page, or on the next load (`logout` event, reason
   * `'storage-fallback'`).
   * @default 'error'
   */
  storageFallback?: 'error' | 'memory'
  /** The IndexedDB factory; tests pass a fake or a failing one. @default globalThis.indexedDB */
  indexedDB?: IDBFactory | null
  /**
   * Where the servers' DPoP nonces are kept across page loads (the login redirect, a reload),
   * so the first request of a new page reuses a nonce still fresh instead of meeting
   * `use_dpop_nonce`. One tab's storage is right: nonces are not secrets, and a new tab pays
   * one retry. `null`: in memory only.
   * @default globalThis.sessionStorage
   */
  nonceStorage?: Pick<Storage, 'getItem' | 'setItem'> | null
  /**
   * Refresh the access token this many seconds before it expires (at most a quarter of
   * its lifetime).
   * @default 30
   */
  refreshLeewaySeconds?: number
  /**
   * How long a tab waits for another tab's refresh before giving up with `ERR_TIMEOUT`.
   * @default 10000
   */
  lockTimeoutMs?: number
  /**
   * The bound on each authorization-server request (discovery, token, PAR): past it the
   * request fails with `ERR_TIMEOUT`, so a dead server never leaves a refresh pending.
   * @default 30000
   */
  requestTimeoutMs?: number
  /**
   * The bound on each revocation request of `logout()`, which runs after the local sign-out.
   * @default 5000
   */
  revocationTimeoutMs?: number
  /**
   * The lifetime assumed for an access token whose token response has no `expires_in`.
   * @default 3600
   */
  fallbackLifetimeSeconds?: number
  /**
   * How long to wait for IndexedDB (the key store's database and the session's) before
   * `ERR_KEY_STORE_UNAVAILABLE`.
   * @default 10000
   */
  storageTimeoutMs?: number
  /**
   * When to ask the UserInfo endpoint (OpenID Connect Core §5.3) for the user's claims at
   * login, with a DPoP proof for the access token (nonce retry included); its `sub` must be
   * the ID token's. `'auto'`: when `scope` asks for `profile`, `email`, `address` or `phone`
   * and the ID token carries none of their claims (a failure is then an `error` event, and
   * the ID token's claims stay). `'always'`: at every login (a failure fails the login).
   * @default 'auto'
   */
  userInfo?: UserInfoMode
  /**
   * Checks the user before the session is stored, e.g. an atproto app resolving the DID
   * (`user.sub`) to its PDS and that PDS to `context.issuer`. Returning `false` or throwing
   * refuses: `handleRedirect()` rejects with `ERR_USER_REFUSED` (what was thrown is its
   * `cause`), nothing is stored, and the refresh token is revoked (best effort).
   * @param user - the user (see {@link UserClaims}), `undefined` when the server named none.
   * @param context - the issuer, the granted scope and the token response without the tokens.
   */
  verifyUser?: VerifyUser
  /**
   * A service worker that serves refresh requests (`serveRefreshes()` from `dpop-spa/sw`):
   * refresh-token requests are then made there, so that their answers outlive a reload or a
   * closed tab. Pass the registration, or the promise `navigator.serviceWorker.register()`
   * returns. While it is not active (or its registration failed) the page refreshes by itself.
   * @default undefined: the page makes its refresh requests
   */
  refreshWorker?: ServiceWorkerRegistration | Promise<ServiceWorkerRegistration>
  /** Debug events of the signed fetch (never tokens or signatures): see `DPoPFetchOptions.debug`. */
  debug?: DPoPFetchOptions['debug']
}

/** Defaults of {@link DPoPClientConfig}: every default of the client, in one place. */
export const CLIENT_DEFAULTS = {
  /** Scopes asked for. */
  scope: 'openid',
  /** The key's algorithm. */
  alg: 'ES256',
  /** Push the authorization request only when the server requires it. */
  par: false,
  /** No memory key unless asked for. */
  storageFallback: 'error',
  /** Refresh this many seconds before expiry (at most a quarter of the lifetime). */
  refreshLeewaySeconds: 30,
  /** Wait for another tab's refresh, ms. */
  lockTimeoutMs: 10_000,
  /** Bound on each discovery, token and PAR request, ms. */
  requestTimeoutMs: 30_000,
  /** Bound on each revocation request, ms. */
  revocationTimeoutMs: 5_000,
  /** Lifetime assumed without `expires_in`, seconds. */
  fallbackLifetimeSeconds: 3600,
  /** Wait for IndexedDB (the key and session databases), ms. */
  storageTimeoutMs: 10_000,
} as const satisfies Required<
  Pick<
    DPoPClientConfig,
    | 'scope'
    | 'alg'
    | 'par'
    | 'storageFallback'
    | 'refreshLeewaySeconds'
    | 'lockTimeoutMs'
    | 'requestTimeoutMs'
    | 'revocationTimeoutMs'
    | 'fallbackLifetimeSeconds'
    | 'storageTimeoutMs'
  >
>

/** @internal The options that are positive numbers: waits, bounds and lifetimes. */
export const BOUNDS = [
  'refreshLeewaySeconds',
  'lockTimeoutMs',
  'requestTimeoutMs',
  'revocationTimeoutMs',
  'fallbackLifetimeSeconds',
  'storageTimeoutMs',
] as const

/**
 * @internal A positive number of the config, or its default.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` naming the option.
 */
export function positive(config: DPoPClientConfig, name: (typeof BOUNDS)[number]): number {
  const value = config[name] ?? CLIENT_DEFAULTS[name]
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value))
    throw invalidArgument(`"config.${name}" must be a positive number.`)
  return value
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]'])

/**
 * @internal An absolute https URL of the config (http only for loopback).
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` naming the option.
 */
export function assertUrl(value: unknown, name: string): URL {
  let url: URL | undefined
  try {
    url = new URL(value as string)
  } catch {
    // reported below
  }
  if (url?.protocol !== 'https:' && !(url?.protocol === 'http:' && LOOPBACK.has(url.hostname))) {
    throw invalidArgument(
      `"config.${name}" must be an absolute https:// URL (http:// only for localhost).`,
    )
  }
  return url
}
