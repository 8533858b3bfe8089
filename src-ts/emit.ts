// A runtime helper of the router and the agent runtime, not public API. It lived in events.ts, whose
// types index.ts re-exports; tsup's declaration bundle turned `export type *` into a value export of it.
import type { EventEmitter } from 'node:events'

/**
 * Delivers one event of a batch to each listener of its name in turn. A listener that throws must
 * not cost the other listeners, nor the other events of its batch, their delivery: the error is
 * rethrown on its own, as an uncaught exception (the way a throwing listener of a plain
 * `EventEmitter` surfaces), and delivery goes on.
 */
export function emitIsolated(emitter: EventEmitter, name: string, event: unknown): void {
  // `rawListeners`: `once` listeners come wrapped, and the wrapper removes itself when called.
  for (const listener of emitter.rawListeners(name)) {
    try {
      ;(listener as (e: unknown) => void).call(emitter, event)
    } catch (err) {
      queueMicrotask(() => {
        throw err
      })
    }
  }
}
