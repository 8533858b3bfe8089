import { EventEmitter } from 'node:events'
import { IronCageError, fromNative } from './errors.js'
import { emitIsolated } from './emit.js'
import { native } from './native.js'
import { guardedLogger, serializeOptions, toOptionsJson, type LlmRouterOptions } from './options.js'
import type { ModelStats, RouterStats } from './router.js'

/** Where an agent is in its life; `stopped`, `exited` and a final `crashed` do not change any more. */
export type AgentStatus = 'starting' | 'running' | 'stopping' | 'stopped' | 'exited' | 'crashed'

/** A snapshot of one agent. */
export interface AgentInfo {
  id: string
  name: string
  command: string
  args: string[]
  status: AgentStatus
  /**
   * True once the agent is done: status final (no stop pending, no restart coming) and no wait for
   * its calls at the provider. During that wait (`settling`) the process is gone and `status` is
   * already the final one ('exited', 'crashed', 'stopped'), while `finished` is still false.
   */
  finished: boolean
  pid: number | null
  exitCode: number | null
  /** The signal that ended the process, e.g. `'SIGTERM'`. */
  signal: string | null
  /** Why it stopped or crashed, in words (for example the budget that ran out). */
  reason: string | null
  restarts: number
  startedAtMs: number
  endedAtMs: number | null
  /** The agent router's OpenAI base URL (what `OPENAI_BASE_URL` holds). */
  baseUrl: string
  /** The agent router's root URL (what `ANTHROPIC_BASE_URL` holds). */
  anthropicBaseUrl: string
  /**
   * While calls the ended process left at the provider settle (they are billed, so the agent's
   * router waits for them, at most `totalMs`): how many are left and when the wait ends at the
   * latest. `stop()` ends the wait. Null otherwise.
   */
  settling: { calls: number; untilMs: number } | null
  /**
   * Calls still at the provider when the router stopped waiting for them (`stop()` during the
   * wait): their budget holds (0 without a budget) are charged in spent; with `statePath` they were
   * charged at their hold in the state file too (`chargedInStateFile`). Null when none.
   */
  unsettled: { calls: number; heldMicros: number; chargedInStateFile: boolean } | null
}

/** Live figures from the agent's own router. */
export interface AgentMetrics {
  requests: number
  completed: number
  failed: number
  blocked: number
  spentUsd: number
  budgetUsd: number | null
  /** Last request or response, ms since the epoch. */
  lastActivityMs: number | null
  lastModel: string | null
  /**
   * True once the budget is exhausted: spent reached it; or a call was refused for it with
   * nothing else holding budget and what is left is less than the cheapest call its model can
   * make; or 3 calls in a row were refused for it with nothing else holding budget. A single
   * refused call (no `max_tokens`, nearly all the budget left) is not exhaustion.
   */
  budgetExhausted: boolean
}

/** `runtime.on('agent', e => …)`. */
export interface AgentEvent {
  type: 'agent'
  tsMs: number
  agentId: string
  name: string
  /** `settling`: the process ended with calls still at the provider; `reason` says how many and how long the wait can be. */
  action: 'started' | 'exited' | 'crashed' | 'restarted' | 'stopped' | 'settling'
  pid: number | null
  exitCode: number | null
  signal: string | null
  reason: string | null
}

export interface AgentRuntimeEventMap {
  agent: [AgentEvent]
}

/** Options of `AgentRuntime`: the router options every agent's router starts from (budget and id are per agent: `startAgent`), plus `statePath`. */
export type AgentRuntimeOptions = Omit<LlmRouterOptions, 'budgetUsd' | 'agentId'> & {
  /** SQLite file where agents (and their routers' ledgers) are persisted. */
  statePath?: string | undefined
}

