/**
 * dpop-spa/react: a provider that owns one {@link DPoPClient} and a hook that re-renders on
 * login, refresh and logout in any tab. Built on `client.subscribe` and React's
 * `useSyncExternalStore`; React is a peer dependency of this entry point only.
 * @packageDocumentation
 */
import { createContext, createElement, useContext, useEffect, useMemo, useState, useSyncExternalStore, type ReactElement, type ReactNode } from 'react'
import { createDPoPClient, type DPoPClient, type DPoPClientConfig } from './client.js'
import type { DPoPFetch } from './dpop-fetch.js'
import { DPoPError } from './errors.js'
import type { DPoPClientEvent, LoginOptions, LogoutOptions, RedirectResult, UserClaims } from './tokens.js'

/** Props of {@link DPoPProvider}: give exactly one of `config` and `client`. */
export interface DPoPProviderProps {
  /**
   * Configuration for `createDPoPClient`. The provider creates the client (once, even under
   * StrictMode) and closes it when it unmounts. Read on the first render only.
   */
  config?: DPoPClientConfig
  /** A client the app created itself (or its promise); the provider never closes it. Read on the first render only. */
  client?: DPoPClient | Promise<DPoPClient>
  /**
   * Call `client.handleRedirect()` when the client is ready: it completes a login on the
   * redirect URI and does nothing on other URLs. It runs once per client, also when React
   * runs effects twice (StrictMode). Read on the first render only.
   * @default true
   */
  handleRedirect?: boolean
  /**
   * Receives `handleRedirect()`'s result once it is settled, e.g. to navigate to
   * `result.returnTo`. The function of the latest render is called.
   * @param result - the login's `returnTo` and user, or `undefined` when the page was no authorization response.
   */
  onRedirect?: (result: RedirectResult | undefined) => void
  /** The app. */
  children?: ReactNode
}

/** What {@link useDPoP} returns: a snapshot of the session plus the client's actions. */
export interface DPoPAuthState {
  /** `'loading'` until the client exists and the redirect (if any) is handled; `'error'` when either failed. */
  readonly status: 'loading' | 'ready' | 'error'
  /** Whether this tab holds a session. `false` while loading. */
  readonly isAuthenticated: boolean
  /** The ID token claims of the session. */
  readonly user: UserClaims | undefined
  /** Why `status` is `'error'`: creating the client or handling the redirect failed (usually a `DPoPError`). */
  readonly error: Error | undefined
  /** The last event from `client.subscribe` (login, refresh, logout with its reason, error), from this tab or another. */
  readonly lastEvent: DPoPClientEvent | undefined
  /** The client, once created. */
  readonly client: DPoPClient | undefined
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

type Snapshot = Pick<DPoPAuthState, 'status' | 'isAuthenticated' | 'user' | 'error' | 'lastEvent' | 'client'>
type Actions = Pick<DPoPAuthState, 'login' | 'logout' | 'fetch'>

interface Store {
  readonly subscribe: (onChange: () => void) => () => void
  readonly getSnapshot: () => Snapshot
  readonly actions: Actions
  /** Starts (or restarts, after a StrictMode cleanup) following the client; returns the cleanup. */
  readonly start: () => () => void
  /** The provider's latest `onRedirect`. */
  onRedirect: DPoPProviderProps['onRedirect']
}

// Clients the providers created from a config: shared by StrictMode's double render, closed
// when the last provider using them unmounts (on a timer, so a StrictMode remount keeps them).
const owned = new WeakMap<DPoPClientConfig, { client: Promise<DPoPClient>; users: number; timer?: ReturnType<typeof setTimeout> }>()
// handleRedirect() runs once per client: an authorization code can be exchanged only once.
const redirects = new WeakMap<DPoPClient, Promise<RedirectResult | undefined>>()

const Context = createContext<Store | undefined>(undefined)

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)))

