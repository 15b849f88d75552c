/**
 * Coordination between tabs of one app: a cross-tab lock with a bounded wait (Web Locks)
 * and a typed BroadcastChannel. Internal.
 */
import { DPoPError } from './errors.js'

/** @internal */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted.', 'AbortError')
}

/**
 * @internal Runs `fn` while holding the cross-tab lock `name`. Waiting for the lock is
 * bounded by `timeoutMs` (ERR_TIMEOUT) and by `signal`. Where Web Locks are missing,
 * `fn` runs without a cross-tab lock; the caller's in-tab single-flight still holds.
 */
export async function withLock<T>(name: string, timeoutMs: number, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined
  if (!locks) return fn()
  if (signal?.aborted) throw abortReason(signal)
  const waiting = new AbortController()
  const timer = setTimeout(() => waiting.abort(new DPoPError('ERR_TIMEOUT', `Another tab held "${name}" over ${timeoutMs} ms. Close stuck tabs of this app or reload.`)), timeoutMs)
  const onAbort = () => waiting.abort(abortReason(signal!))
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    // The abort signal only bounds the wait; once granted, fn runs to its end.
    return await locks.request(name, { signal: waiting.signal }, () => {
      clearTimeout(timer)
      return fn()
    })
  } catch (e) {
    if (waiting.signal.aborted && e === waiting.signal.reason) throw e
    if (waiting.signal.aborted && e instanceof DOMException && e.name === 'AbortError') throw waiting.signal.reason
    throw e
  } finally {
    clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
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
