// The key store in real Chromium: structured clone of CryptoKeys into IndexedDB,
// reloads, two tabs racing, rotation seen by other tabs, deletion, broken IndexedDB.
import { expect, test, type Page } from '@playwright/test'

const HARNESS = '/e2e/fixtures/harness.html'

async function open(page: Page, name = 'e2e-keys') {
  await page.goto(HARNESS)
  await page.waitForFunction(() => (window as any).harnessReady === true)
  return page.evaluate(async (n) => {
    const w = window as any
    w.store = await w.dpop.openKeyStore({ name: n })
    return true
  }, name)
}

const thumbprint = (page: Page) => page.evaluate(async () => (window as any).store.thumbprint() as Promise<string>)

test('the key survives a reload and the private key cannot be exported', async ({ page }) => {
  await open(page)
  const first = await thumbprint(page)
  expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/)
  const exported = await page.evaluate(async () => {
    const pair: CryptoKeyPair = await (window as any).store.load()
    const results: string[] = []
    for (const format of ['jwk', 'pkcs8'] as const) {
      try {
        await crypto.subtle.exportKey(format, pair.privateKey)
        results.push(`${format}: exported`)
      } catch (e) {
        results.push(`${format}: ${(e as Error).name}`)
      }
    }
    return { results, extractable: pair.privateKey.extractable, publicExtractable: pair.publicKey.extractable }
  })
  expect(exported).toEqual({ results: ['jwk: InvalidAccessError', 'pkcs8: InvalidAccessError'], extractable: false, publicExtractable: true })
  await page.reload()
  await open(page)
  expect(await thumbprint(page)).toBe(first)
})

test('what IndexedDB holds is the CryptoKeyPair itself, never a JWK with private members', async ({ page }) => {
  await open(page, 'e2e-shape')
  await thumbprint(page)
  const stored = await page.evaluate(() => new Promise<Record<string, string>>((resolve, reject) => {
    const req = indexedDB.open('dpop-spa:e2e-shape:keys')
    req.onsuccess = () => {
      const get = req.result.transaction('keyval').objectStore('keyval').get('keypair')
      get.onsuccess = () => {
        const v = get.result
        resolve({
          privateKey: Object.prototype.toString.call(v.privateKey),
          publicKey: Object.prototype.toString.call(v.publicKey),
          privateExtractable: String(v.privateKey.extractable),
          json: JSON.stringify(v),
        })
        req.result.close()
      }
      get.onerror = () => reject(get.error)
    }
  }))
  expect(stored.privateKey).toBe('[object CryptoKey]')
  expect(stored.publicKey).toBe('[object CryptoKey]')
  expect(stored.privateExtractable).toBe('false')
  expect(stored.json).not.toContain('"d"')
})

test('two pages racing load-or-create end with one thumbprint', async ({ context }) => {
  for (let round = 0; round < 3; round++) {
    const name = `e2e-race-${round}`
    const pages = await Promise.all([context.newPage(), context.newPage(), context.newPage()])
    await Promise.all(pages.map((p) => p.goto(HARNESS)))
    await Promise.all(pages.map((p) => p.waitForFunction(() => (window as any).harnessReady === true)))
    // Start all loads at the same moment: each page waits for a shared BroadcastChannel "go".
    await Promise.all(pages.map((p) => p.evaluate((n) => {
      const w = window as any
      w.racing = new Promise<string>((resolve, reject) => {
        const ch = new BroadcastChannel('race-start')
        ch.onmessage = () => {
          w.dpop.openKeyStore({ name: n }).then((s: any) => s.thumbprint()).then(resolve, reject)
        }
      })
      return true
    }, name)))
    const starter = await context.newPage()
    await starter.goto(HARNESS)
    await starter.evaluate(() => new BroadcastChannel('race-start').postMessage('go'))
    const prints = await Promise.all(pages.map((p) => p.evaluate(() => (window as any).racing as Promise<string>)))
    expect(new Set(prints).size).toBe(1)
    await Promise.all([...pages, starter].map((p) => p.close()))
  }
})

