/**
 * A database of our own per store, opened with care: idb-keyval's `createStore` opens
 * without a version (so only the first object store of a database ever exists) and
 * waits forever on a blocked open. This opener gives each store its own database,
 * times out, re-opens after another tab deletes the database, and turns IndexedDB
 * failures into {@link KeyStoreError}s that say what to do.
 */
import type { UseStore } from 'idb-keyval'
import { KeyStoreError, type DPoPErrorCode } from '../base/errors.js'

const OBJECT_STORE = 'keyval'

/** @internal The advice for storage that cannot keep the key. */
export const USE_MEMORY = 'pass fallback: "memory" to openKeyStore() for a key that lasts one page'

/** @internal An idb-keyval compatible store, plus close and deleteDatabase. */
export interface IdbStore {
  readonly use: UseStore
  close(): void
  destroy(): Promise<void>
}

/** @internal The IndexedDB of this context, or undefined when there is none. */
export function defaultIndexedDB(): IDBFactory | undefined {
  try {
    return globalThis.indexedDB ?? undefined
  } catch {
    // Some sandboxed iframes throw SecurityError on mere access.
    return undefined
  }
}

function requestPromise<T>(request: IDBRequest<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new KeyStoreError(
          'ERR_KEY_STORE_UNAVAILABLE',
          `IndexedDB did not answer within ${timeoutMs} ms while ${what}: close other tabs of this app and reload.`,
        ),
      )
    }, timeoutMs)
    request.onsuccess = () => {
      clearTimeout(timer)
      resolve(request.result)
    }
    request.onerror = () => {
      clearTimeout(timer)
      reject(request.error ?? new DOMException('IndexedDB request failed', 'UnknownError'))
    }
  })
}

/** @internal Opens (lazily) the database `dbName` with one object store. */
export function openIdbStore(dbName: string, factory: IDBFactory, timeoutMs: number): IdbStore {
  let db: Promise<IDBDatabase> | undefined

  const connect = (version?: number): Promise<IDBDatabase> => {
    let request: IDBOpenDBRequest
    try {
      request = factory.open(dbName, version)
    } catch (cause) {
      return Promise.reject(toKeyStoreError(cause, 'opening IndexedDB'))
    }
    request.onupgradeneeded = () => {
      if (!request.result.objectStoreNames.contains(OBJECT_STORE))
        request.result.createObjectStore(OBJECT_STORE)
    }
    return requestPromise(request, timeoutMs, 'opening the database').then((opened) => {
      // Script of this origin (or an older version of the app) may have deleted our object
      // store: re-create it with an upgrade, or every transaction would fail for good and a
      // memory fallback would become permanent. Once only: a second miss is a real failure.
      if (opened.objectStoreNames.contains(OBJECT_STORE) || version !== undefined) return opened
      opened.close()
      return connect(opened.version + 1)
    })
  }

  const open = (): Promise<IDBDatabase> => {
    if (db) return db
    const p = connect().then(
      (opened) => {
        // Another tab deleting or upgrading this database: let it, and re-open on next use.
        opened.onversionchange = () => {
          opened.close()
          if (db === p) db = undefined
        }
        opened.onclose = () => {
          if (db === p) db = undefined
        }
        return opened
      },
      (cause: unknown) => {
        if (db === p) db = undefined
        throw toKeyStoreError(cause, 'opening IndexedDB')
      },
    )
    db = p
    return p
  }

  const use: UseStore = async (mode, callback) => {
    for (let attempt = 0; ; attempt++) {
      const conn = await open()
      let tx: IDBTransaction
      try {
        tx = conn.transaction(OBJECT_STORE, mode)
      } catch (cause) {
        // The connection was closed under us (versionchange): open once more.
        db = undefined
        if (attempt === 0) continue
        throw toKeyStoreError(cause, 'starting a transaction')
      }
      try {
        return await callback(tx.objectStore(OBJECT_STORE))
      } catch (cause) {
        throw toKeyStoreError(cause, mode === 'readonly' ? 'reading' : 'writing')
      }
    }
  }

  return {
    use,
    close() {
      const current = db
      db = undefined
      current?.then(
        (c) => c.close(),
        () => undefined,
      )
    },
    async destroy() {
      this.close()
      const request = factory.deleteDatabase(dbName)
      // A tab that does not close its connection blocks deletion; the records are
      // already gone by then, so a bounded wait is enough.
      await requestPromise(request, timeoutMs, 'deleting the database').catch(() => undefined)
    },
  }
}

/** Maps whatever IndexedDB threw to a typed error with advice. */
function toKeyStoreError(cause: unknown, doing: string): KeyStoreError {
  if (cause instanceof KeyStoreError) return cause
  const name = cause instanceof Error || cause instanceof DOMException ? cause.name : ''
  const [code, advice]: [DPoPErrorCode, string] =
    name === 'DataCloneError'
      ? [
          'ERR_KEY_STORE_UNSUPPORTED',
          `this browser cannot store CryptoKeys (private mode?). ${USE_MEMORY}`,
        ]
      : name === 'QuotaExceededError'
        ? ['ERR_KEY_STORE_QUOTA', 'out of storage quota. Free site data']
        : /^(InvalidState|Security|Unknown|NotFound|Version|Abort)Error$/.test(name)
          ? [
              'ERR_KEY_STORE_UNAVAILABLE',
              `IndexedDB refused (storage off?). Enable site storage, or ${USE_MEMORY}`,
            ]
          : ['ERR_KEY_STORE_FAILED', 'reload, or else clear site data']
  return new KeyStoreError(code, `Key storage failed while ${doing} (${name}): ${advice}.`, {
    cause,
  })
}

/** How long persisted() waits for the answer to persist() before reading the current grant. */
const PERSIST_ANSWER_MS = 1_000

/**
 * @internal Asks the browser for persistent storage once; the function reports the answer. Firefox
 * answers `persist()` only when the user answers its permission prompt, which may be never:
 * after a short wait, it reports what the browser has granted so far instead.
 */
export function askPersistence(ask: boolean): () => Promise<boolean> {
  const request =
    ask && typeof navigator !== 'undefined' && typeof navigator.storage?.persist === 'function'
      ? navigator.storage.persist().catch(() => false)
      : undefined
  return () =>
    request
      ? Promise.race([
          request,
          new Promise<boolean>((resolve) =>
            setTimeout(() => {
              navigator.storage.persisted().then(resolve, () => resolve(false))
            }, PERSIST_ANSWER_MS),
          ),
        ])
      : Promise.resolve(false)
}