function createStore(source: Promise<DPoPClient>, handleRedirect: boolean): Store {
  let client: DPoPClient | undefined
  let status: Snapshot['status'] = 'loading'
  let error: Error | undefined
  let lastEvent: DPoPClientEvent | undefined
  let snapshot: Snapshot = { status, isAuthenticated: false, user: undefined, error, lastEvent, client }
  const listeners = new Set<() => void>()
  const notify = () => { for (const l of listeners) l() }

  const store: Store = {
    onRedirect: undefined,
    subscribe(onChange) {
      listeners.add(onChange)
      return () => { listeners.delete(onChange) }
    },
    // Recomputed on read and replaced only when something changed, so React sees a stable
    // value between changes and never a stale one.
    getSnapshot() {
      const ready = status === 'ready' ? client : undefined
      const isAuthenticated = ready?.isAuthenticated() ?? false
      const user = ready?.getUser()
      const s = snapshot
      if (s.status !== status || s.isAuthenticated !== isAuthenticated || s.user !== user || s.error !== error || s.lastEvent !== lastEvent || s.client !== client) {
        snapshot = { status, isAuthenticated, user, error, lastEvent, client }
      }
      return snapshot
    },
    actions: {
      login: (options) => source.then((c) => c.login(options)),
      logout: (options) => source.then((c) => c.logout(options)),
      fetch: (input, init) => source.then((c) => c.fetch(input, init)),
    },
    start() {
      let active = true
      let unsubscribe: (() => void) | undefined
      source
        .then((c) => {
          if (!active) return undefined
          client = c
          unsubscribe = c.subscribe((event) => {
            lastEvent = event
            notify()
          })
          if (!handleRedirect) return { done: undefined }
          let once = redirects.get(c)
          if (!once) {
            once = c.handleRedirect()
            redirects.set(c, once)
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

/**
 * Provides one DPoP client to the components below it: creates it from `config` (or takes
 * `client`), handles the redirect URI once, and lets {@link useDPoP} re-render on login,
 * refresh and logout, in this tab or another.
 *
 * @param props - `config` or `client`, and the app as `children`; see {@link DPoPProviderProps}.
 * @returns the context provider element around `children`.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when neither or both of `config` and `client` are given.
 *   Failures to create the client or handle the redirect do not throw: they show as
 *   `status: 'error'` and `error` in {@link useDPoP}.
 * @example
 * ```tsx
 * createRoot(el).render(
 *   <DPoPProvider config={{ issuer, clientId: 'my-spa', redirectUri: location.origin + '/', apiOrigins: [api] }}>
 *     <App />
 *   </DPoPProvider>,
 * )
 * ```
 */
export function DPoPProvider(props: DPoPProviderProps): ReactElement {
  if ((props.config === undefined) === (props.client === undefined)) {
    throw new DPoPError('ERR_INVALID_ARGUMENT', '<DPoPProvider> needs exactly one of "config" and "client".')
  }
  const [config] = useState(props.config)
  const [store] = useState(() => {
    let source: Promise<DPoPClient>
    if (config) {
      let entry = owned.get(config)
      if (!entry) {
        entry = { client: createDPoPClient(config), users: 0 }
        owned.set(config, entry)
      }
      source = entry.client
    } else {
      source = Promise.resolve(props.client as DPoPClient | Promise<DPoPClient>)
    }
    // Rejections are shown through the store; this keeps them from being reported as unhandled.
    source.catch(() => undefined)
    return createStore(source, props.handleRedirect ?? true)
  })
  // The latest callback, without restarting anything when an inline function changes.
  useEffect(() => { store.onRedirect = props.onRedirect })
  useEffect(() => {
    const entry = config && owned.get(config)
    if (entry) {
      entry.users++
      clearTimeout(entry.timer)
    }
    const stop = store.start()
    return () => {
      stop()
      if (entry && --entry.users === 0) {
        entry.timer = setTimeout(() => {
          owned.delete(config)
          entry.client.then((c) => c.close(), () => undefined)
        }, 0)
      }
    }
  }, [store, config])
  return createElement(Context.Provider, { value: store }, props.children)
}

/**
 * The session of the nearest {@link DPoPProvider}: `status`, `isAuthenticated`, `user`,
 * `lastEvent`, and `login`, `logout`, `fetch`. Re-renders on login, refresh and logout in
 * any tab (through `client.subscribe` and `useSyncExternalStore`).
 *
 * @returns the current {@link DPoPAuthState}; the same object until something changes.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when called outside a {@link DPoPProvider}.
 * @example
 * ```tsx
 * function Profile() {
 *   const { status, isAuthenticated, user, login, logout } = useDPoP()
 *   if (status === 'loading') return <p>…</p>
 *   return isAuthenticated
 *     ? <button onClick={() => logout()}>Sign out {user?.sub}</button>
 *     : <button onClick={() => login()}>Sign in</button>
 * }
 * ```
 */
export function useDPoP(): DPoPAuthState {
  const store = useContext(Context)
  if (!store) throw new DPoPError('ERR_INVALID_ARGUMENT', 'useDPoP() must be called inside <DPoPProvider>.')
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
  return useMemo(() => ({ ...snapshot, ...store.actions }), [snapshot, store])
}