/** What `startAgent` runs. */
export interface StartAgentOptions {
  /**
   * A fixed agent id (1–64 ASCII letters, digits, `.`, `_`, `-`, `:`). Default: a new `agt_…` id per
   * start. With the runtime's `statePath` the same id is the same agent across starts and processes:
   * its spent is restored, so `budgetUsd` covers all its runs (and one process at a time may run it).
   * Throws `AGENT_ID_IN_USE` while an agent with that id runs in this runtime, or in another process on the same state file.
   */
  id?: string | undefined
  name?: string | undefined
  /** The program: `'python3'`, `'node'`, a path… (no shell: pass arguments in `args`). */
  command: string
  args?: string[] | undefined
  cwd?: string | undefined
  /** Extra environment; the router variables (`OPENAI_BASE_URL`, `OPENAI_API_KEY`, …) always win. */
  env?: Record<string, string> | undefined
  /** This agent's own budget in USD. Default: no limit. */
  budgetUsd?: number | undefined
  /** Restart on crash (non-zero exit or signal): at most `maxRestarts` times, waiting `backoffMs` (doubling). */
  restart?: { maxRestarts: number; backoffMs?: number | undefined } | undefined
  /** When the budget is exhausted: keep running (calls get 402, the default) or stop the agent. */
  onBudgetExhausted?: 'keep-running' | 'stop' | undefined
  /** SIGTERM → SIGKILL grace for stops the runtime decides (budget, shutdown). Default 5000. */
  graceMs?: number | undefined
  /**
   * The child's stdin: `'ignore'` (default), `'inherit'`, or `'terminal'`: inherited, and when it
   * is a terminal whose foreground job is this process, the agent's process group becomes the
   * terminal's foreground group while it runs (as a shell does for a job): it reads the terminal
   * and gets the terminal's Ctrl-C (SIGINT) directly, which this process does not see: an exit
   * by SIGINT/SIGQUIT or with code 130 counts as a stop, any other non-zero exit as a crash (and is
   * restarted per `restart`). Ctrl-Z does not suspend it (a stopped process of its group is resumed
   * at once). A terminal this process is in the background of gives `'ignore'`. stdout and stderr are inherited.
   */
  stdin?: 'inherit' | 'ignore' | 'terminal' | undefined
}

/** Options of `stop()` / `stopAgent()`. */
export interface StopAgentOptions {
  /** How long each signal gets before the next. Default the agent's `graceMs`. */
  graceMs?: number | undefined
  /**
   * The first signal: `'SIGTERM'` (default; SIGKILL after the grace), or `'SIGINT'` / `'SIGHUP'` /
   * `'SIGQUIT'` (passing on a Ctrl-C, a hangup or a Ctrl-\\: SIGTERM after the grace, SIGKILL after another).
   */
  signal?: 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'SIGQUIT' | undefined
}

interface NativeAgentRuntime {
  startAgent(specJson: string): string
  agentJson(id: string): string | null
  metricsJson(id: string): string | null
  statsJson(id: string): string | null
  listJson(): string
  stopAgent(id: string, graceMs?: number | null, signal?: string | null): Promise<string | null>
  onAgentFinished(id: string, callback: (info: string) => void): boolean
  shutdown(graceMs?: number | null): Promise<void>
  subscribe(callback: (batch: string) => void): void
  attachLogger(callback: (line: string) => void): void
}

type AgentBinding = { NativeAgentRuntime: new (optionsJson: string) => NativeAgentRuntime }

function checkGrace(graceMs: unknown): number | undefined {
  if (graceMs === undefined) return undefined
  if (typeof graceMs !== 'number' || !Number.isFinite(graceMs) || graceMs < 0 || graceMs > 3_600_000) {
    throw new IronCageError('INVALID_OPTIONS', `invalid option graceMs: expected milliseconds from 0 to 3600000, got ${String(graceMs)}`)
  }
  return graceMs
}

function checkSignal(signal: unknown): string | undefined {
  if (signal === undefined) return undefined
  if (signal !== 'SIGINT' && signal !== 'SIGTERM' && signal !== 'SIGHUP' && signal !== 'SIGQUIT') {
    throw new IronCageError('INVALID_OPTIONS', `invalid option signal: expected 'SIGINT', 'SIGTERM', 'SIGHUP' or 'SIGQUIT', got ${String(signal)}`)
  }
  return signal
}

function parseInfo(json: string): AgentInfo {
  return JSON.parse(json) as AgentInfo
}

/** One agent started by an `AgentRuntime`. Status and metrics are read live. */
export class Agent {
  readonly #inner: NativeAgentRuntime
  readonly #runtime: AgentRuntime
  readonly #first: AgentInfo
  readonly #done: Promise<AgentInfo>

  /** @internal */
  constructor(inner: NativeAgentRuntime, runtime: AgentRuntime, info: AgentInfo, done: Promise<AgentInfo>) {
    this.#inner = inner
    this.#runtime = runtime
    this.#first = info
    this.#done = done
  }

  get id(): string {
    return this.#first.id
  }

  get name(): string {
    return this.#first.name
  }

  /** A snapshot of everything about the agent now. */
  info(): AgentInfo {
    const json = this.#inner.agentJson(this.#first.id)
    return json ? parseInfo(json) : this.#first
  }

