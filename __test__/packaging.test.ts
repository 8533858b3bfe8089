// What a user downloads: the packed tarballs pass publint and attw, install into a fresh project outside the repo
// together with this machine's platform package, and work from ESM and CJS with the openai SDK.
// Needs the build first (`npm run build`): dist/, binding.cjs and one iron-cage.<platform>.node at the root.
import { execFile as execFileCb } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'

const execFile = promisify(execFileCb)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const KEY = 'sk-test-real-key'
const win = process.platform === 'win32'
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; files: string[] }

/** Runs a command without a shell (except npm.cmd on Windows); never inherits a native-library override. */
async function sh(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const { NAPI_RS_NATIVE_LIBRARY_PATH: _drop, ...base } = process.env
  const file = cmd === 'npm' && win ? 'npm.cmd' : cmd
  return execFile(file, args, { cwd, env: { ...base, ...env }, shell: win && cmd === 'npm', timeout: 60_000, maxBuffer: 64 << 20 })
}

/** `npm pack` into `dest`; returns the tarball path and the packed file list. */
async function pack(dir: string, dest: string): Promise<{ tarball: string; files: string[] }> {
  const { stdout } = await sh('npm', ['pack', '--json', '--pack-destination', dest], dir)
  const [info] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>
  return { tarball: join(dest, info!.filename), files: info!.files.map((f) => f.path).sort() }
}

const SMOKE_ESM = `
import { LlmRouter } from 'iron-cage'
import OpenAI from 'openai'
const router = await LlmRouter.create({ providerKey: process.env.KEY, providerBaseUrl: process.env.UPSTREAM, provider: 'openai' })
const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }] })
await router.stop()
console.log(JSON.stringify({ answer: r.choices[0].message.content, requests: router.stats().requests, running: router.isRunning }))
`
const SMOKE_CJS = `
const { LlmRouter, IronCageError } = require('iron-cage')
const { OpenAI } = require('openai')
;(async () => {
  const router = await LlmRouter.create({ providerKey: process.env.KEY, providerBaseUrl: process.env.UPSTREAM, provider: 'openai' })
  const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
  const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }] })
  await router.stop()
  console.log(JSON.stringify({ answer: r.choices[0].message.content, requests: router.stats().requests, running: router.isRunning, errorClass: typeof IronCageError }))
})()
`
/** Without any binary: print the error a user would see. */
const NO_BINARY = `
const { LlmRouter } = require('iron-cage')
try {
  new LlmRouter({ providerKey: 'sk-test-real-key', provider: 'openai' }).stop()
  console.log(JSON.stringify({ loaded: true }))
} catch (e) {
  console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message }))
}
`

let work: string
let fake: FakeProvider
let platform: string
let root: { tarball: string; files: string[] }
let binding: { tarball: string; files: string[] }

beforeAll(async () => {
  const built = readdirSync(ROOT).filter((f) => /^iron-cage\..+\.node$/.test(f))
  for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'binding.cjs', 'binding.d.cts']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run \`npm run build\` before the packaging test`)
  }
  if (built.length !== 1) throw new Error(`expected one built iron-cage.<platform>.node at the root, found ${built.length}: run \`npm run build\``)
  platform = built[0]!.slice('iron-cage.'.length, -'.node'.length)

  work = mkdtempSync(join(tmpdir(), 'iron-cage-pack-'))
  expect(relative(ROOT, work).startsWith('..')).toBe(true) // outside the repo: no parent node_modules to lean on
  fake = await startFakeProvider({ expectedKey: KEY })

  // The root package as `napi prepublish` publishes it: the repo's files plus optionalDependencies on every platform
  // package at this version (they are not in the repo's package.json so that npm ci works before they exist).
  const stage = join(work, 'iron-cage')
  mkdirSync(stage)
  for (const f of pkg.files) if (existsSync(join(ROOT, f))) cpSync(join(ROOT, f), join(stage, f), { recursive: true })
  // What prepack checks (the loader and the facade) was copied: packing works as for a release.
  const published = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>
  published.optionalDependencies = Object.fromEntries(readdirSync(join(ROOT, 'npm')).map((d) => [`@iron-cage/binding-${d}`, pkg.version]))
  writeFileSync(join(stage, 'package.json'), JSON.stringify(published, null, 2))
  root = await pack(stage, work)
  // The platform package as napi-rs publishes it: npm/<platform>/ plus the binary (stripped here: packing 100 MB of
  // debug info would dominate the test's time).
  const platDir = join(work, `binding-${platform}`)
  cpSync(join(ROOT, 'npm', platform), platDir, { recursive: true })
  const nodeFile = join(platDir, built[0]!)
  if (process.platform === 'linux') await sh('strip', ['--strip-all', '-o', nodeFile, join(ROOT, built[0]!)], work)
  else cpSync(join(ROOT, built[0]!), nodeFile)
  binding = await pack(platDir, work)

  for (const [app, tarballs] of [
    ['app', [root.tarball, binding.tarball]],
    ['bare', [root.tarball]],
  ] as const) {
    const dir = join(work, app)
    mkdirSync(dir)
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `smoke-${app}`, version: '1.0.0', private: true }))
    await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...tarballs, 'openai@6.30.1'], dir)
  }
  writeFileSync(join(work, 'app', 'smoke.mjs'), SMOKE_ESM)
  writeFileSync(join(work, 'app', 'smoke.cjs'), SMOKE_CJS)
  writeFileSync(join(work, 'bare', 'no-binary.cjs'), NO_BINARY)
}, 120_000)

