/** Token counts by kind (`input` is uncached input). */
export interface TokenCounts {
  input: number
  cacheRead: number
  cacheWrite: number
  output: number
  reasoning: number
}

export interface RequestEvent {
  type: 'request'
  requestId: number
  tsMs: number
  method: string
  path: string
  provider: string | null
  model: string | null
  stream: boolean
}

export interface ResponseEvent {
  type: 'response'
  requestId: number
  tsMs: number
  provider: string
  model: string | null
  status: number
  tokens: TokenCounts
  costUsd: number
  costMicros: number
  /** True when the cost was estimated: usage the provider never reported or that could not be read (a stream or an answer cut short, an answer without a readable `usage`), charged as the README's "Budget holds" says. */
  estimated: boolean
  /** True when the model has no price (`pricing` gives one): the call is recorded at $0 whatever it cost, and a warning names the model once. */
  unpriced: boolean
  latencyMs: number
  ttftMs: number | null
  /**
   * `client_timeout`: the client read nothing of the answer for `idleMs`, or was still behind when `totalMs` ran out; the
   * relay stopped as for a client that left. `router_stopped`: `stop()` ended the call before its answer was complete (a
   * client still waiting got a 503 `ROUTER_STOPPED`, or an SSE error event if the stream had begun); a call still waiting for
   * its answer is charged its hold.
   */
  outcome: 'complete' | 'client_aborted' | 'client_timeout' | 'upstream_error' | 'timeout' | 'blocked' | 'router_stopped'
}

export interface BlockedEvent {
  type: 'blocked'
  requestId: number
  tsMs: number
  reason: 'auth' | 'budget' | 'pii' | 'invalid_body' | 'circuit' | 'mismatch' | 'limit' | 'key' | 'upstream' | 'host' | 'origin' | 'rate_limited' | 'internal'
  code: string
  message: string
}

/**
 * A budget threshold crossed, once per crossing. `warning`: spent reached `budgetWarningPercent` of the limit. `exceeded`:
 * the budget is exhausted, it refuses calls for good: spent reached the limit, or a call was refused for the budget with no
 * other call holding budget and either less left than the cheapest call its model can make (one short message, one output
 * token) or 3 refusals in a row with no call let through in between. `percent` can then be below 100. Raising the limit
 * (`setBudget`) re-arms them, so each new exhaustion fires once: `warning` when spent is under its share of the new limit,
 * `exceeded` when the new limit is above both spent and the limit it fired at; a limit then lowered to or below spent fires
 * them at once.
 */
export interface BudgetEvent {
  type: 'budget'
  tsMs: number
  level: 'warning' | 'exceeded'
  spentUsd: number
  limitUsd: number
  percent: number
}

export interface PiiEvent {
  type: 'pii'
  requestId: number
  tsMs: number
  direction: 'request' | 'response'
  detections: Array<{ kind: string; count: number; action: string; sha256: string[] }>
}

export interface CircuitEvent {
  type: 'circuit'
  tsMs: number
  provider: string
  host: string
  state: 'closed' | 'open' | 'half_open'
  reason: string
}

export interface KeyEvent {
  type: 'key'
  tsMs: number
  action: 'fetched' | 'refreshed' | 'stale' | 'failed'
  provider: string | null
  message: string | null
}

/**
 * A failure no call's answer shows, rate-limited to one per `code` a minute; the message never holds a key, a token or the
 * dashboard URL. `STATE_WRITE_FAILED`: rows of the ledger or audit trail could not be written to `statePath` (rejected by
 * SQLite, or dropped because the writer could not keep up; `stats().ledger` counts them). `DASHBOARD_UNREACHABLE`: the
 * `dashboardUrl` link failed twice in a row (connect failed or the link dropped); once per outage. Key-server failures are
 * `key` events (`action: 'failed'`), not `error` events. Emitted only while an `error` listener is attached.
 */
export interface RouterErrorEvent {
  type: 'error'
  tsMs: number
  code: string
  message: string
}

export type RouterEvent =
  | RequestEvent
  | ResponseEvent
  | BlockedEvent
  | BudgetEvent
  | PiiEvent
  | CircuitEvent
  | KeyEvent
  | RouterErrorEvent

/** Event name → listener arguments, for the typed EventEmitter. */
export interface RouterEventMap {
  request: [RequestEvent]
  response: [ResponseEvent]
  blocked: [BlockedEvent]
  budget: [BudgetEvent]
  pii: [PiiEvent]
  circuit: [CircuitEvent]
  key: [KeyEvent]
  error: [RouterErrorEvent]
}
