// Loads the native addon through the napi-rs loader (binding.cjs at the package root), from both the
// ESM and the CJS build and from the TypeScript sources in tests: all sit one level below the root.
import { createRequire } from 'node:module'

export interface NativeRouter {
  readonly port: number
  readonly baseUrl: string
  readonly anthropicBaseUrl: string
  readonly apiKey: string
  readonly isRunning: boolean
  readonly provider: string | null
  ready(): Promise<string[]>
  stop(): Promise<void>
  totalSpentMicros(): number
  statsJson(): string
  budgetJson(): string
  setBudgetUsd(usd?: number | null): void
  subscribe(callback: (batch: string) => void): void
  attachLogger(callback: (line: string) => void): void
}

export interface NativeBinding {
  NativeRouter: new (optionsJson: string) => NativeRouter
}

let cached: NativeBinding | undefined

/** The native binding, loaded on first use. */
export function native(): NativeBinding {
  if (!cached) {
    const require = createRequire(import.meta.url)
    cached = require('../binding.cjs') as NativeBinding
  }
  return cached
}
