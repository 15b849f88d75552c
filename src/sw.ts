/**
 * `dpop-spa/sw`: the refresh worker. A service worker that calls {@link serveRefreshes}
 * makes the refresh-token requests of the pages that name it in `refreshWorker`, so that the
 * answer outlives the page: a reload or a closed tab cancels the page's own requests at once,
 * and with a server that rotates refresh tokens the lost answer ends the session.
 *
 * Optional: without it everything works as before. It is a reliability aid, not an OAuth
 * client of its own: it has no fetch handler (it never sees the app's requests), and it
 * holds no more than the page does: the same non-extractable key and tokens from this
 * origin's IndexedDB, used for the one request the page asked for.
 */
import { DPoPError, OAuthError, isDPoPError } from './base/errors.js'
import { defaultClock, type DPoPClock } from './server-state/clock.js'
import { defaultIndexedDB, openIdbStore } from './browser/idb.js'
import { openKeyStore } from './key-store/key-store.js'
import { defaultNonceCache } from './server-state/nonces.js'
import { createAuthorizationServerRequests, linkServer } from './session/authorization-server.js'
import type { DPoPClientEvent, LogoutReason } from './session/events.js'
import {
  isRefreshRequest,
  type RefreshReply,
  type RefreshRequest,
} from './session/refresh-worker.js'
import { createSessionRecords } from './session/session-records.js'
import { createTokenManager } from './session/tokens.js'

/** The `message` event of a service worker, as {@link serveRefreshes} uses it. */
export interface RefreshWorkerMessageEvent {
  readonly data: unknown
  readonly origin: string
  readonly ports: readonly MessagePort[]
  waitUntil(promise: Promise<unknown>): void
}

/** The service worker's global scope, as {@link serveRefreshes} uses it. */
export interface RefreshWorkerScope {
  readonly location: { readonly origin: string }
  addEventListener(type: 'message', listener: (event: RefreshWorkerMessageEvent) => void): void
  removeEventListener(type: 'message', listener: (event: RefreshWorkerMessageEvent) => void): void
}

// Shared by every request this worker serves: nonces (RFC 9449 §8) and the server's clock.
const nonces = defaultNonceCache()
const clocks = new Map<string, DPoPClock>()

/**
 * Serves refresh requests from the pages of this origin whose client has `refreshWorker`
 * set: each is made here, under the same cross-tab lock as a page's refresh, and its answer
 * is stored and shared with every tab before the page that asked is told. Call it once, at
 * the top of the service worker script. Never throws.
 *
 * @param scope - the service worker's global scope.
 * @default scope: `self`
 * @returns a function that stops serving.
 * @example
 * ```ts
 * // sw.ts, registered by the app as a module service worker
 * import { serveRefreshes } from 'dpop-spa/sw'
 * serveRefreshes()
 * ```
 * @see https://www.rfc-editor.org/rfc/rfc9700#section-4.14.2 (refresh token rotation)
 */
export function serveRefreshes(scope: RefreshWorkerScope = globalThis): () => void {
  const onMessage = (event: RefreshWorkerMessageEvent): void => {
    const port = event.ports[0]
    // Only pages of this origin can message the worker; the request is checked like input.
    if (!port || event.origin !== scope.location.origin || !isRefreshRequest(event.data)) return
    // waitUntil keeps the worker alive until the answer is stored, whatever the page does.
    event.waitUntil(refresh(event.data).then((reply) => port.postMessage(reply)))
  }
  scope.addEventListener('message', onMessage)
  return () => scope.removeEventListener('message', onMessage)
}

async function refresh(request: RefreshRequest): Promise<RefreshReply> {
  let ended: LogoutReason | undefined
  const { name, alg, as, storageTimeoutMs, requestTimeoutMs } = request
  const factory = defaultIndexedDB()
  if (!factory)
    return {
      ok: false,
      code: 'ERR_KEY_STORE_UNAVAILABLE',
      message: 'The refresh worker has no IndexedDB: leave "refreshWorker" out.',
      error: undefined,
      ended,
    }
  const keys = await openKeyStore({
    name,
    alg,
    persist: false,
    preload: false,
    timeoutMs: storageTimeoutMs,
    indexedDB: factory,
  })
  const store = openIdbStore(`dpop-spa:${name}:session`, factory, storageTimeoutMs)
  let clock = clocks.get(as.issuer)
  if (!clock) clocks.set(as.issuer, (clock = defaultClock()))
  const emit = (event: DPoPClientEvent) => {
    if (event.type === 'logout') ended = event.reason
  }
  // Login and logout never run here: the identity needs no redirect URI or scope.
  const server = createAuthorizationServerRequests(
    as,
    { clientId: request.clientId, redirectUri: as.issuer, scope: '', resource: request.resource },
    linkServer(undefined, request.insecure, clock, nonces),
    requestTimeoutMs,
    requestTimeoutMs,
  )
  const sessions = createSessionRecords(name, store, alg, () => keys.thumbprint(), emit)
  const tokens = createTokenManager(name, server, keys, sessions, request, emit)
  try {
    return { ok: true, session: await tokens.refreshStored(request.failedToken), ended }
  } catch (e) {
    const error = isDPoPError(e)
      ? e
      : new DPoPError('ERR_NETWORK', 'The refresh worker failed unexpectedly.')
    return {
      ok: false,
      code: error.code,
      message: error.message,
      error: error instanceof OAuthError ? error.error : undefined,
      ended,
    }
  } finally {
    sessions.close()
    store.close()
    keys.close()
  }
}
