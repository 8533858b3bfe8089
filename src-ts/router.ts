import { EventEmitter } from 'node:events'
import { IronCageError, fromNative } from './errors.js'
import { emitIsolated } from './emit.js'
import type { RouterEvent, RouterEventMap } from './events.js'
import { native, type NativeRouter } from './native.js'
import { guardedLogger, serializeOptions, type LlmRouterOptions } from './options.js'

/** Spent, reserved and limit of the budget, in USD (`limitUsd` is null without a budget). */
export interface BudgetStatus {
  spentUsd: number
  reservedUsd: number
  limitUsd: number | null
}

/** Per-model totals in `router.stats()`. */
export interface ModelStats {
  requests: number
  inputTokens: number
  outputTokens: number
  cacheReadTokens: number
  cacheWriteTokens: number
  reasoningTokens: number
  costUsd: number
}

/** Counters since the router started. */
export interface RouterStats {
  requests: number
  completed: number
  failed: number
  blocked: number
  blockedByReason: Record<string, number>
  inputTokens: number
  outputTokens: number
  cacheReadTokens: number
  cacheWriteTokens: number
  reasoningTokens: number
  costUsd: number
  /** Per model, by the name requests gave: at most 1,024 entries; further names, and names over
   * 256 bytes, add up under `'(other)'`. */
  byModel: Record<string, ModelStats>
  lastModel: string | null
  eventsDropped: number
  /** Dashboard messages lost while the dashboard was offline (the oldest beyond 1,000 buffered). */
  dashboardDropped: number
  /** Upstream attempts the router repeated (retry policy). */
  retries: number
  /**
   * Rows of the request ledger and audit trail (SQLite): committed, waiting for the writer (at most
   * 128 rows or `flushIntervalMs` behind), refused because the writer's queue was full, and rejected
   * by SQLite. `dropped` and `failed` stay 0 unless the writer cannot keep up or the database fails.
   */
  ledger: LedgerStats
}

export interface LedgerStats {
  committed: number
  pending: number
  dropped: number
  failed: number
}

export type Provider = 'openai' | 'anthropic' | 'unknown'

const EVENT_NAMES = new Set(['request', 'response', 'blocked', 'budget', 'pii', 'circuit', 'key', 'error'])

/**
 * A local proxy on 127.0.0.1 that agents' OpenAI and Anthropic SDKs call instead of the provider.
 * It swaps the Iron Cage token for the real key and applies budget, PII and reliability policy.
 */
export class LlmRouter extends EventEmitter<RouterEventMap> {
  readonly #inner: NativeRouter
  #keepAlive: NodeJS.Timeout | undefined
  #subscribed = false
  #stopping: Promise<void> | undefined
  #settleReady: (() => void) | undefined
  /**
   * Resolves once the first provider key fetch ended: the key was fetched (`provider` is known), or
   * could not be (`provider` is `'unknown'`, `providerError` says why), or `stop()` was called first
   * (then it resolves at once, `providerError` saying the router stopped). It never rejects. It does
   * not keep the process alive by itself: after `unref()` the process may exit while it is pending.
   */
  readonly ready: Promise<void>

