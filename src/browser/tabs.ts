/**
 * Coordination between tabs of one app: a cross-tab lock with a bounded wait (Web Locks)
 * and a typed BroadcastChannel. Internal.
 */
import { DPoPError } from '../base/errors.js'

/**
 * @internal Runs `fn` while holding the cross-tab lock `name`. Waiting for the lock is
 * bounded by `timeoutMs` (ERR_TIMEOUT); once granted, `fn` runs to its end. Where Web Locks
 * are missing, `fn` runs without a cross-tab lock; the caller's in-tab single-flight still
 * holds. There is no caller signal here on purpose: the lock guards a refresh that several
 * requests share, and each of them stops waiting on its own signal instead.
 */
export async function withLock<T>(
  name: string,
  timeoutMs: number,
  fn: () => Promise<T>,
): Promise<T> {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined
  if (!locks) return fn()
  const waiting = new AbortController()
  const timer = setTimeout(
    () =>
      waiting.abort(
        new DPoPError(
          'ERR_TIMEOUT',
          `Another tab held "${name}" over ${timeoutMs} ms. Close stuck tabs of this app or reload.`,
        ),
      ),
    timeoutMs,
  )
  try {
    return await locks.request(name, { signal: waiting.signal }, () => {
      clearTimeout(timer)
      return fn()
    })
  } catch (e) {
    // Browsers that predate abort reasons reject with a plain AbortError: give ours instead.
    if (waiting.signal.aborted && e instanceof DOMException && e.name === 'AbortError')
      throw waiting.signal.reason
    throw e
  } finally {
    clearTimeout(timer)
  }
}

/** @internal A BroadcastChannel that carries messages of type M, or nothing where unsupported. */
export interface TabChannel<M> {
  post(message: M): void
  close(): void
}

/** @internal */
export function openTabChannel<M>(name: string, onMessage: (message: M) => void): TabChannel<M> {
  if (typeof BroadcastChannel !== 'function') return { post() {}, close() {} }
  const channel = new BroadcastChannel(name)
  channel.onmessage = (event: MessageEvent<M>) => onMessage(event.data)
  return {
    post: (message) => channel.postMessage(message),
    close: () => channel.close(),
  }
}
