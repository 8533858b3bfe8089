// The router's SQLite state seen from outside: the request ledger after a mixed run, spent restored across restarts
// (the budget still holds), and what a SIGKILL under load costs (at most the flush interval; nothing in strict mode).
// The database is read with python3's built-in sqlite3 (see fixtures/state-sqlite.mjs).
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LlmRouter } from '../src-ts/index.js'
import type { ResponseEvent } from '../src-ts/events.js'
import { startFakeKeyServer, type FakeKeyServer } from './helpers/fake-key-server.js'
import { startFakeProvider, type FakeProvider, type UsageFigures } from './helpers/fake-provider.js'
import { queryDb } from './fixtures/state-sqlite.mjs'

const query = queryDb as (path: string, statements: string[]) => Array<Array<Record<string, unknown>>>

const IC = 'ic_state_test_token_71c0'
const OPENAI_KEY = 'sk-proj-state-test-openai'
const ANTHROPIC_KEY = 'sk-ant-state-test-anthropic'

let dir: string
let openaiUp: FakeProvider
let anthropicUp: FakeProvider
let openaiKeys: FakeKeyServer
let anthropicKeys: FakeKeyServer

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'iron-state-'))
  openaiUp = await startFakeProvider({ expectedKey: OPENAI_KEY })
  anthropicUp = await startFakeProvider({ expectedKey: ANTHROPIC_KEY })
  openaiKeys = await startFakeKeyServer({ icToken: IC, key: OPENAI_KEY, provider: 'openai', baseUrl: openaiUp.url })
  anthropicKeys = await startFakeKeyServer({ icToken: IC, key: ANTHROPIC_KEY, provider: 'anthropic', baseUrl: anthropicUp.url })
})

afterAll(async () => {
  await Promise.all([openaiUp.close(), anthropicUp.close(), openaiKeys.close(), anthropicKeys.close()])
  rmSync(dir, { recursive: true, force: true })
})

interface Call {
  status: number
  body: string
}

