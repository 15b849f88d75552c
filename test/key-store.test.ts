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

  it('keeps one pair per algorithm: two app versions with different alg keep their own keys (issue 19)', async () => {
    const idb = new IDBFactory()
    const es = await openKeyStore({ name: 'alg', indexedDB: idb, persist: false })
    const esPair = await es.load()
    es.close()
    const ed = await openKeyStore({
      name: 'alg',
      alg: 'EdDSA',
      indexedDB: idb,
      persist: false,
      preload: false,
    })
    const events: string[] = []
    ed.subscribe((e) => events.push(e))
    const edPair = await ed.load()
    expect(edPair.privateKey.algorithm.name).toBe('Ed25519')
    expect(edPair.privateKey.extractable).toBe(false)
    expect(await thumb(edPair)).not.toBe(await thumb(esPair))
    // The ES256 pair was left alone: nothing was replaced, so nothing is told to other tabs.
    expect(events).toEqual([])
    ed.close()
    // Back and forth, as old and new tabs load during a deploy: each finds its own pair.
    for (let round = 0; round < 2; round++) {
      const back = await openKeyStore({ name: 'alg', indexedDB: idb, persist: false })
      expect(await thumb(await back.load())).toBe(await thumb(esPair))
      back.close()
      const again = await openKeyStore({
        name: 'alg',
        alg: 'EdDSA',
        indexedDB: idb,
        persist: false,
      })
      expect(await thumb(await again.load())).toBe(await thumb(edPair))
      again.close()
    }
    // rotate() replaces the pair of its own algorithm only.
    const rotating = await openKeyStore({
      name: 'alg',
      alg: 'EdDSA',
      indexedDB: idb,
      persist: false,
    })
    const rotated = await rotating.rotate()
    expect(rotated.privateKey.algorithm.name).toBe('Ed25519')
    rotating.close()
    const es2 = await openKeyStore({ name: 'alg', indexedDB: idb, persist: false })
    expect(await thumb(await es2.load())).toBe(await thumb(esPair))
    es2.close()
  })

  it('an EdDSA pair an older version kept under the ES256 record is replaced once, told as a rotation', async () => {
    const idb = new IDBFactory()
    const old = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])
    await new Promise<void>((resolve, reject) => {
      const req = idb.open('dpop-spa:legacy:keys')
      req.onupgradeneeded = () => req.result.createObjectStore('keyval')
      req.onsuccess = () => {
        const tx = req.result.transaction('keyval', 'readwrite')
        tx.objectStore('keyval').put(
          { v: 1, alg: 'EdDSA', privateKey: old.privateKey, publicKey: old.publicKey },
          'keypair',
        )
        tx.oncomplete = () => {
          req.result.close()
          resolve()
        }
        tx.onerror = () => reject(tx.error)
      }
    })
    const es = await openKeyStore({
      name: 'legacy',
      indexedDB: idb,
      persist: false,
      preload: false,
    })
    const events: string[] = []
    es.subscribe((e) => events.push(e))
    expect((await es.load()).privateKey.algorithm).toMatchObject({
      name: 'ECDSA',
      namedCurve: 'P-256',
    })
    expect(events).toEqual(['rotated'])
    es.close()
  })

  it('two stores racing load-or-create end with one key pair', async () => {
    const idb = new IDBFactory()
    const stores = await Promise.all(
      Array.from({ length: 6 }, () =>
        openKeyStore({ name: 'race', indexedDB: idb, persist: false, preload: false }),
      ),
    )
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

    const memory = await openKeyStore({
      name: 'none',
      indexedDB: null,
      fallback: 'memory',
      persist: false,
    })
    const pair = await memory.load()
    expect(memory.storage).toBe('memory')
    expect(pair.privateKey.extractable).toBe(false)
    expect(await thumb(await memory.load())).toBe(await thumb(pair))
  })

  it('maps a DataCloneError (private modes) to ERR_KEY_STORE_UNSUPPORTED', async () => {
    const idb = new IDBFactory()
    const realOpen = idb.open.bind(idb)
    // Wrap the object store so put() throws as Safari/iOS Lockdown do for CryptoKeys.
    idb.open = (name: string, version?: number) => {
      const req = realOpen(name, version)
      req.addEventListener('success', () => {
        const db = req.result
        const tx = db.transaction.bind(db)
        db.transaction = ((names: string | string[], mode?: IDBTransactionMode) => {
          const t = tx(names, mode)
          const os = t.objectStore.bind(t)
          t.objectStore = (n: string) => {
            const store = os(n)
            store.put = () => {
              throw new DOMException('CryptoKey cannot be cloned', 'DataCloneError')
            }
            return store
          }
          return t
        }) as typeof db.transaction
      })
      return req
    }
    const store = await openKeyStore({ name: 'clone', indexedDB: idb, persist: false })
    const error = await store.load().catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_KEY_STORE_UNSUPPORTED')).toBe(true)
    expect(error).toBeInstanceOf(KeyStoreError)
    expect((error as Error).cause).toBeInstanceOf(DOMException)

    const fallback = await openKeyStore({
      name: 'clone',
      indexedDB: idb,
      fallback: 'memory',
      persist: false,
    })
    await fallback.load()
    expect(fallback.storage).toBe('memory')
  })

  it('an open that errors gives ERR_KEY_STORE_UNAVAILABLE; a blocked open times out instead of hanging', async () => {
    const failing = {
      open() {
        const req = {} as IDBOpenDBRequest & { onerror: (() => void) | null }
        queueMicrotask(() => {
          Object.defineProperty(req, 'error', {
            value: new DOMException('nope', 'InvalidStateError'),
          })
          req.onerror?.()
        })
        return req
      },
    } as unknown as IDBFactory
    const store = await openKeyStore({ name: 'fail', indexedDB: failing, persist: false })
    expect(
      isDPoPError(await store.load().catch((e: unknown) => e), 'ERR_KEY_STORE_UNAVAILABLE'),
    ).toBe(true)

    const hanging = { open: () => ({}) as IDBOpenDBRequest } as unknown as IDBFactory
    const slow = await openKeyStore({
      name: 'hang',
      indexedDB: hanging,
      persist: false,
      timeoutMs: 50,
    })
    const e = await slow.load().catch((x: unknown) => x)
    expect(isDPoPError(e, 'ERR_KEY_STORE_UNAVAILABLE')).toBe(true)
    expect((e as Error).message).toMatch(/did not answer/)
  })

  it('ignores a stored record whose private key is extractable', async () => {
    const idb = new IDBFactory()
    const bad = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])
    const store = await openKeyStore({
      name: 'tampered',
      indexedDB: idb,
      persist: false,
      preload: false,
    })
    // Write a record shaped like ours, with an extractable private key.
    await new Promise<void>((resolve, reject) => {
      const req = idb.open('dpop-spa:tampered:keys')
      req.onupgradeneeded = () => req.result.createObjectStore('keyval')
      req.onsuccess = () => {
        const tx = req.result.transaction('keyval', 'readwrite')
        tx.objectStore('keyval').put({ v: 1, ...bad }, 'keypair')
        tx.oncomplete = () => {
          req.result.close()
          resolve()
        }
        tx.onerror = () => reject(tx.error)
      }
    })
    const pair = await store.load()
    expect(pair.privateKey.extractable).toBe(false)
    expect(await thumb(pair)).not.toBe(await thumb(bad))
  })

  it('load() honours an AbortSignal', async () => {
    const hanging = { open: () => ({}) as IDBOpenDBRequest } as unknown as IDBFactory
    const store = await openKeyStore({
      name: 'abort',
      indexedDB: hanging,
      persist: false,
      timeoutMs: 60_000,
    })
    const controller = new AbortController()
    const p = store.load({ signal: controller.signal })
    controller.abort(new DOMException('stop', 'AbortError'))
    await expect(p).rejects.toMatchObject({ name: 'AbortError' })
  })

  it('validates its options at the boundary', async () => {
    for (const name of ['', 'a b', 'x'.repeat(65)]) {
      expect(
        isDPoPError(await openKeyStore({ name }).catch((e: unknown) => e), 'ERR_INVALID_ARGUMENT'),
      ).toBe(true)
    }
    expect(
      isDPoPError(
        await openKeyStore({ name: 'ok', alg: 'RS256' as never }).catch((e: unknown) => e),
        'ERR_UNSUPPORTED_ALGORITHM',
      ),
    ).toBe(true)
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
        persist: () => {
          asked++
          return new Promise<boolean>(() => undefined)
        }, // the prompt stays open
        persisted: () => Promise.resolve(granted),
      },
    })
    try {
      const store = await openKeyStore({
        name: 'prompt',
        indexedDB: new IDBFactory(),
        preload: false,
      })
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

  it('re-creates an object store that script of this origin deleted, instead of failing (or falling back) for good (issue 19)', async () => {
    const idb = new IDBFactory()
    const first = await openKeyStore({ name: 'gone', indexedDB: idb, persist: false })
    await first.load()
    first.close()
    // Same-origin script deletes our object store (a version upgrade of our database).
    await new Promise<void>((resolve, reject) => {
      const probe = idb.open('dpop-spa:gone:keys')
      probe.onsuccess = () => {
        const version = probe.result.version
        probe.result.close()
        const req = idb.open('dpop-spa:gone:keys', version + 1)
        req.onupgradeneeded = () => req.result.deleteObjectStore('keyval')
        req.onsuccess = () => {
          req.result.close()
          resolve()
        }
        req.onerror = () => reject(req.error)
      }
    })
    const fallbacks: string[] = []
    const store = await openKeyStore({
      name: 'gone',
      indexedDB: idb,
      persist: false,
      fallback: 'memory',
      onFallback: (e) => fallbacks.push(e.code),
    })
    const pair = await store.load()
    expect(fallbacks).toEqual([])
    expect(store.storage).toBe('indexeddb')
    store.close()
    const reloaded = await openKeyStore({ name: 'gone', indexedDB: idb, persist: false })
    expect(await thumb(await reloaded.load())).toBe(await thumb(pair))
    reloaded.close()
  })

  it('announces a memory fallback once, with the storage error, through onFallback', async () => {
    const seen: string[] = []
    const store = await openKeyStore({
      name: 'announce',
      indexedDB: null,
      fallback: 'memory',
      persist: false,
      onFallback: (e) => seen.push(`${e.name}:${e.code}`),
    })
    await store.load()
    await store.rotate()
    expect(seen).toEqual(['KeyStoreError:ERR_KEY_STORE_UNAVAILABLE'])
  })

  it('guard: ERR_KEY_STORE_FAILED (not a storage refusal) never falls back to memory, even when asked', async () => {
    const idb = new IDBFactory()
    const realOpen = idb.open.bind(idb)
    // A put() that fails in a way no browser's storage refusal does: a TypeError.
    idb.open = (name: string, version?: number) => {
      const req = realOpen(name, version)
      req.addEventListener('success', () => {
        const db = req.result
        const tx = db.transaction.bind(db)
        db.transaction = ((names: string | string[], mode?: IDBTransactionMode) => {
          const t = tx(names, mode)
          const os = t.objectStore.bind(t)
          t.objectStore = (n: string) => {
            const store = os(n)
            store.put = () => {
              throw new TypeError('not storage')
            }
            return store
          }
          return t
        }) as typeof db.transaction
      })
      return req
    }
    const fallbacks: string[] = []
    const store = await openKeyStore({
      name: 'failed',
      indexedDB: idb,
      fallback: 'memory',
      persist: false,
      onFallback: (e) => fallbacks.push(e.code),
    })
    const error = await store.load().catch((e: unknown) => e)
    expect(isDPoPError(error, 'ERR_KEY_STORE_FAILED')).toBe(true)
    expect(store.storage).toBe('indexeddb')
    expect(fallbacks).toEqual([])
  })

  it('guard: a message on the key channel other than "rotated" or "deleted" is ignored (the cached key stays)', async () => {
    const idb = new IDBFactory()
    const store = await openKeyStore({ name: 'whitelist', indexedDB: idb, persist: false })
    const heard: unknown[] = []
    store.subscribe((e) => heard.push(e))
    const before = await store.load()
    const other = new BroadcastChannel('dpop-spa:whitelist:keys')
    for (const junk of ['bogus', { type: 'rotated' }, null, 42]) other.postMessage(junk)
    // A second tab writes a new pair without telling anyone; a real "rotated" would make us read it.
    await new Promise((r) => setTimeout(r, 50))
    expect(heard).toEqual([])
    expect(await store.load()).toBe(before)
    other.postMessage('rotated')
    await expect.poll(() => heard).toEqual(['rotated'])
    other.close()
    store.close()
  })

  it('a throwing subscriber does not fail rotate() or keep the other subscribers from hearing it', async () => {
    const store = await openKeyStore({
      name: 'throwing',
      indexedDB: new IDBFactory(),
      persist: false,
    })
    const heard: string[] = []
    store.subscribe(() => {
      throw new Error('listener bug')
    })
    store.subscribe((e) => heard.push(e))
    const before = await thumb(await store.load())
    const rotated = await store.rotate()
    expect(await thumb(rotated)).not.toBe(before)
    expect(heard).toEqual(['rotated'])
    store.close()
  })
})
