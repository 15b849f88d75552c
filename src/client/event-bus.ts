/**
 * The client's listeners (`subscribe`) and the events from before the first of them.
 */
import type { DPoPClientEvent } from '../session/events.js'

/** @internal How many events are kept for the first listener: the latest ones. */
export const EARLY_EVENTS = 16

/**
 * The client's listeners. Events from before the first listener ever (a session dropped at
 * start-up, a storage fallback) are kept for it, the latest {@link EARLY_EVENTS} only; after
 * that an event nobody listens to is gone, never replayed stale. A throwing listener never
 * breaks token handling, live or replayed.
 */
/** @internal */
export function createEventBus() {
  const listeners = new Set<(event: DPoPClientEvent) => void>()
  let early: DPoPClientEvent[] | undefined = []
  const deliver = (listener: (event: DPoPClientEvent) => void, event: DPoPClientEvent): void => {
    try {
      listener(event)
    } catch {
      // ignored on purpose
    }
  }
  return {
    emit: (event: DPoPClientEvent): void => {
      if (early) {
        if (early.push(event) > EARLY_EVENTS) early.shift()
        return
      }
      for (const listener of listeners) deliver(listener, event)
    },
    subscribe: (listener: (event: DPoPClientEvent) => void): (() => void) => {
      listeners.add(listener)
      const replay = early ?? []
      early = undefined
      for (const event of replay) deliver(listener, event)
      return () => {
        listeners.delete(listener)
      }
    },
  }
}
