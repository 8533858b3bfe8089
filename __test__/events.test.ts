// Real-time events: the typed EventEmitter, the `/_iron/events` WebSocket (real `ws` client), the dashboard push link
// (a `ws` stub server that is restarted under the router), and the JS event loop under a burst with a listener.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { LlmRouter } from '../src-ts/index.js'
import type { RouterEvent } from '../src-ts/events.js'
import { startFakeKeyServer, type FakeKeyServer } from './helpers/fake-key-server.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'

const IC = 'ic_events_test_token_93d1'
const OPENAI_KEY = 'sk-proj-events-test-openai'
const EVENT_NAMES = ['request', 'response', 'blocked', 'budget', 'pii', 'circuit', 'key', 'error'] as const

let up: FakeProvider
let keys: FakeKeyServer

beforeAll(async () => {
  up = await startFakeProvider({ expectedKey: OPENAI_KEY })
  keys = await startFakeKeyServer({ icToken: IC, key: OPENAI_KEY, provider: 'openai', baseUrl: up.url })
})

afterAll(async () => {
  await Promise.all([up.close(), keys.close()])
})

afterEach(() => up.reset())

async function chat(router: LlmRouter, body: object, token = IC): Promise<number> {
  const res = await fetch(`${router.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  await res.text()
  return res.status
}

const user = (content: string) => [{ role: 'user', content }]

async function until(what: string, pred: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** Every event the router emits on the EventEmitter, in arrival order. */
function collect(router: LlmRouter): RouterEvent[] {
  const all: RouterEvent[] = []
  for (const name of EVENT_NAMES) (router as unknown as NodeJSEmitter).on(name, (e: RouterEvent) => all.push(e))
  return all
}
type NodeJSEmitter = { on(name: string, f: (e: RouterEvent) => void): void }

/** Requests, responses and refusals of a scripted run: 2 JSON, 1 stream, 1 bad token, 1 budget refusal. */
async function scriptedRun(router: LlmRouter): Promise<void> {
  up.behaviour.usage = { inputTokens: 100, outputTokens: 20 }
  expect(await chat(router, { model: 'gpt-4o', max_tokens: 20, messages: user('one') })).toBe(200)
  up.behaviour.usage = { inputTokens: 400, outputTokens: 30 }
  expect(await chat(router, { model: 'gpt-4o', max_tokens: 30, stream: true, messages: user('two') })).toBe(200)
  expect(await chat(router, { model: 'gpt-4o', messages: user('three') }, 'ic_bad')).toBe(401)
  up.behaviour.usage = { inputTokens: 10, outputTokens: 5 }
  expect(await chat(router, { model: 'gpt-4o-mini', max_tokens: 5, messages: user('four') })).toBe(200)
  expect(await chat(router, { model: 'gpt-4o', max_tokens: 100_000, messages: user('five') })).toBe(402)
}

const shape = (events: Array<{ type: string; requestId?: number; reason?: string }>) =>
  events.map((e) => `${e.type}${e.requestId === undefined ? '' : `#${e.requestId}`}${e.reason ? `:${e.reason}` : ''}`)

describe('typed events on the router', () => {
  it('request, response, blocked, budget, pii and key events arrive in order with their fields', async () => {
    const router = new LlmRouter({ apiKey: IC, serverUrl: keys.url, budgetUsd: 0.004, budgetWarningPercent: 40, safety: { request: { email: 'redact' } } })
    const all = collect(router)
    await router.ready
    try {
      await scriptedRun(router)
      // An e-mail in the prompt is redacted (pii event), then the budget is cut below spent (exceeded).
      up.behaviour.usage = { inputTokens: 10, outputTokens: 5 }
      expect(await chat(router, { model: 'gpt-4o-mini', max_tokens: 5, messages: user('write to jane.doe@example.com') })).toBe(200)
      router.setBudget(0.001)
      await until('8 request/response/blocked events', () => all.filter((e) => e.type !== 'key' && e.type !== 'budget' && e.type !== 'pii').length >= 11)
      await until('budget exceeded', () => all.some((e) => e.type === 'budget' && e.level === 'exceeded'))

      // 100 × 2.50 + 20 × 10 = 450 µ$; 400 × 2.50 + 30 × 10 = 1300 µ$ (1750 of 4000 = 43.75% ≥ 40%: warning);
      // gpt-4o-mini 10 × 0.15 + 5 × 0.60 = 4.5 → 5 µ$.
      const costs = all.filter((e) => e.type === 'response').map((e) => (e.type === 'response' ? e.costMicros : 0))
      expect(costs).toEqual([450, 1300, 5, 5])
      expect(all[0]).toMatchObject({ type: 'key', action: 'fetched', provider: 'openai', message: null, tsMs: expect.any(Number) })
      // Every event carries its time, the key events too.
      for (const e of all) expect((e as { tsMs?: number }).tsMs).toBeGreaterThan(1.7e12)
      const flow = shape(all.filter((e) => e.type !== 'key') as Array<{ type: string; requestId?: number; reason?: string }>)
      const ids = all.filter((e) => e.type === 'request').map((e) => (e as { requestId: number }).requestId)
      expect(ids.length).toBe(5)
      expect(ids).toEqual([...ids].sort((a, b) => a - b))
      const [r1, r2, r4, r5, r6] = ids as [number, number, number, number, number]
      expect(flow.filter((s) => !s.startsWith('budget') && !s.startsWith('pii'))).toEqual([
        `request#${r1}`, `response#${r1}`,
        `request#${r2}`, `response#${r2}`,
        expect.stringMatching(/^blocked#\d+:auth$/),
        `request#${r4}`, `response#${r4}`,
        `request#${r5}`, `blocked#${r5}:budget`,
        `request#${r6}`, `response#${r6}`,
      ])
      // The warning is published as the call that crossed 40 % settles, just before its response event.
      expect(flow.indexOf('budget'), flow.join(' ')).toBe(flow.indexOf(`response#${r2}`) - 1)
      const budgets = all.filter((e) => e.type === 'budget')
      expect(budgets[0]).toMatchObject({ level: 'warning', spentUsd: 0.00175, limitUsd: 0.004, percent: 43.75 })
      expect(budgets.at(-1)).toMatchObject({ level: 'exceeded', limitUsd: 0.001 })
      const pii = all.find((e) => e.type === 'pii')
      expect(pii).toMatchObject({ requestId: r6, direction: 'request', detections: [{ kind: 'email', count: 1, action: 'redact' }] })
      expect(JSON.stringify(pii)).not.toContain('jane.doe')
      const stream = all.find((e) => e.type === 'response' && e.requestId === r2)
      expect(stream).toMatchObject({ provider: 'openai', model: 'gpt-4o', status: 200, estimated: false, outcome: 'complete', tokens: { input: 400, cacheRead: 0, cacheWrite: 0, output: 30, reasoning: 0 } })
      expect((stream as { ttftMs: number | null }).ttftMs).not.toBeNull()
      expect(all.find((e) => e.type === 'request' && e.requestId === r2)).toMatchObject({ method: 'POST', path: '/v1/chat/completions', provider: 'openai', model: 'gpt-4o', stream: true })
      // Stats agree with the events.
      const stats = router.stats()
      expect(stats).toMatchObject({ requests: 5, completed: 4, blocked: 2, blockedByReason: { auth: 1, budget: 1 }, eventsDropped: 0 })
      expect(Math.round(stats.costUsd * 1e6)).toBe(1760)
    } finally {
      await router.stop()
    }
  })
})

