// Canary secrets: a recognisable provider key and Iron Cage token are pushed through every path that could leak them
// (prompts, wrong tokens, an upstream 401 that echoes the key, a key server error that echoes both) and must never
// appear in a log line at trace level (text and JSON), an event, the /_iron/events stream, /_iron/stats,
// /_iron/metrics, an error response, or the bytes of the SQLite files.
import { readdirSync, readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { LlmRouter } from '../src-ts/index.js'
import { startFakeKeyServer, type FakeKeyServer } from './helpers/fake-key-server.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'

const CANARY_KEY = 'sk-proj-CANARYk3yQ7vZp2Lw9Xe4Tn8Rb6Md1'
const CANARY_IC = 'ic_CANARYt0kN5hWq8Jx2Ps7Ld4Fv9Gz3'
/** The whole secrets and distinctive inner pieces of them (a masked echo keeps only the first 3 and last 4 chars). */
const NEEDLES = [CANARY_KEY, CANARY_IC, 'CANARYk3yQ7vZp2', 'Lw9Xe4Tn8Rb', 'CANARYt0kN5hWq8', 'Jx2Ps7Ld4Fv']
const EVENT_NAMES = ['request', 'response', 'blocked', 'budget', 'pii', 'circuit', 'key', 'error'] as const

/** Where each needle was found in `text`, for a readable failure. */
function leaks(where: string, text: string): string[] {
  return NEEDLES.filter((n) => text.includes(n)).map((n) => `${where}: ${n}`)
}

let dir: string
let up: FakeProvider
let keys: FakeKeyServer
let brokenKeys: FakeKeyServer

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'iron-canary-'))
  up = await startFakeProvider({ expectedKey: CANARY_KEY })
  keys = await startFakeKeyServer({ icToken: CANARY_IC, key: CANARY_KEY, provider: 'openai', baseUrl: up.url })
  // A key server whose error message echoes what it was sent and the key it holds.
  brokenKeys = await startFakeKeyServer({ icToken: CANARY_IC, key: CANARY_KEY, provider: 'openai', baseUrl: up.url })
  brokenKeys.behaviour.status = 500
  brokenKeys.behaviour.error = `token ${CANARY_IC} is valid but key ${CANARY_KEY} could not be decrypted`
})

afterAll(async () => {
  await Promise.all([up.close(), keys.close(), brokenKeys.close()])
  rmSync(dir, { recursive: true, force: true })
})

interface Answer {
  status: number
  body: string
}

async function post(url: string, token: string, body: object): Promise<Answer> {
  const res = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.text() }
}

async function get(url: string, token: string): Promise<Answer> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.text() }
}

/** Raw bytes of every file in `d` (the database, its -wal and -shm), as latin1 so any ASCII run is searchable. */
function fileBytes(d: string): Array<[string, string]> {
  return readdirSync(d).map((f) => [f, readFileSync(join(d, f)).toString('latin1')])
}

/** A router with the canary token, trace logs to `lines`, every event to `events`, and its state in `stateDir`. */
function canaryRouter(serverUrl: string, stateDir: string, logFormat: 'text' | 'json', lines: string[], events: string[], agentId: string): LlmRouter {
  const router = new LlmRouter({
    apiKey: CANARY_IC,
    serverUrl,
    logLevel: 'trace',
    logFormat,
    logger: (l: string) => lines.push(l),
    budgetUsd: 1,
    wsHeartbeatMs: 100,
    statePath: join(stateDir, `${agentId}.db`),
    agentId,
  })
  for (const name of EVENT_NAMES) (router as unknown as { on(n: string, f: (e: unknown) => void): void }).on(name, (e) => events.push(JSON.stringify(e)))
  return router
}

const hi = { model: 'gpt-4o', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }

describe.each(['text', 'json'] as const)('canary secrets with logFormat %s at logLevel trace', (logFormat) => {
  it('never appear in logs, events, the WebSocket stream, stats, metrics, error responses or the SQLite files', async () => {
    const stateDir = mkdtempSync(join(dir, `${logFormat}-`))
    const lines: string[] = []
    const events: string[] = []
    const router = canaryRouter(keys.url, stateDir, logFormat, lines, events, 'canary-agent')
    await router.ready
    const ws = new WebSocket(`ws://127.0.0.1:${router.port}/_iron/events`, { headers: { authorization: `Bearer ${CANARY_IC}` } })
    const stream: string[] = []
    ws.on('message', (d) => stream.push(d.toString()))
    await once(ws, 'open')
    const answers: Array<[string, Answer]> = []
    const chat = `${router.baseUrl}/chat/completions`
    try {
      up.behaviour.usage = { inputTokens: 10, outputTokens: 5 }
      answers.push(['json', await post(chat, CANARY_IC, hi)])
      answers.push(['stream', await post(chat, CANARY_IC, { ...hi, stream: true })])
      expect(answers.map(([, a]) => a.status)).toEqual([200, 200])
      // The secrets inside prompts: the default policy refuses secrets in prompts, and says so without quoting them.
      answers.push(['prompt with key', await post(chat, CANARY_IC, { ...hi, messages: [{ role: 'user', content: `my key is ${CANARY_KEY}` }] })])
      expect(answers.at(-1)![1].status).toBeGreaterThanOrEqual(400)
      answers.push(['prompt with token', await post(chat, CANARY_IC, { ...hi, messages: [{ role: 'user', content: `my token is ${CANARY_IC}` }] })])
      // A wrong token that contains the real one.
      answers.push(['near token', await post(chat, `${CANARY_IC}x`, hi)])
      expect(answers.at(-1)![1].status).toBe(401)
      // The provider rejects the key and echoes a masked fragment of it, as OpenAI does.
      up.behaviour.expectedKey = 'sk-proj-some-other-key-0000'
      answers.push(['upstream 401 (masked echo)', await post(chat, CANARY_IC, hi)])
      up.behaviour.expectedKey = CANARY_KEY
      expect(answers.at(-1)![1].status).toBe(401)
      expect(answers.at(-1)![1].body).toContain('Incorrect API key provided')
      // Internal endpoints, with and without the token.
      const stats = await get(`http://127.0.0.1:${router.port}/_iron/stats`, CANARY_IC)
      const metrics = await get(`http://127.0.0.1:${router.port}/_iron/metrics`, CANARY_IC)
      expect([stats.status, metrics.status]).toEqual([200, 200])
      expect(metrics.body).toContain('iron_cage_requests_total')
      answers.push(['stats without token', await get(`http://127.0.0.1:${router.port}/_iron/stats`, `${CANARY_IC}0`)])
      answers.push(['stats', stats], ['metrics', metrics], ['router.stats()', { status: 0, body: JSON.stringify(router.stats()) }])

      // Let events, heartbeats and the ledger flush (100 ms) land, then look at the files while the WAL is live.
      await new Promise((r) => setTimeout(r, 400))
      const live = fileBytes(stateDir)
      ws.close()
      await router.stop()
      const closed = fileBytes(stateDir)

      // The checks are not vacuous: there were trace lines about these requests, events, a stream, and rows on disk.
      expect(lines.length).toBeGreaterThan(10)
      expect(lines.some((l) => /refused|settled/.test(l))).toBe(true)
      if (logFormat === 'json') for (const l of lines) expect(() => JSON.parse(l)).not.toThrow()
      expect(events.some((e) => e.includes('"type":"blocked"'))).toBe(true)
      expect(stream.some((m) => m.includes('"type":"response"'))).toBe(true)
      expect(stream.some((m) => m.includes('"type":"heartbeat"'))).toBe(true)
      expect(live.some(([, b]) => b.includes('canary-agent'))).toBe(true)

      const found = [
        ...lines.flatMap((l, i) => leaks(`log line ${i}`, l)),
        ...events.flatMap((e, i) => leaks(`event ${i}`, e)),
        ...stream.flatMap((m, i) => leaks(`websocket message ${i}`, m)),
        ...answers.flatMap(([what, a]) => leaks(`response '${what}'`, a.body)),
        ...live.flatMap(([f, b]) => leaks(`file ${f} (running)`, b)),
        ...closed.flatMap(([f, b]) => leaks(`file ${f} (stopped)`, b)),
      ]
      expect(found).toEqual([])
    } finally {
      ws.terminate()
      await router.stop()
    }
  })
})

describe('canary secrets echoed back by servers', () => {
  it('a provider error that quotes the whole key reaches the client without it', async () => {
    const stateDir = mkdtempSync(join(dir, 'echo-'))
    const lines: string[] = []
    const events: string[] = []
    const router = canaryRouter(keys.url, stateDir, 'text', lines, events, 'canary-echo')
    await router.ready
    try {
      up.behaviour.fault = { status: 401, message: `Incorrect API key provided: ${CANARY_KEY}.` }
      const a = await post(`${router.baseUrl}/chat/completions`, CANARY_IC, hi)
      const s = await post(`${router.baseUrl}/chat/completions`, CANARY_IC, { ...hi, stream: true })
      expect([a.status, s.status]).toEqual([401, 401])
      expect(a.body).toContain('Incorrect API key provided')
      await router.stop()
      const found = [
        ...leaks('JSON error response', a.body),
        ...leaks('stream error response', s.body),
        ...lines.flatMap((l, i) => leaks(`log line ${i}`, l)),
        ...events.flatMap((e, i) => leaks(`event ${i}`, e)),
        ...fileBytes(stateDir).flatMap(([f, b]) => leaks(`file ${f}`, b)),
      ]
      expect(found).toEqual([])
    } finally {
      up.behaviour.fault = undefined
      await router.stop()
    }
  })

  it('a key server error that quotes the token and the key is scrubbed from logs, events, the error response and the audit trail', async () => {
    const stateDir = mkdtempSync(join(dir, 'keyserver-'))
    const lines: string[] = []
    const events: string[] = []
    const router = canaryRouter(brokenKeys.url, stateDir, 'json', lines, events, 'canary-broken')
    await router.ready
    try {
      const a = await post(`${router.baseUrl}/chat/completions`, CANARY_IC, hi)
      expect(a.status).toBeGreaterThanOrEqual(500)
      expect(brokenKeys.fetches).toBeGreaterThan(0)
      await new Promise((r) => setTimeout(r, 300))
      const live = fileBytes(stateDir)
      await router.stop()
      expect(events.some((e) => e.includes('"type":"key"') && e.includes('"failed"'))).toBe(true)
      expect(lines.some((l) => l.includes('could not get the provider key'))).toBe(true)
      const found = [
        ...leaks('error response', a.body),
        ...lines.flatMap((l, i) => leaks(`log line ${i}`, l)),
        ...events.flatMap((e, i) => leaks(`event ${i}`, e)),
        ...live.flatMap(([f, b]) => leaks(`file ${f} (running)`, b)),
        ...fileBytes(stateDir).flatMap(([f, b]) => leaks(`file ${f} (stopped)`, b)),
      ]
      expect(found).toEqual([])
    } finally {
      await router.stop()
    }
  })
})
