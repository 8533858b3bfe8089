// Loads the native addon through the napi-rs loader (binding.cjs at the package root), from both the
// ESM and the CJS build and from the TypeScript sources in tests: all sit one level below the root.
import { readFileSync, statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { IronCageError } from './errors.js'

export interface NativeRouter {
  readonly port: number
  readonly baseUrl: string
  readonly anthropicBaseUrl: string
  readonly apiKey: string
  readonly isRunning: boolean
  readonly provider: string | null
  readonly providerError: string | null
  onReady(callback: (outcome: string) => void): void
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

/**
 * The platform tags a prebuilt binary is published for: package.json's `napi.targets` as napi-rs names
 * them (one `npm/<tag>/` package each; a test keeps the three in step).
 */
export const PREBUILT_TAGS: readonly string[] = [
  'darwin-arm64',
  'darwin-x64',
  'linux-arm64-gnu',
  'linux-arm64-musl',
  'linux-x64-gnu',
  'linux-x64-musl',
  'win32-x64-msvc',
]

let cached: NativeBinding | undefined

/** The napi-rs platform tag of this process, e.g. `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`. */
export function platformTag(): string {
  const { platform, arch } = process
  if (platform === 'win32') return `win32-${arch}-msvc`
  if (platform === 'linux') {
    const report = process.report?.getReport?.() as { header?: { glibcVersionRuntime?: string } } | undefined
    const libc = report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'
    return `linux-${arch}-${arch === 'arm' ? `${libc}eabihf` : libc}`
  }
  return `${platform}-${arch}`
}

/**
 * This module's file. In the CJS build `import.meta.url` is our own shim's path-safe URL of the
 * bundle (src-ts/cjs-shims.ts; tsup's would turn a `#`, `?` or `%` in the path into another path).
 * Never a global `__filename`: in an ES module that is whatever the host set (`node -e` sets
 * `'[eval]'`), not this file.
 */
function thisFile(): string {
  return fileURLToPath(import.meta.url)
}

/** The package.json one level above this module, if there is one (best effort: only error messages use it). */
function ownPackage(): { name?: unknown; repository?: unknown } | undefined {
  try {
    return JSON.parse(readFileSync(join(dirname(thisFile()), '..', 'package.json'), 'utf8')) as { name?: unknown }
  } catch {
    return undefined
  }
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

const missing = (message: string, cause?: unknown) => new IronCageError('NATIVE_BINDING_MISSING', message, cause === undefined ? undefined : { cause })

/**
 * NAPI_RS_NATIVE_LIBRARY_PATH, checked and made absolute: the loader `require()`s it from the package
 * directory, where a relative path would name another file (or, without `./`, a package).
 */
function overridePath(value: string): string {
  const abs = resolve(value)
  const where = abs === value ? '' : ` (resolved against the working directory ${process.cwd()}: ${abs})`
  let stat
  try {
    stat = statSync(abs)
  } catch {
    throw missing(
      `NAPI_RS_NATIVE_LIBRARY_PATH is set to ${value}${where}, which does not exist. It must name the iron-cage .node ` +
        `file itself (iron-cage.${platformTag()}.node): an absolute path, or one relative to the working directory. ` +
        `Unset it to load the binary from the @iron-cage/binding-${platformTag()} package.`,
    )
  }
  if (!stat.isFile()) {
    throw missing(`NAPI_RS_NATIVE_LIBRARY_PATH is set to ${value}${where}, which is a directory: it must name the iron-cage.${platformTag()}.node file in it.`)
  }
  return abs
}

/** The native binding, loaded on first use; a clear error names the platform and the fix. */
export function native(): NativeBinding {
  if (cached) return cached
  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  const overrideAbs = override ? overridePath(override) : undefined
  const require = createRequire(thisFile())
  try {
    // The loader reads the variable when it is required: hand it the absolute path, then put the
    // user's value back.
    if (overrideAbs !== undefined) process.env.NAPI_RS_NATIVE_LIBRARY_PATH = overrideAbs
    cached = require('../binding.cjs') as NativeBinding
    return cached
  } catch (cause) {
    throw loadError(cause, override)
  } finally {
    if (override !== undefined) process.env.NAPI_RS_NATIVE_LIBRARY_PATH = override
  }
}

function loadError(cause: unknown, override: string | undefined): IronCageError {
  const tag = platformTag()
  const message = String((cause as Error)?.message ?? '')
  if ((cause as { code?: unknown })?.code === 'MODULE_NOT_FOUND' && /^Cannot find module '[^'\n]*binding\.cjs'/.test(message)) {
    if (ownPackage()?.name === 'iron-cage') {
      return missing('iron-cage is incomplete: its loader binding.cjs is missing from the package. Reinstall iron-cage (a build from source needs `npm run build`).', cause)
    }
    // No iron-cage package.json next to this code: it was copied out of its package, which is what a
    // bundler does.
    return missing(
      `iron-cage cannot find its native loader: this code runs from ${thisFile()}, outside the iron-cage package, ` +
        `which happens when iron-cage is bundled into your app (esbuild, Vite, webpack, Rollup…). Its native addon cannot be ` +
        `bundled: mark iron-cage and @iron-cage/binding-* as external (esbuild --external:iron-cage ` +
        `--external:@iron-cage/*, Vite ssr.external or build.rollupOptions.external, webpack externals) and ship ` +
        `node_modules/iron-cage with your app. Reinstalling does not help.`,
      cause,
    )
  }
  const failures = [...new Set(loadFailures(cause))]
  if (failures.length > 0) {
    return missing(
      `iron-cage's native binary for ${tag} (Node ${process.version}) is installed but could not be loaded: ` +
        `${failures.join('; ')}. A "GLIBC_" error needs a newer glibc (or the musl build); an invalid ELF or ` +
        `Mach-O header means a damaged or wrong-platform file: ` +
        (override ? `check the file NAPI_RS_NATIVE_LIBRARY_PATH names (${override}).` : `reinstall @iron-cage/binding-${tag}.`),
      cause,
    )
  }
  if (!PREBUILT_TAGS.includes(tag)) {
    const repo = ownPackage()?.repository
    const url = typeof repo === 'string' ? repo : typeof (repo as { url?: unknown })?.url === 'string' ? (repo as { url: string }).url : undefined
    return missing(
      `iron-cage has no prebuilt binary for ${tag} (Node ${process.version}); prebuilt binaries exist for ` +
        `${PREBUILT_TAGS.join(', ')}. To run here, build the addon from source (Rust 1.88 or later): in a clone of ` +
        `${url ? url.replace(/^git\+/, '') : "iron-cage's repository"} run npm ci && npm run build:native:release, then set ` +
        `NAPI_RS_NATIVE_LIBRARY_PATH to the absolute path of the iron-cage.${tag}.node file it writes.`,
      cause,
    )
  }
  return missing(
    `iron-cage has no native binary for ${tag} (Node ${process.version}). It ships in the optional dependency ` +
      `@iron-cage/binding-${tag}, which was not installed. Fix: delete node_modules and package-lock.json and run ` +
      `npm install again (not with --omit=optional), or npm install @iron-cage/binding-${tag}. Prebuilt: linux ` +
      `x64/arm64 (glibc, musl), darwin x64/arm64, win32 x64. Set NAPI_RS_NATIVE_LIBRARY_PATH to load a .node file ` +
      `from another path.`,
    cause,
  )
}