  /** Binds synchronously (no network on the event loop); `await router.ready` for the provider. */
  constructor(options: LlmRouterOptions) {
    super()
    const json = serializeOptions(options)
    try {
      this.#inner = new (native().NativeRouter)(json)
    } catch (err) {
      throw fromNative(err)
    }
    if (options.logger) this.#inner.attachLogger(guardedLogger(options.logger))
    // Like a net.Server: a running router keeps the process alive until stop() or unref().
    this.#keepAlive = setInterval(() => {}, 1 << 30)
    ;(this as EventEmitter).on('newListener', (name: string | symbol) => {
      if (!this.#subscribed && typeof name === 'string' && EVENT_NAMES.has(name)) this.#subscribe()
    })
    this.ready = new Promise<void>((resolve) => {
      this.#settleReady = resolve
    })
    // Unref'd on the native side: a key server that hangs cannot hold the process open after
    // stop() or unref().
    this.#inner.onReady(() => this.#settleReady?.())
  }

  /** Create a router and wait until it knows its provider. */
  static async create(options: LlmRouterOptions): Promise<LlmRouter> {
    const router = new LlmRouter(options)
    await router.ready
    return router
  }

  /** `http://127.0.0.1:<port>/v1`, the base URL for OpenAI SDKs. */
  get baseUrl(): string {
    return this.#inner.baseUrl
  }

  /** `http://127.0.0.1:<port>`, the base URL for the Anthropic SDK (it appends `/v1/messages`). */
  get anthropicBaseUrl(): string {
    return this.#inner.anthropicBaseUrl
  }

  get port(): number {
    return this.#inner.port
  }

  /** The token clients send (the Iron Cage token, or a minted local one in static-key mode). */
  get apiKey(): string {
    return this.#inner.apiKey
  }

  /**
   * The provider of the last key fetched (it follows a rotation to another provider's key);
   * `'unknown'` until a key was fetched, and while none could be (`providerError` says why).
   */
  get provider(): Provider {
    const p = this.#inner.provider
    if (p === 'openai' || p === 'anthropic') return p
    return 'unknown'
  }

  /**
   * Why `provider` is `'unknown'`: no key could be fetched yet (the last fetch's error), or the router
   * stopped before the first fetch ended. Undefined once a key was fetched.
   */
  get providerError(): string | undefined {
    return this.#inner.providerError ?? undefined
  }

  get isRunning(): boolean {
    return this.#inner.isRunning
  }

  /** USD spent through this router. */
  totalSpent(): number {
    return this.#inner.totalSpentMicros() / 1e6
  }

  /** The budget limit in USD, or null when there is none. */
  get budget(): number | null {
    return this.budgetStatus.limitUsd
  }

  /** Spent, reserved (held by calls in flight) and limit, in USD. */
  get budgetStatus(): BudgetStatus {
    const s = JSON.parse(this.#inner.budgetJson()) as { spentMicros: number; reservedMicros: number; limitMicros: number | null }
    return {
      spentUsd: s.spentMicros / 1e6,
      reservedUsd: s.reservedMicros / 1e6,
      limitUsd: s.limitMicros === null ? null : s.limitMicros / 1e6,
    }
  }

  /** Set the budget in USD, or remove it with `null`. */
  setBudget(usd: number | null): void {
    if (usd !== null && (typeof usd !== 'number' || !Number.isFinite(usd) || usd < 0)) {
      throw new IronCageError('INVALID_OPTIONS', `setBudget: expected a non-negative number of USD or null, got ${String(usd)}`)
    }
    try {
      this.#inner.setBudgetUsd(usd)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** Counters since start: requests, blocked by reason, tokens, cost, per model. */
  stats(): RouterStats {
    const raw = JSON.parse(this.#inner.statsJson()) as RouterStats & { costMicros: number; byModel: Record<string, ModelStats & { costMicros: number }> }
    const byModel: Record<string, ModelStats> = {}
    for (const [model, m] of Object.entries(raw.byModel)) {
      const { costMicros, ...rest } = m
      byModel[model] = { ...rest, costUsd: costMicros / 1e6 }
    }
    const { costMicros, ...rest } = raw
    return { ...rest, byModel, costUsd: costMicros / 1e6 }
  }

  /** Options for `new OpenAI(...)`: `{ baseURL, apiKey }`. */
  openaiClientOptions(): { baseURL: string; apiKey: string } {
    return { baseURL: this.baseUrl, apiKey: this.apiKey }
  }

  /** Options for `new Anthropic(...)`: `{ baseURL, apiKey }`. */
  anthropicClientOptions(): { baseURL: string; apiKey: string } {
    return { baseURL: this.anthropicBaseUrl, apiKey: this.apiKey }
  }

  /**
   * The environment variables the OpenAI and Anthropic SDKs read, pointing at this router, and
   * `NO_PROXY` / `no_proxy` (this process's value with `127.0.0.1,localhost` appended): Python's
   * httpx, requests and curl would otherwise send the calls, token included, to an `HTTP_PROXY`.
   */
  env(): Record<string, string> {
    const upper = process.env.NO_PROXY || undefined
    const lower = process.env.no_proxy || undefined
    return {
      OPENAI_BASE_URL: this.baseUrl,
      OPENAI_API_KEY: this.apiKey,
      ANTHROPIC_BASE_URL: this.anthropicBaseUrl,
      ANTHROPIC_API_KEY: this.apiKey,
      IRON_CAGE_ROUTER_URL: this.anthropicBaseUrl,
      IRON_CAGE_TOKEN: this.apiKey,
      NO_PROXY: withRouterHosts(upper ?? lower),
      no_proxy: withRouterHosts(lower ?? upper),
    }
  }

  /** Keep the process alive while running (the default). */
  ref(): this {
    this.#keepAlive?.ref()
    return this
  }

  /** Let the process exit even though the router runs. */
  unref(): this {
    this.#keepAlive?.unref()
    return this
  }

  /** Stop serving; in-flight requests get a short grace. Idempotent. */
  stop(): Promise<void> {
    if (!this.#stopping) {
      if (this.#keepAlive) clearInterval(this.#keepAlive)
      this.#keepAlive = undefined
      // Settled here, not only from the native side: after the keep-alive handle is gone nothing
      // would hold the process open until the native callback arrives.
      this.#settleReady?.()
      this.#stopping = this.#inner.stop().catch((err: unknown) => {
        throw fromNative(err)
      })
    }
    return this.#stopping
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  #subscribe(): void {
    this.#subscribed = true
    this.#inner.subscribe((batch: string) => {
      let events: RouterEvent[]
      try {
        events = JSON.parse(batch) as RouterEvent[]
      } catch {
        return
      }
      for (const e of events) {
        if (e.type === 'error' && this.listenerCount('error') === 0) continue
        emitIsolated(this as EventEmitter, e.type, e)
      }
    })
  }
}

/** The hosts agents reach a router by (it listens on 127.0.0.1 only). */
export const ROUTER_HOSTS = ['127.0.0.1', 'localhost'] as const

/** A `NO_PROXY` list with the router's hosts appended where missing (as the agent runtime does). */
export function withRouterHosts(value: string | undefined): string {
  let out = (value ?? '').trim().replace(/,+$/, '')
  for (const host of ROUTER_HOSTS) {
    const present = out.split(',').some((h) => h.trim() === '*' || h.trim().toLowerCase() === host)
    if (!present) out = out ? `${out},${host}` : host
  }
  return out
}