async function openaiChat(router: LlmRouter, body: object, token = IC): Promise<Call> {
  const res = await fetch(`${router.baseUrl}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: res.status, body: await res.text() }
}

async function anthropicMessages(router: LlmRouter, body: object, token = IC): Promise<Call> {
  const res = await fetch(`${router.anthropicBaseUrl}/v1/messages`, {
    method: 'POST',
    headers: { 'x-api-key': token, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: res.status, body: await res.text() }
}

const user = (content: string) => [{ role: 'user', content }]

/** Waits until `list` has n entries (events are delivered asynchronously). */
async function waitFor<T>(list: T[], n: number, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (list.length < n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} events, have ${list.length}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const LEDGER_COLUMNS =
  'agent_id, request_id, provider, model, api, status, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, ' +
  'reasoning_tokens, cost_micros, estimated, blocked_reason, error_code, latency_ms, ttft_ms'

describe('request ledger', () => {
  it('after a mixed run (OpenAI and Anthropic, JSON and streamed, refused by PII and budget) holds exactly one row per request the token was given for', async () => {
    const db = join(dir, 'mixed.db')

    // ---- OpenAI agent
    const a = await LlmRouter.create({ apiKey: IC, serverUrl: openaiKeys.url, statePath: db, agentId: 'agent-openai', safety: { request: { email: 'block' } } })
    const aEvents: ResponseEvent[] = []
    a.on('response', (e) => aEvents.push(e))
    const use = (u: Partial<UsageFigures>) => (openaiUp.behaviour.usage = u)

    // 1. gpt-4o JSON: 100 × 2.50 + 20 × 10 = 250 + 200 = 450 µ$
    use({ inputTokens: 100, outputTokens: 20 })
    expect((await openaiChat(a, { model: 'gpt-4o', messages: user('one') })).status).toBe(200)
    // 2. gpt-4o JSON with 200 of 1000 prompt tokens cached: 800 × 2.50 + 200 × 1.25 + 50 × 10 = 2000 + 250 + 500 = 2750 µ$
    use({ inputTokens: 1000, cachedTokens: 200, outputTokens: 50 })
    expect((await openaiChat(a, { model: 'gpt-4o', messages: user('two') })).status).toBe(200)
    // 3. gpt-4o stream (usage injected by the router): 400 × 2.50 + 30 × 10 = 1000 + 300 = 1300 µ$
    use({ inputTokens: 400, outputTokens: 30 })
    const s = await openaiChat(a, { model: 'gpt-4o', stream: true, messages: user('three') })
    expect(s.status).toBe(200)
    expect(s.body).toContain('data: [DONE]')
    // 4. o3 JSON with reasoning inside the output: 200 × 2 + 100 × 8 = 400 + 800 = 1200 µ$
    use({ inputTokens: 200, outputTokens: 100, reasoningTokens: 60 })
    expect((await openaiChat(a, { model: 'o3', messages: user('four') })).status).toBe(200)
    // 5. refused: wrong token (counted in stats, no row: requests without the token cost no disk)
    const auth = await openaiChat(a, { model: 'gpt-4o', messages: user('five') }, 'ic_wrong_token')
    expect(auth.status).toBe(401)
    expect(a.stats().blockedByReason.auth).toBe(1)
    // 6. refused: an e-mail address in the prompt (policy: block)
    const pii = await openaiChat(a, { model: 'gpt-4o', messages: user('mail me at jane.doe@example.com') })
    expect(pii.status).toBeGreaterThanOrEqual(400)
    // 7. refused: budget (5700 µ$ spent, limit 1000 µ$)
    a.setBudget(0.001)
    const budget = await openaiChat(a, { model: 'gpt-4o', max_tokens: 10, messages: user('seven') })
    expect(budget.status).toBe(402)
    a.setBudget(null)
    await waitFor(aEvents, 4)
    await a.stop()
    expect(openaiUp.hits).toBe(4)

    // ---- Anthropic agent, same file, after the first router stopped
    const b = await LlmRouter.create({ apiKey: IC, serverUrl: anthropicKeys.url, statePath: db, agentId: 'agent-anthropic' })
    // 8. claude-sonnet-4-5 JSON: 300 × 3 + 1000 × 0.30 + 200 × 3.75 + 40 × 15 = 900 + 300 + 750 + 600 = 2550 µ$
    anthropicUp.behaviour.usage = { inputTokens: 300, cachedTokens: 1000, cacheWrite5mTokens: 200, outputTokens: 40 }
    expect((await anthropicMessages(b, { model: 'claude-sonnet-4-5', max_tokens: 64, messages: user('eight') })).status).toBe(200)
    // 9. claude-haiku-4-5 stream: 50 × 1 + 30 × 5 = 50 + 150 = 200 µ$
    anthropicUp.behaviour.usage = { inputTokens: 50, outputTokens: 30 }
    const hs = await anthropicMessages(b, { model: 'claude-haiku-4-5', max_tokens: 64, stream: true, messages: user('nine') })
    expect(hs.status).toBe(200)
    expect(hs.body).toContain('message_stop')
    // 10. refused: wrong x-api-key
    expect((await anthropicMessages(b, { model: 'claude-haiku-4-5', max_tokens: 64, messages: user('ten') }, 'ic_nope')).status).toBe(401)
    await b.stop()

    const [rows, agents, integrity] = query(db, [
      `SELECT ${LEDGER_COLUMNS} FROM requests ORDER BY id`,
      'SELECT agent_id, COUNT(*) AS n, SUM(cost_micros) AS spent FROM requests GROUP BY agent_id ORDER BY agent_id',
      'PRAGMA integrity_check',
    ])
    expect(integrity).toEqual([{ integrity_check: 'ok' }])
    const pick = (r: Record<string, unknown>) => ({
      agent: r.agent_id,
      provider: r.provider,
      model: r.model,
      status: r.status,
      tokens: [r.input_tokens, r.cache_read_tokens, r.cache_write_tokens, r.output_tokens, r.reasoning_tokens],
      cost: r.cost_micros,
      estimated: r.estimated,
      blocked: r.blocked_reason,
    })
    expect(rows!.map(pick)).toEqual([
      { agent: 'agent-openai', provider: 'openai', model: 'gpt-4o', status: 200, tokens: [100, 0, 0, 20, 0], cost: 450, estimated: 0, blocked: null },
      { agent: 'agent-openai', provider: 'openai', model: 'gpt-4o', status: 200, tokens: [800, 200, 0, 50, 0], cost: 2750, estimated: 0, blocked: null },
      { agent: 'agent-openai', provider: 'openai', model: 'gpt-4o', status: 200, tokens: [400, 0, 0, 30, 0], cost: 1300, estimated: 0, blocked: null },
      { agent: 'agent-openai', provider: 'openai', model: 'o3', status: 200, tokens: [200, 0, 0, 100, 60], cost: 1200, estimated: 0, blocked: null },
      { agent: 'agent-openai', provider: 'openai', model: 'gpt-4o', status: pii.status, tokens: [0, 0, 0, 0, 0], cost: 0, estimated: 0, blocked: 'pii' },
      { agent: 'agent-openai', provider: 'openai', model: 'gpt-4o', status: 402, tokens: [0, 0, 0, 0, 0], cost: 0, estimated: 0, blocked: 'budget' },
      { agent: 'agent-anthropic', provider: 'anthropic', model: 'claude-sonnet-4-5', status: 200, tokens: [300, 1000, 200, 40, 0], cost: 2550, estimated: 0, blocked: null },
      { agent: 'agent-anthropic', provider: 'anthropic', model: 'claude-haiku-4-5', status: 200, tokens: [50, 0, 0, 30, 0], cost: 200, estimated: 0, blocked: null },
    ])
    expect(agents).toEqual([
      { agent_id: 'agent-anthropic', n: 2, spent: 2750 },
      { agent_id: 'agent-openai', n: 6, spent: 5700 },
    ])
    // The streamed rows carry a time to first token; JSON rows do not need one. Every row has an error code iff it failed.
    expect(rows![2]!.ttft_ms).not.toBeNull()
    expect(rows![7]!.ttft_ms).not.toBeNull()
    for (const r of rows!) expect(r.error_code === null).toBe(r.status === 200)
    // The ledger and the `response` events agree on request ids and costs.
    const forwarded = rows!.slice(0, 4)
    expect(forwarded.map((r) => [Number(r.request_id), r.cost_micros])).toEqual(aEvents.map((e) => [e.requestId, e.costMicros]))
  })
})

describe('ledger counters in stats()', () => {
  it('count every row the writer commits, and reach pending 0 with nothing dropped or failed after 300 concurrent requests', async () => {
    const db = join(dir, 'counters.db')
    // A long interval: rows are committed because 128 of them are waiting, not because time passed.
    const r = await LlmRouter.create({ apiKey: IC, serverUrl: openaiKeys.url, statePath: db, agentId: 'agent-counters', flushIntervalMs: 60_000 })
    try {
      openaiUp.behaviour.usage = { inputTokens: 10, outputTokens: 5 }
      // The agent's row from start-up waits for the writer; nothing is committed yet.
      expect(r.stats().ledger).toEqual({ committed: 0, pending: 1, dropped: 0, failed: 0 })
      const N = 300
      let next = 0
      const worker = async () => {
        while (next < N) {
          next++
          expect((await openaiChat(r, { model: 'gpt-4o', messages: user('count me') })).status).toBe(200)
        }
      }
      await Promise.all(Array.from({ length: 16 }, worker))
      // 300 request rows (plus audit rows such as the key fetch): two full batches of 128 go out
      // without waiting for the 60 s interval.
      const deadline = Date.now() + 10_000
      while (r.stats().ledger.committed < 256 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10))
      const mid = r.stats().ledger
      expect(mid.committed).toBeGreaterThanOrEqual(256)
      expect(mid.committed + mid.pending).toBeGreaterThanOrEqual(N)
      expect(mid.pending).toBeLessThan(128 * 2)
      const metrics = await fetch(`http://127.0.0.1:${r.port}/_iron/metrics`, { headers: { authorization: `Bearer ${IC}` } })
      const text = await metrics.text()
      const committed = Number(/^iron_cage_ledger_rows_total\{outcome="committed"\} (\d+)$/m.exec(text)?.[1])
      expect(committed).toBeGreaterThanOrEqual(256)
      expect(text).toMatch(/^iron_cage_ledger_rows_total\{outcome="dropped"\} 0$/m)
      expect(text).toMatch(/^iron_cage_ledger_pending_rows \d+$/m)
      await r.stop()
      // stop() commits the rest.
      const end = r.stats().ledger
      expect(end.pending).toBe(0)
      expect(end.dropped).toBe(0)
      expect(end.failed).toBe(0)
      const [counts] = query(db, ["SELECT (SELECT COUNT(*) FROM requests) AS requests, (SELECT COUNT(*) FROM audit) AS audit, (SELECT COUNT(*) FROM agents) AS agents"])
      const c = counts![0] as { requests: number; audit: number; agents: number }
      expect(c.requests).toBe(N)
      // Every committed row is in the file (agent rows are upserts: one row, written more than once).
      expect(end.committed).toBeGreaterThanOrEqual(c.requests + c.audit + c.agents)
    } finally {
      if (r.isRunning) await r.stop()
    }
  })
})

