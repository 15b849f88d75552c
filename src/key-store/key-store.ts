/**
 * The key store: keeps the DPoP `CryptoKeyPair` itself in an IndexedDB database of its own
 * (the record: stored-pair.ts), caches it, rotates and deletes it and tells the other tabs
 * (key-events.ts), and falls back to a key in memory when the app asked for that.
 */
import { del } from 'idb-keyval'
import { KeyStoreError, invalidArgument } from '../base/errors.js'
import { checkAlgorithm, generateKeyPair, type DPoPAlgorithm } from '../proof/keys.js'
import { keyPairThumbprint } from '../proof/proof.js'
import {
  USE_MEMORY,
  askPersistence,
  defaultIndexedDB,
  openIdbStore,
  type IdbStore,
} from '../browser/idb.js'
import { raceAbort } from '../base/abort.js'
import { keyEvents } from './key-events.js'
import { loadOrCreatePair, recordOf, storePair } from './stored-pair.js'

/** Options of {@link openKeyStore}. */
export interface KeyStoreOptions {
  /** Name of the store; the IndexedDB database is `dpop-spa:<name>:keys`. Letters, digits, `._-`, 1–64 characters. */
  name: string
  /**
   * Algorithm of the key pair: `'ES256'`, or `'EdDSA'` (Ed25519) where WebCrypto has it.
   * The store keeps one pair per algorithm, so two versions of an app with different
   * algorithms (old tabs open during a deploy) each keep their own key instead of replacing
   * each other's on every load. A session is bound to one key: changing this option still
   * ends a session bound to the other algorithm's key.
   * @default 'ES256'
   */
  alg?: DPoPAlgorithm
  /**
   * What to do when IndexedDB is missing or refuses to store the key: `'error'` rejects
   * `load()` with a {@link KeyStoreError}; `'memory'` keeps a non-extractable key in
   * memory for this page only (the session ends on reload) and sets `storage` to `'memory'`.
   * @default 'error'
   */
  fallback?: 'error' | 'memory'
  /**
   * Called once, with the storage error, when the store moves to the memory key
   * (`fallback: 'memory'`), so the app can tell the user that the sign-in will not survive
   * a reload. Never called from another tab.
   * @param error - why IndexedDB could not keep the key.
   */
  onFallback?: (error: KeyStoreError) => void
  /**
   * Ask the browser for persistent storage (`navigator.storage.persist()`) so the key
   * is not evicted under storage pressure.
   * @default true
   */
  persist?: boolean
  /**
   * Start loading (or creating) the key pair at once, in parallel with whatever the
   * app does next (discovery, rendering).
   * @default true
   */
  preload?: boolean
  /**
   * The IndexedDB factory to use; tests pass a fake or a failing one.
   * @default globalThis.indexedDB
   */
  indexedDB?: IDBFactory | null
  /**
   * How long to wait for IndexedDB to open or answer before failing.
   * @default 10000
   */
  timeoutMs?: number
}

/** Defaults of {@link KeyStoreOptions}. */
export const KEY_STORE_DEFAULTS = {
  /** The key's algorithm. */
  alg: 'ES256',
  /** No memory key unless asked for. */
  fallback: 'error',
  /** Ask the browser for persistent storage. */
  persist: true,
  /** Start loading the key when the store opens. */
  preload: true,
  /** Wait for IndexedDB, ms. */
  timeoutMs: 10_000,
} as const satisfies Omit<Required<KeyStoreOptions>, 'name' | 'indexedDB' | 'onFallback'>

