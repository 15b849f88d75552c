/**
 * What a memory fallback leaves behind. A page that moved to a memory key after IndexedDB
 * failed cannot see the stored session, so nothing done there (a logout included) reaches
 * it: the next normal load would restore it, with a key never rotated. So the fallback is
 * marked (in localStorage, which IndexedDB's failures do not touch), and the stored session
 * and keys are deleted as soon as IndexedDB answers again: at a logout on that page, or on
 * the next load. Internal: the client decides when.
 */
import { clear, del, get } from 'idb-keyval'
import { openIdbStore } from '../browser/idb.js'
import { SESSION_RECORDS } from '../session/session-records.js'

const marker = (name: string): string => `dpop-spa:${name}:fallback`

// localStorage may be missing, or throw on mere access (sandboxed frames, storage disabled).
function local(): Storage | undefined {
  try {
    return globalThis.localStorage ?? undefined
  } catch {
    return undefined
  }
}

/** @internal Remembers that a page of app `name` fell back to memory. Never throws. */
export function markFallback(name: string): void {
  try {
    local()?.setItem(marker(name), '1')
  } catch {
    // quota or disabled storage: the logout on that page still tries IndexedDB itself
  }
}

/** @internal Whether a page of app `name` fell back to memory since the stored session was last ended. Never throws. */
export function fellBack(name: string): boolean {
  try {
    return local()?.getItem(marker(name)) === '1'
  } catch {
    return false
  }
}

/**
 * @internal Deletes the stored session and every stored key pair of app `name`, then the
 * mark. A DPoP-bound refresh token without its key is useless to anyone, so the old grant
 * is never used again even when it cannot be revoked.
 * @returns whether a session was stored.
 * @throws {KeyStoreError} when IndexedDB still fails (the mark stays, for the next try).
 */
export async function endStoredSession(
  name: string,
  factory: IDBFactory,
  timeoutMs: number,
): Promise<boolean> {
  const session = openIdbStore(`dpop-spa:${name}:session`, factory, timeoutMs)
  const keys = openIdbStore(`dpop-spa:${name}:keys`, factory, timeoutMs)
  try {
    // The session record of every key algorithm: every key is deleted below.
    let had = false
    for (const record of SESSION_RECORDS) {
      had = (await get<unknown>(record, session.use)) !== undefined || had
      await del(record, session.use)
    }
    await clear(keys.use)
    try {
      local()?.removeItem(marker(name))
    } catch {
      // the next load ends an empty store again, harmlessly
    }
    return had
  } finally {
    session.close()
    keys.close()
  }
}
