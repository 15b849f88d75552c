/**
 * The facade: `createDPoPClient(config)`, the one object most apps touch. It wires the
 * key store, the authorization server (through oauth4webapi), the token manager and the
 * signed fetch together.
 */
import {
  createAuthorizationServerRequests,
  discover,
  linkServer,
} from '../session/authorization-server.js'
import {
  BOUNDS,
  CLIENT_DEFAULTS,
  assertUrl,
  positive,
  type DPoPClientConfig,
} from './client-config.js'
import { DPoPError, ServerResponseError, invalidArgument } from '../base/errors.js'
import { defaultIndexedDB, openIdbStore } from '../browser/idb.js'
import { endStoredSession, fellBack, markFallback } from './storage-fallback.js'
import { openKeyStore } from '../key-store/key-store.js'
import { checkAlgorithm } from '../proof/keys.js'
import { defaultClock } from '../server-state/clock.js'
import { defaultNonceCache } from '../server-state/nonces.js'
import { defaultSessionStorage, rememberNonces } from '../server-state/nonce-storage.js'
import { DPOP_FETCH_DEFAULTS, signedFetch } from '../fetch/dpop-fetch.js'
import { debugEmitter } from '../fetch/fetch-events.js'
import { parseOrigins } from '../fetch/targets.js'
import { installDPoPFetch, uninstalledFetch } from '../fetch/install.js'
import { createLoginFlow } from '../session/login.js'
import { createSessionRecords } from '../session/session-records.js'
import { createTokenManager } from '../session/tokens.js'
import { createEventBus } from './event-bus.js'
import type { DPoPClient } from './dpop-client.js'

/**
 * Creates the DPoP client of an app: opens the key store (loading the key at once, in
 * parallel with discovery), discovers the authorization server, restores the session from
 * IndexedDB and drops it when it is bound to a key this browser no longer has.
 *
 * @param config - issuer, client, redirect URI, API origins; see {@link DPoPClientConfig}.
 * @returns the client, with the session restored when there is one.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` for a bad config; `ERR_NETWORK` or
 *   `ERR_INVALID_RESPONSE` when discovery fails; `ERR_UNSUPPORTED_ALGORITHM` for an `alg`
 *   the server's `dpop_signing_alg_values_supported` leaves out (or EdDSA without Ed25519); {@link KeyStoreError} when IndexedDB fails
 *   and no memory fallback was asked for.
 * @example
 * ```ts
 * const auth = await createDPoPClient({
 *   issuer: 'https://login.example.com',
 *   clientId: 'my-spa',
 *   redirectUri: `${location.origin}/callback`,
 *   scope: 'openid profile offline_access',
 *   apiOrigins: ['https://api.example.com'],
 * })
 * await auth.handleRedirect()
 * if (!auth.isAuthenticated()) await auth.login()
 * const me = await auth.fetch('https://api.example.com/me')
 * ```
 */