  get status(): AgentStatus {
    return this.info().status
  }

  /** The current process id (changes on restart), null before start. */
  get pid(): number | null {
    return this.info().pid
  }

  get exitCode(): number | null {
    return this.info().exitCode
  }

  get signal(): string | null {
    return this.info().signal
  }

  get reason(): string | null {
    return this.info().reason
  }

  get restarts(): number {
    return this.info().restarts
  }

  get baseUrl(): string {
    return this.#first.baseUrl
  }

  get anthropicBaseUrl(): string {
    return this.#first.anthropicBaseUrl
  }

  /** Requests, spend, budget and last activity, from the agent's own router. */
  metrics(): AgentMetrics {
    const json = this.#inner.metricsJson(this.#first.id)
    const m = JSON.parse(json ?? '{}') as Omit<AgentMetrics, 'spentUsd' | 'budgetUsd'> & { spentMicros: number; budgetMicros: number | null }
    const { spentMicros, budgetMicros, ...rest } = m
    return { ...rest, spentUsd: spentMicros / 1e6, budgetUsd: budgetMicros === null ? null : budgetMicros / 1e6 }
  }

  /** The agent router's counters: tokens and cost by model, blocked by reason. */
  stats(): RouterStats {
    const raw = JSON.parse(this.#inner.statsJson(this.#first.id) ?? '{}') as RouterStats & {
      costMicros: number
      byModel: Record<string, ModelStats & { costMicros: number }>
    }
    const byModel: Record<string, ModelStats> = {}
    for (const [model, m] of Object.entries(raw.byModel ?? {})) {
      const { costMicros, ...rest } = m
      byModel[model] = { ...rest, costUsd: costMicros / 1e6 }
    }
    const { costMicros, ...rest } = raw
    return { ...rest, byModel, costUsd: costMicros / 1e6 }
  }

  /** Resolves with the final info once the agent ended for good (after any restarts). */
  wait(): Promise<AgentInfo> {
    return this.#done
  }

  /**
   * SIGTERM (or `signal`) to the agent's process group, SIGKILL after `graceMs` (default the
   * agent's `graceMs`). Made while the ended agent's calls settle, or while it is being stopped
   * already, it also ends the wait for those calls.
   */
  stop(options: StopAgentOptions = {}): Promise<AgentInfo> {
    return this.#runtime.stopAgent(this.#first.id, options)
  }
}

/**
 * Runs programs as agents under governance: each gets its own LlmRouter (its own budget), the
 * environment its SDKs read, and a supervisor (process group, graceful stop, restart policy).
 */
export class AgentRuntime extends EventEmitter<AgentRuntimeEventMap> {
  readonly #inner: NativeAgentRuntime
  readonly #agents = new Map<string, Agent>()
  #running = 0
  #keepAlive: NodeJS.Timeout | undefined
  #refed = true
  #subscribed = false
  #shutdown: Promise<void> | undefined

  constructor(options: AgentRuntimeOptions) {
    super()
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new IronCageError('INVALID_OPTIONS', 'AgentRuntime options must be an object, e.g. { providerKey } or { apiKey, serverUrl }')
    }
    const { statePath, ...router } = options
    if (statePath !== undefined && typeof statePath !== 'string') {
      throw new IronCageError('INVALID_OPTIONS', `invalid option statePath: expected a file path string, got ${typeof statePath}`)
    }
    if ('budgetUsd' in router) {
      throw new IronCageError('INVALID_OPTIONS', 'invalid option budgetUsd: budgets are per agent; pass budgetUsd to startAgent')
    }
    // An empty statePath goes on too: the native side refuses it, naming the fix.
    const json = `{"router":${serializeOptions(router as LlmRouterOptions)}${statePath !== undefined ? `,"statePath":${JSON.stringify(statePath)}` : ''}}`
    try {
      this.#inner = new (native() as unknown as AgentBinding).NativeAgentRuntime(json)
    } catch (err) {
      throw fromNative(err)
    }
    // Every agent router's lines (its logSink is 'callback': without this they go nowhere).
    if (options.logger) this.#inner.attachLogger(guardedLogger(options.logger))
    ;(this as EventEmitter).on('newListener', (name: string | symbol) => {
      if (!this.#subscribed && name === 'agent') this.#subscribe()
    })
  }

