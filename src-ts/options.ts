import { IronCageError } from './errors.js'

/** USD per 1M tokens for a model the built-in catalog does not know (or to override it). */
export interface ModelPriceOption {
  input: number
  output: number
  cachedInput?: number | undefined
  cacheWrite5m?: number | undefined
  cacheWrite1h?: number | undefined
  maxOutputTokens?: number | undefined
  provider?: 'openai' | 'anthropic' | undefined
}

/** Per-type PII action. */
export type PiiAction = 'off' | 'log' | 'redact' | 'block'

/** PII policy for one direction; keys are the built-in types plus any custom pattern name. */
export interface PiiDirectionPolicy {
  default?: PiiAction | undefined
  email?: PiiAction | undefined
  phone?: PiiAction | undefined
  creditCard?: PiiAction | undefined
  usSsn?: PiiAction | undefined
  iban?: PiiAction | undefined
  ipAddress?: PiiAction | undefined
  secret?: PiiAction | undefined
  [custom: string]: PiiAction | undefined
}

/** PII and secret detection on prompts (`request`) and answers (`response`). */
export interface SafetyOptions {
  request?: PiiDirectionPolicy | undefined
  response?: PiiDirectionPolicy | undefined
  custom?: Array<{ name: string; pattern: string }> | undefined
  /** Secret (16+ characters) keying the HMAC-SHA256 digests that stand for values found, in events and
   *  the audit trail: equal values then give equal digests across routers and restarts. Default: a random
   *  key per router (digests match within it only). Digests are keyed so they cannot be reversed. */
  digestKey?: string | undefined
}

/** Circuit breaker, retry and timeout settings. */
export interface ReliabilityOptions {
  breaker?:
    | {
        enabled?: boolean | undefined
        failureRateThreshold?: number | undefined
        windowSize?: number | undefined
        minimumCalls?: number | undefined
        consecutiveFailures?: number | undefined
        openMs?: number | undefined
        maxOpenMs?: number | undefined
        halfOpenProbes?: number | undefined
      }
    | undefined
  retry?:
    | { maxRetries?: number | undefined; baseMs?: number | undefined; maxBackoffMs?: number | undefined; maxTotalMs?: number | undefined; jitter?: 'full' | 'equal' | undefined }
    | undefined
  timeouts?: { connectMs?: number | undefined; firstByteMs?: number | undefined; idleMs?: number | undefined; totalMs?: number | undefined } | undefined
}

