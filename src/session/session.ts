/**
 * The session: tokens bound to the key, stored beside it, shared with the other tabs of
 * the app. Its shape and validation, storage (with the login transactions), adopting a
 * session another tab made, committing one made here, and the one way a session ends.
 * Internal: the token manager decides when.
 */
import { del, entries, get, promisifyRequest, set } from 'idb-keyval'
import { getValidatedIdTokenClaims, type TokenEndpointResponse } from 'oauth4webapi'
import { checkBoundTokens } from './authorization-server.js'
import { KeyStoreError, ServerResponseError, type DPoPError } from '../base/errors.js'
import type { IdbStore } from '../browser/idb.js'
import { openTabChannel } from '../browser/tabs.js'
import type { DPoPAlgorithm } from '../proof/keys.js'

/**
 * The signed-in user: the ID token's claims (OpenID Connect Core §2), with the UserInfo
 * response's merged in when it was asked for; or, from a server that issues no ID token but
 * names the user in its token response (atproto: `sub` is the account's DID), `sub` and `iss`.
 */
export interface UserClaims {
  /** The subject: the user's identifier at the issuer. */
  readonly sub: string
  /** The issuer that vouches for `sub`. */
  readonly iss?: string
  readonly [claim: string]: unknown
}

/** What `DPoPClientConfig.verifyUser` is told beside the user. */
export interface VerifyUserContext {
  /** The issuer the tokens come from (its metadata's `issuer`). */
  readonly issuer: string
  /** The scope granted, when the server said. */
  readonly scope: string | undefined
  /** The token response's members other than the tokens themselves: `sub`, `scope`, `expires_in`, extensions. */
  readonly tokenResponse: Readonly<Record<string, unknown>>
}

/** When to ask the UserInfo endpoint at login (`DPoPClientConfig.userInfo`). */
export type UserInfoMode = 'auto' | 'always' | 'never'

/**
 * The app's check of who signed in (`DPoPClientConfig.verifyUser`), run before a session is
 * stored: `false` or a throw refuses the login (`ERR_USER_REFUSED`).
 * @param user - the user (see {@link UserClaims}), `undefined` when the server named none.
 * @param context - the issuer, the granted scope and the token response without the tokens.
 */
export type VerifyUser = (user: UserClaims | undefined, context: VerifyUserContext) => boolean | void | Promise<boolean | void>


/** Why a session ended. */
export type LogoutReason =
  /** The app called `logout()` in this tab. */
  | 'user'
  /** Another tab logged out. */
  | 'other-tab'
  /** The refresh token was refused (`invalid_grant`): revoked, expired or reused. */
  | 'invalid_grant'
  /**
   * The answer to a refresh was lost (a reload, a closed tab or a dropped connection while
   * it was in flight) and the server had rotated the refresh token: the one kept here was
   * refused. A server that does not rotate DPoP-bound refresh tokens, or the refresh worker
   * (`dpop-spa/sw`), avoids it: see docs on lost refresh answers.
   */
  | 'refresh-lost'
  /** The stored tokens are bound to a key this browser no longer has. */
  | 'key-mismatch'
  /** The access token expired and there is no refresh token. */
  | 'expired'
  /**
   * A page of this app ran on a memory key after IndexedDB failed (`storageFallback:
   * 'memory'`), so the stored session was ended once storage worked again: whatever that page
   * did (a logout included) could not reach it.
   */
  | 'storage-fallback'

