/**
 * Where the session is kept and how it is shared: the records beside the key (the session, a
 * pending refresh, the login transactions and their sweep), the channel to the app's other
 * tabs, adopting a session another tab made, committing one made here, and the one way a
 * session ends. Internal: the token manager decides when.
 */
import { del, entries, get, promisifyRequest, set } from 'idb-keyval'
import { KeyStoreError, type DPoPError } from '../base/errors.js'
import type { IdbStore } from '../browser/idb.js'
import { openTabChannel } from '../browser/tabs.js'
import type { DPoPAlgorithm } from '../proof/keys.js'
import { isLogoutReason, type DPoPClientEvent, type LogoutReason } from './events.js'
import { TRANSACTION_MAX_AGE_MS, isSession, type Session, type Transaction } from './session.js'

/**
 * The records of the session and of a pending refresh, per key algorithm: two versions of an
 * app with different `alg` (old tabs open during a deploy) each keep their own session, bound
 * to their own key, instead of ending each other's with `key-mismatch` on every load. ES256
 * keeps the names every session had before there was a record per algorithm.
 */
const records = (alg: DPoPAlgorithm | undefined): { session: string; pending: string } =>
  !alg || alg === 'ES256'
    ? { session: 'session', pending: 'pending' }
    : { session: `session:${alg}`, pending: `pending:${alg}` }
/** @internal The session record of every key algorithm (for clean-ups that end them all). */
export const SESSION_RECORDS: readonly string[] = (['ES256', 'EdDSA'] as const).map(
  (alg) => records(alg).session,
)
/** When a failed session write is tried again, ms after the failure (bounded). */
const REWRITE_DELAYS_MS = [1_000, 5_000, 20_000]
const TX_PREFIX = 'tx:'

/** A failed write of a refreshed session, as the `error` event reports it (the cause names what IndexedDB said). */
const storageError = (e: unknown): DPoPError =>
  new KeyStoreError(
    e instanceof KeyStoreError ? e.code : 'ERR_KEY_STORE_FAILED',
    'The refreshed tokens could not be stored (IndexedDB failed): they stay in use and the write is retried. A reload before it succeeds signs out.',
    { cause: e instanceof Error ? e : undefined },
  )

type TabMessage =
  | { readonly type: 'session'; readonly session: Session; readonly login: boolean }
  | { readonly type: 'logout'; readonly reason: LogoutReason }

/** @internal */
export interface SessionRecords {
  /** The session this tab holds. */
  current(): Session | undefined
  /** The stored session, when it is well-formed. */
  stored(): Promise<Session | undefined>
  /** Start-up: sweeps stale transactions; takes the stored session, or ends it when bound to another key. */
  restore(): Promise<void>
  /**
   * A session this tab made: stored, shared with the other tabs, announced. A refreshed
   * session is used and shared first and stored after, so a failed write (full disk,
   * evicted database) loses nothing here: it is tried again later and reported as an
   * `error` event. A login is stored first and rejects when it cannot be.
   */
  commit(next: Session, login: boolean): Promise<void>
  /**
   * Whether an earlier refresh with `refreshToken` never got its answer stored (a reload,
   * a closed tab, a dropped connection), then records that a refresh with it starts now.
   * The record is written before the request and cleared once an answer is handled.
   */
  beginRefresh(refreshToken: string): Promise<boolean>
  /** The server answered the refresh (tokens, or a refusal): clears the record. */
  endRefresh(): Promise<void>
  /** A session another tab made (told over the channel, or found in storage): used and announced. */
  adopt(next: Session, login: boolean): void
  /** The session ended elsewhere (another tab, the refresh worker): forgotten here and announced, once. */
  ended(reason: LogoutReason): void
  /**
   * The one way a session ends: forgotten here and in storage; then `beforeAnnounce` (the
   * key rotation of a logout) runs; then every other tab is told and `logout` is emitted,
   * whatever `beforeAnnounce` did. Rejects only with what `beforeAnnounce` threw.
   */
  end(reason: LogoutReason, beforeAnnounce?: () => Promise<unknown>): Promise<void>
  saveTransaction(tx: Transaction): Promise<void>
  /** Reads and deletes the transaction of `state` (single use). */
  takeTransaction(state: string): Promise<Transaction | undefined>
  /**
   * Deletes login transactions (each holds a PKCE verifier) that can no longer complete:
   * expired, from the future, or unreadable. Abandoned logins would otherwise stay forever.
   */
  sweep(): Promise<void>
  close(): void
}

/**
 * @internal The session records of the app `name` (its channel is `dpop-spa:<name>:session`)
 * in `store`, the session database beside the key's (`undefined`: everything in memory, for a
 * memory-only key), for keys of algorithm `alg` (each has its own record). Every adopted
 * session must be bound to the key whose `thumbprint` is given; changes are told to `emit`.
 */