/** Options of `LlmRouter`. Give `serverUrl` (with `apiKey`) or `providerKey`. */
export interface LlmRouterOptions {
  /** The agent's Iron Cage token (`ic_…`, at least 16 characters); clients must present it. Minted when omitted with `providerKey`. */
  apiKey?: string | undefined
  /** The Iron Cage server; the real provider key comes from `GET {serverUrl}/api/keys`. https, or http on loopback. */
  serverUrl?: string | undefined
  /** How long a fetched key is used before it is refreshed; past it, requests keep getting the cached key while one background fetch refreshes it (0: every request waits for a fetch). Default 300. */
  cacheTtlSeconds?: number | undefined
  /** How long past the TTL a cached key is still served while the key server cannot be reached, times out or fails (5xx, 429). A refusal (401 revoked token, 403 disabled key, 404 no key, 400 no project) drops it at once. Default 600. */
  keyStaleGraceSeconds?: number | undefined
  /** How long one key fetch may take before it fails (and `create()` resolves with `providerError`). Default 10000. */
  keyServerTimeoutMs?: number | undefined
  /** Static mode: a provider key used directly, no key server. */
  providerKey?: string | undefined
  /** Static mode: the provider's base URL (default the provider's public API). */
  providerBaseUrl?: string | undefined
  /** Static mode: the provider, when the key's format does not tell (`sk-ant-…` is Anthropic). */
  provider?: 'openai' | 'anthropic' | undefined
  /** Largest request body accepted, in bytes. Default 32 MiB. */
  maxBodyBytes?: number | undefined
  /** Budget in USD; calls that could overshoot it are refused with 402. Default: no limit. */
  budgetUsd?: number | undefined
  /** Percentage of the budget at which a `budget` warning event fires. Default 80. */
  budgetWarningPercent?: number | undefined
  /** Prices for custom or unknown models, USD per 1M tokens. */
  pricing?: Record<string, ModelPriceOption> | undefined
  /** With a budget set: refuse calls to models that cannot be priced (default), or charge a flat cost. */
  unknownModel?: 'block' | { action: 'block' } | { action: 'allow'; costUsd: number } | undefined
  /** With a budget set: refuse calls whose cost cannot be held before they are sent (endpoints the
   *  router does not price, provider-run tools such as web search, chat search models, background
   *  responses, priority without priority rates, Anthropic fast mode) — the default — or forward
   *  them ('allow': unpriced endpoints are recorded at $0, priority without rates and fast mode are
   *  charged at standard rates). */
  unmeteredCalls?: 'block' | 'allow' | undefined
  /** The service tier your OpenAI project runs requests at that ask for none or for 'auto'
   *  ('default' unless the project's owner changed it in OpenAI's settings). With 'priority' (or
   *  'fast', its name since July 2026), such requests are held at priority rates. Default 'default'. */
  openaiProjectServiceTier?: 'default' | 'priority' | 'fast' | undefined
  /** PII and secret policy per type and direction. Default: prompts block secrets and log the rest;
   *  answers redact secrets and log the rest. */
  safety?: SafetyOptions | undefined
  /** Circuit breaker, retries and timeouts for the upstream provider. */
  reliability?: ReliabilityOptions | undefined
  /** SQLite file for the request ledger, audit trail and agents (WAL); a file keeps everything. Default: in memory, keeping the newest 5,000 requests and audit events. */
  statePath?: string | undefined
  /** This router's agent id in the state store; with `statePath`, spent is restored on start (a call a killed router left in flight is charged at its budget hold), and one router at a time may run the agent (another gets `AGENT_ID_IN_USE`). */
  agentId?: string | undefined
  /** How often queued ledger rows are committed, in ms (and every 128 rows, whichever comes first). Default 100 (at most that is lost on a crash). */
  flushIntervalMs?: number | undefined
  /** Commit each ledger row before its response completes (and, with `agentId`, each call's budget hold before it is forwarded). Default false. */
  strictPersistence?: boolean | undefined
  /** Log level; lines go to stderr unless `logger` is given. Default: no logging, or 'info' when `logger` is given. */
  logLevel?: 'off' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | undefined
  /** Log line format. Default 'text'. */
  logFormat?: 'text' | 'json' | undefined
  /** Receives every log line (already redacted: no key, token or raw PII). */
  logger?: ((line: string) => void) | undefined
  /** A dashboard to push STATE_UPDATE, AGENT_EVENT, COST_ALERT and HEARTBEAT messages to (wss://, or ws:// on loopback). */
  dashboardUrl?: string | undefined
  /** Heartbeat interval of `/_iron/events` and the dashboard link, in ms. Default 30000. */
  wsHeartbeatMs?: number | undefined
  /** Origins of web pages allowed to call the router (browser requests are refused otherwise). */
  allowedOrigins?: string[] | undefined
  /** Concurrent client connections. Default 1024. */
  maxConnections?: number | undefined
  /** Time a client has to send its request headers, and the longest pause in its body (408 beyond; the whole body within 60 s or this, whichever is longer). Default 10000. */
  headerReadTimeoutMs?: number | undefined
  /**
   * Clients present a token minted for this router (`router.apiKey`, also in `router.env()`)
   * instead of the Iron Cage token, which could fetch the real provider key from the key server
   * itself. Set it when the router's token goes to a process you do not fully trust (an agent you
   * did not write); `AgentRuntime` and `iron-cage run`/`serve` always do. Default false.
   */
  mintClientToken?: boolean | undefined
}

const KNOWN = new Set<keyof LlmRouterOptions>([
  'apiKey', 'serverUrl', 'cacheTtlSeconds', 'keyStaleGraceSeconds', 'keyServerTimeoutMs', 'providerKey', 'providerBaseUrl', 'provider',
  'maxBodyBytes', 'budgetUsd', 'budgetWarningPercent', 'pricing', 'unknownModel', 'unmeteredCalls', 'openaiProjectServiceTier', 'safety', 'reliability',
  'statePath', 'agentId', 'flushIntervalMs', 'strictPersistence', 'logLevel', 'logFormat', 'logger',
  'dashboardUrl', 'wsHeartbeatMs', 'allowedOrigins', 'maxConnections',
  'headerReadTimeoutMs', 'mintClientToken',
])

