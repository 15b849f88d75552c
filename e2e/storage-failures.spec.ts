// Storage behaviours of browsers we cannot run here, simulated in every installed engine
// (e2e/fixtures/simulate.js does it in the page, before the library loads):
// - Safari Lockdown Mode / private modes: IndexedDB refuses to store a CryptoKey (DataCloneError);
// - no IndexedDB at all, or access to it denied (sandboxed frames);
// - Safari ITP: script-writable storage deleted after 7 days without interaction. Here the key's
//   database goes while the session's (or other app state) stays, the worst case for the app.
// The documented outcome: a typed KeyStoreError, or the memory key the app opted in to; and a
// clean logout with reason 'key-mismatch', never a session bound to a key this browser lacks.
import { expect, test, type Tab } from './driver.ts'
import { openApp, refreshes, resetAuthServer, signIn, stats, thumbprint } from './token-app.ts'

const HARNESS = '/e2e/fixtures/harness.html'

async function openHarness(tab: Tab, simulate: string) {
  await tab.goto(`${HARNESS}?simulate=${simulate}`)
  await tab.waitFor(() => window.harnessReady === true)
  expect(await tab.evaluate(() => window.simulated)).toBe(simulate)
}

test('DataCloneError (Lockdown Mode, private modes): ERR_KEY_STORE_UNSUPPORTED, or the memory key the app asked for', async ({
  driver,
}) => {
  const page = driver.page
  await openHarness(page, 'dataclone')
  const result = await page.evaluate(async () => {
    const w = window
    const store = await w.dpop.openKeyStore({ name: 'e2e-broken' })
    const error = await store.load().catch((e: any) => e)
    const memory = await w.dpop.openKeyStore({ name: 'e2e-broken', fallback: 'memory' })
    const pair = await memory.load()
    return {
      isDPoPError: w.dpop.isDPoPError(error),
      name: error?.name,
      code: error?.code,
      message: String(error?.message),
      causeName: error?.cause?.name,
      memoryStorage: memory.storage,
      memoryExtractable: pair.privateKey.extractable,
      memoryThumbprint: await memory.thumbprint(),
    }
  })
  expect(result).toMatchObject({
    isDPoPError: true,
    name: 'KeyStoreError',
    code: 'ERR_KEY_STORE_UNSUPPORTED',
    causeName: 'DataCloneError',
    memoryStorage: 'memory',
    memoryExtractable: false,
  })
  expect(result.message).toContain('fallback')
  expect(result.memoryThumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/)
})

for (const simulate of ['no-indexeddb', 'idb-denied']) {
  test(`${simulate}: ERR_KEY_STORE_UNAVAILABLE, not a raw DOMException; memory key on request`, async ({
    driver,
  }) => {
    const page = driver.page
    await openHarness(page, simulate)
    const result = await page.evaluate(async () => {
      const w = window
      const store = await w.dpop.openKeyStore({ name: 'e2e-none' })
      const error = await store.load().catch((e: any) => e)
      const memory = await w.dpop.openKeyStore({ name: 'e2e-none', fallback: 'memory' })
      const pair: CryptoKeyPair = await memory.load()
      return {
        name: error?.name,
        code: error?.code,
        storage: memory.storage,
        extractable: pair.privateKey.extractable,
        persisted: await memory.persisted(),
      }
    })
    expect(result).toEqual({
      name: 'KeyStoreError',
      code: 'ERR_KEY_STORE_UNAVAILABLE',
      storage: 'memory',
      extractable: false,
      persisted: false,
    })
  })
}

test('the client on a DataCloneError browser: typed start-up error, or a memory-key client when opted in', async ({
  driver,
}) => {
  const page = driver.page
  await openApp(page, '&simulate=dataclone&name=e2e-dataclone')
  expect(await page.evaluate(() => window.startError ?? null)).toMatchObject({
    name: 'KeyStoreError',
    code: 'ERR_KEY_STORE_UNSUPPORTED',
  })
  await openApp(page, '&simulate=dataclone&name=e2e-dataclone&fallback=memory')
  const opted = await page.evaluate(async () => {
    const w = window
    return {
      startError: w.startError ?? null,
      storage: w.auth?.keys.storage,
      jkt: await w.auth?.keys.thumbprint(),
      status: document.getElementById('status')?.textContent,
    }
  })
  expect(opted).toMatchObject({ startError: null, storage: 'memory', status: 'signed-out' })
  expect(opted.jkt).toMatch(/^[A-Za-z0-9_-]{43}$/)
})