// ------------------------------------------------------------------------------------------------ WebSocket

interface Client {
  ws: WebSocket
  messages: Array<Record<string, unknown>>
  closed: Promise<{ code: number; reason: string }>
}

function client(router: LlmRouter, headers: Record<string, string> = {}): Client {
  const ws = new WebSocket(`ws://127.0.0.1:${router.port}/_iron/events`, { headers })
  const messages: Array<Record<string, unknown>> = []
  ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as Record<string, unknown>))
  ws.on('error', () => {})
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  return { ws, messages, closed }
}

const notHeartbeat = (m: Record<string, unknown>) => m.type !== 'heartbeat' && m.type !== 'hello'

describe('a listener that throws', () => {
  it('surfaces each throw as an uncaught exception and costs no other listener or event its delivery', async () => {
    // In its own process: the throws are uncaught exceptions there, counted by the script.
    const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/throwing-listener.mjs', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const [code] = (await once(child, 'exit')) as [number]
    expect(code).toBe(0)
    const seen = JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, number>
    // Every `blocked` event reached its (throwing) listener and the one after it, every `response`
    // its own; a `once` listener ran once.
    expect(seen).toEqual({ responses: 10, blocked: 10, secondBlocked: 10, once: 1, thrown: 10, dropped: 0 })
  })
})

