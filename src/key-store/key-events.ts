/**
 * Rotations and deletions of an app's key pair, told to this tab's listeners and to the other
 * tabs of the app over a BroadcastChannel. Internal to the key store.
 */
import { openTabChannel } from '../browser/tabs.js'

/** @internal What happened to the key pair. */
export type KeyEvent = 'rotated' | 'deleted'

/** @internal The key events of one store. */
export interface KeyEvents {
  /** Tells this tab's listeners and the other tabs. */
  readonly announce: (event: KeyEvent) => void
  /** Adds a listener; returns the function that removes it. */
  readonly subscribe: (listener: (event: KeyEvent) => void) => () => void
  /** Closes the channel. */
  readonly close: () => void
}

/**
 * @internal The key events of the store `name`. A message from another tab is one of the two
 * words or ignored; `onOther` runs first (the store forgets its cached pair), then this tab's
 * listeners hear it.
 */
export function keyEvents(name: string, onOther: () => void): KeyEvents {
  const listeners = new Set<(event: KeyEvent) => void>()
  // A throwing listener must not turn a done rotate() or delete() into a failure, nor keep
  // the other listeners (the client's own among them) from hearing it.
  const emit = (event: KeyEvent) => {
    for (const listener of listeners) {
      try {
        listener(event)
      } catch {
        // ignored on purpose
      }
    }
  }
  const channel = openTabChannel<KeyEvent>(`dpop-spa:${name}:keys`, (event: unknown) => {
    if (event !== 'rotated' && event !== 'deleted') return
    onOther()
    emit(event)
  })
  return {
    announce: (event) => {
      channel.post(event)
      emit(event)
    },
    subscribe: (listener) => {
      listeners.add(listener)
      return () => {
        listeners.delete(listener)
      }
    },
    close: () => channel.close(),
  }
}