test('Safari ITP deletes the key database while the session database stays: logout key-mismatch, signed out, a new key', async ({
  driver,
}) => {
  const page = driver.page
  await resetAuthServer()
  await signIn(page, 'itp-user', '&name=e2e-itp')
  const oldJkt = await thumbprint(page)
  // ITP's 7-day cap: the key's database is gone; the session's (and the app's localStorage) remain.
  const left = await page.evaluate(async () => {
    const w = window
    w.auth.close() // this tab's connections, so the deletion is not blocked
    localStorage.setItem('app-state', 'signed-in') // what an app might keep elsewhere
    await new Promise<void>((resolve, reject) => {
      const req = indexedDB.deleteDatabase('dpop-spa:e2e-itp:keys')
      req.onsuccess = () => resolve()
      req.onerror = () => reject(req.error)
      req.onblocked = () => reject(new Error('delete blocked'))
    })
    const session = await new Promise<boolean>((resolve) => {
      const req = indexedDB.open('dpop-spa:e2e-itp:session')
      req.onsuccess = () => {
        const get = req.result.transaction('keyval').objectStore('keyval').count('session')
        get.onsuccess = () => {
          resolve(get.result === 1)
          req.result.close()
        }
      }
    })
    return { session, appState: localStorage.getItem('app-state') }
  })
  expect(left).toEqual({ session: true, appState: 'signed-in' })
  await page.reload()
  await page.waitFor(() => window.ready === true)
  const after = await page.evaluate(async () => {
    const w = window
    return {
      status: document.getElementById('status')?.textContent,
      authenticated: w.auth.isAuthenticated(),
      events: w.events,
      startError: w.startError ?? null,
      jkt: await w.auth.keys.thumbprint(),
      token: (await w.auth.getAccessToken()) ?? null,
    }
  })
  expect(after).toMatchObject({
    status: 'signed-out',
    authenticated: false,
    startError: null,
    token: null,
  })
  expect(after.events).toEqual([{ type: 'logout', reason: 'key-mismatch' }])
  expect(after.jkt).not.toBe(oldJkt)
  // The dropped session is gone from storage too: the next reload starts clean, without another event.
  await page.reload()
  await page.waitFor(() => window.ready === true)
  expect(await page.evaluate(() => window.events)).toEqual([])
  // And a new login binds the new key.
  await signIn(page, 'itp-user')
  expect(await thumbprint(page)).toBe(after.jkt)
  expect((await stats()).authorizations.map((a) => a.dpopJkt)).toEqual([oldJkt, after.jkt])
})

// Issue 19: a transient IndexedDB failure (Safari's "connection lost") on a page with
// storageFallback: 'memory'. The page is told (a storage-fallback event); a logout there must
// stick: the next normal load does not restore the old session, whose key is gone.
for (const recovered of [true, false]) {
  test(`a logout on a memory-fallback page sticks (storage ${recovered ? 'back by then' : 'still failing then: the next load ends it'})`, async ({
    driver,
  }) => {
    const page = driver.page
    const name = `e2e-lost-${recovered ? 'a' : 'b'}`
    await resetAuthServer()
    await signIn(page, 'lost-user', `&name=${name}&simulate=&fallback=error`)
    const oldJkt = await thumbprint(page)

    await openApp(page, `&name=${name}&simulate=idb-lost&fallback=memory`)
    const memory = await page.evaluate(() => ({
      status: document.getElementById('status')?.textContent,
      storage: window.auth.keys.storage,
      events: window.events,
      startError: window.startError ?? null,
    }))
    expect(memory).toMatchObject({ status: 'signed-out', storage: 'memory', startError: null })
    expect(memory.events).toEqual([
      expect.objectContaining({ type: 'storage-fallback', code: 'ERR_KEY_STORE_UNAVAILABLE' }),
    ])
    await page.evaluate(async (back) => {
      if (back) window.idbRecovered = true
      await window.auth.logout()
    }, recovered)

    await openApp(page, `&name=${name}&simulate=&fallback=error`)
    const after = await page.evaluate(async () => ({
      status: document.getElementById('status')?.textContent,
      storage: window.auth.keys.storage,
      events: window.events,
      token: (await window.auth.getAccessToken()) ?? null,
      jkt: await window.auth.keys.thumbprint(),
    }))
    expect(after).toMatchObject({ status: 'signed-out', storage: 'indexeddb', token: null })
    expect(after.jkt).not.toBe(oldJkt)
    // Ended on the memory page itself when storage was back, else on this load, told once.
    expect(after.events).toEqual(recovered ? [] : [{ type: 'logout', reason: 'storage-fallback' }])
    expect(refreshes(await stats())).toBe(0)
    await page.reload()
    await page.waitFor(() => window.ready === true)
    expect(await page.evaluate(() => window.events)).toEqual([])
  })
}

test('an object store deleted by same-origin script is re-created: no permanent memory fallback', async ({
  driver,
}) => {
  const page = driver.page
  await resetAuthServer()
  await openApp(page, '&name=e2e-nostore&simulate=&fallback=memory')
  expect(await page.evaluate(() => window.auth.keys.storage)).toBe('indexeddb')
  await page.evaluate(async () => {
    window.auth.close()
    const db = await new Promise<IDBDatabase>((resolve, reject) => {
      const probe = indexedDB.open('dpop-spa:e2e-nostore:keys')
      probe.onsuccess = () => resolve(probe.result)
      probe.onerror = () => reject(probe.error)
    })
    const version = db.version
    db.close()
    await new Promise<void>((resolve, reject) => {
      const req = indexedDB.open('dpop-spa:e2e-nostore:keys', version + 1)
      req.onupgradeneeded = () => req.result.deleteObjectStore('keyval')
      req.onsuccess = () => {
        req.result.close()
        resolve()
      }
      req.onerror = () => reject(req.error)
      req.onblocked = () => reject(new Error('blocked'))
    })
  })
  for (let load = 0; load < 2; load++) {
    await page.reload()
    await page.waitFor(() => window.ready === true)
    const state = await page.evaluate(async () => ({
      storage: window.auth.keys.storage,
      events: window.events,
      jkt: await window.auth.keys.thumbprint(),
    }))
    expect(state.storage).toBe('indexeddb')
    expect(state.events).toEqual([])
    expect(state.jkt).toMatch(/^[A-Za-z0-9_-]{43}$/)
  }
})
