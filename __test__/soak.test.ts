// Soak with faults: thousands of calls through the real openai SDK while the fake provider fails at random (500s,
// 429s, resets, hangs before and during answers, broken JSON and SSE) and the client aborts streams and times out. At
// the end no budget reservation is left, no connection is stuck (health answers at once, stop() is quick), memory has
// settled between two equal rounds, and the router's counters match the calls made exactly.
import OpenAI from 'openai'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { LlmRouter } from '../src-ts/index.js'
import { startFakeKeyServer, type FakeKeyServer } from './helpers/fake-key-server.js'
import { startFakeProvider, type FakeProvider, type Fault } from './helpers/fake-provider.js'

const IC = 'ic_soak_test_token_3c8e'
const KEY = 'sk-proj-soak-openai'
const ROUNDS = 2
const PER_ROUND = 1500
const CONCURRENCY = 24
const CHAT = { model: 'gpt-4o-mini', max_tokens: 16, messages: [{ role: 'user' as const, content: 'Say hello.' }] }

/** Faults with weights; `undefined` is a normal answer. */
const FAULTS: Array<[Fault | undefined, number]> = [
  [undefined, 55],
  [{ status: 500 }, 8],
  [{ status: 429, retryAfter: 0 }, 4],
  ['reset-mid-stream', 8],
  ['hang-mid-stream', 5],
  ['hang-before-headers', 5],
  ['error-event-mid-stream', 5],
  ['malformed-json', 10],
]
const TOTAL_WEIGHT = FAULTS.reduce((n, [, w]) => n + w, 0)

/** A seeded generator, so a failing run can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const SEED = Number(process.env.SOAK_SEED ?? Date.now() % 100000)
const random = rng(SEED)

function pickFault(): Fault | undefined {
  let r = random() * TOTAL_WEIGHT
  for (const [f, w] of FAULTS) {
    r -= w
    if (r < 0) return f
  }
  return undefined
}

let up: FakeProvider
let keys: FakeKeyServer
let router: LlmRouter

beforeAll(async () => {
  up = await startFakeProvider({ expectedKey: KEY })
  // Every request the provider handles draws its own fault (reads of `fault` are random).
  Object.defineProperty(up.behaviour, 'fault', { get: pickFault, set: () => {}, configurable: true })
  up.behaviour.chunks = 4
  keys = await startFakeKeyServer({ icToken: IC, key: KEY, provider: 'openai', baseUrl: up.url })
  router = await LlmRouter.create({
    apiKey: IC,
    serverUrl: keys.url,
    budgetUsd: 1000,
    reliability: {
      retry: { maxRetries: 1, baseMs: 1, maxBackoffMs: 5, maxTotalMs: 2000 },
      breaker: { consecutiveFailures: 10_000, minimumCalls: 10_000, windowSize: 10_000, openMs: 100 },
      timeouts: { connectMs: 1000, firstByteMs: 600, idleMs: 600, totalMs: 4000 },
    },
  })
})

afterAll(async () => {
  await router?.stop()
  await Promise.all([up?.close(), keys?.close()])
})

type Outcome = 'ok' | 'error' | 'aborted' | 'timeout'

/** One call: JSON or stream; some streams are aborted after their first chunk, some calls get a short timeout. */
async function oneCall(client: OpenAI): Promise<Outcome> {
  const stream = random() < 0.5
  const shortTimeout = random() < 0.1
  const abortAfterFirst = stream && random() < 0.15
  const ac = new AbortController()
  const opts = { signal: ac.signal, timeout: shortTimeout ? 300 : 10_000, maxRetries: 0 }
  try {
    if (stream) {
      const s = await client.chat.completions.create({ ...CHAT, stream: true }, opts)
      for await (const _chunk of s) {
        if (abortAfterFirst) {
          ac.abort()
          return 'aborted'
        }
      }
    } else {
      await client.chat.completions.create(CHAT, opts)
    }
    return 'ok'
  } catch (e) {
    const name = (e as Error).constructor?.name ?? ''
    if (abortAfterFirst) return 'aborted'
    if (name.includes('Timeout')) return 'timeout'
    return 'error'
  }
}