/** What {@link DPoPClient.subscribe} listeners receive. */
export type DPoPClientEvent =
  | {
    /** A session started (here, or in another tab). */
    readonly type: 'login'
    /** The user (see {@link UserClaims}); `undefined` when the server named none. */
    readonly user: UserClaims | undefined
    /** Whether another tab logged in. */
    readonly fromOtherTab: boolean
  }
  | {
    /** The tokens were refreshed (here, or by another tab). */
    readonly type: 'refresh'
    /** Local-clock ms when the new access token expires. */
    readonly expiresAt: number
    /** Whether another tab refreshed. */
    readonly fromOtherTab: boolean
  }
  | {
    /** The session ended. */
    readonly type: 'logout'
    /** Why. */
    readonly reason: LogoutReason
  }
  | {
    /** Something failed in the background (a revocation, a refresh). */
    readonly type: 'error'
    /** What failed. */
    readonly error: DPoPError
  }
  | {
    /**
     * IndexedDB failed and this page moved to a memory key and session (only with
     * `storageFallback: 'memory'`): a sign-in here does not survive a reload. The session
     * stored before is ended as soon as storage works again (a logout on the next page that
     * can reach storage, reason `'storage-fallback'`).
     */
    readonly type: 'storage-fallback'
    /** The storage failure. */
    readonly error: KeyStoreError
  }

/** @internal The persisted session: tokens bound to the key with thumbprint `jkt`. */
export interface Session {
  readonly v: 1
  readonly accessToken: string
  readonly refreshToken: string | undefined
  /** Local-clock ms when the access token expires. */
  readonly expiresAt: number
  /** Lifetime in ms the server gave the access token. */
  readonly lifetimeMs: number
  readonly idToken: string | undefined
  readonly user: UserClaims | undefined
  readonly jkt: string
  readonly scope: string | undefined
}

/** @internal A login in progress: what the redirect back needs. Holds the PKCE verifier. */
export interface Transaction {
  readonly state: string
  readonly codeVerifier: string
  readonly nonce: string | undefined
  readonly jkt: string
  readonly returnTo: string | undefined
  readonly createdAt: number
}

/** @internal How long a login transaction can be completed. */
export const TRANSACTION_MAX_AGE_MS = 15 * 60_000

// RFC 6750 b64token is narrower; anything that fits an Authorization header value is accepted.
const TOKEN = /^[\x21-\x7e]{1,16384}$/
const JKT = /^[A-Za-z0-9_-]{43}$/
const REASONS: ReadonlySet<unknown> = new Set<LogoutReason>(['user', 'other-tab', 'invalid_grant', 'refresh-lost', 'key-mismatch', 'expired', 'storage-fallback'])
/** @internal Whether `v` is a reason this version knows (from another tab or the worker: untrusted). */
export const isLogoutReason = (v: unknown): v is LogoutReason => REASONS.has(v)
/**
 * The records of the session and of a pending refresh, per key algorithm: two versions of an
 * app with different `alg` (old tabs open during a deploy) each keep their own session, bound
 * to their own key, instead of ending each other's with `key-mismatch` on every load. ES256
 * keeps the names every session had before there was a record per algorithm.
 */
const records = (alg: DPoPAlgorithm | undefined): { session: string; pending: string } =>
  !alg || alg === 'ES256' ? { session: 'session', pending: 'pending' } : { session: `session:${alg}`, pending: `pending:${alg}` }
/** @internal The session record of every key algorithm (for clean-ups that end them all). */
export const SESSION_RECORDS: readonly string[] = (['ES256', 'EdDSA'] as const).map((alg) => records(alg).session)
/** When a failed session write is tried again, ms after the failure (bounded). */
const REWRITE_DELAYS_MS = [1_000, 5_000, 20_000]
const TX_PREFIX = 'tx:'

/** A failed write of a refreshed session, as the `error` event reports it (the cause names what IndexedDB said). */
const storageError = (e: unknown): DPoPError =>
  new KeyStoreError(e instanceof KeyStoreError ? e.code : 'ERR_KEY_STORE_FAILED',
    'The refreshed tokens could not be stored (IndexedDB failed): this tab and the others keep using them and the write is tried again. A reload before it succeeds signs out.',
    { cause: e instanceof Error ? e : undefined })

const isToken = (v: unknown): v is string => typeof v === 'string' && TOKEN.test(v)
const isTime = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0
const isUser = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as UserClaims).sub === 'string'

