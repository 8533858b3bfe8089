// How the built package finds its native addon where users put it: installed under a path with `#`, `%`
// or `?` in it, with NAPI_RS_NATIVE_LIBRARY_PATH (relative, missing), bundled into an app, and on a
// platform without a prebuilt binary. Each case spawns node on a copy of the built package (dist/,
// binding.cjs, package.json, the .node) in node_modules/iron-cage of a scratch app.
// Needs the build first (`npm run build`).
import { execFile as execFileCb } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const execFile = promisify(execFileCb)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const win = process.platform === 'win32'

/** Creates a router (which loads the addon) and stops it; prints `{ loaded }` or the error. */
const PROBE_CJS = `
const { LlmRouter } = require('iron-cage')
;(async () => {
  try {
    const r = new LlmRouter({ providerKey: 'sk-test-aaaaaaaaaaaaaaaaaaaa', provider: 'openai' })
    await r.stop()
    console.log(JSON.stringify({ loaded: true }))
  } catch (e) {
    console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message }))
  }
})()
`
const PROBE_ESM = `
import { LlmRouter } from 'iron-cage'
try {
  const r = new LlmRouter({ providerKey: 'sk-test-aaaaaaaaaaaaaaaaaaaa', provider: 'openai' })
  await r.stop()
  console.log(JSON.stringify({ loaded: true }))
} catch (e) {
  console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message }))
}
`
/** Preloaded to pose as another platform (FAKE_PLATFORM, FAKE_ARCH). */
const FAKE_PLATFORM = `
Object.defineProperty(process, 'platform', { value: process.env.FAKE_PLATFORM })
Object.defineProperty(process, 'arch', { value: process.env.FAKE_ARCH })
`

type Probe = { loaded?: true; name?: string; code?: string; message?: string }

let work: string
/** The scratch app: its path has `#` and `%41` in it (and `?` where the file system allows it). */
let app: string
let nodeFile: string

/** Runs a script of the scratch app; the environment never carries the test runner's override. */
async function probe(script: string, env: Record<string, string> = {}, args: string[] = []): Promise<Probe> {
  const { NAPI_RS_NATIVE_LIBRARY_PATH: _drop, ...base } = process.env
  const { stdout } = await execFile(process.execPath, [...args, script], { cwd: app, env: { ...base, ...env }, timeout: 30_000 })
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Probe
}

/** A link to the built binary (a copy where links need privileges). */
function linkBinary(to: string) {
  try {
    symlinkSync(nodeFile, to)
  } catch {
    copyFileSync(nodeFile, to)
  }
}

beforeAll(() => {
  const built = readdirSync(ROOT).filter((f) => /^iron-cage\..+\.node$/.test(f))
  for (const f of ['dist/index.js', 'dist/index.cjs', 'binding.cjs']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`${f} is missing: run \`npm run build\` before the loader test`)
  }
  if (built.length !== 1) throw new Error(`expected one built iron-cage.<platform>.node at the root, found ${built.length}: run \`npm run build\``)
  nodeFile = join(ROOT, built[0]!)
  work = mkdtempSync(join(tmpdir(), 'iron-cage-loader-'))
  app = join(work, win ? 'proj#1 %41' : 'proj#1 %41?q')
  const pkg = join(app, 'node_modules', 'iron-cage')
  mkdirSync(pkg, { recursive: true })
  for (const f of ['package.json', 'dist', 'binding.cjs']) cpSync(join(ROOT, f), join(pkg, f), { recursive: true })
  // The loader's first candidate is a binary next to it (as in a build from source).
  linkBinary(join(pkg, built[0]!))
  mkdirSync(join(app, 'native'))
  linkBinary(join(app, 'native', built[0]!))
  writeFileSync(join(app, 'probe.cjs'), PROBE_CJS)
  writeFileSync(join(app, 'probe.mjs'), PROBE_ESM)
  writeFileSync(join(app, 'fake-platform.cjs'), FAKE_PLATFORM)
})

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

describe('installed under a path with URL characters in it', () => {
  it('CJS require loads the addon (no URL is made from the path)', async () => {
    expect(await probe('probe.cjs')).toEqual({ loaded: true })
  })

  it('ESM import loads the addon', async () => {
    expect(await probe('probe.mjs')).toEqual({ loaded: true })
  })

  it('ESM import from `node -e` and from a host that set a global __filename loads the addon', async () => {
    // `node -e` sets a global __filename of '[eval]'; an ES module must not take it for its own path.
    const evalProbe = PROBE_ESM.replace("import { LlmRouter } from 'iron-cage'", "const { LlmRouter } = await import('iron-cage')")
    const { NAPI_RS_NATIVE_LIBRARY_PATH: _drop, ...base } = process.env
    const { stdout } = await execFile(process.execPath, ['--input-type=module', '-e', evalProbe], { cwd: app, env: base, timeout: 30_000 })
    expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({ loaded: true })
    writeFileSync(join(app, 'global-filename.mjs'), `globalThis.__filename = '/some/other/app/main.js'\n${evalProbe}`)
    expect(await probe('global-filename.mjs')).toEqual({ loaded: true })
  })

  it("the CJS build has no import.meta.url shim built from `file:${__filename}`", () => {
    const cjs = readFileSync(join(ROOT, 'dist', 'index.cjs'), 'utf8')
    expect(cjs).not.toContain('file:${__filename}')
    expect(cjs).not.toMatch(/import_meta\s*=\s*\{\}/)
  })
})