test('rotate() gives a new thumbprint in every tab on its next load', async ({ context }) => {
  const a = await context.newPage()
  const b = await context.newPage()
  await open(a, 'e2e-rotate')
  await open(b, 'e2e-rotate')
  const before = await thumbprint(a)
  expect(await thumbprint(b)).toBe(before)
  const rotated = await a.evaluate(async () => {
    const w = window as any
    const pair = await w.store.rotate()
    return w.dpop.calculateThumbprint(pair.publicKey) as Promise<string>
  })
  expect(rotated).not.toBe(before)
  expect(await thumbprint(a)).toBe(rotated)
  // The other tab hears of it over BroadcastChannel and reloads the pair on its next load().
  await expect.poll(() => thumbprint(b)).toBe(rotated)
})

test('delete() leaves nothing behind in IndexedDB', async ({ page }) => {
  await open(page, 'e2e-delete')
  await thumbprint(page)
  const names = () => page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name))
  expect(await names()).toContain('dpop-spa:e2e-delete:keys')
  await page.evaluate(async () => (window as any).store.delete())
  expect(await names()).not.toContain('dpop-spa:e2e-delete:keys')
})

test('a page where IndexedDB fails gets the typed error, or the memory key it asked for', async ({ page }) => {
  // Make IndexedDB refuse to clone CryptoKeys, as private modes and iOS Lockdown Mode do.
  await page.addInitScript(() => {
    const put = IDBObjectStore.prototype.put
    IDBObjectStore.prototype.put = function (this: IDBObjectStore, value: unknown, key?: IDBValidKey) {
      if (value && typeof value === 'object' && 'privateKey' in value) throw new DOMException('CryptoKey cannot be cloned', 'DataCloneError')
      return put.call(this, value, key)
    }
  })
  await page.goto(HARNESS)
  await page.waitForFunction(() => (window as any).harnessReady === true)
  const result = await page.evaluate(async () => {
    const w = window as any
    const store = await w.dpop.openKeyStore({ name: 'e2e-broken' })
    const error = await store.load().catch((e: any) => e)
    const memory = await w.dpop.openKeyStore({ name: 'e2e-broken', fallback: 'memory' })
    const pair = await memory.load()
    return {
      isDPoPError: w.dpop.isDPoPError(error),
      name: error?.name, code: error?.code, message: String(error?.message),
      memoryStorage: memory.storage, memoryExtractable: pair.privateKey.extractable,
    }
  })
  expect(result).toMatchObject({ isDPoPError: true, name: 'KeyStoreError', code: 'ERR_KEY_STORE_UNSUPPORTED', memoryStorage: 'memory', memoryExtractable: false })
  expect(result.message).toContain('fallback')
})

test('a page without IndexedDB gets ERR_KEY_STORE_UNAVAILABLE, not a raw DOMException', async ({ page }) => {
  await page.addInitScript(() => {
    Object.defineProperty(window, 'indexedDB', { get() { throw new DOMException('denied', 'SecurityError') } })
  })
  await page.goto(HARNESS)
  await page.waitForFunction(() => (window as any).harnessReady === true)
  const result = await page.evaluate(async () => {
    const w = window as any
    const store = await w.dpop.openKeyStore({ name: 'e2e-none' })
    const error = await store.load().catch((e: any) => e)
    return { name: error?.name, code: error?.code }
  })
  expect(result).toEqual({ name: 'KeyStoreError', code: 'ERR_KEY_STORE_UNAVAILABLE' })
})

test('persistent storage is asked for and the answer is exposed', async ({ page }) => {
  await open(page, 'e2e-persist')
  const persisted = await page.evaluate(async () => (window as any).store.persisted())
  expect(typeof persisted).toBe('boolean')
  const actual = await page.evaluate(() => navigator.storage.persisted())
  expect(persisted).toBe(actual)
})
