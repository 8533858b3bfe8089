export { LlmRouter } from './router.js'
export type { BudgetStatus, LedgerStats, ModelStats, Provider, RouterStats } from './router.js'
export { IronCageError } from './errors.js'
export type { IronCageErrorCode } from './errors.js'
export type {
  BlockedEvent,
  BudgetEvent,
  CircuitEvent,
  KeyEvent,
  PiiEvent,
  RequestEvent,
  ResponseEvent,
  RouterErrorEvent,
  RouterEvent,
  RouterEventMap,
  TokenCounts,
} from './events.js'
export type { LlmRouterOptions, ModelPriceOption, PiiAction, PiiDirectionPolicy, ReliabilityOptions, SafetyOptions } from './options.js'
export { Agent, AgentRuntime } from './agent-runtime.js'
export type { AgentEvent, AgentInfo, AgentMetrics, AgentRuntimeOptions, AgentStatus, StartAgentOptions, StopAgentOptions } from './agent-runtime.js'