  /** Start `options.command` as an agent. Throws `SPAWN_FAILED` (naming the fix) if it cannot start. */
  startAgent(options: StartAgentOptions): Agent {
    if (options === null || typeof options !== 'object' || typeof options.command !== 'string') {
      throw new IronCageError('INVALID_OPTIONS', "startAgent: expected { command: string, args?: string[], … }, e.g. { command: 'python3', args: ['agent.py'] }")
    }
    if (options.args !== undefined && (!Array.isArray(options.args) || options.args.some((a) => typeof a !== 'string'))) {
      throw new IronCageError('INVALID_OPTIONS', 'invalid option args: expected an array of strings')
    }
    checkGrace(options.graceMs)
    // Refused from the moment shutdown() is called, not only once its native part has begun:
    // an agent started in the same tick would outlive the shutdown.
    if (this.#shutdown) {
      throw new IronCageError('RUNTIME_SHUT_DOWN', 'the runtime was shut down (runtime.shutdown()); create a new AgentRuntime to start agents')
    }
    const json = toOptionsJson(options as unknown as Record<string, unknown>)
    // The agent shares this process's stdout and stderr. Node makes a pipe non-blocking when it
    // first opens its stream, which would make the agent's writes fail with EAGAIN (Python's
    // BlockingIOError): opened now, before the spawn leaves them blocking for the agent.
    void process.stdout.fd
    void process.stderr.fd
    let info: AgentInfo
    try {
      info = parseInfo(this.#inner.startAgent(json))
    } catch (err) {
      throw fromNative(err)
    }
    this.#running += 1
    this.#holdOpen()
    const done = new Promise<string | null>((resolve) => {
      if (!this.#inner.onAgentFinished(info.id, resolve)) resolve(null)
    }).then((json) => {
      this.#running -= 1
      if (this.#running === 0) this.#release()
      return json ? parseInfo(json) : info
    })
    const agent = new Agent(this.#inner, this, info, done)
    this.#agents.set(info.id, agent)
    return agent
  }

  /** The agent with this id. */
  get(id: string): Agent | undefined {
    return this.#agents.get(id)
  }

  /** Every agent started by this runtime, oldest first. */
  list(): AgentInfo[] {
    return (JSON.parse(this.#inner.listJson()) as AgentInfo[])
  }

  /** SIGTERM (or `signal`) to the agent's process group, SIGKILL after `graceMs`; resolves with the final info. */
  async stopAgent(id: string, options: StopAgentOptions = {}): Promise<AgentInfo> {
    const grace = checkGrace(options.graceMs)
    const signal = checkSignal(options.signal)
    const json = await this.#inner.stopAgent(id, grace ?? null, signal ?? null)
    if (json === null) {
      throw new IronCageError('AGENT_NOT_FOUND', `no agent with id '${id}': runtime.list() shows the agents of this runtime`)
    }
    return parseInfo(json)
  }

  /** Stop every agent (SIGTERM, SIGKILL after the grace) and refuse new ones. Idempotent. */
  shutdown(options: { graceMs?: number | undefined } = {}): Promise<void> {
    if (!this.#shutdown) {
      const grace = checkGrace(options.graceMs)
      // The process is held open until every agent's end has reached JS too (its `wait()` and
      // `exited` event), not only until the native shutdown returns (at most 2 s more).
      const ends = Promise.all([...this.#agents.values()].map((a) => a.wait()))
      this.#shutdown = this.#inner
        .shutdown(grace ?? null)
        .then(() => within(ends, 2000))
        .finally(() => this.#release())
    }
    return this.#shutdown
  }

  /** Keep the process alive while agents run (the default). */
  ref(): this {
    this.#refed = true
    this.#keepAlive?.ref()
    return this
  }

  /** Let the process exit even though agents run. */
  unref(): this {
    this.#refed = false
    this.#keepAlive?.unref()
    return this
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown()
  }

  #holdOpen(): void {
    if (this.#keepAlive) return
    this.#keepAlive = setInterval(() => {}, 1 << 30)
    if (!this.#refed) this.#keepAlive.unref()
  }

  #release(): void {
    if (this.#keepAlive) clearInterval(this.#keepAlive)
    this.#keepAlive = undefined
  }

  #subscribe(): void {
    this.#subscribed = true
    this.#inner.subscribe((batch: string) => {
      let events: AgentEvent[]
      try {
        events = JSON.parse(batch) as AgentEvent[]
      } catch {
        return
      }
      for (const e of events) if (e.type === 'agent') emitIsolated(this, 'agent', e)
    })
  }
}

/** Waits for `p` (its outcome ignored), at most `ms`. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([p.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, ms)))])
  clearTimeout(timer)
}
