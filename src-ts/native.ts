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

/**
 * Why each candidate binary failed to load, other than "not installed": a binary that is there but
 * cannot load (too old a glibc, a corrupt file, a version mismatch, a bad NAPI_RS_NATIVE_LIBRARY_PATH).
 */
function loadFailures(err: unknown, seen = new Set<unknown>()): string[] {
  if (!err || typeof err !== 'object' || seen.has(err)) return []
  seen.add(err)
  const e = err as { message?: unknown; code?: unknown; cause?: unknown; errors?: unknown }
  const out: string[] = []
  const message = typeof e.message === 'string' ? e.message : ''
  const notFound = e.code === 'MODULE_NOT_FOUND' || message.startsWith('Cannot find module') || message.startsWith('Cannot find native binding') || message === 'Failed to load native binding'
  if (message && !notFound) out.push(message.split('\n')[0]!)
  for (const inner of [e.cause, e.errors]) {
    for (const c of Array.isArray(inner) ? inner : [inner]) out.push(...loadFailures(c, seen))
  }
  return out
}

/** The native binding, loaded on first use; a clear error names the platform and the fix. */
export function native(): NativeBinding {
  if (!cached) {
    const require = createRequire(import.meta.url)
    try {
      cached = require('../binding.cjs') as NativeBinding
    } catch (cause) {
      const tag = platformTag()
      const failures = [...new Set(loadFailures(cause))]
      if ((cause as { code?: unknown })?.code === 'MODULE_NOT_FOUND' && /binding\.cjs/.test(String((cause as Error).message))) {
        throw new IronCageError(
          'NATIVE_BINDING_MISSING',
          'iron-cage is incomplete: its loader binding.cjs is missing from the package. Reinstall iron-cage (a build from source needs `npm run build`).',
          { cause },
        )
      }
      if (failures.length > 0) {
        throw new IronCageError(
          'NATIVE_BINDING_MISSING',
          `iron-cage's native binary for ${tag} (Node ${process.version}) is installed but could not be loaded: ` +
            `${failures.join('; ')}. A "GLIBC_" error needs a newer glibc (or the musl build); an invalid ELF or ` +
            `Mach-O header means a damaged or wrong-platform file: reinstall @iron-cage/binding-${tag}. If ` +
            `NAPI_RS_NATIVE_LIBRARY_PATH is set, check the file it names.`,
          { cause },
        )
      }
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