describe('GET /_iron/events (WebSocket)', () => {
  it('without a token the socket is closed with 4001 (no message, a wrong header, a wrong first message)', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url })
    try {
      const silent = client(router)
      const wrongHeader = client(router, { authorization: 'Bearer ic_wrong' })
      const wrongFirst = client(router)
      await once(wrongFirst.ws, 'open')
      wrongFirst.ws.send(JSON.stringify({ type: 'auth', token: 'ic_wrong' }))
      expect(await wrongFirst.closed).toMatchObject({ code: 4001 })
      // The silent and wrong-header clients get 5 s to send a token, then the same close.
      const t0 = Date.now()
      expect(await silent.closed).toMatchObject({ code: 4001 })
      expect(await wrongHeader.closed).toMatchObject({ code: 4001 })
      expect(Date.now() - t0).toBeLessThan(7000)
      for (const c of [silent, wrongHeader, wrongFirst]) expect(c.messages).toEqual([])
      // Each refused socket counts as an auth refusal.
      expect(router.stats().blockedByReason.auth).toBe(3)
    } finally {
      await router.stop()
    }
  }, 15_000)

  it('a machine past its failed-auth limit gets 429 for a socket with a wrong token; the right one still opens one', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url })
    try {
      // More than the 20 failures allowed in 10 s, then a socket from another loopback address
      // (the same machine; Linux has all of 127.0.0.0/8, macOS only 127.0.0.1).
      const statuses: number[] = []
      for (let i = 0; i < 22; i++) {
        const res = await fetch(`http://127.0.0.1:${router.port}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer ic_wrong', 'content-type': 'application/json' }, body: '{}' })
        statuses.push(res.status)
        await res.arrayBuffer()
      }
      expect(statuses.at(-1)).toBe(429)
      const localAddress = process.platform === 'linux' ? '127.0.0.2' : '127.0.0.1'
      const guessing = new WebSocket(`ws://127.0.0.1:${router.port}/_iron/events`, { localAddress, headers: { authorization: 'Bearer ic_wrong' } })
      guessing.on('error', () => {})
      const [, res] = (await once(guessing, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage]
      expect(res.statusCode).toBe(429)
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0)
      guessing.terminate()
      const owner = client(router, { authorization: `Bearer ${IC}` })
      await once(owner.ws, 'open')
      owner.ws.close()
      await owner.closed
      // The token as the first message is never refused either.
      const byMessage = client(router)
      await once(byMessage.ws, 'open')
      byMessage.ws.send(JSON.stringify({ type: 'auth', token: IC }))
      for (let i = 0; i < 100 && !byMessage.messages.some((m) => m.type === 'hello'); i++) await new Promise((r) => setTimeout(r, 20))
      expect(byMessage.messages[0]).toMatchObject({ type: 'hello' })
      byMessage.ws.close()
      await byMessage.closed
    } finally {
      await router.stop()
    }
  })

  it('open event sockets are bounded by maxConnections (an upgraded socket no longer counts as a connection)', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url, maxConnections: 2 })
    try {
      const auth = { authorization: `Bearer ${IC}` }
      const a = client(router, auth)
      const b = client(router, auth)
      await Promise.all([once(a.ws, 'open'), once(b.ws, 'open')])
      const refused = new WebSocket(`ws://127.0.0.1:${router.port}/_iron/events`, { headers: auth })
      // terminate() on a socket that never opened reports an error: expected here.
      refused.on('error', () => {})
      const [, res] = (await once(refused, 'unexpected-response')) as [unknown, import('node:http').IncomingMessage]
      expect(res.statusCode).toBe(503)
      refused.terminate()
      // Closing one frees its place.
      a.ws.close()
      await a.closed
      // The server side lets go of the session a moment after the close handshake.
      let reopened = false
      for (let i = 0; i < 50 && !reopened; i++) {
        const c = client(router, auth)
        reopened = await Promise.race([once(c.ws, 'open').then(() => true), once(c.ws, 'unexpected-response').then(() => false)])
        c.ws.terminate()
        if (!reopened) await new Promise((r) => setTimeout(r, 20))
      }
      expect(reopened).toBe(true)
      b.ws.close()
    } finally {
      await router.stop()
    }
  }, 15_000)

  it('a frame announcing more than 64 KiB is refused when its header arrives, before any token (not read into memory first)', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url })
    try {
      const { connect } = await import('node:net')
      const sock = connect(router.port, '127.0.0.1')
      await once(sock, 'connect')
      sock.write(`GET /_iron/events HTTP/1.1\r\nHost: 127.0.0.1:${router.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`)
      let head = ''
      while (!head.includes('\r\n\r\n')) head += ((await once(sock, 'data')) as [Buffer])[0].toString('latin1')
      expect(head).toMatch(/^HTTP\/1\.1 101/)
      const closed = once(sock, 'close')
      sock.on('error', () => {})
      // A masked binary frame that says 8 MiB follow, then only a few bytes of it.
      const header = Buffer.alloc(14)
      header[0] = 0x82
      header[1] = 0x80 | 127
      header.writeBigUInt64BE(8n * 1024n * 1024n, 2)
      sock.write(Buffer.concat([header, Buffer.alloc(64, 1)]))
      const t0 = Date.now()
      await closed
      // Refused on the header; without the frame limit the router waited for the rest (or the 5 s auth wait).
      expect(Date.now() - t0).toBeLessThan(2500)
      expect(await (await fetch(`http://127.0.0.1:${router.port}/`)).text()).toBe('LlmRouter OK')
    } finally {
      await router.stop()
    }
  }, 15_000)

  it('token in the Authorization header, in x-api-key or as the first message: hello, then every event in order, like the emitter', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url, budgetUsd: 0.1 })
    const emitted = collect(router)
    try {
      const byHeader = client(router, { authorization: `Bearer ${IC}` })
      const byXApiKey = client(router, { 'x-api-key': IC })
      const byMessage = client(router)
      await once(byMessage.ws, 'open')
      byMessage.ws.send(JSON.stringify({ type: 'auth', token: IC }))
      for (const c of [byHeader, byXApiKey, byMessage]) await until('hello', () => c.messages.length > 0)
      for (const c of [byHeader, byXApiKey, byMessage]) expect(c.messages[0]).toMatchObject({ type: 'hello', port: router.port })
      await scriptedRun(router)
      await until('emitter events', () => emitted.length >= 9)
      for (const c of [byHeader, byXApiKey, byMessage]) {
        await until('socket events', () => c.messages.filter(notHeartbeat).length >= emitted.length)
        // Same events, same order, same JSON as the emitter got.
        expect(c.messages.filter(notHeartbeat)).toEqual(emitted)
      }
      expect(shape(emitted as never).map((s) => s.replace(/#\d+/, ''))).toEqual([
        'request', 'response', 'request', 'response', 'blocked:auth', 'request', 'response', 'request', 'blocked:budget',
      ])
      for (const c of [byHeader, byXApiKey, byMessage]) c.ws.close()
    } finally {
      await router.stop()
    }
  })

  it('sends heartbeats every wsHeartbeatMs on an idle socket', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url, wsHeartbeatMs: 150 })
    try {
      const c = client(router, { authorization: `Bearer ${IC}` })
      const at: number[] = []
      c.ws.on('message', (d) => {
        if ((JSON.parse(d.toString()) as { type: string }).type === 'heartbeat') at.push(Date.now())
      })
      await until('5 heartbeats', () => at.length >= 5, 3000)
      const gaps = at.slice(1).map((t, i) => t - at[i]!)
      for (const g of gaps) {
        expect(g).toBeGreaterThan(100)
        expect(g).toBeLessThan(400)
      }
      const hb = c.messages.find((m) => m.type === 'heartbeat')!
      expect(typeof hb.tsMs).toBe('number')
      c.ws.close()
    } finally {
      await router.stop()
    }
  })

  it('open sockets are closed (1001) when the router stops', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url, wsHeartbeatMs: 100 })
    const c = client(router, { authorization: `Bearer ${IC}` })
    try {
      await until('hello', () => c.messages.some((m) => m.type === 'hello'))
    } finally {
      await router.stop()
    }
    const closed = await Promise.race([c.closed, new Promise<null>((r) => setTimeout(() => r(null), 3000))])
    expect(closed).toEqual({ code: 1001, reason: 'the Iron Cage router stopped' })
  })
})

