// The published type declarations (dist/index.d.ts, .d.cts) as a consumer's TypeScript sees them: they
// promise exactly the values the JS exports, and the README's samples type-check under the strictest
// settings users run (`exactOptionalPropertyTypes`, as in @tsconfig/strictest).
// Needs the build first (`npm run build`, or `npx tsup` for dist/ only).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
let app: string

beforeAll(() => {
  for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run \`npm run build\` before the types test`)
  }
  // A consumer project: node_modules/iron-cage is this package, so 'iron-cage' resolves through its exports map.
  app = mkdtempSync(join(tmpdir(), 'iron-cage-types-'))
  mkdirSync(join(app, 'node_modules'))
  symlinkSync(ROOT, join(app, 'node_modules', 'iron-cage'), process.platform === 'win32' ? 'junction' : 'dir')
})

afterAll(() => {
  if (app) rmSync(app, { recursive: true, force: true })
})

/** The names a declaration file exports as values (what `import { x }` may call), type-only exports left out. */
function declaredValues(file: string): string[] {
  const program = ts.createProgram([file], { noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')] })
  const checker = program.getTypeChecker()
  const module = checker.getSymbolAtLocation(program.getSourceFile(file)!)!
  return checker
    .getExportsOfModule(module)
    .filter((sym) => {
      const typeOnly = sym.declarations?.some((d) => ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly))
      const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym
      return !typeOnly && (target.flags & ts.SymbolFlags.Value) !== 0
    })
    .map((sym) => sym.name)
    .sort()
}

/** Type-checks `source` as a file of the consumer project; returns the diagnostics as text. */
function check(name: string, source: string, options: ts.CompilerOptions = {}): string[] {
  const file = join(app, name)
  writeFileSync(file, source)
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules', '@types')],
    // The consumer's own file is what is checked; checking @types/node again would only cost time.
    skipLibCheck: true,
    ...options,
  })
  return ts.getPreEmitDiagnostics(program).map((d) => `${d.file ? `${d.file.fileName.slice(app.length + 1)}: ` : ''}TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)
}

describe('the declarations export what the JS exports', () => {
  it('dist/index.d.ts: its value exports are the ESM build\'s exports', async () => {
    const runtime = Object.keys(await import(pathToFileURL(join(ROOT, 'dist', 'index.js')).href)).sort()
    expect(runtime.length).toBeGreaterThan(0)
    expect(declaredValues(join(ROOT, 'dist', 'index.d.ts'))).toEqual(runtime)
  })

  it('dist/index.d.cts: its value exports are the CJS build\'s exports', () => {
    const runtime = Object.keys(createRequire(import.meta.url)(join(ROOT, 'dist', 'index.cjs')) as object).sort()
    expect(declaredValues(join(ROOT, 'dist', 'index.d.cts'))).toEqual(runtime)
  })

  it('importing a runtime-internal helper is a type error, not a crash at run time', () => {
    const errors = check('internal.mts', "import { emitIsolated } from 'iron-cage'\nvoid emitIsolated\n")
    expect(errors.join('\n')).toMatch(/has no exported member.*emitIsolated|emitIsolated.*not exported/)
  })

  it('the event types stay importable as types', () => {
    const names = ['BlockedEvent', 'BudgetEvent', 'CircuitEvent', 'KeyEvent', 'PiiEvent', 'RequestEvent', 'ResponseEvent', 'RouterErrorEvent', 'RouterEvent', 'RouterEventMap', 'TokenCounts']
    expect(check('events.mts', `import type { ${names.join(', ')} } from 'iron-cage'\nexport type All = [${names.join(', ')}]\n`)).toEqual([])
  })
})

// The README's samples, with values that may be undefined (environment variables, optional config).
const SAMPLES = `
import { AgentRuntime, LlmRouter, type LlmRouterOptions, type StartAgentOptions } from 'iron-cage'
const maybe = (name: string): number | undefined => (process.env[name] ? Number(process.env[name]) : undefined)

const router = await LlmRouter.create({ providerKey: process.env.OPENAI_API_KEY })
await router.stop()
await using viaServer = await LlmRouter.create({
  apiKey: process.env.IRON_CAGE_TOKEN,
  serverUrl: process.env.IRON_CAGE_SERVER_URL,
  budgetUsd: maybe('BUDGET'),
  statePath: process.env.STATE_PATH,
  logger: process.env.DEBUG ? (line) => console.error(line) : undefined,
  safety: { request: { email: process.env.CI ? 'block' : undefined }, digestKey: process.env.DIGEST_KEY },
  reliability: { retry: { maxRetries: maybe('RETRIES') }, timeouts: { totalMs: maybe('TOTAL_MS') }, breaker: undefined },
  pricing: { 'my-model': { input: 1, output: 2, cachedInput: maybe('CACHED') } },
})
const options: LlmRouterOptions = { providerKey: process.env.OPENAI_API_KEY, providerBaseUrl: process.env.OPENAI_BASE_URL }
void options

const runtime = new AgentRuntime({ providerKey: process.env.OPENAI_API_KEY, statePath: process.env.STATE_PATH })
const spec: StartAgentOptions = { command: 'python3', args: ['agent.py'], cwd: process.env.AGENT_DIR, budgetUsd: maybe('AGENT_BUDGET'), restart: { maxRestarts: 2, backoffMs: maybe('BACKOFF') } }
const agent = runtime.startAgent(spec)
await agent.stop({ graceMs: maybe('GRACE') })
await runtime.shutdown({ graceMs: maybe('GRACE') })
`

describe('README samples type-check', () => {
  it('with strict (ESM consumer)', () => {
    expect(check('readme-strict.mts', SAMPLES)).toEqual([])
  })

  it('with exactOptionalPropertyTypes: optional options accept undefined (ESM and CJS consumers)', () => {
    expect(check('readme-exact.mts', SAMPLES, { exactOptionalPropertyTypes: true })).toEqual([])
    const cjs = `import { LlmRouter, AgentRuntime } from 'iron-cage'\nvoid LlmRouter.create({ providerKey: process.env.OPENAI_API_KEY, budgetUsd: undefined })\nvoid new AgentRuntime({ providerKey: process.env.OPENAI_API_KEY })\n`
    expect(check('readme-exact.cts', cjs, { exactOptionalPropertyTypes: true })).toEqual([])
  })
})
