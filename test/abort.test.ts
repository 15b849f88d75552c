// The AbortSignal helpers on browsers without AbortSignal.any (Safari < 17.4, Firefox < 124,
// Chrome < 116) or AbortSignal.timeout (Safari < 16, Firefox < 100): the statics are removed here.
import { afterEach, describe, expect, it } from 'vitest'
import { anySignal, timeoutSignal } from '../src/base/abort.ts'

const statics = { any: AbortSignal.any, timeout: AbortSignal.timeout }
const remove = (): void => {
  Object.defineProperty(AbortSignal, 'any', {
    value: undefined,
    configurable: true,
    writable: true,
  })
  Object.defineProperty(AbortSignal, 'timeout', {
    value: undefined,
    configurable: true,
    writable: true,
  })
}
afterEach(() => {
  Object.defineProperty(AbortSignal, 'any', {
    value: statics.any,
    configurable: true,
    writable: true,
  })
  Object.defineProperty(AbortSignal, 'timeout', {
    value: statics.timeout,
    configurable: true,
    writable: true,
  })
})

describe.each([
  ['native', (): void => undefined],
  ['fallback', remove],
] as const)('%s', (_, setup) => {
  it('timeoutSignal aborts with a TimeoutError DOMException after the time', async () => {
    setup()
    const signal = timeoutSignal(30)
    expect(signal.aborted).toBe(false)
    await new Promise<void>((resolve) =>
      signal.addEventListener('abort', () => resolve(), { once: true }),
    )
    expect(signal.reason).toBeInstanceOf(DOMException)
    expect((signal.reason as DOMException).name).toBe('TimeoutError')
  })

  it('anySignal aborts with the reason of the first signal, and at once when one already has', async () => {
    setup()
    const a = new AbortController()
    const b = new AbortController()
    const both = anySignal([a.signal, b.signal])
    expect(both.aborted).toBe(false)
    const reason = new Error('user left')
    b.abort(reason)
    await Promise.resolve()
    expect(both.aborted).toBe(true)
    expect(both.reason).toBe(reason)
    a.abort(new Error('later'))
    expect(both.reason).toBe(reason)
    expect(anySignal([b.signal, new AbortController().signal]).reason).toBe(reason)
  })

  it('anySignal with a timeout: the timeout wins when the caller never aborts', async () => {
    setup()
    const caller = new AbortController()
    const signal = anySignal([caller.signal, timeoutSignal(20)])
    await new Promise<void>((resolve) =>
      signal.addEventListener('abort', () => resolve(), { once: true }),
    )
    expect((signal.reason as DOMException).name).toBe('TimeoutError')
  })
})