/** The JS type of each scalar option (objects and arrays are checked on the native side). */
const OPTION_TYPES: Partial<Record<keyof LlmRouterOptions, 'string' | 'number' | 'boolean'>> = {
  apiKey: 'string',
  serverUrl: 'string',
  providerKey: 'string',
  providerBaseUrl: 'string',
  provider: 'string',
  statePath: 'string',
  agentId: 'string',
  logLevel: 'string',
  logFormat: 'string',
  unmeteredCalls: 'string',
  openaiProjectServiceTier: 'string',
  dashboardUrl: 'string',
  cacheTtlSeconds: 'number',
  keyStaleGraceSeconds: 'number',
  keyServerTimeoutMs: 'number',
  maxBodyBytes: 'number',
  budgetUsd: 'number',
  budgetWarningPercent: 'number',
  flushIntervalMs: 'number',
  wsHeartbeatMs: 'number',
  maxConnections: 'number',
  headerReadTimeoutMs: 'number',
  strictPersistence: 'boolean',
  mintClientToken: 'boolean',
}

/** Cheap shape checks with errors that name the field; the native side validates values. */
/** The `logger` option as the native side calls it: a logger that throws must not take the router down. */
export function guardedLogger(logger: (line: string) => void): (line: string) => void {
  return (line: string) => {
    try {
      logger(line)
    } catch {
      // Dropped: the line, not the router.
    }
  }
}

export function serializeOptions(options: LlmRouterOptions): string {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new IronCageError('INVALID_OPTIONS', 'LlmRouter options must be an object, e.g. { apiKey, serverUrl }')
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key as keyof LlmRouterOptions)) {
      throw new IronCageError('INVALID_OPTIONS', `invalid option ${key}: unknown option (known: ${[...KNOWN].join(', ')})`)
    }
  }
  for (const [key, want] of Object.entries(OPTION_TYPES)) {
    const v = (options as Record<string, unknown>)[key]
    // null reads as "not set", as an omitted option does.
    if (v === undefined || v === null || typeof v === want) continue
    const got = Array.isArray(v) ? 'an array' : `a ${typeof v}`
    const hint = want === 'number' && typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? ` (write ${Number(v)}, not '${v}')` : ''
    throw new IronCageError('INVALID_OPTIONS', `invalid option ${key}: expected a ${want}, got ${got}${hint}`)
  }
  const clean: Record<string, unknown> = {}
  if (options.logger !== undefined && typeof options.logger !== 'function') {
    throw new IronCageError('INVALID_OPTIONS', 'invalid option logger: expected a function (line: string) => void')
  }
  for (const [k, v] of Object.entries(options)) if (v !== undefined && k !== 'logger') clean[k] = v
  if (options.logger) {
    clean.logSink = 'callback'
    if (clean.logLevel === undefined) clean.logLevel = 'info'
  }
  return toOptionsJson(clean)
}

/**
 * JSON for options bound for the native side. JSON has no NaN or Infinity (`JSON.stringify` writes
 * them as `null`, which would read as "not set": a `budgetUsd: Number(process.env.UNSET)` would mean
 * no budget at all), so a number that is not finite is refused here, naming the option.
 */
export function toOptionsJson(options: Record<string, unknown>): string {
  checkFinite(options, '')
  return JSON.stringify(options)
}

function checkFinite(value: unknown, path: string, depth = 0): void {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      throw new IronCageError('INVALID_OPTIONS', `invalid option ${path}: expected a finite number, got ${value}`)
    }
  } else if (typeof value === 'bigint') {
    throw new IronCageError('INVALID_OPTIONS', `invalid option ${path}: expected a number, got a bigint`)
  } else if (value !== null && typeof value === 'object' && depth < 32) {
    for (const [k, v] of Object.entries(value)) {
      checkFinite(v, Array.isArray(value) ? `${path}[${k}]` : path ? `${path}.${k}` : k, depth + 1)
    }
  }
}