describe('spent across restarts', () => {
  it('restores spent for the same statePath and agentId, and the budget still refuses what would exceed it', async () => {
    const db = join(dir, 'restart.db')
    const opts = { apiKey: IC, serverUrl: openaiKeys.url, statePath: db, agentId: 'agent-r', budgetUsd: 0.005 }
    const first = await LlmRouter.create(opts)
    // 450 + 2750 = 3200 µ$ (priced as in the ledger test)
    openaiUp.behaviour.usage = { inputTokens: 100, outputTokens: 20 }
    expect((await openaiChat(first, { model: 'gpt-4o', max_tokens: 20, messages: user('a') })).status).toBe(200)
    openaiUp.behaviour.usage = { inputTokens: 1000, cachedTokens: 200, outputTokens: 50 }
    expect((await openaiChat(first, { model: 'gpt-4o', max_tokens: 50, messages: user('b') })).status).toBe(200)
    const before = first.budgetStatus
    expect(Math.round(first.totalSpent() * 1e6)).toBe(3200)
    await first.stop()

    const second = await LlmRouter.create(opts)
    try {
      // One router at a time runs an agent's budget: a second one is refused with its own code.
      await expect(LlmRouter.create(opts)).rejects.toMatchObject({ code: 'AGENT_ID_IN_USE', message: expect.stringMatching(/agent 'agent-r' \(agentId\) in .* is in use by another router \(process \d+\)/) })
      expect(Math.round(second.totalSpent() * 1e6)).toBe(3200)
      expect(second.budgetStatus).toEqual({ ...before, reservedUsd: 0 })
      expect(second.budgetStatus.spentUsd).toBe(first.budgetStatus.spentUsd)
      // 1800 µ$ left; up to 1000 output tokens of gpt-4o could cost 10000 µ$: refused before reaching the provider.
      const hits = openaiUp.hits
      const refused = await openaiChat(second, { model: 'gpt-4o', max_tokens: 1000, messages: user('too much') })
      expect(refused.status).toBe(402)
      expect(openaiUp.hits).toBe(hits)
      // A small call still fits: 20 × 2.50 + 10 × 10 = 150 µ$.
      openaiUp.behaviour.usage = { inputTokens: 20, outputTokens: 10 }
      expect((await openaiChat(second, { model: 'gpt-4o', max_tokens: 10, messages: user('small') })).status).toBe(200)
      expect(Math.round(second.totalSpent() * 1e6)).toBe(3350)
    } finally {
      await second.stop()
    }

    const third = await LlmRouter.create(opts)
    expect(Math.round(third.totalSpent() * 1e6)).toBe(3350)
    await third.stop()
    // Without agentId nothing is restored (another agent's spent is not this router's).
    const anonymous = await LlmRouter.create({ ...opts, agentId: undefined })
    expect(anonymous.totalSpent()).toBe(0)
    await anonymous.stop()
    const other = await LlmRouter.create({ ...opts, agentId: 'agent-other' })
    expect(other.totalSpent()).toBe(0)
    await other.stop()
  })

  it('request ids name one row of an agent across its runs; routers without agentId never share rows', async () => {
    const db = join(dir, 'ids.db')
    const idOf = async (r: LlmRouter) => {
      const res = await fetch(`${r.baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${IC}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 5, messages: user('id') }),
      })
      expect(res.status).toBe(200)
      await res.text()
      return Number(res.headers.get('x-iron-cage-request-id'))
    }
    const opts = { apiKey: IC, serverUrl: openaiKeys.url, statePath: db }
    const ids: number[] = []
    for (let run = 0; run < 2; run++) {
      const r = await LlmRouter.create({ ...opts, agentId: 'agent-ids' })
      ids.push(await idOf(r), await idOf(r))
      await r.stop()
    }
    expect(ids).toEqual([1, 2, 3, 4])
    for (let run = 0; run < 2; run++) {
      const r = await LlmRouter.create(opts)
      await idOf(r)
      await r.stop()
    }
    const [rows] = query(db, ["SELECT agent_id, request_id, COUNT(*) AS n FROM requests GROUP BY agent_id, request_id"])
    expect(rows!.every((r) => Number(r.n) === 1)).toBe(true)
    const anonymous = rows!.filter((r) => String(r.agent_id).startsWith('router-'))
    expect(new Set(anonymous.map((r) => r.agent_id)).size).toBe(2)
    // A router that names such an id does not take over their spend: it names a new agent.
    const named = await LlmRouter.create({ ...opts, agentId: 'router' })
    expect(named.totalSpent()).toBe(0)
    await named.stop()
  })
})

describe.skipIf(process.platform !== 'linux')('stop() releases the state file', () => {
  it('closes its descriptors (the writer thread with them) while the router is still referenced', async () => {
    const sub = mkdtempSync(join(dir, 'release-'))
    const fds = () =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(sub)
        } catch {
          return false
        }
      }).length
    const kept: LlmRouter[] = []
    for (let i = 0; i < 5; i++) {
      const r = await LlmRouter.create({ apiKey: IC, serverUrl: openaiKeys.url, statePath: join(sub, 's.db'), agentId: `agent-${i}` })
      expect((await openaiChat(r, { model: 'gpt-4o', messages: user('hi') })).status).toBe(200)
      expect(fds()).toBeGreaterThan(0)
      await r.stop()
      kept.push(r)
      expect(fds()).toBe(0)
    }
    // The lock files went with their owners.
    expect(readdirSync(sub).filter((n) => n.endsWith('.lock'))).toEqual([])
    expect(kept.every((r) => !r.isRunning)).toBe(true)
  })
})

// ------------------------------------------------------------------------------------------------ crash bound

const WRITER = fileURLToPath(new URL('./fixtures/state-crash-writer.mjs', import.meta.url))

interface CrashRun {
  completed: Array<{ n: number; at: number }>
  killAt: number
  ledger: Set<number>
  integrity: string
  stderr: string
}

/**
 * Run the writer under load for at least `loadMs` and at least `minCompleted` completions (the machine may be busy),
 * SIGKILL it, then open its database.
 */
async function crashRun(db: string, flushMs: number, strict: boolean, loadMs: number, minCompleted = 150): Promise<CrashRun> {
  const child = spawn(process.execPath, [WRITER, db, String(flushMs), strict ? 'strict' : 'batched'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const completed: Array<{ n: number; at: number }> = []
  let buf = ''
  let stderr = ''
  let started = false
  let resolveStarted: () => void = () => {}
  const startedP = new Promise<void>((r) => (resolveStarted = r))
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    let i: number
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      const [tag, n, at] = line.split(' ')
      if (tag === 'done') completed.push({ n: Number(n), at: Number(at) })
      if (tag === 'ready' && !started) {
        started = true
        resolveStarted()
      }
    }
  })
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = once(child, 'exit')
  await Promise.race([startedP, exited])
  expect(started, stderr).toBe(true)
  const loadStart = Date.now()
  while (Date.now() - loadStart < loadMs || completed.length < minCompleted) {
    if (Date.now() - loadStart > 30_000) throw new Error(`only ${completed.length} requests completed in 30 s: ${stderr}`)
    await new Promise((r) => setTimeout(r, 10))
  }
  const killAt = Date.now()
  child.kill('SIGKILL')
  const [, signal] = (await exited) as [number | null, string | null]
  expect(signal).toBe('SIGKILL')
  const [rows, integrity] = query(db, ['SELECT input_tokens FROM requests', 'PRAGMA integrity_check'])
  const ledger = new Set(rows!.map((r) => Number(r.input_tokens) - 1_000_000))
  return { completed, killAt, ledger, integrity: String(integrity![0]!.integrity_check), stderr }
}

describe('crash bound (SIGKILL under load)', () => {
  it('loses at most the last flush interval (100 ms) of completed requests, and the file opens cleanly', async () => {
    const flushMs = 100
    const windows: number[] = []
    for (let round = 0; round < 3; round++) {
      const db = join(dir, `crash-${round}.db`)
      const r = await crashRun(db, flushMs, false, 800 + round * 137)
      expect(r.integrity).toBe('ok')
      expect(r.completed.length).toBeGreaterThanOrEqual(150)
      const missing = r.completed.filter((c) => !r.ledger.has(c.n))
      // Every request that completed more than flushIntervalMs + 50 ms before the kill is in the ledger.
      const oldMissing = missing.filter((c) => c.at < r.killAt - (flushMs + 50))
      expect(oldMissing, `missing rows older than ${flushMs + 50} ms`).toEqual([])
      const window = missing.length ? r.killAt - Math.min(...missing.map((c) => c.at)) : 0
      windows.push(window)
      // Rows are never invented: everything in the ledger was a real request of this run.
      expect(r.ledger.size).toBeLessThanOrEqual(r.completed.length + 64)
      console.log(
        `[crash bound] round ${round}: ${r.completed.length} completed, ${r.ledger.size} rows, ${missing.length} missing, ` +
          `loss window ${window} ms (flushIntervalMs ${flushMs})`,
      )
    }
    console.log(`[crash bound] worst loss window over 3 kills: ${Math.max(...windows)} ms`)
  }, 60_000)

  it('strict persistence: no completed request is missing after SIGKILL', async () => {
    const db = join(dir, 'crash-strict.db')
    const r = await crashRun(db, 100, true, 800)
    expect(r.integrity).toBe('ok')
    expect(r.completed.length).toBeGreaterThanOrEqual(150)
    const missing = r.completed.filter((c) => !r.ledger.has(c.n))
    console.log(`[crash bound] strict: ${r.completed.length} completed, ${r.ledger.size} rows, ${missing.length} missing`)
    expect(missing).toEqual([])
  }, 60_000)
})