describe('NAPI_RS_NATIVE_LIBRARY_PATH', () => {
  const name = () => basename(nodeFile)

  it('a path relative to the working directory loads (with or without ./)', async () => {
    expect(await probe('probe.cjs', { NAPI_RS_NATIVE_LIBRARY_PATH: `./native/${name()}` })).toEqual({ loaded: true })
    expect(await probe('probe.mjs', { NAPI_RS_NATIVE_LIBRARY_PATH: join('native', name()) })).toEqual({ loaded: true })
  })

  it('a missing file is reported as such, naming the value and the path it resolved to', async () => {
    const r = await probe('probe.cjs', { NAPI_RS_NATIVE_LIBRARY_PATH: 'native/nope.node' })
    expect(r.code).toBe('NATIVE_BINDING_MISSING')
    expect(r.message).toContain('NAPI_RS_NATIVE_LIBRARY_PATH is set to native/nope.node')
    expect(r.message).toContain(join(app, 'native', 'nope.node'))
    expect(r.message).toContain('does not exist')
    expect(r.message).not.toMatch(/reinstall|npm install|which was not installed/i)
    const abs = join(work, 'elsewhere', 'iron-cage.node')
    const s = await probe('probe.cjs', { NAPI_RS_NATIVE_LIBRARY_PATH: abs })
    expect(s.message).toContain(`NAPI_RS_NATIVE_LIBRARY_PATH is set to ${abs}, which does not exist`)
  })

  it('a directory is refused: the value must name the .node file', async () => {
    const r = await probe('probe.cjs', { NAPI_RS_NATIVE_LIBRARY_PATH: 'native' })
    expect(r.code).toBe('NATIVE_BINDING_MISSING')
    expect(r.message).toContain('which is a directory')
  })

  it("the README's Electron section says what the value must be", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const electron = readme.slice(readme.indexOf('## Embedding (Electron'), readme.indexOf('## Troubleshooting'))
    expect(electron).toMatch(/NAPI_RS_NATIVE_LIBRARY_PATH[^\n]*\n?[^\n]*absolute path/)
  })
})

describe('bundled into an app', () => {
  // esbuild comes with tsup (and vite); the same holds for any bundler that copies the code out of its package.
  const bundle = async (format: 'esm' | 'cjs', external: string[] = []) => {
    const { build } = await import('esbuild')
    const out = join(app, 'out', `bundle-${format}${external.length ? '-ext' : ''}.${format === 'esm' ? 'mjs' : 'cjs'}`)
    await build({ entryPoints: [join(app, format === 'esm' ? 'probe.mjs' : 'probe.cjs')], bundle: true, platform: 'node', format, outfile: out, external, logLevel: 'silent' })
    return out
  }

  it('the error says iron-cage was bundled and how to mark it external, not to reinstall', async () => {
    for (const format of ['esm', 'cjs'] as const) {
      const r = await probe(await bundle(format))
      expect(r.code).toBe('NATIVE_BINDING_MISSING')
      expect(r.message).toMatch(/bundled/)
      expect(r.message).toContain('external')
      expect(r.message).toContain('@iron-cage/binding-*')
      expect(r.message).not.toMatch(/is incomplete|Reinstall iron-cage/)
    }
  })

  it('with iron-cage marked external, the bundle loads it from node_modules', async () => {
    expect(await probe(await bundle('esm', ['iron-cage', '@iron-cage/*']))).toEqual({ loaded: true })
  })

  it('a package that lost binding.cjs is still reported as incomplete (reinstall)', async () => {
    const broken = join(app, 'broken')
    mkdirSync(join(broken, 'node_modules', 'iron-cage'), { recursive: true })
    for (const f of ['package.json', 'dist']) cpSync(join(ROOT, f), join(broken, 'node_modules', 'iron-cage', f), { recursive: true })
    writeFileSync(join(broken, 'probe.cjs'), PROBE_CJS)
    const r = await probe(join(broken, 'probe.cjs'))
    expect(r.code).toBe('NATIVE_BINDING_MISSING')
    expect(r.message).toContain('iron-cage is incomplete: its loader binding.cjs is missing')
  })
})

describe.skipIf(win)('a platform without a prebuilt binary', () => {
  const targets = () => readdirSync(join(ROOT, 'npm')).sort()

  it('the npm/ platform packages are the napi targets (the list the error gives)', () => {
    const p = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { napi: { targets: string[] } }
    expect(targets().length).toBe(p.napi.targets.length)
  })

  for (const [platform, arch, tag] of [
    ['win32', 'arm64', 'win32-arm64-msvc'],
    ['linux', 'arm', process.report?.getReport && (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime ? 'linux-arm-gnueabihf' : 'linux-arm-musleabihf'],
    ['freebsd', 'x64', 'freebsd-x64'],
  ] as const) {
    it(`${tag}: says there is no prebuilt binary, lists the supported ones and how to build from source`, async () => {
      const r = await probe('probe.cjs', { FAKE_PLATFORM: platform, FAKE_ARCH: arch }, ['-r', './fake-platform.cjs'])
      expect(r.code).toBe('NATIVE_BINDING_MISSING')
      expect(r.message).toContain(`no prebuilt binary for ${tag}`)
      expect(r.message).toContain(targets().join(', '))
      expect(r.message).toContain('npm run build:native:release')
      expect(r.message).toContain('NAPI_RS_NATIVE_LIBRARY_PATH')
      // No package to install: it was never published.
      expect(r.message).not.toContain(`@iron-cage/binding-${tag}`)
      expect(r.message).not.toMatch(/npm install|reinstall/i)
    })
  }

  it('a supported platform without its package is still told which package to install', async () => {
    const r = await probe('probe.cjs', { FAKE_PLATFORM: 'darwin', FAKE_ARCH: 'arm64' }, ['-r', './fake-platform.cjs'])
    expect(r.message).toContain('@iron-cage/binding-darwin-arm64, which was not installed')
  })
})