async function round(client: OpenAI): Promise<Record<Outcome, number>> {
  const counts: Record<Outcome, number> = { ok: 0, error: 0, aborted: 0, timeout: 0 }
  let next = 0
  const worker = async () => {
    while (next < PER_ROUND) {
      next += 1
      counts[await oneCall(client)] += 1
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  return counts
}

/** Wait until no call is in flight at the router (reservations released, counters settled). */
async function settled(made: number): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const s = router.stats()
    if (router.budgetStatus.reservedUsd === 0 && s.completed + s.failed + s.blocked === made) return
    if (Date.now() > deadline) return
    await new Promise((r) => setTimeout(r, 50))
  }
}

function rssMb(): number {
  ;(globalThis as { gc?: () => void }).gc?.()
  return process.memoryUsage().rss / 1024 / 1024
}

it(`survives ${ROUNDS * PER_ROUND} calls with random faults, aborts and timeouts (seed ${SEED})`, async () => {
  const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
  const started = Date.now()
  const rss: number[] = []
  const outcomes: Record<Outcome, number>[] = []
  for (let r = 0; r < ROUNDS; r++) {
    outcomes.push(await round(client))
    await settled((r + 1) * PER_ROUND)
    up.requests.splice(0)
    rss.push(rssMb())
  }
  const made = ROUNDS * PER_ROUND
  const elapsed = Date.now() - started
  const total = outcomes.reduce((a, o) => ({ ok: a.ok + o.ok, error: a.error + o.error, aborted: a.aborted + o.aborted, timeout: a.timeout + o.timeout }))

  // Every kind of ending happened.
  expect(total.ok + total.error + total.aborted + total.timeout).toBe(made)
  expect(total.ok, JSON.stringify(total)).toBeGreaterThan(made * 0.3)
  expect(total.error).toBeGreaterThan(0)
  expect(total.aborted).toBeGreaterThan(0)
  expect(total.timeout).toBeGreaterThan(0)

  // Memory settled: the second round did not grow the process by more than a bounded amount.
  expect(rss[1]! - rss[0]!, `rss ${rss.map((m) => m.toFixed(1)).join(' -> ')} MB`).toBeLessThan(64)

  // No connection is stuck: health answers at once and stop() finishes quickly.
  const t = Date.now()
  const res = await fetch(`${router.anthropicBaseUrl}/`)
  expect(await res.text()).toBe('LlmRouter OK')
  expect(Date.now() - t).toBeLessThan(500)

  // No reservation is left and the ledger matches the calls: every call counted once, and ended exactly one way.
  expect(router.budgetStatus.reservedUsd).toBe(0)
  const s = router.stats()
  expect(s.requests).toBe(made)
  expect(s.completed + s.failed + s.blocked, JSON.stringify({ ...s, byModel: undefined, outcomes: total })).toBe(made)
  expect(s.completed).toBeGreaterThanOrEqual(total.ok)
  expect(s.byModel['gpt-4o-mini']?.requests).toBe(s.completed + s.failed)
  expect(router.budgetStatus.spentUsd).toBeCloseTo(s.costUsd, 6)

  // stop() is quick with nothing stuck.
  const stopT = Date.now()
  await router.stop()
  expect(Date.now() - stopT).toBeLessThan(2500)
  expect(elapsed).toBeLessThan(90_000)
  console.log(`soak: ${made} calls in ${elapsed} ms, seed ${SEED}, outcomes ${JSON.stringify(total)}, rss ${rss.map((m) => m.toFixed(1)).join(' -> ')} MB, stats completed ${s.completed} failed ${s.failed} blocked ${s.blocked} retries ${s.retries}`)
}, 120_000)