afterAll(async () => {
  await fake?.close()
  if (work) rmSync(work, { recursive: true, force: true })
})

describe('package contents', () => {
  it('the root tarball holds the JS, the types, the loader and the examples, and no binary or sources', () => {
    expect(root.files).toEqual(
      expect.arrayContaining([
        'package.json', 'LICENSE', 'binding.cjs', 'binding.d.cts',
        'dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts',
        'examples/fake-upstream.mjs', 'examples/fake-upstream.d.mts',
      ]),
    )
    expect(root.files.filter((f) => f.endsWith('.node') || /^(src|src-ts|crates|__test__|npm)\//.test(f))).toEqual([])
    // The CLI is ESM only (bin: dist/cli.js).
    expect(root.files.filter((f) => f.startsWith('dist/'))).toEqual(['dist/cli.js', 'dist/index.cjs', 'dist/index.d.cts', 'dist/index.d.ts', 'dist/index.js'])
  })

  it('packing without the built loader is refused with the fix (the package could never load)', async () => {
    const incomplete = join(work, 'incomplete')
    cpSync(join(work, 'iron-cage'), incomplete, { recursive: true })
    rmSync(join(incomplete, 'binding.cjs'))
    const err = await pack(incomplete, work).catch((e: { stderr?: string }) => e)
    expect((err as { stderr?: string }).stderr ?? '').toContain('binding.cjs missing: run npm run build first')
  })

  it(`the platform tarball holds its package.json, README and the binary`, () => {
    expect(binding.files).toEqual(['README.md', `iron-cage.${platform}.node`, 'package.json'])
  })

  it('publint finds nothing', async () => {
    const tarball = readFileSync(root.tarball)
    const { messages, pkg: linted } = await publint({ pack: { tarball: tarball.buffer.slice(tarball.byteOffset, tarball.byteOffset + tarball.byteLength) }, level: 'suggestion', strict: true })
    expect(messages.map((m) => `${m.type}: ${formatMessage(m, linted, { color: false })}`)).toEqual([])
  })

  it('attw finds no type problem for node10, node16 (CJS and ESM) and bundler resolution', async () => {
    const { stdout } = await sh(join(ROOT, 'node_modules', '.bin', win ? 'attw.cmd' : 'attw'), [root.tarball, '--format', 'json'], work).catch(
      (e: { stdout: string }) => e,
    )
    const report = JSON.parse(stdout) as { analysis: { entrypoints: Record<string, unknown> }; problems: Record<string, unknown[]> }
    expect(Object.keys(report.analysis.entrypoints).sort()).toEqual(['.', './package.json'])
    expect(report.problems).toEqual({})
  })

  it('a platform package exists for every napi target, at this version (prepublish pins them as optionalDependencies)', () => {
    // The platform packages join optionalDependencies at publish time (`napi prepublish` in prepublishOnly):
    // listing unpublished packages in the repo would break `npm ci` for every contributor.
    const p = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      napi: { targets: string[] }
      scripts: Record<string, string>
      optionalDependencies?: Record<string, string>
    }
    expect(p.scripts.prepublishOnly).toMatch(/napi prepublish/)
    expect(p.optionalDependencies).toBeUndefined()
    const dirs = readdirSync(join(ROOT, 'npm')).sort()
    expect(dirs.length).toBe(p.napi.targets.length)
    for (const d of dirs) {
      const sub = JSON.parse(readFileSync(join(ROOT, 'npm', d, 'package.json'), 'utf8')) as Record<string, unknown>
      expect(sub).toMatchObject({ name: `@iron-cage/binding-${d}`, version: pkg.version, main: `iron-cage.${d}.node`, files: [`iron-cage.${d}.node`] })
    }
  })
})

describe('installed from the tarballs in a fresh project', () => {
  const run = (app: string, script: string, env: Record<string, string> = {}) =>
    sh(process.execPath, [script], join(work, app), { KEY, UPSTREAM: fake.url, ...env }).then((r) => JSON.parse(r.stdout.trim()) as Record<string, unknown>)

  it("npm resolves iron-cage's optional dependency on this platform to the platform package and skips the others", () => {
    const lock = JSON.parse(readFileSync(join(work, 'app', 'package-lock.json'), 'utf8')) as { packages: Record<string, { optional?: boolean; version?: string; optionalDependencies?: Record<string, string> }> }
    expect(Object.keys(lock.packages['node_modules/iron-cage']!.optionalDependencies ?? {})).toContain(`@iron-cage/binding-${platform}`)
    expect(lock.packages[`node_modules/@iron-cage/binding-${platform}`]).toMatchObject({ version: pkg.version })
    expect(Object.keys(lock.packages).filter((k) => k.startsWith('node_modules/@iron-cage/'))).toEqual([`node_modules/@iron-cage/binding-${platform}`])
  })

  it('the binary comes from the platform package, not from the root package', () => {
    expect(existsSync(join(work, 'app', 'node_modules', '@iron-cage', `binding-${platform}`, `iron-cage.${platform}.node`))).toBe(true)
    expect(readdirSync(join(work, 'app', 'node_modules', 'iron-cage')).filter((f) => f.endsWith('.node'))).toEqual([])
  })

  it('ESM: import, route an openai SDK call to the provider, stop, exit', async () => {
    fake.reset()
    expect(await run('app', 'smoke.mjs')).toEqual({ answer: 'Hello from the fake provider.', requests: 1, running: false })
    expect(fake.requests.map((r) => [r.path, r.apiKey])).toEqual([['/v1/chat/completions', KEY]])
  })

  it('CJS: require, route an openai SDK call to the provider, stop, exit', async () => {
    fake.reset()
    expect(await run('app', 'smoke.cjs')).toEqual({ answer: 'Hello from the fake provider.', requests: 1, running: false, errorClass: 'function' })
    expect(fake.requests.map((r) => [r.path, r.apiKey])).toEqual([['/v1/chat/completions', KEY]])
  })

  it('without a platform package the error names the platform, the missing package and the fix', async () => {
    const r = await run('bare', 'no-binary.cjs')
    expect(r.loaded).toBeUndefined()
    expect(r.name).toBe('IronCageError')
    expect(r.message).toContain(platform)
    expect(r.message).toContain(`@iron-cage/binding-${platform}`)
    expect(r.message).toMatch(/npm (i|install)/)
  })

  it('NAPI_RS_NATIVE_LIBRARY_PATH loads a binary from anywhere (Electron asar-unpacked layouts)', async () => {
    const file = join(work, `binding-${platform}`, `iron-cage.${platform}.node`)
    fake.reset()
    writeFileSync(join(work, 'bare', 'smoke.cjs'), SMOKE_CJS)
    expect(await run('bare', 'smoke.cjs', { NAPI_RS_NATIVE_LIBRARY_PATH: file })).toMatchObject({ answer: 'Hello from the fake provider.', running: false })
  })

  it('a binary that is there but cannot load is reported with its own error, not as "not installed"', async () => {
    const damaged = join(work, 'damaged.node')
    writeFileSync(damaged, 'this is not a shared library')
    const r = await run('bare', 'no-binary.cjs', { NAPI_RS_NATIVE_LIBRARY_PATH: damaged })
    expect(r.name).toBe('IronCageError')
    expect(r.message).toContain('installed but could not be loaded')
    expect(r.message).toMatch(/damaged\.node|ELF|header|too short/i)
    expect(r.message).not.toContain('which was not installed')
  })
})
