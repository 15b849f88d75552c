/**
 * dpop-spa/react: a provider that owns one {@link DPoPClient} and a hook that re-renders on
 * login, refresh and logout in any tab. Built on `client.subscribe` and React's
 * `useSyncExternalStore`; React is a peer dependency of this entry point only.
 * @packageDocumentation
 */
import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useMemo,
  useState,
  useSyncExternalStore,
  type ReactElement,
  type ReactNode,
} from 'react'
import { createDPoPClient } from './client/client.js'
import type { DPoPClient } from './client/dpop-client.js'
import type { DPoPClientConfig } from './client/client-config.js'
import { invalidArgument } from './base/errors.js'
import {
  createSnapshotStore,
  type DPoPSessionActions,
  type DPoPSessionSnapshot,
  type SnapshotStore,
} from './bindings/snapshot-store.js'
import type { RedirectResult } from './session/login.js'

export type { DPoPSessionActions, DPoPSessionSnapshot } from './bindings/snapshot-store.js'

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
export interface DPoPAuthState extends DPoPSessionSnapshot, DPoPSessionActions {}

// Clients the providers created from a config: shared by StrictMode's double render, closed
// when the last provider using them unmounts (on a timer, so a StrictMode remount keeps them).
const owned = new WeakMap<
  DPoPClientConfig,
  { client: Promise<DPoPClient>; users: number; timer?: ReturnType<typeof setTimeout> }
>()
const Context = createContext<SnapshotStore | undefined>(undefined)

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
    throw invalidArgument('<DPoPProvider> needs exactly one of "config" and "client".')
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
    return createSnapshotStore(source, props.handleRedirect ?? true)
  })
  // The latest callback, without restarting anything when an inline function changes.
  useEffect(() => {
    store.onRedirect = props.onRedirect
  })
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
          entry.client.then(
            (client) => client.close(),
            () => undefined,
          )
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
  if (!store) throw invalidArgument('useDPoP() must be called inside <DPoPProvider>.')
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)
  return useMemo(() => ({ ...snapshot, ...store.actions }), [snapshot, store])
}
