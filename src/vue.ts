/**
 * dpop-spa/vue: a plugin that owns one {@link DPoPClient} and a composable whose refs follow
 * login, refresh and logout in any tab. Built on `client.subscribe` and a `shallowRef`; Vue
 * is a peer dependency of this entry point only.
 * @packageDocumentation
 */
import {
  computed,
  inject,
  shallowRef,
  type App,
  type ComputedRef,
  type InjectionKey,
  type Plugin,
  type ShallowRef,
} from 'vue'
import { createDPoPClient } from './client/client.js'
import type { DPoPClient } from './client/dpop-client.js'
import type { DPoPClientConfig } from './client/client-config.js'
import { invalidArgument } from './base/errors.js'
import {
  createSnapshotStore,
  type DPoPSessionActions,
  type DPoPSessionSnapshot,
} from './bindings/snapshot-store.js'
import type { RedirectResult } from './session/login.js'
import type { UserClaims } from './session/user.js'

export type { DPoPSessionActions, DPoPSessionSnapshot } from './bindings/snapshot-store.js'

/** Options of {@link createDPoP}: give exactly one of `config` and `client`. */
export interface DPoPPluginOptions {
  /** Configuration for `createDPoPClient`. The plugin creates the client and closes it when the app unmounts. */
  config?: DPoPClientConfig
  /** A client the app created itself (or its promise); the plugin never closes it. */
  client?: DPoPClient | Promise<DPoPClient>
  /**
   * Call `client.handleRedirect()` once the client is ready: it completes a login on the
   * redirect URI and does nothing on other URLs. It runs once per client.
   * @default true
   */
  handleRedirect?: boolean
  /**
   * Receives `handleRedirect()`'s result once it is settled, e.g. to navigate to `result.returnTo`.
   * @param result - the login's `returnTo` and user, or `undefined` when the page was no authorization response.
   */
  onRedirect?: (result: RedirectResult | undefined) => void
}

/** What {@link useDPoP} returns: refs that follow the session, and the client's actions. */
export interface DPoPVueState extends DPoPSessionActions {
  /** The whole session snapshot; replaced (never mutated) when anything in it changes. */
  readonly session: Readonly<ShallowRef<DPoPSessionSnapshot>>
  /** `session.status`. */
  readonly status: ComputedRef<DPoPSessionSnapshot['status']>
  /** `session.isAuthenticated`. */
  readonly isAuthenticated: ComputedRef<boolean>
  /** `session.user`. */
  readonly user: ComputedRef<UserClaims | undefined>
}

const KEY: InjectionKey<DPoPVueState> = Symbol('dpop-spa')

/**
 * Creates the Vue plugin that provides one DPoP client to the app: it creates the client
 * from `config` (or takes `client`), handles the redirect URI once, and keeps the refs of
 * {@link useDPoP} current on login, refresh and logout, in this tab or another.
 *
 * @param options - `config` or `client`; see {@link DPoPPluginOptions}.
 * @returns the plugin for `app.use()`.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when neither or both of `config` and `client`
 *   are given. Failures to create the client or handle the redirect do not throw: they show
 *   as `status: 'error'` and `session.error`.
 * @example
 * ```ts
 * createApp(App)
 *   .use(createDPoP({ config: { issuer, clientId: 'my-spa', redirectUri: location.origin + '/', apiOrigins: [api] } }))
 *   .mount('#app')
 * ```
 */
export function createDPoP(options: DPoPPluginOptions): Plugin {
  if (
    typeof options !== 'object' ||
    options === null ||
    (options.config === undefined) === (options.client === undefined)
  ) {
    throw invalidArgument('createDPoP() needs exactly one of "config" and "client".')
  }
  return {
    install(app: App) {
      const owned = options.config !== undefined
      const source = owned
        ? createDPoPClient(options.config as DPoPClientConfig)
        : Promise.resolve(options.client as DPoPClient | Promise<DPoPClient>)
      const store = createSnapshotStore(source, options.handleRedirect ?? true)
      store.onRedirect = options.onRedirect
      const session = shallowRef(store.getSnapshot())
      const unsubscribe = store.subscribe(() => {
        session.value = store.getSnapshot()
      })
      const stop = store.start()
      app.provide(KEY, {
        session,
        status: computed(() => session.value.status),
        isAuthenticated: computed(() => session.value.isAuthenticated),
        user: computed(() => session.value.user),
        ...store.actions,
      })
      app.onUnmount(() => {
        stop()
        unsubscribe()
        if (owned)
          source.then(
            (client) => client.close(),
            () => undefined,
          )
      })
    },
  }
}

/**
 * The session of the app's {@link createDPoP} plugin, as refs (`session`, `status`,
 * `isAuthenticated`, `user`) plus `login`, `logout`, `fetch`. Call it in `setup()`.
 *
 * @returns the refs and actions; see {@link DPoPVueState}.
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` when the app does not use the plugin (or it is
 *   called outside `setup()`).
 * @example
 * ```ts
 * const { isAuthenticated, user, login, logout } = useDPoP()
 * ```
 */
export function useDPoP(): DPoPVueState {
  const state = inject(KEY, undefined)
  if (!state)
    throw invalidArgument('useDPoP() needs app.use(createDPoP(...)) and must be called in setup().')
  return state
}