export function createSessionRecords(
  name: string,
  store: IdbStore | undefined,
  alg: DPoPAlgorithm | undefined,
  thumbprint: () => Promise<string>,
  emit: (event: DPoPClientEvent) => void,
): SessionRecords {
  let session: Session | undefined
  const memory = new Map<string, unknown>()
  const { session: SESSION, pending: PENDING } = records(alg)
  // Storage beside the key; memory only when the key itself is memory-only.
  const read = async (key: string): Promise<unknown> =>
    store ? get(key, store.use) : memory.get(key)
  const write = async (key: string, value: unknown): Promise<void> => {
    if (store) await set(key, value, store.use)
    else memory.set(key, value)
  }
  const remove = async (key: string): Promise<void> => {
    if (store) await del(key, store.use)
    else memory.delete(key)
  }

  const adopt = (next: Session, login: boolean): void => {
    const had = session !== undefined
    session = next
    emit(
      login || !had
        ? { type: 'login', user: next.user, fromOtherTab: true }
        : { type: 'refresh', expiresAt: next.expiresAt, fromOtherTab: true },
    )
  }

  // Messages from other tabs are untrusted input (another version of the app during a
  // deploy, or anything on this origin): validated like a stored session, handled one at a
  // time in arrival order, and never allowed to throw.
  const onTabMessage = async (message: unknown): Promise<void> => {
    const {
      type,
      session: next,
      login,
      reason,
    } = (typeof message === 'object' && message !== null ? message : {}) as Record<string, unknown>
    if (type === 'session') {
      // The refresh worker's session arrives twice: in its answer and over the channel.
      if (
        isSession(next) &&
        next.jkt === (await thumbprint()) &&
        (login === true || next.accessToken !== session?.accessToken)
      )
        adopt(next, login === true)
    } else if (type === 'logout') {
      // A user logout elsewhere is "other-tab"; a refused refresh keeps its reason in every tab.
      ended(reason === 'user' || !isLogoutReason(reason) ? 'other-tab' : reason)
    }
  }
  const ended = (reason: LogoutReason): void => {
    if (!session) return
    session = undefined
    unsaved = undefined
    emit({ type: 'logout', reason })
  }
  let inbox = Promise.resolve()
  const channel = openTabChannel<TabMessage>(`dpop-spa:${name}:session`, (message) => {
    inbox = inbox.then(() => onTabMessage(message)).catch(() => undefined)
  })

  const sweep = async (): Promise<void> => {
    const now = Date.now()
    const all = store ? await entries(store.use) : [...memory.entries()]
    const stale = all.filter(([key, value]) => {
      const createdAt = (value as Partial<Transaction> | undefined)?.createdAt
      return (
        typeof key === 'string' &&
        key.startsWith(TX_PREFIX) &&
        !(typeof createdAt === 'number' && Math.abs(now - createdAt) <= TRANSACTION_MAX_AGE_MS)
      )
    })
    await Promise.all(stale.map(([key]) => remove(key as string)))
  }

  const stored = async (): Promise<Session | undefined> => {
    const value = await read(SESSION)
    return isSession(value) ? value : undefined
  }

  // A refreshed session whose write failed, and the timer that tries it again.
  let unsaved: Session | undefined
  let rewrite: ReturnType<typeof setTimeout> | undefined
  const save = async (next: Session): Promise<void> => {
    await write(SESSION, next)
    if (unsaved === next) unsaved = undefined
    // Stored: no refresh is in flight with the token it replaced.
    await remove(PENDING).catch(() => undefined)
  }
  const saveLater = (next: Session, attempt: number, error: unknown): void => {
    unsaved = next
    emit({ type: 'error', error: storageError(error) })
    const delay = REWRITE_DELAYS_MS[attempt]
    if (delay === undefined) return
    clearTimeout(rewrite)
    rewrite = setTimeout(() => {
      if (unsaved !== next || session !== next) return
      save(next).catch((e: unknown) => saveLater(next, attempt + 1, e))
    }, delay)
  }

  const end = async (
    reason: LogoutReason,
    beforeAnnounce?: () => Promise<unknown>,
  ): Promise<void> => {
    session = undefined
    unsaved = undefined
    clearTimeout(rewrite)
    await remove(PENDING).catch(() => undefined)
    // A failed delete leaves tokens bound to a key that a logout replaces: dropped at start-up.
    await remove(SESSION).catch(() => undefined)
    try {
      await beforeAnnounce?.()
    } finally {
      channel.post({ type: 'logout', reason })
      emit({ type: 'logout', reason })
    }
  }

  return {
    current: () => session,
    stored,
    async restore() {
      await sweep().catch(() => undefined)
      const found = await stored()
      if (!found) return
      // Tokens bound to a key this browser no longer has are useless: drop them.
      if (found.jkt !== (await thumbprint())) await end('key-mismatch')
      else session = found
    },
    async commit(next, login) {
      if (login) await write(SESSION, next)
      session = next
      channel.post({ type: 'session', session: next, login })
      emit(
        login
          ? { type: 'login', user: next.user, fromOtherTab: false }
          : { type: 'refresh', expiresAt: next.expiresAt, fromOtherTab: false },
      )
      // The answer of a refresh is in use here and in the other tabs before it is written:
      // the server has rotated already, and a failed write must not lose the new tokens.
      if (!login) await save(next).catch((e: unknown) => saveLater(next, 0, e))
    },
    async beginRefresh(refreshToken) {
      const before = (await read(PENDING).catch(() => undefined)) as
        { refreshToken?: unknown } | undefined
      // Best effort: without the record, a lost answer ends as 'invalid_grant' instead.
      await write(PENDING, { refreshToken, at: Date.now() }).catch(() => undefined)
      return before?.refreshToken === refreshToken
    },
    endRefresh: () => remove(PENDING).catch(() => undefined),
    adopt,
    ended,
    end,
    saveTransaction: (tx) => write(TX_PREFIX + tx.state, tx),
    // Read and deleted in one readwrite transaction (or one synchronous step in memory): two
    // handleRedirect() calls with the same URL must not both exchange the code.
    async takeTransaction(state) {
      const key = TX_PREFIX + state
      if (!store) {
        const tx = memory.get(key)
        memory.delete(key)
        return tx as Transaction | undefined
      }
      return store.use('readwrite', (objects) => {
        const tx = promisifyRequest(objects.get(key))
        objects.delete(key)
        return tx
      }) as Promise<Transaction | undefined>
    },
    sweep,
    close() {
      clearTimeout(rewrite)
      channel.close()
    },
  }
}
