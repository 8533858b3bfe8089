// Stop and unref while the first key fetch still runs: the process exits at once and `ready` settles at stop.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const fixture = fileURLToPath(new URL('./fixtures/stop-during-key-fetch.mjs', import.meta.url))

async function run(mode: string): Promise<{ code: number | null; ms: number; lines: string[]; stderr: string }> {
  const started = Date.now()
  const child = spawn(process.execPath, [fixture, mode], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  const [code] = (await once(child, 'exit')) as [number | null]
  clearTimeout(timer)
  return { code, ms: Date.now() - started, lines: out.split('\n').filter(Boolean), stderr: err }
}

describe('a key server that hangs', () => {
  it('stop() ends the first key fetch: ready settles, the process exits at once', async () => {
    const r = await run('stop')
    expect(r.code).toBe(0)
    expect(r.lines).toEqual([
      'ready settled: true',
      'provider: unknown',
      'providerError: the router stopped before the key was fetched',
    ])
    expect(r.ms).toBeLessThan(5000)
  })

  it('unref() lets the process exit while the first key fetch runs', async () => {
    const r = await run('unref')
    expect(r.code).toBe(0)
    expect(r.lines).toEqual(['unref'])
    expect(r.ms).toBeLessThan(5000)
  })
})

describe('provider after a failed first key fetch', () => {
  it('follows the keys fetched later (and a rotation to the other provider); providerError clears', async () => {
    const { LlmRouter } = await import('../dist/index.js')
    const { startFakeKeyServer } = await import('./helpers/fake-key-server.js')
    const { startFakeProvider } = await import('./helpers/fake-provider.js')
    const up = await startFakeProvider({ expectedKey: 'sk-test-follow-1' })
    const keys = await startFakeKeyServer({ icToken: 'ic_test_provider_follow', key: 'sk-test-follow-1', provider: 'openai', baseUrl: up.url })
    keys.behaviour.status = 503
    const router = await LlmRouter.create({ apiKey: 'ic_test_provider_follow', serverUrl: keys.url, cacheTtlSeconds: 0 })
    try {
      expect(router.provider).toBe('unknown')
      expect(router.providerError).toMatch(/503/)
      keys.behaviour.status = undefined
      const call = (path: string, body: object) =>
        fetch(`${router.anthropicBaseUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${router.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
      const r = await call('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
      expect(r.status).toBe(200)
      expect(router.provider).toBe('openai')
      expect(router.providerError).toBeUndefined()
      keys.behaviour.provider = 'anthropic'
      keys.behaviour.key = 'sk-ant-test-follow-2'
      await (await call('/v1/messages', { model: 'claude-3-5-haiku-latest', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })).text()
      expect(router.provider).toBe('anthropic')
    } finally {
      await router.stop()
      await keys.close()
      await up.close()
    }
  })
})

describe('the error event', () => {
  it('reaches router.on("error") when the dashboard link is down, without the URL', async () => {
    const { LlmRouter } = await import('../dist/index.js')
    const net = await import('node:net')
    const hold = net.createServer()
    await new Promise<void>((r) => hold.listen(0, '127.0.0.1', () => r()))
    const port = (hold.address() as { port: number }).port
    await new Promise<void>((r) => hold.close(() => r())) // nothing listens there now
    const router = new LlmRouter({ providerKey: 'sk-test-real-key', dashboardUrl: `ws://127.0.0.1:${port}/x?k=dash-secret` })
    try {
      const seen: Array<{ code: string; message: string }> = []
      router.on('error', (e) => seen.push(e))
      for (let i = 0; i < 60 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 50))
      expect(seen).toHaveLength(1)
      expect(seen[0]!.code).toBe('DASHBOARD_UNREACHABLE')
      expect(seen[0]!.message).not.toContain('dash-secret')
    } finally {
      await router.stop()
    }
  })
})
