/**
 * The framework-neutral half of the UI bindings (`dpop-spa/react`, `dpop-spa/vue`): a
 * store over one client's promise that follows `subscribe`, handles the redirect URI once
 * per client, and hands out a snapshot that changes only when the session does.
 */
import type { DPoPClient } from '../client/dpop-client.js'
import type { DPoPFetch } from '../fetch/dpop-fetch.js'
import type { DPoPClientEvent } from '../session/events.js'
import type { LoginOptions, RedirectResult } from '../session/login.js'
import type { LogoutOptions } from '../session/tokens.js'
import type { UserClaims } from '../session/user.js'

/** The session as the UI bindings show it. A new object whenever something in it changes. */
export interface DPoPSessionSnapshot {
  /** `'loading'` until the client exists and the redirect (if any) is handled; `'error'` when either failed. */
  readonly status: 'loading' | 'ready' | 'error'
  /**
   * Whether this tab holds a session. `false` while loading; after a failed redirect
   * (`status: 'error'`) it still says what the client holds, since its `fetch` still sends
   * that session's token.
   */
  readonly isAuthenticated: boolean
  /** The ID token claims of the session. */
  readonly user: UserClaims | undefined
  /** Why `status` is `'error'`: creating the client or handling the redirect failed (usually a `DPoPError`). */
  readonly error: Error | undefined
  /** The last event from `client.subscribe` (login, refresh, logout with its reason, error), from this tab or another. */
  readonly lastEvent: DPoPClientEvent | undefined
  /** The client, once created. */
  readonly client: DPoPClient | undefined
}

/** The client's actions as the UI bindings hand them out: each waits for the client first. */
export interface DPoPSessionActions {
  /**
   * `client.login()`, waiting for the client first.
   * @param options - see {@link LoginOptions}.
   */
  login(options?: LoginOptions): Promise<void>
  /**
   * `client.logout()`, waiting for the client first.
   * @param options - see {@link LogoutOptions}.
   */
  logout(options?: LogoutOptions): Promise<void>
  /** `client.fetch`: the signed fetch, waiting for the client first. */
  readonly fetch: DPoPFetch
}

/** @internal */
export interface SnapshotStore {
  readonly subscribe: (onChange: () => void) => () => void
  /** The current snapshot; the same object until something changed. */
  readonly getSnapshot: () => DPoPSessionSnapshot
  readonly actions: DPoPSessionActions
  /** Starts (or restarts, after a StrictMode cleanup) following the client; returns the cleanup. */
  readonly start: () => () => void
  /** Called once with `handleRedirect()`'s result; the bindings keep it current. */
  onRedirect: ((result: RedirectResult | undefined) => void) | undefined
}

// handleRedirect() runs once per client: an authorization code can be exchanged only once.
const redirects = new WeakMap<DPoPClient, Promise<RedirectResult | undefined>>()

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)))

/** @internal A store over `source`; nothing happens until `start()`. */
export function createSnapshotStore(
  source: Promise<DPoPClient>,
  handleRedirect: boolean,
): SnapshotStore {
  let client: DPoPClient | undefined
  let status: DPoPSessionSnapshot['status'] = 'loading'
  let error: Error | undefined
  let lastEvent: DPoPClientEvent | undefined
  let snapshot: DPoPSessionSnapshot = {
    status,
    isAuthenticated: false,
    user: undefined,
    error,
    lastEvent,
    client,
  }
  const listeners = new Set<() => void>()
  const notify = () => {
    for (const listener of listeners) listener()
  }
  // Rejections are shown through the snapshot; this keeps them from being reported as unhandled.
  source.catch(() => undefined)

  const store: SnapshotStore = {
    onRedirect: undefined,
    subscribe(onChange) {
      listeners.add(onChange)
      return () => {
        listeners.delete(onChange)
      }
    },
    // Recomputed on read and replaced only when something changed, so a UI sees a stable
    // value between changes and never a stale one.
    getSnapshot() {
      // After a failed handleRedirect() the client may still hold a session (restored at
      // start-up, or from another tab): show it, beside the error, rather than "signed out".
      const ready = status === 'loading' ? undefined : client
      const isAuthenticated = ready?.isAuthenticated() ?? false
      const user = ready?.getUser()
      const last = snapshot
      if (
        last.status !== status ||
        last.isAuthenticated !== isAuthenticated ||
        last.user !== user ||
        last.error !== error ||
        last.lastEvent !== lastEvent ||
        last.client !== client
      ) {
        snapshot = { status, isAuthenticated, user, error, lastEvent, client }
      }
      return snapshot
    },
    actions: {
      login: (options) => source.then((client) => client.login(options)),
      logout: (options) => source.then((client) => client.logout(options)),
      fetch: (input, init) => source.then((client) => client.fetch(input, init)),
    },
    start() {
      let active = true
      let unsubscribe: (() => void) | undefined
      source
        .then((created) => {
          if (!active) return undefined
          client = created
          unsubscribe = created.subscribe((event) => {
            lastEvent = event
            notify()
          })
          if (!handleRedirect) return { done: undefined }
          let once = redirects.get(created)
          if (!once) {
            once = created.handleRedirect()
            redirects.set(created, once)
          }
          return once.then((result) => ({ done: result }))
        })
        .then(
          (outcome) => {
            if (!active || outcome === undefined) return
            status = 'ready'
            notify()
            store.onRedirect?.(outcome.done)
          },
          (e: unknown) => {
            if (!active) return
            status = 'error'
            error = asError(e)
            notify()
          },
        )
      return () => {
        active = false
        unsubscribe?.()
      }
    },
  }
  return store
}
