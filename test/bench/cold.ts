/**
 * The cold-start page (bundled by run.ts, loaded in a fresh tab per sample). Every mode
 * loads this same bundle, so page and script loading cost the same and the difference
 * between modes is the work after the script starts. Times are `performance.now()`:
 * milliseconds since the tab's navigation started.
 *
 * Modes (`?mode=`):
 * - `floor`: a raw IndexedDB open + get of a stored CryptoKeyPair (nothing else).
 * - `floor-sign`: the floor, then a raw exportKey of the public key and one ES256 sign: the
 *   least any DPoP client does before its first request (no library code).
 * - `stored`: openKeyStore + createDPoPFetch, first signed request, key read from IndexedDB.
 * - `first`: the same after run.ts deleted the database: key generation and storage.
 * - `seed`: writes the floor's key pair (setup, not measured).
 * - `delete`: deletes the key store's database (setup before `first`, not measured).
 * - `touch`: reads the floor's key pair (setup before `floor` and `stored`, not measured).
 *   Chromium keeps an origin's IndexedDB backing store open for a grace period after its
 *   last connection closes; every measured load follows a load that used IndexedDB, so
 *   all modes start from the same (warm) backing store.
 */
import { createDPoPFetch, openKeyStore } from '../../src/index.ts'

/** What a cold page reports on `window.__cold`. */
export interface ColdResult {
  /** ms since navigation start when the measured event happened. */
  t: number
  /** ms since navigation start when the bundle started running. */
  scriptStart: number
  error?: string
}

declare global {
  interface Window {
    __cold?: ColdResult
  }
}

/** The key store name the `stored`/`first` modes use; run.ts deletes `dpop-spa:<name>:keys`. */
export const COLD_STORE = 'bench-cold'
const FLOOR_DB = 'bench-floor'
const TOKEN = 'A'.repeat(1024)

const scriptStart = performance.now()

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error ?? new Error('IndexedDB request failed'))
  })
}

function openFloorDb(): Promise<IDBDatabase> {
  const open = indexedDB.open(FLOOR_DB)
  open.onupgradeneeded = () => open.result.createObjectStore('keyval')
  return request(open)
}

async function readFloorPair(): Promise<CryptoKeyPair> {
  const db = await openFloorDb()
  const pair = (await request(
    db.transaction('keyval', 'readonly').objectStore('keyval').get('keypair'),
  )) as CryptoKeyPair | undefined
  if (!(pair?.privateKey instanceof CryptoKey))
    throw new Error('floor key pair missing: seed first')
  db.close()
  return pair
}

async function floorSign(): Promise<number> {
  const pair = await readFloorPair()
  const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey)
  await crypto.subtle.sign(
    { name: 'ECDSA', hash: 'SHA-256' },
    pair.privateKey,
    new TextEncoder().encode(JSON.stringify(jwk).padEnd(500)),
  )
  return performance.now()
}

async function signedRequest(): Promise<number> {
  let sentAt = 0
  // The moment the request leaves the page: the underlying fetch is called with the proof attached.
  const underlying: typeof fetch = (input, init) => {
    sentAt ||= performance.now()
    return fetch(input, init)
  }
  // What an app does at start-up: open the store (which starts loading the key at once)
  // and make its first API call.
  const keys = await openKeyStore({ name: COLD_STORE })
  const dpopFetch = createDPoPFetch({
    keys,
    origins: [location.origin],
    getAccessToken: () => TOKEN,
    fetch: underlying,
  })
  const res = await dpopFetch('/api/cold')
  if (!res.ok) throw new Error(`status ${res.status}`)
  return sentAt
}

async function run(mode: string): Promise<ColdResult> {
  switch (mode) {
    case 'floor':
    case 'touch':
      await readFloorPair()
      return { t: performance.now(), scriptStart }
    case 'floor-sign':
      return { t: await floorSign(), scriptStart }
    case 'stored':
    case 'first':
      return { t: await signedRequest(), scriptStart }
    case 'seed': {
      const db = await openFloorDb()
      const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
        'sign',
        'verify',
      ])
      const tx = db.transaction('keyval', 'readwrite')
      tx.objectStore('keyval').put(
        { v: 1, privateKey: pair.privateKey, publicKey: pair.publicKey },
        'keypair',
      )
      await new Promise((resolve, reject) => {
        tx.oncomplete = resolve
        tx.onerror = reject
      })
      db.close()
      return { t: performance.now(), scriptStart }
    }
    case 'delete':
      await request(indexedDB.deleteDatabase(`dpop-spa:${COLD_STORE}:keys`))
      return { t: performance.now(), scriptStart }
    default:
      throw new Error(`unknown mode ${JSON.stringify(mode)}`)
  }
}

run(new URLSearchParams(location.search).get('mode') ?? '').then(
  (result) => {
    window.__cold = result
  },
  (e: unknown) => {
    window.__cold = {
      t: NaN,
      scriptStart,
      error: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
    }
  },
)