// ------------------------------------------------------------------------------------------------ dashboard push

interface Stub {
  port: number
  /** Messages per connection, in order. */
  connections: Array<Array<Record<string, unknown>>>
  close(): Promise<void>
}

async function stubDashboard(port = 0, connections: Stub['connections'] = []): Promise<Stub> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port })
  await once(wss, 'listening')
  wss.on('connection', (ws) => {
    const msgs: Array<Record<string, unknown>> = []
    connections.push(msgs)
    ws.on('message', (d) => msgs.push(JSON.parse(d.toString()) as Record<string, unknown>))
  })
  return {
    port: (wss.address() as AddressInfo).port,
    connections,
    async close() {
      for (const c of wss.clients) c.terminate()
      await new Promise<void>((r) => wss.close(() => r()))
    },
  }
}

describe('dashboard push (dashboardUrl)', () => {
  it('AUTH first, then AGENT_EVENT, STATE_UPDATE, COST_ALERT and HEARTBEAT; after the dashboard restarts the router reconnects and resumes', async () => {
    let stub = await stubDashboard()
    const router = await LlmRouter.create({
      apiKey: IC,
      serverUrl: keys.url,
      agentId: 'dash-agent',
      budgetUsd: 0.004,
      dashboardUrl: `ws://127.0.0.1:${stub.port}`,
      wsHeartbeatMs: 200,
    })
    try {
      await until('dashboard connection', () => stub.connections[0]?.length === 1)
      const first = stub.connections[0]!
      expect(first[0]).toEqual({ type: 'AUTH', token: IC, agent_id: 'dash-agent' })

      up.behaviour.usage = { inputTokens: 100, outputTokens: 20 }
      expect(await chat(router, { model: 'gpt-4o', max_tokens: 20, messages: user('dash one') })).toBe(200)
      await until('llm_call', () => first.some((m) => m.type === 'AGENT_EVENT' && m.event === 'llm_call'))
      await until('state update', () => first.some((m) => m.type === 'STATE_UPDATE'))
      const call = first.find((m) => m.type === 'AGENT_EVENT' && m.event === 'llm_call')!
      expect(call).toMatchObject({ agent_id: 'dash-agent', data: { model: 'gpt-4o', input_tokens: 100, output_tokens: 20, cost_usd: 0.00045, status: 200 } })
      expect(first.find((m) => m.type === 'STATE_UPDATE')).toMatchObject({ agent_id: 'dash-agent', data: { budget_spent: 0.00045, budget_limit: 0.004, requests: 1 } })
      router.setBudget(0.0004)
      // 450 µ$ spent of a new 400 µ$ limit: past the warning level and past the limit, both reported.
      await until('cost alerts', () => first.filter((m) => m.type === 'COST_ALERT').length >= 2)
      expect(first.filter((m) => m.type === 'COST_ALERT')).toEqual([
        expect.objectContaining({ severity: 'warning', agent_id: 'dash-agent', data: expect.objectContaining({ budget_limit: 0.0004 }) }),
        expect.objectContaining({ severity: 'critical', agent_id: 'dash-agent', data: { budget_spent: 0.00045, budget_limit: 0.0004, percentage: 112.5 } }),
      ])
      await until('heartbeat', () => first.some((m) => m.type === 'HEARTBEAT'))
      router.setBudget(null)

      // The dashboard goes away; a call made while it is down is buffered.
      const port = stub.port
      await stub.close()
      await new Promise((r) => setTimeout(r, 300))
      up.behaviour.usage = { inputTokens: 200, outputTokens: 10 }
      expect(await chat(router, { model: 'gpt-4o', max_tokens: 10, messages: user('while offline') })).toBe(200)
      await new Promise((r) => setTimeout(r, 1200))
      stub = await stubDashboard(port, stub.connections)
      const t0 = Date.now()
      await until('reconnect', () => (stub.connections[1]?.length ?? 0) >= 1, 35_000)
      const reconnectMs = Date.now() - t0
      const second = stub.connections[1]!
      expect(second[0]).toEqual({ type: 'AUTH', token: IC, agent_id: 'dash-agent' })
      // The buffered call arrives after AUTH: 200 × 2.50 + 10 × 10 = 600 µ$.
      await until('buffered llm_call', () => second.some((m) => m.type === 'AGENT_EVENT' && m.event === 'llm_call'))
      expect(second.find((m) => m.type === 'AGENT_EVENT' && m.event === 'llm_call')).toMatchObject({ data: { input_tokens: 200, output_tokens: 10, cost_usd: 0.0006 } })
      // Later calls flow on the new link.
      up.behaviour.usage = { inputTokens: 300, outputTokens: 1 }
      expect(await chat(router, { model: 'gpt-4o', max_tokens: 10, messages: user('after reconnect') })).toBe(200)
      await until('live llm_call', () => second.some((m) => m.type === 'AGENT_EVENT' && (m.data as { input_tokens?: number }).input_tokens === 300))
      expect(stub.connections.length).toBe(2)
      console.log(`[dashboard] reconnected ${reconnectMs} ms after the stub listened again`)
    } finally {
      await router.stop()
      await stub.close()
    }
  }, 60_000)

  it('a dashboard that accepts and closes at once is retried with backoff, not in a loop', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await once(wss, 'listening')
    let connections = 0
    wss.on('connection', (ws) => {
      connections++
      ws.close(4003, 'token refused')
    })
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url, dashboardUrl: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}` })
    try {
      await new Promise((r) => setTimeout(r, 3500))
      // Attempts after 0, 1, 1+2 s (the waits double from 1 s): a loop made thousands.
      expect(connections).toBeGreaterThanOrEqual(2)
      expect(connections).toBeLessThanOrEqual(4)
    } finally {
      await router.stop()
      for (const c of wss.clients) c.terminate()
      await new Promise<void>((r) => wss.close(() => r()))
    }
  })

  it('messages lost while the dashboard is offline are counted', async () => {
    // A port nothing listens on: every message waits in the buffer (1,000), the oldest go.
    const spare = await stubDashboard()
    const port = spare.port
    await spare.close()
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url, dashboardUrl: `ws://127.0.0.1:${port}` })
    try {
      up.behaviour.usage = { inputTokens: 10, outputTokens: 1 }
      // Two messages per call (AGENT_EVENT and STATE_UPDATE): 520 calls make 1,040.
      for (let i = 0; i < 52; i++) {
        const statuses = await Promise.all(Array.from({ length: 10 }, () => chat(router, { model: 'gpt-4o-mini', max_tokens: 1, messages: user('offline') })))
        expect(statuses.every((s) => s === 200)).toBe(true)
      }
      // (and the `key` event of the start and the `error` event saying the dashboard is
      // unreachable: 1,042 in all)
      await until('drops counted', () => router.stats().dashboardDropped >= 40)
      const dropped = router.stats().dashboardDropped
      expect(dropped).toBeLessThanOrEqual(42)
      const metrics = await (await fetch(`http://127.0.0.1:${router.port}/_iron/metrics`, { headers: { authorization: `Bearer ${IC}` } })).text()
      expect(metrics).toContain(`\niron_cage_dashboard_dropped_total ${dropped}\n`)
    } finally {
      await router.stop()
    }
  }, 30_000)
})

