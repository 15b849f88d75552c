// The key store in every installed engine: structured clone of CryptoKeys into IndexedDB,
// reloads, two tabs racing, rotation seen by other tabs, deletion, broken IndexedDB.
import { expect, test, type Tab } from './driver.ts'

const HARNESS = '/e2e/fixtures/harness.html'

async function open(tab: Tab, name = 'e2e-keys', query = '') {
  await tab.goto(`${HARNESS}${query}`)
  await tab.waitFor(() => window.harnessReady === true)
  return tab.evaluate(async (n) => {
    const w = window
    w.store = await w.dpop.openKeyStore({ name: n })
    return true
  }, name)
}

const thumbprint = (tab: Tab) => tab.evaluate(async () => window.store.thumbprint())

test('the key survives a reload and the private key cannot be exported', async ({ driver }) => {
  const page = driver.page
  await open(page)
  const first = await thumbprint(page)
  expect(first).toMatch(/^[A-Za-z0-9_-]{43}$/)
  const exported = await page.evaluate(async () => {
    const pair: CryptoKeyPair = await window.store.load()
    const results: string[] = []
    for (const format of ['jwk', 'pkcs8'] as const) {
      try {
        await crypto.subtle.exportKey(format, pair.privateKey)
        results.push(`${format}: exported`)
      } catch (e) {
        results.push(`${format}: ${(e as Error).name}`)
      }
    }
    return {
      results,
      extractable: pair.privateKey.extractable,
      publicExtractable: pair.publicKey.extractable,
    }
  })
  // The error's name is the same in every engine (its message is not).
  expect(exported).toEqual({
    results: ['jwk: InvalidAccessError', 'pkcs8: InvalidAccessError'],
    extractable: false,
    publicExtractable: true,
  })
  await page.reload()
  await open(page)
  expect(await thumbprint(page)).toBe(first)
  // Still the stored key: not extractable after the round trip through IndexedDB either.
  expect(await page.evaluate(async () => (await window.store.load()).privateKey.extractable)).toBe(
    false,
  )
})

test('what IndexedDB holds is the CryptoKeyPair itself, never a JWK with private members', async ({
  driver,
}) => {
  const page = driver.page
  await open(page, 'e2e-shape')
  await thumbprint(page)
  const stored = await page.evaluate(
    () =>
      new Promise<Record<string, string>>((resolve, reject) => {
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
      }),
  )
  expect(stored.privateKey).toBe('[object CryptoKey]')
  expect(stored.publicKey).toBe('[object CryptoKey]')
  expect(stored.privateExtractable).toBe('false')
  expect(stored.json).not.toContain('"d"')
})

test('two pages racing load-or-create end with one thumbprint', async ({ driver }) => {
  // Three rounds of four tabs: about 35 s in Firefox on an idle machine, so twice the default.
  test.setTimeout(120_000)
  for (let round = 0; round < 3; round++) {
    const name = `e2e-race-${round}`
    const pages = [await driver.newTab(), await driver.newTab(), await driver.newTab()]
    for (const p of pages) {
      await p.goto(HARNESS)
      await p.waitFor(() => window.harnessReady === true)
      // Each page waits for a shared BroadcastChannel "go", so all loads start at the same moment.
      await p.evaluate((n) => {
        const w = window
        w.racing = new Promise<string>((resolve, reject) => {
          const ch = new BroadcastChannel('race-start')
          ch.onmessage = () => {
            w.dpop
              .openKeyStore({ name: n })
              .then((s) => s.thumbprint())
              .then(resolve, reject)
          }
        })
        return true
      }, name)
    }
    const starter = await driver.newTab()
    await starter.goto(HARNESS)
    await starter.evaluate(() => {
      new BroadcastChannel('race-start').postMessage('go')
    })
    const prints: string[] = []
    for (const p of pages) prints.push(await p.evaluate(() => window.racing))
    expect(prints).toHaveLength(3)
    expect(new Set(prints).size).toBe(1)
    // At the database: one record, the winner's.
    expect(
      await starter.evaluate(async (n) => {
        const w = window
        return (await w.dpop.openKeyStore({ name: n, preload: false })).thumbprint()
      }, name),
    ).toBe(prints[0])
    for (const p of [...pages, starter]) await p.close()
  }
})

test('rotate() gives a new thumbprint in every tab on its next load', async ({ driver }) => {
  const a = driver.page
  const b = await driver.newTab()
  await open(a, 'e2e-rotate')
  await open(b, 'e2e-rotate')
  const before = await thumbprint(a)
  expect(await thumbprint(b)).toBe(before)
  const rotated = await a.evaluate(async () => {
    const w = window
    const pair = await w.store.rotate()
    return w.dpop.calculateThumbprint(pair.publicKey)
  })
  expect(rotated).not.toBe(before)
  expect(await thumbprint(a)).toBe(rotated)
  // The other tab hears of it over BroadcastChannel and reloads the pair on its next load().
  await expect.poll(() => thumbprint(b)).toBe(rotated)
})

test('delete() leaves nothing behind in IndexedDB', async ({ driver }) => {
  const page = driver.page
  await open(page, 'e2e-delete')
  await thumbprint(page)
  // indexedDB.databases() is missing in some engines' older versions: read the record instead.
  const hasRecord = () =>
    page.evaluate(
      () =>
        new Promise<boolean>((resolve, reject) => {
          const req = indexedDB.open('dpop-spa:e2e-delete:keys')
          req.onupgradeneeded = () => {
            req.transaction?.abort()
          } // the database is gone: do not recreate it
          req.onsuccess = () => {
            const get = req.result.transaction('keyval').objectStore('keyval').count('keypair')
            get.onsuccess = () => {
              resolve(get.result > 0)
              req.result.close()
            }
            get.onerror = () => reject(get.error)
          }
          req.onerror = () => resolve(false)
        }),
    )
  expect(await hasRecord()).toBe(true)
  await page.evaluate(async () => window.store.delete())
  // Where the engine lists databases, the key's is gone (asked before hasRecord's open, which
  // WebKit counts as a database even when its upgrade is aborted).
  expect(
    await page.evaluate(async () =>
      typeof indexedDB.databases === 'function'
        ? (await indexedDB.databases()).map((d) => d.name)
        : [],
    ),
  ).not.toContain('dpop-spa:e2e-delete:keys')
  expect(await hasRecord()).toBe(false)
})

test('persistent storage is asked for and the answer is exposed', async ({ driver }) => {
  const page = driver.page
  await open(page, 'e2e-persist')
  const persisted = await page.evaluate(async () => window.store.persisted())
  expect(typeof persisted).toBe('boolean')
  // Engines without navigator.storage.persisted (older WebKit) answer false.
  const actual = await page.evaluate(() =>
    typeof navigator.storage?.persisted === 'function' ? navigator.storage.persisted() : false,
  )
  expect(persisted).toBe(actual)
})