/**
 * @internal Whether `v` is a session as this version writes it: every field of the right
 * type, tokens that fit an Authorization header. Stored sessions and sessions from other
 * tabs are checked alike (and then against this key's thumbprint), like user input.
 */
export function isSession(v: unknown): v is Session {
  if (typeof v !== 'object' || v === null) return false
  const s = v as Record<keyof Session, unknown>
  return s.v === 1 && isToken(s.accessToken) && (s.refreshToken === undefined || isToken(s.refreshToken)) &&
    isTime(s.expiresAt) && isTime(s.lifetimeMs) && (s.idToken === undefined || isToken(s.idToken)) &&
    (s.user === undefined || isUser(s.user)) && typeof s.jkt === 'string' && JKT.test(s.jkt) &&
    (s.scope === undefined || typeof s.scope === 'string')
}

/**
 * @internal A session from a token response, checked first: DPoP-bound, to this key (see
 * {@link checkBoundTokens}), with the ID token oauth4webapi validated. The user comes from the
 * ID token, else from the response's `sub` (with `issuer`), else stays `previous`'s; every
 * `sub` the server gives must name the same user. `fallbackLifetimeMs` applies when the
 * response has no `expires_in`.
 * @throws {ServerResponseError} `ERR_TOKEN_TYPE_MISMATCH`, `ERR_INVALID_RESPONSE`.
 */
export function sessionFromTokens(result: TokenEndpointResponse, jkt: string, previous: Session | undefined, fallbackLifetimeMs: number, issuer: string): Session {
  checkBoundTokens(result, jkt)
  const lifetimeMs = typeof result.expires_in === 'number' && result.expires_in > 0 ? result.expires_in * 1000 : fallbackLifetimeMs
  const claims = result.id_token ? getValidatedIdTokenClaims(result) : undefined
  const named = typeof result.sub === 'string' && result.sub !== '' ? result.sub : undefined
  for (const other of [named, previous?.user?.sub]) {
    const sub = claims?.sub ?? named
    if (other !== undefined && sub !== undefined && other !== sub) {
      throw new ServerResponseError('ERR_INVALID_RESPONSE', 'The authorization server named two different users (sub) for one session; nothing was stored. Check the server, then log in again.')
    }
  }
  return {
    v: 1,
    accessToken: result.access_token,
    refreshToken: result.refresh_token ?? previous?.refreshToken,
    expiresAt: Date.now() + lifetimeMs,
    lifetimeMs,
    idToken: result.id_token ?? previous?.idToken,
    user: claims ? { ...previous?.user, ...claims } : named && !previous?.user ? { sub: named, iss: issuer } : previous?.user,
    jkt,
    scope: result.scope ?? previous?.scope,
  }
}

type TabMessage =
  | { readonly type: 'session'; readonly session: Session; readonly login: boolean }
  | { readonly type: 'logout'; readonly reason: LogoutReason }

/** @internal */
export interface SessionStoreOptions {
  /** The app's name: the channel is `dpop-spa:<name>:session`. */
  readonly name: string
  /** The session database beside the key's; `undefined` keeps everything in memory (memory-only key). */
  readonly store: IdbStore | undefined
  /** The thumbprint of this browser's key, which every adopted session must be bound to. */
  readonly thumbprint: () => Promise<string>
  readonly emit: (event: DPoPClientEvent) => void
  /** The key's algorithm: each has its own session record. @default 'ES256' */
  readonly alg?: DPoPAlgorithm | undefined
}

