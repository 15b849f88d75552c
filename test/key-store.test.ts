// Key store logic over fake-indexeddb. Real browser behaviour (structured clone of
// CryptoKeys, tabs, reloads) is covered in e2e/key-store.spec.ts.
import { describe, expect, it } from 'vitest'
import { IDBFactory } from 'fake-indexeddb'
import { openKeyStore } from '../src/key-store/key-store.ts'
import { calculateThumbprint } from '../src/proof/keys.ts'
import { isDPoPError, KeyStoreError } from '../src/base/errors.ts'

const thumb = async (pair: CryptoKeyPair) => calculateThumbprint(pair.publicKey)

describe('openKeyStore', () => {
  it('loads the same pair across store instances (a reload) and creates one the first time', async () => {
    const idb = new IDBFactory()
    const a = await openKeyStore({ name: 'app', indexedDB: idb, persist: false })
    const first = await a.load()
    expect(first.privateKey.extractable).toBe(false)
    a.close()
    const b = await openKeyStore({ name: 'app', indexedDB: idb, persist: false })
    expect(await thumb(await b.load())).toBe(await thumb(first))
    expect(b.storage).toBe('indexeddb')
  })

  it('keeps the algorithm with the key: a changed alg replaces the pair once (told as a rotation), the same alg keeps it', async () => {
    const idb = new IDBFactory()
    const es = await openKeyStore({ name: 'alg', indexedDB: idb, persist: false })
    const esPair = await es.load()
    es.close()
    const ed = await openKeyStore({ name: 'alg', alg: 'EdDSA', indexedDB: idb, persist: false, preload: false })
    const events: string[] = []
    ed.subscribe((e) => events.push(e))
    const edPair = await ed.load()
    expect(edPair.privateKey.algorithm.name).toBe('Ed25519')
    expect(edPair.privateKey.extractable).toBe(false)
    expect(await thumb(edPair)).not.toBe(await thumb(esPair))
    expect(events).toEqual(['rotated'])
    ed.close()
    const again = await openKeyStore({ name: 'alg', alg: 'EdDSA', indexedDB: idb, persist: false })
    expect(await thumb(await again.load())).toBe(await thumb(edPair))
    const rotated = await again.rotate()
    expect(rotated.privateKey.algorithm.name).toBe('Ed25519')
    again.close()
    const back = await openKeyStore({ name: 'alg', indexedDB: idb, persist: false })
    expect((await back.load()).privateKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' })
    back.close()
  })

  it('two stores racing load-or-create end with one key pair', async () => {
    const idb = new IDBFactory()
    const stores = await Promise.all(Array.from({ length: 6 }, () => openKeyStore({ name: 'race', indexedDB: idb, persist: false, preload: false })))
    const pairs = await Promise.all(stores.map((s) => s.load()))
    const prints = new Set(await Promise.all(pairs.map(thumb)))
    expect(prints.size).toBe(1)
  })

  it('rotate() replaces the pair; delete() removes it and the next load creates a new one', async () => {
    const idb = new IDBFactory()
    const store = await openKeyStore({ name: 'rot', indexedDB: idb, persist: false })
    const before = await thumb(await store.load())
    const rotated = await thumb(await store.rotate())
    expect(rotated).not.toBe(before)
    const reopened = await openKeyStore({ name: 'rot', indexedDB: idb, persist: false })
    expect(await thumb(await reopened.load())).toBe(rotated)
    reopened.close()
    await store.delete()
    const dbs = await idb.databases()
    expect(dbs.map((d) => d.name)).not.toContain('dpop-spa:rot:keys')
    const after = await thumb(await store.load())
    expect(after).not.toBe(rotated)
  })

  it('keeps stores of different names apart', async () => {
    const idb = new IDBFactory()
    const a = await openKeyStore({ name: 'a', indexedDB: idb, persist: false })
    const b = await openKeyStore({ name: 'b', indexedDB: idb, persist: false })
    expect(await thumb(await a.load())).not.toBe(await thumb(await b.load()))
  })

  it('without IndexedDB: a typed error, or a memory key when asked for', async () => {
    const store = await openKeyStore({ name: 'none', indexedDB: null, persist: false })
    const error = await store.load().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(KeyStoreError)
    expect(isDPoPError(error, 'ERR_KEY_STORE_UNAVAILABLE')).toBe(true)
    expect((error as Error).message).toContain('fallback')

    const memory = await openKeyStore({ name: 'none', indexedDB: null, fallback: 'memory', persist: false })
    const pair = await memory.load()
    expect(memory.storage).toBe('memory')
    expect(pair.privateKey.extractable).toBe(false)
    expect(await thumb(await memory.load())).toBe(await thumb(pair))
  })

  it('maps a DataCloneError (private modes) to ERR_KEY_STORE_UNSUPPORTED', async () => {
    const idb = new IDBFactory()
    const realOpen = idb.open.bind(idb)
    // Wrap the object store so put() throws as Safari/iOS Lockdown do for CryptoKeys.
    idb.open = ((name: string, version?: number) => {
      const req = realOpen(name, version)
      req.addEventListener('success', () => {
        const db = req.result
        const tx = db.transaction.bind(db)
        db.transaction = ((names: string | string[], mode?: IDBTransactionMode) => {
          const t = tx(names, mode)
          const os = t.objectStore.bind(t)
          t.objectStore = ((n: string) => {
            const store = os(n)
            store.put = () => { throw new DOMException('CryptoKey cannot be cloned', 'DataCloneError') }
            return store
          })
          return t
        }) as typeof db.transaction
      })
      return req
    })
    const store = await openKeyStore({ name: 'clone', indexedDB: idb, persist: false })
    const error = await store.load().catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_KEY_STORE_UNSUPPORTED')).toBe(true)
    expect(error).toBeInstanceOf(KeyStoreError)
    expect((error as Error).cause).toBeInstanceOf(DOMException)

    const fallback = await openKeyStore({ name: 'clone', indexedDB: idb, fallback: 'memory', persist: false })
    await fallback.load()
    expect(fallback.storage).toBe('memory')
  })

  it('an open that errors gives ERR_KEY_STORE_UNAVAILABLE; a blocked open times out instead of hanging', async () => {
    const failing = {
      open() {
        const req = {} as IDBOpenDBRequest & { onerror: (() => void) | null }
        queueMicrotask(() => {
          Object.defineProperty(req, 'error', { value: new DOMException('nope', 'InvalidStateError') })
          req.onerror?.()
        })
        return req
      },
    } as unknown as IDBFactory
    const store = await openKeyStore({ name: 'fail', indexedDB: failing, persist: false })
    expect(isDPoPError(await store.load().catch((e: unknown) => e), 'ERR_KEY_STORE_UNAVAILABLE')).toBe(true)

    const hanging = { open: () => ({}) as IDBOpenDBRequest } as unknown as IDBFactory
    const slow = await openKeyStore({ name: 'hang', indexedDB: hanging, persist: false, timeoutMs: 50 })
    const e = await slow.load().catch((x: unknown) => x)
    expect(isDPoPError(e, 'ERR_KEY_STORE_UNAVAILABLE')).toBe(true)
    expect((e as Error).message).toMatch(/did not answer/)
  })

  it('ignores a stored record whose private key is extractable', async () => {
    const idb = new IDBFactory()
    const bad = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
    const store = await openKeyStore({ name: 'tampered', indexedDB: idb, persist: false, preload: false })
    // Write a record shaped like ours, with an extractable private key.
    await new Promise<void>((resolve, reject) => {
      const req = idb.open('dpop-spa:tampered:keys')
      req.onupgradeneeded = () => req.result.createObjectStore('keyval')
      req.onsuccess = () => {
        const tx = req.result.transaction('keyval', 'readwrite')
        tx.objectStore('keyval').put({ v: 1, ...bad }, 'keypair')
        tx.oncomplete = () => { req.result.close(); resolve() }
        tx.onerror = () => reject(tx.error)
      }
    })
    const pair = await store.load()
    expect(pair.privateKey.extractable).toBe(false)
    expect(await thumb(pair)).not.toBe(await thumb(bad))
  })

  it('load() honours an AbortSignal', async () => {
    const hanging = { open: () => ({}) as IDBOpenDBRequest } as unknown as IDBFactory
    const store = await openKeyStore({ name: 'abort', indexedDB: hanging, persist: false, timeoutMs: 60_000 })
    const controller = new AbortController()
    const p = store.load({ signal: controller.signal })
    controller.abort(new DOMException('stop', 'AbortError'))
    await expect(p).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('validates its options at the boundary', async () => {
    for (const name of ['', 'a b', 'x'.repeat(65)]) {
      expect(isDPoPError(await openKeyStore({ name }).catch((e: unknown) => e), 'ERR_INVALID_ARGUMENT')).toBe(true)
    }
    expect(isDPoPError(await openKeyStore({ name: 'ok', alg: 'RS256' as never }).catch((e: unknown) => e), 'ERR_UNSUPPORTED_ALGORITHM')).toBe(true)
  })

  it('subscribers in this and other tabs hear of rotate() and delete()', async () => {
    const idb = new IDBFactory()
    const a = await openKeyStore({ name: 'events', indexedDB: idb, persist: false })
    const b = await openKeyStore({ name: 'events', indexedDB: idb, persist: false })
    const heardA: string[] = []
    const heardB: string[] = []
    a.subscribe((e) => heardA.push(e))
    const unsubscribe = b.subscribe((e) => heardB.push(e))
    const before = await thumb(await b.load())
    const rotated = await thumb(await a.rotate())
    await expect.poll(() => heardB).toEqual(['rotated'])
    expect(heardA).toEqual(['rotated'])
    expect(await thumb(await b.load())).toBe(rotated)
    expect(rotated).not.toBe(before)
    unsubscribe()
    await a.delete()
    expect(heardA).toEqual(['rotated', 'deleted'])
    a.close()
    b.close()
  })

  it('persisted() does not wait for a permission prompt nobody answers (Firefox): it reports the grant so far', async () => {
    const storage = navigator.storage as unknown
    let granted = false
    let asked = 0
    Object.defineProperty(navigator, 'storage', {
      configurable: true,
      value: {
        persist: () => { asked++; return new Promise<boolean>(() => undefined) }, // the prompt stays open
        persisted: () => Promise.resolve(granted),
      },
    })
    try {
      const store = await openKeyStore({ name: 'prompt', indexedDB: new IDBFactory(), preload: false })
      const started = Date.now()
      expect(await store.persisted()).toBe(false)
      expect(Date.now() - started).toBeLessThan(3_000)
      granted = true // the user said yes later
      expect(await store.persisted()).toBe(true)
      expect(asked).toBe(1)
      store.close()
    } finally {
      Object.defineProperty(navigator, 'storage', { configurable: true, value: storage })
    }
  })
})