// ------------------------------------------------------------------------------------------------ event loop

describe('event loop under a burst', () => {
  it('stays responsive while the router serves thousands of requests to a `response` listener', async () => {
    const TOTAL = 4000
    const load = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/state-burst-load.mjs', import.meta.url))], { stdio: ['pipe', 'pipe', 'inherit'] })
    const lines = createInterface({ input: load.stdout! })[Symbol.asyncIterator]()
    const providerLine = (await lines.next()).value as string
    expect(providerLine).toMatch(/^provider http:/)
    const router = await LlmRouter.create({ providerKey: 'sk-test-real-key', providerBaseUrl: providerLine.split(' ')[1]!, provider: 'openai' })
    let received = 0
    let tokens = 0
    router.on('response', (e) => {
      received++
      tokens += e.tokens.input + e.tokens.output
    })
    const h = monitorEventLoopDelay({ resolution: 5 })
    try {
      h.enable()
      load.stdin!.write(`go ${router.baseUrl} ${router.apiKey} ${TOTAL} 64\n`)
      const finished = (await lines.next()).value as string
      const [, ok, failed, ms] = finished.split(' ').map(Number) as [number, number, number, number]
      await until('response events', () => received + router.stats().eventsDropped >= TOTAL, 10_000).catch(() => {})
      h.disable()
      const p99 = h.percentile(99) / 1e6
      const max = h.max / 1e6
      const dropped = router.stats().eventsDropped
      console.log(
        `[event loop] ${ok} ok / ${failed} failed in ${ms} ms (${Math.round((ok * 1000) / ms)} req/s); ` +
          `${received} response events, ${dropped} dropped; event-loop delay p50 ${(h.percentile(50) / 1e6).toFixed(1)} ms, ` +
          `p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`,
      )
      expect(ok).toBe(TOTAL)
      expect(failed).toBe(0)
      expect(router.stats().completed).toBe(TOTAL)
      // Every response reached the listener or was counted as dropped (a slow consumer loses, never blocks).
      expect(received).toBeLessThanOrEqual(TOTAL)
      expect(received + dropped).toBeGreaterThanOrEqual(TOTAL)
      expect(tokens).toBe(received * 15)
      expect(p99).toBeLessThan(100)
    } finally {
      h.disable()
      await router.stop()
      load.kill()
    }
  }, 60_000)
})
