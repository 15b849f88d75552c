/**
 * What the client tells the app through `subscribe`: the events, and why a session ended.
 */
import type { DPoPError, KeyStoreError } from '../base/errors.js'
import type { UserClaims } from './user.js'

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

const REASONS: ReadonlySet<unknown> = new Set<LogoutReason>([
  'user',
  'other-tab',
  'invalid_grant',
  'refresh-lost',
  'key-mismatch',
  'expired',
  'storage-fallback',
])
/** @internal Whether `value` is a reason this version knows (from another tab or the worker: untrusted). */
export const isLogoutReason = (value: unknown): value is LogoutReason => REASONS.has(value)
