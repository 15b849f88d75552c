/** AbortSignal helpers shared by every layer that waits. Internal. */

/** @internal Rejects with the signal's reason as soon as it aborts, like fetch does. */
export function raceAbort<T>(value: T | Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return Promise.resolve(value)
  if (signal.aborted) return Promise.reject(signal.reason as Error)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    Promise.resolve(value)
      .then(resolve, reject)
      .finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/**
 * @internal `AbortSignal.timeout(ms)`, also where it is missing (Safari before 16, Firefox
 * before 100): aborts with a `TimeoutError` DOMException after `ms`.
 */
export function timeoutSignal(ms: number): AbortSignal {
  if (typeof AbortSignal.timeout === 'function') return AbortSignal.timeout(ms)
  const controller = new AbortController()
  setTimeout(
    () => controller.abort(new DOMException('The operation timed out.', 'TimeoutError')),
    ms,
  )
  return controller.signal
}

/**
 * @internal `AbortSignal.any(signals)`, also where it is missing (Safari before 17.4, Firefox
 * before 124, Chrome before 116): aborts with the reason of the first signal that aborts.
 */
export function anySignal(signals: readonly AbortSignal[]): AbortSignal {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any([...signals])
  const controller = new AbortController()
  const onAbort = (): void => {
    for (const s of signals) s.removeEventListener('abort', onAbort)
    controller.abort(signals.find((signal) => signal.aborted)?.reason)
  }
  for (const s of signals) s.addEventListener('abort', onAbort)
  if (signals.some((signal) => signal.aborted)) onAbort()
  return controller.signal
}
