// Loads the native addon through the napi-rs loader (binding.cjs at the package root), from both the
// ESM and the CJS build and from the TypeScript sources in tests: all sit one level below the root.
import { createRequire } from 'node:module'
import { IronCageError } from './errors.js'

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

/** The napi-rs platform tag of this process, e.g. `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
export function platformTag(): string {
  const { platform, arch } = process
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform === 'linux') {
    const report = process.report?.getReport?.() as { header?: { glibcVersionRuntime?: string } } | undefined
    return `linux-${arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
  }
  return `${platform}-${arch}`
}

/** The native binding, loaded on first use; a clear error names the platform and the fix. */
export function native(): NativeBinding {
  if (!cached) {
    const require = createRequire(import.meta.url)
    try {
      cached = require('../binding.cjs') as NativeBinding
    } catch (cause) {
      const tag = platformTag()
      throw new IronCageError(
        'NATIVE_BINDING_MISSING',
        `iron-cage has no native binary for ${tag} (Node ${process.version}). It ships in the optional dependency ` +
          `@iron-cage/binding-${tag}, which was not installed. Fix: delete node_modules and package-lock.json and run ` +
          `npm install again (not with --omit=optional), or npm install @iron-cage/binding-${tag}. Prebuilt: linux ` +
          `x64/arm64 (glibc, musl), darwin x64/arm64, win32 x64. Set NAPI_RS_NATIVE_LIBRARY_PATH to load a .node file ` +
          `from another path.`,
        { cause },
      )
    }
  }
  return cached
}