/** @internal */
export interface SessionStore {
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

/** @internal */
export function createSessionStore(o: SessionStoreOptions): SessionStore {
  let session: Session | undefined
  const memory = new Map<string, unknown>()
  const { store } = o
  const { session: SESSION, pending: PENDING } = records(o.alg)
  // Storage beside the key; memory only when the key itself is memory-only.
  const read = async (key: string): Promise<unknown> => (store ? get(key, store.use) : memory.get(key))
  const write = async (key: string, value: unknown): Promise<void> => { if (store) await set(key, value, store.use); else memory.set(key, value) }
  const remove = async (key: string): Promise<void> => { if (store) await del(key, store.use); else memory.delete(key) }

  const adopt = (next: Session, login: boolean): void => {
    const had = session !== undefined
    session = next
    o.emit(login || !had ? { type: 'login', user: next.user, fromOtherTab: true } : { type: 'refresh', expiresAt: next.expiresAt, fromOtherTab: true })
  }

  // Messages from other tabs are untrusted input (another version of the app during a
  // deploy, or anything on this origin): validated like a stored session, handled one at a
  // time in arrival order, and never allowed to throw.
  const onTabMessage = async (m: unknown): Promise<void> => {
    const { type, session: next, login, reason } = (typeof m === 'object' && m !== null ? m : {}) as Record<string, unknown>
    if (type === 'session') {
      // The refresh worker's session arrives twice: in its answer and over the channel.
      if (isSession(next) && next.jkt === (await o.thumbprint()) && (login === true || next.accessToken !== session?.accessToken)) adopt(next, login === true)
    } else if (type === 'logout') {
      // A user logout elsewhere is "other-tab"; a refused refresh keeps its reason in every tab.
      ended(reason === 'user' || !REASONS.has(reason) ? 'other-tab' : (reason as LogoutReason))
    }
  }
  const ended = (reason: LogoutReason): void => {
    if (!session) return
    session = undefined
    unsaved = undefined
    o.emit({ type: 'logout', reason })
  }
  let inbox = Promise.resolve()
  const channel = openTabChannel<TabMessage>(`dpop-spa:${o.name}:session`, (m) => {
    inbox = inbox.then(() => onTabMessage(m)).catch(() => undefined)
  })

  const sweep = async (): Promise<void> => {
    const now = Date.now()
    const all = store ? await entries(store.use) : [...memory.entries()]
    const stale = all.filter(([k, v]) => {
      const createdAt = (v as Partial<Transaction> | undefined)?.createdAt
      return typeof k === 'string' && k.startsWith(TX_PREFIX) && !(typeof createdAt === 'number' && Math.abs(now - createdAt) <= TRANSACTION_MAX_AGE_MS)
    })
    await Promise.all(stale.map(([k]) => remove(k as string)))
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
    o.emit({ type: 'error', error: storageError(error) })
    const delay = REWRITE_DELAYS_MS[attempt]
    if (delay === undefined) return
    clearTimeout(rewrite)
    rewrite = setTimeout(() => {
      if (unsaved !== next || session !== next) return
      save(next).catch((e: unknown) => saveLater(next, attempt + 1, e))
    }, delay)
  }

  const end = async (reason: LogoutReason, beforeAnnounce?: () => Promise<unknown>): Promise<void> => {
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
      o.emit({ type: 'logout', reason })
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
      if (found.jkt !== (await o.thumbprint())) await end('key-mismatch')
      else session = found
    },
    async commit(next, login) {
      if (login) await write(SESSION, next)
      session = next
      channel.post({ type: 'session', session: next, login })
      o.emit(login ? { type: 'login', user: next.user, fromOtherTab: false } : { type: 'refresh', expiresAt: next.expiresAt, fromOtherTab: false })
      // The answer of a refresh is in use here and in the other tabs before it is written:
      // the server has rotated already, and a failed write must not lose the new tokens.
      if (!login) await save(next).catch((e: unknown) => saveLater(next, 0, e))
    },
    async beginRefresh(refreshToken) {
      const before = (await read(PENDING).catch(() => undefined)) as { refreshToken?: unknown } | undefined
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
      return store.use('readwrite', (s) => {
        const tx = promisifyRequest(s.get(key))
        s.delete(key)
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