/** A persistent DPoP key pair for one app. Obtained from {@link openKeyStore}. */
export interface KeyStore {
  /** The store's name. */
  readonly name: string
  /** Where the key pair lives now: `'indexeddb'`, or `'memory'` after an explicit fallback. */
  readonly storage: 'indexeddb' | 'memory'
  /**
   * The key pair: the stored one, or a new one created (atomically across tabs) the
   * first time. Cached in memory after the first call; invalidated when another tab
   * rotates or deletes the key.
   * @param options - `signal` aborts the wait (not the IndexedDB work).
   * @returns the key pair; its private key is not extractable.
   * @throws {KeyStoreError} `ERR_KEY_STORE_UNAVAILABLE`, `ERR_KEY_STORE_UNSUPPORTED`,
   *   `ERR_KEY_STORE_QUOTA` or `ERR_KEY_STORE_FAILED` when IndexedDB fails and no memory
   *   fallback was asked for; the signal's reason when aborted.
   */
  load(options?: { signal?: AbortSignal }): Promise<CryptoKeyPair>
  /**
   * Replaces the key pair with a new one and tells other tabs, which load the new pair
   * on their next `load()`.
   * @throws {KeyStoreError} as {@link KeyStore.load}.
   */
  rotate(): Promise<CryptoKeyPair>
  /**
   * Deletes the key pair and its database; the next `load()` creates a new pair.
   * @throws {KeyStoreError} when IndexedDB fails to delete the record.
   */
  delete(): Promise<void>
  /**
   * RFC 7638 thumbprint of the current key pair (the `dpop_jkt` / `cnf.jkt` value).
   * @param options - `signal` aborts the wait for the key.
   * @returns the base64url thumbprint.
   * @throws {KeyStoreError} as {@link KeyStore.load}.
   */
  thumbprint(options?: { signal?: AbortSignal }): Promise<string>
  /**
   * Whether the browser granted persistent storage; `false` where it was not asked or is not
   * offered. Never rejects, and waits at most about a second: Firefox answers the request only
   * when the user answers its permission prompt, so until then this reports the current grant.
   */
  persisted(): Promise<boolean>
  /**
   * Calls `listener` when this or another tab rotates or deletes the key pair. Returns an unsubscribe function.
   * @param listener - receives `'rotated'` or `'deleted'`.
   * @returns the function that removes the listener.
   */
  subscribe(listener: (event: 'rotated' | 'deleted') => void): () => void
  /** Releases the database connection and the cross-tab channel. */
  close(): void
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/

/**
 * Opens the persistent key store of an app and, by default, starts loading its key
 * pair at once.
 *
 * Load-or-create is atomic across tabs: the pair is written in one IndexedDB
 * transaction that adds it only if no pair is there yet, and every tab then uses
 * whatever that transaction left. Two tabs starting together end with one key pair.
 *
 * @param options - the store name, algorithm and fallback; see {@link KeyStoreOptions}.
 * @returns the key store (its key is loading).
 * @throws {DPoPError} `ERR_INVALID_ARGUMENT` for a bad `options.name`;
 *   `ERR_UNSUPPORTED_ALGORITHM` for a bad `options.alg`. IndexedDB failures surface from
 *   `load()`, as {@link KeyStoreError}s.
 * @example
 * ```ts
 * const keys = await openKeyStore({ name: 'my-app' })
 * const keyPair = await keys.load()
 * ```
 */
export async function openKeyStore(options: KeyStoreOptions): Promise<KeyStore> {
  if (
    typeof options !== 'object' ||
    options === null ||
    typeof options.name !== 'string' ||
    !NAME.test(options.name)
  ) {
    throw invalidArgument('"options.name" must be 1-64 of A-Z a-z 0-9 . _ -')
  }
  const { name } = options
  const alg = checkAlgorithm(options.alg ?? KEY_STORE_DEFAULTS.alg, 'options.alg')
  const fallback = options.fallback ?? KEY_STORE_DEFAULTS.fallback
  if (fallback !== 'error' && fallback !== 'memory')
    throw invalidArgument('"options.fallback" must be "error" or "memory".')
  const timeoutMs = options.timeoutMs ?? KEY_STORE_DEFAULTS.timeoutMs
  const factory =
    options.indexedDB === undefined ? defaultIndexedDB() : (options.indexedDB ?? undefined)

  let storage: 'indexeddb' | 'memory' = 'indexeddb'
  let idb: IdbStore | undefined = factory
    ? openIdbStore(`dpop-spa:${name}:keys`, factory, timeoutMs)
    : undefined
  let current: Promise<CryptoKeyPair> | undefined
  let memoryPair: CryptoKeyPair | undefined

  const unavailable = () =>
    new KeyStoreError(
      'ERR_KEY_STORE_UNAVAILABLE',
      `No IndexedDB here: serve the app from a normal page, or ${USE_MEMORY}.`,
    )

  // Only failures of the storage itself may fall back to memory; never crypto failures.
  const canFallBack = (e: unknown) =>
    fallback === 'memory' && e instanceof KeyStoreError && e.code !== 'ERR_KEY_STORE_FAILED'

  const toMemory = (e: KeyStoreError): void => {
    if (storage === 'memory') return
    storage = 'memory'
    idb?.close()
    idb = undefined
    try {
      options.onFallback?.(e)
    } catch {
      // the app's callback must not break key loading
    }
  }

  // A key another tab rotated or deleted: the next load() reads what that tab wrote.
  const events = keyEvents(name, () => {
    current = undefined
  })
  const { announce } = events

  const loadOrCreate = async (): Promise<CryptoKeyPair> => {
    if (storage !== 'memory') {
      try {
        if (!idb) throw unavailable()
        const [pair, replaced] = await loadOrCreatePair(idb.use, alg)
        // An older version's pair of another algorithm is gone, as after rotate(); other tabs reload.
        if (replaced) announce('rotated')
        return pair
      } catch (e) {
        if (!canFallBack(e)) throw e
        toMemory(e as KeyStoreError)
      }
    }
    return (memoryPair ??= await generateKeyPair({ alg }))
  }

  const load = (): Promise<CryptoKeyPair> => {
    if (!current) {
      const loading = loadOrCreate()
      current = loading
      // A failed load must not stick: the next call tries again.
      loading.catch(() => {
        if (current === loading) current = undefined
      })
    }
    return current
  }

  const persisted = askPersistence((options.persist ?? KEY_STORE_DEFAULTS.persist) && !!factory)

  if (options.preload ?? KEY_STORE_DEFAULTS.preload) load().catch(() => undefined)

  const store: KeyStore = {
    name,
    get storage() {
      return storage
    },
    load: (loadOptions) => raceAbort(load(), loadOptions?.signal),
    async rotate() {
      const fresh = await generateKeyPair({ alg })
      if (storage === 'memory') {
        memoryPair = fresh
      } else {
        try {
          if (!idb) throw unavailable()
          await storePair(idb.use, alg, fresh)
        } catch (e) {
          if (!canFallBack(e)) throw e
          toMemory(e as KeyStoreError)
          memoryPair = fresh
        }
      }
      current = Promise.resolve(fresh)
      announce('rotated')
      return fresh
    },
    async delete() {
      current = undefined
      memoryPair = undefined
      if (idb) {
        await del(recordOf(alg), idb.use)
        await idb.destroy()
      }
      announce('deleted')
    },
    async thumbprint(thumbprintOptions) {
      return keyPairThumbprint(await raceAbort(load(), thumbprintOptions?.signal))
    },
    persisted,
    subscribe: events.subscribe,
    close() {
      events.close()
      idb?.close()
    },
  }
  return store
}