export async function createDPoPClient(config: DPoPClientConfig): Promise<DPoPClient> {
  if (typeof config !== 'object' || config === null)
    throw invalidArgument('"config" must be an object.')
  const issuer = assertUrl(config.issuer, 'issuer')
  assertUrl(config.redirectUri, 'redirectUri')
  if (typeof config.clientId !== 'string' || config.clientId === '')
    throw invalidArgument('"config.clientId" must be a non-empty string.')
  if (!Array.isArray(config.apiOrigins))
    throw invalidArgument(
      '"config.apiOrigins" must be an array of origins, e.g. ["https://api.example.com"].',
    )
  const scope = config.scope ?? CLIENT_DEFAULTS.scope
  const resource =
    config.resource === undefined
      ? []
      : typeof config.resource === 'string'
        ? [config.resource]
        : [...config.resource]
  const name = config.name ?? config.clientId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)
  const insecure = issuer.protocol === 'http:' // loopback only, checked above
  const factory =
    config.indexedDB === undefined ? defaultIndexedDB() : (config.indexedDB ?? undefined)
  const alg = checkAlgorithm(config.alg ?? CLIENT_DEFAULTS.alg, 'config.alg')
  if (config.par !== undefined && typeof config.par !== 'boolean')
    throw invalidArgument('"config.par" must be a boolean.')
  if (config.userInfo !== undefined && !['auto', 'always', 'never'].includes(config.userInfo))
    throw invalidArgument("\"config.userInfo\" must be 'auto', 'always' or 'never'.")
  if (config.verifyUser !== undefined && typeof config.verifyUser !== 'function')
    throw invalidArgument('"config.verifyUser" must be a function.')
  if (
    config.discovery !== undefined &&
    config.discovery !== 'oidc' &&
    config.discovery !== 'oauth'
  ) {
    throw invalidArgument(
      "\"config.discovery\" must be 'oidc' (OpenID Connect Discovery) or 'oauth' (RFC 8414), or left out.",
    )
  }
  const worker: unknown = config.refreshWorker
  if (worker !== undefined && (typeof worker !== 'object' || worker === null))
    throw invalidArgument(
      '"config.refreshWorker" must be a ServiceWorkerRegistration or the promise of one (navigator.serviceWorker.register(...)).',
    )
  // A registration that fails is announced by the page's own refresh taking over; not unhandled.
  if (worker instanceof Promise) worker.catch(() => undefined)
  const allowed = parseOrigins(config.apiOrigins)
  if (config.fetch !== undefined && typeof config.fetch !== 'function')
    throw invalidArgument('"config.fetch" must be a function.')
  const debugging = debugEmitter(config.debug ?? DPOP_FETCH_DEFAULTS.debug)
  // Every bound checked here, before anything waits on the network or IndexedDB.
  const bounds = Object.fromEntries(
    BOUNDS.map((bound) => [bound, positive(config, bound)]),
  ) as Record<(typeof BOUNDS)[number], number>

  const events = createEventBus()
  const { emit } = events
  const timeoutMs = bounds.storageTimeoutMs
  // A page of this app ran on a memory key: the session it could not see ends now, before
  // the key store reads the key it was bound to. Still failing: the key store decides below.
  let ended = false
  if (factory && fellBack(name))
    ended = await endStoredSession(name, factory, timeoutMs).catch(() => false)

  // Key loading starts now, in parallel with discovery, never behind it.
  let memory = false
  const keys = await openKeyStore({
    name,
    alg,
    fallback: config.storageFallback ?? CLIENT_DEFAULTS.storageFallback,
    indexedDB: factory ?? null,
    timeoutMs,
    onFallback: (error) => {
      memory = true
      if (factory) markFallback(name)
      emit({ type: 'storage-fallback', error })
    },
  })
  const keyReady = keys.load()
  keyReady.catch(() => undefined)

  // Authorization-server requests bypass an installed signed fetch (auth.install()): with the
  // AS on an API origin it would otherwise add the access token to token requests, and a
  // refresh would wait for itself. What their answers teach (the clock, the nonces), both
  // shared with the signed fetch, is learned in the link (authorization-server.ts).
  const clock = defaultClock()
  // Shared by the signed fetch and the token requests, and kept across page loads of this tab.
  const nonces = rememberNonces(
    defaultNonceCache(),
    config.nonceStorage === undefined
      ? defaultSessionStorage()
      : (config.nonceStorage ?? undefined),
    `dpop-spa:${name}:nonces`,
  )
  const link = linkServer(uninstalledFetch(config.fetch), insecure, clock, nonces)
  const discovering = config.metadata
    ? Promise.resolve(config.metadata)
    : discover(issuer, link, bounds.requestTimeoutMs, scope, config.discovery)
  const [as] = await Promise.all([discovering, keyReady])
  if (!as.authorization_endpoint || !as.token_endpoint) {
    throw new ServerResponseError(
      'ERR_INVALID_RESPONSE',
      'The server metadata lacks authorization_endpoint or token_endpoint.',
    )
  }
  // RFC 9449 §5.1: proofs in an algorithm the server does not list would all be refused.
  const accepted: unknown = as.dpop_signing_alg_values_supported
  if (Array.isArray(accepted) && accepted.length > 0 && !accepted.includes(alg)) {
    keys.close()
    const names = accepted
      .filter((listed): listed is string => typeof listed === 'string')
      .slice(0, 12)
      .map((listed) => listed.slice(0, 20))
    throw new DPoPError(
      'ERR_UNSUPPORTED_ALGORITHM',
      `The server accepts DPoP proofs in ${names.join(', ')}, not ${alg}: set "alg" to one of them (dpop-spa signs ES256, EdDSA).`,
    )
  }

  const { clientId, redirectUri, postLogoutRedirectUri } = config
  const server = createAuthorizationServerRequests(
    as,
    { clientId, redirectUri, scope, resource, postLogoutRedirectUri },
    link,
    bounds.requestTimeoutMs,
    bounds.revocationTimeoutMs,
  )
  // Tokens live beside the key; when the key is memory-only, so are they.
  const store =
    keys.storage === 'indexeddb' && factory
      ? openIdbStore(`dpop-spa:${name}:session`, factory, timeoutMs)
      : undefined
  const sessions = createSessionRecords(name, store, alg, () => keys.thumbprint(), emit)
  const fallbackLifetimeMs = bounds.fallbackLifetimeSeconds * 1000
  const timing = {
    refreshLeewayMs: bounds.refreshLeewaySeconds * 1000,
    lockTimeoutMs: bounds.lockTimeoutMs,
    requestTimeoutMs: bounds.requestTimeoutMs,
    fallbackLifetimeMs,
  }
  const flow = createLoginFlow(
    server,
    keys,
    sessions,
    fallbackLifetimeMs,
    { par: config.par, userInfo: config.userInfo, verifyUser: config.verifyUser },
    emit,
  )
  const tokens = createTokenManager(
    name,
    server,
    keys,
    sessions,
    timing,
    emit,
    config.refreshWorker && store
      ? {
          registration: config.refreshWorker,
          request: {
            type: 'dpop-spa:refresh',
            v: 1,
            name,
            alg,
            as,
            clientId,
            resource,
            insecure,
            ...timing,
            storageTimeoutMs: timeoutMs,
          },
        }
      : undefined,
  )
  if (ended) emit({ type: 'logout', reason: 'storage-fallback' })
  await sessions.restore()

  // The SDK's own key store, clock and nonces need no check: the signed fetch without its checks.
  const dpopFetch = signedFetch(keys, allowed, clock, nonces, debugging, {
    getAccessToken: ({ signal }) => tokens.getAccessToken(signal ? { signal } : {}),
    onInvalidToken: ({ token }) => tokens.onInvalidToken(token),
    ...(config.fetch ? { fetch: config.fetch } : {}),
  })

  return {
    login: flow.login,
    handleRedirect: (url) => flow.handleRedirect(url ?? location.href),
    fetch: dpopFetch,
    install: () => installDPoPFetch(dpopFetch),
    async logout(options) {
      try {
        await tokens.logout(options)
      } finally {
        // On a memory page the logout above reached only the memory session: end the stored
        // one too, if IndexedDB answers again (else the next load does, from the mark).
        if (memory && factory)
          await endStoredSession(name, factory, timeoutMs).catch(() => undefined)
      }
    },
    isAuthenticated: () => sessions.current() !== undefined,
    getUser: () => sessions.current()?.user,
    getAccessToken: tokens.getAccessToken,
    subscribe: events.subscribe,
    keys,
    authorizationServer: as,
    close() {
      sessions.close()
      store?.close()
      keys.close()
    },
  }
}
