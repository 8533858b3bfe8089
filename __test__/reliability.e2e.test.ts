// Reliability end to end: a fake provider that fails on purpose (500, 529, 429 + retry-after, hangs, resets,
// in-stream error events) behind the router, called through the real openai and @anthropic-ai/sdk clients with
// their own retries off, so every retry counted here is the router's. Each test is bounded in time.
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { LlmRouter, type LlmRouterOptions } from '../src-ts/index.js'
import type { CircuitEvent } from '../src-ts/events.js'
import { type FakeKeyServer } from './helpers/fake-key-server.js'
import { useFakeUpstreams } from './helpers/upstreams.js'

const IC = 'ic_reliability_test_token_5e21'
const OPENAI_KEY = 'sk-proj-reliability-openai'
const ANTHROPIC_KEY = 'sk-ant-reliability-anthropic'
const TEXT = 'one two three four five six seven eight'

const fakes = useFakeUpstreams({ icToken: IC, openaiKey: OPENAI_KEY, anthropicKey: ANTHROPIC_KEY })

type Reliability = NonNullable<LlmRouterOptions['reliability']>

/**
 * Fast settings: tiny backoff so retries cost milliseconds, and a breaker that will not open unless a test
 * asks for it (so retry tests see the provider's own error, not a fail-fast 503).
 */
const FAST: Required<Reliability> = {
  breaker: { consecutiveFailures: 1000, minimumCalls: 1000, windowSize: 1000, openMs: 200 },
  retry: { maxRetries: 2, baseMs: 5, maxBackoffMs: 20, maxTotalMs: 3000 },
  timeouts: { connectMs: 1000, firstByteMs: 300, idleMs: 300, totalMs: 8000 },
}

function rel(over: Reliability = {}): Reliability {
  return {
    breaker: { ...FAST.breaker, ...over.breaker },
    retry: { ...FAST.retry, ...over.retry },
    timeouts: { ...FAST.timeouts, ...over.timeouts },
  }
}

async function withRouter<T>(
  keys: FakeKeyServer,
  reliability: Reliability,
  fn: (router: LlmRouter) => Promise<T>,
  extra: Partial<LlmRouterOptions> = {},
): Promise<T> {
  const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url, reliability, ...extra })
  try {
    return await fn(router)
  } finally {
    await router.stop()
  }
}

const openai = (r: LlmRouter) => new OpenAI({ ...r.openaiClientOptions(), maxRetries: 0, timeout: 10_000 })
const anthropic = (r: LlmRouter) => new Anthropic({ ...r.anthropicClientOptions(), maxRetries: 0, timeout: 10_000 })

const CHAT = { model: 'gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user' as const, content: 'Say hello.' }] }
const MSG = { model: 'claude-sonnet-4-5', max_tokens: 50, messages: [{ role: 'user' as const, content: 'Say hello.' }] }

/** The settled error of a promise (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    (v) => {
      throw new Error(`expected a failure, got ${JSON.stringify(v)?.slice(0, 200)}`)
    },
    (e: unknown) => e,
  )
}

/** Reads an OpenAI chat stream to the end; returns the text seen and the error that ended it, if any. */
async function drainChat(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) {
  let text = ''
  let lastChunkAt = 0
  try {
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? ''
      lastChunkAt = performance.now()
    }
    return { text, error: undefined as unknown, lastChunkAt }
  } catch (error) {
    return { text, error, lastChunkAt }
  }
}

function circuitEvents(router: LlmRouter): CircuitEvent[] {
  const list: CircuitEvent[] = []
  router.on('circuit', (e) => list.push(e))
  return list
}

/** Retries the router made (`stats().retries`; the RouterStats type does not declare it yet). */
const retries = (r: LlmRouter): number => (r.stats() as unknown as { retries: number }).retries

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('retries inside the router', () => {
  it('OpenAI 500: InternalServerError after exactly maxRetries retries (3 provider hits), counted in stats', async () => {
    await withRouter(fakes.openaiKeys, rel(), async (router) => {
      fakes.openaiUp.behaviour.fault = { status: 500 }
      const err = await failure(openai(router).chat.completions.create(CHAT))
      expect(err).toBeInstanceOf(OpenAI.InternalServerError)
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(500)
      expect(fakes.openaiUp.hits).toBe(3)
      expect(retries(router)).toBe(2)
    })
  })

  it('maxRetries is configurable and 0 turns retrying off', async () => {
    await withRouter(fakes.openaiKeys, rel({ retry: { maxRetries: 1 } }), async (router) => {
      fakes.openaiUp.behaviour.fault = { status: 502 }
      expect(await failure(openai(router).chat.completions.create(CHAT))).toBeInstanceOf(OpenAI.APIError)
      expect(fakes.openaiUp.hits).toBe(2)
      expect(retries(router)).toBe(1)
    })
    fakes.openaiUp.reset()
    await withRouter(fakes.openaiKeys, rel({ retry: { maxRetries: 0 } }), async (router) => {
      fakes.openaiUp.behaviour.fault = { status: 503 }
      expect(await failure(openai(router).chat.completions.create(CHAT))).toBeInstanceOf(OpenAI.APIError)
      expect(fakes.openaiUp.hits).toBe(1)
      expect(retries(router)).toBe(0)
    })
  })

  it('a provider that recovers within the retries is invisible to the client (stream and JSON)', async () => {
    await withRouter(fakes.openaiKeys, rel(), async (router) => {
      fakes.openaiUp.behaviour.text = TEXT
      fakes.openaiUp.behaviour.fault = { status: 503 }
      fakes.openaiUp.behaviour.failTimes = 2
      const done = await openai(router).chat.completions.create(CHAT)
      expect(done.choices[0]?.message.content).toBe(TEXT)
      expect(fakes.openaiUp.hits).toBe(3)

      fakes.openaiUp.behaviour.fault = { status: 500 }
      fakes.openaiUp.behaviour.failTimes = 1
      const r = await drainChat(await openai(router).chat.completions.create({ ...CHAT, stream: true }))
      expect(r.error).toBeUndefined()
      expect(r.text).toBe(TEXT)
      expect(fakes.openaiUp.hits).toBe(5)
      expect(retries(router)).toBe(3)
    })
  })

  it('Anthropic 529: OverloadedError (status 529) after the retries', async () => {
    await withRouter(fakes.anthropicKeys, rel(), async (router) => {
      fakes.anthropicUp.behaviour.fault = { status: 529 }
      const err = await failure(anthropic(router).messages.create(MSG))
      expect(err).toBeInstanceOf(Anthropic.OverloadedError)
      expect((err as InstanceType<typeof Anthropic.APIError>).status).toBe(529)
      expect(fakes.anthropicUp.hits).toBe(3)
      expect(retries(router)).toBe(2)
    })
  })

  it('429 with retry-after: RateLimitError, passed straight on, not retried, not counted by the breaker', async () => {
    // A breaker that opens on the first counted failure: a 429 counted as one would open it.
    await withRouter(fakes.openaiKeys, rel({ breaker: { consecutiveFailures: 1, minimumCalls: 1 } }), async (router) => {
      const events = circuitEvents(router)
      fakes.openaiUp.behaviour.fault = { status: 429, retryAfter: 1 }
      fakes.openaiUp.behaviour.failTimes = 1
      const t0 = performance.now()
      const err = await failure(openai(router).chat.completions.create(CHAT))
      expect(err).toBeInstanceOf(OpenAI.RateLimitError)
      expect((err as InstanceType<typeof OpenAI.APIError>).headers?.get('retry-after')).toBe('1')
      // Not held back for the retry-after second either: waiting is the client's call to make.
      expect(performance.now() - t0).toBeLessThan(900)
      expect(fakes.openaiUp.hits).toBe(1)
      expect(retries(router)).toBe(0)
      // Once the provider's wait is over, the next call reaches it: the breaker stayed closed.
      await sleep(1050)
      expect(events).toEqual([])
      await openai(router).chat.completions.create(CHAT)
      expect(fakes.openaiUp.hits).toBe(2)
      expect(events).toEqual([])
    })
  })

  it('Anthropic 429 is a RateLimitError with one provider hit', async () => {
    await withRouter(fakes.anthropicKeys, rel(), async (router) => {
      fakes.anthropicUp.behaviour.fault = { status: 429, retryAfter: 2 }
      const err = await failure(anthropic(router).messages.create(MSG))
      expect(err).toBeInstanceOf(Anthropic.RateLimitError)
      expect((err as InstanceType<typeof Anthropic.APIError>).headers?.get('retry-after')).toBe('2')
      expect(fakes.anthropicUp.hits).toBe(1)
      expect(retries(router)).toBe(0)
    })
  })

  it('client errors (4xx) are never retried', async () => {
    await withRouter(fakes.openaiKeys, rel(), async (router) => {
      fakes.openaiUp.behaviour.fault = { status: 400 }
      expect(await failure(openai(router).chat.completions.create(CHAT))).toBeInstanceOf(OpenAI.BadRequestError)
      expect(fakes.openaiUp.hits).toBe(1)
      expect(retries(router)).toBe(0)
    })
  })

  it('honours retry-after-ms from the provider instead of its own backoff', async () => {
    await withRouter(fakes.openaiKeys, rel(), async (router) => {
      fakes.openaiUp.behaviour.fault = { status: 503, headers: { 'retry-after-ms': '400' } }
      fakes.openaiUp.behaviour.failTimes = 1
      const t0 = performance.now()
      await openai(router).chat.completions.create(CHAT)
      const elapsed = performance.now() - t0
      expect(fakes.openaiUp.hits).toBe(2)
      // Own backoff would be ≤ 5 ms; the provider asked for 400.
      expect(elapsed).toBeGreaterThanOrEqual(390)
      expect(elapsed).toBeLessThan(2000)
      const gap = fakes.openaiUp.requests[1]!.at - fakes.openaiUp.requests[0]!.at
      expect(gap).toBeGreaterThanOrEqual(390)
    })
  })

  it('gives up at once when retry-after would overrun maxTotalMs', async () => {
    await withRouter(fakes.openaiKeys, rel({ retry: { maxTotalMs: 1000 } }), async (router) => {
      fakes.openaiUp.behaviour.fault = { status: 503, retryAfter: 5 }
      const t0 = performance.now()
      const err = await failure(openai(router).chat.completions.create(CHAT))
      expect(err).toBeInstanceOf(OpenAI.APIError)
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503)
      expect(performance.now() - t0).toBeLessThan(800)
      expect(fakes.openaiUp.hits).toBe(1)
    })
  })
})

describe('timeouts and broken streams', () => {
  it('hang before headers: 504 APIError within firstByteMs', async () => {
    await withRouter(fakes.openaiKeys, rel({ retry: { maxRetries: 0 }, timeouts: { firstByteMs: 300 } }), async (router) => {
      fakes.openaiUp.behaviour.fault = 'hang-before-headers'
      const t0 = performance.now()
      const err = await failure(openai(router).chat.completions.create(CHAT))
      const elapsed = performance.now() - t0
      expect(err).toBeInstanceOf(OpenAI.APIError)
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(504)
      expect((err as Error).message).toMatch(/timed out/)
      expect(elapsed).toBeGreaterThanOrEqual(290)
      expect(elapsed).toBeLessThan(300 + 700)
      expect(fakes.openaiUp.hits).toBe(1)
    })
  })

  it('hang before headers on Anthropic: 504 timeout_error; not retried (the provider has the request and may bill it)', async () => {
    await withRouter(fakes.anthropicKeys, rel({ retry: { maxRetries: 1 }, timeouts: { firstByteMs: 250 } }), async (router) => {
      fakes.anthropicUp.behaviour.fault = 'hang-before-headers'
      const t0 = performance.now()
      const err = await failure(anthropic(router).messages.create(MSG))
      const elapsed = performance.now() - t0
      expect(err).toBeInstanceOf(Anthropic.APIError)
      expect((err as InstanceType<typeof Anthropic.APIError>).status).toBe(504)
      expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ error: { type: 'timeout_error' } })
      expect(fakes.anthropicUp.hits).toBe(1)
      expect(elapsed).toBeGreaterThanOrEqual(250 - 10)
      expect(elapsed).toBeLessThan(250 + 800)
    })
  })

  it('hang mid-stream: the SDK stream ends with an error idleMs after the last chunk; no retry', async () => {
    await withRouter(fakes.openaiKeys, rel({ timeouts: { idleMs: 300 } }), async (router) => {
      fakes.openaiUp.behaviour.text = TEXT
      fakes.openaiUp.behaviour.fault = 'hang-mid-stream'
      fakes.openaiUp.behaviour.faultAfterChunks = 3
      const r = await drainChat(await openai(router).chat.completions.create({ ...CHAT, stream: true }))
      const sinceLast = performance.now() - r.lastChunkAt
      // What had arrived reached the client (the response PII filter may still hold the last word back).
      expect(r.text.length).toBeGreaterThan(0)
      expect('one two three'.startsWith(r.text)).toBe(true)
      expect(r.error).toBeInstanceOf(OpenAI.APIError)
      expect((r.error as Error).message).toMatch(/timed out|timeout/)
      expect(sinceLast).toBeGreaterThanOrEqual(250)
      expect(sinceLast).toBeLessThan(300 + 700)
      expect(fakes.openaiUp.hits).toBe(1)
      expect(retries(router)).toBe(0)
    })
  })

  it('hang mid-stream on Anthropic: the stream rejects after idleMs', async () => {
    await withRouter(fakes.anthropicKeys, rel({ timeouts: { idleMs: 300 } }), async (router) => {
      fakes.anthropicUp.behaviour.text = TEXT
      fakes.anthropicUp.behaviour.fault = 'hang-mid-stream'
      fakes.anthropicUp.behaviour.faultAfterChunks = 2
      const stream = anthropic(router).messages.stream(MSG)
      let text = ''
      stream.on('text', (t) => (text += t))
      const t0 = performance.now()
      const err = await failure(stream.finalMessage())
      expect(err).toBeInstanceOf(Anthropic.APIError)
      expect(text.length).toBeGreaterThan(0)
      expect('one two'.startsWith(text)).toBe(true)
      expect(performance.now() - t0).toBeLessThan(300 + 1000)
      expect(fakes.anthropicUp.hits).toBe(1)
    })
  })

  it('a JSON answer that hangs half-way is a 504 after idleMs', async () => {
    await withRouter(fakes.openaiKeys, rel({ retry: { maxRetries: 2 }, timeouts: { idleMs: 300 } }), async (router) => {
      fakes.openaiUp.behaviour.fault = 'hang-mid-stream'
      const t0 = performance.now()
      const err = await failure(openai(router).chat.completions.create(CHAT))
      expect(err).toBeInstanceOf(OpenAI.APIError)
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(504)
      expect(performance.now() - t0).toBeLessThan(300 + 700)
      // The head (200) had arrived: the call is not retried.
      expect(fakes.openaiUp.hits).toBe(1)
    })
  })

  it('reset mid-stream: an SDK error, exactly one provider hit (never retried after the first byte)', async () => {
    await withRouter(fakes.openaiKeys, rel(), async (router) => {
      fakes.openaiUp.behaviour.text = TEXT
      fakes.openaiUp.behaviour.fault = 'reset-mid-stream'
      fakes.openaiUp.behaviour.faultAfterChunks = 2
      const r = await drainChat(await openai(router).chat.completions.create({ ...CHAT, stream: true }))
      expect('one two'.startsWith(r.text)).toBe(true)
      expect(r.error).toBeInstanceOf(OpenAI.APIError)
      expect(fakes.openaiUp.hits).toBe(1)
      expect(retries(router)).toBe(0)
    })
  })

  it('reset mid-stream on Anthropic: an SDK error, one hit', async () => {
    await withRouter(fakes.anthropicKeys, rel(), async (router) => {
      fakes.anthropicUp.behaviour.fault = 'reset-mid-stream'
      fakes.anthropicUp.behaviour.faultAfterChunks = 1
      const err = await failure(anthropic(router).messages.stream(MSG).finalMessage())
      expect(err).toBeInstanceOf(Anthropic.APIError)
      expect(fakes.anthropicUp.hits).toBe(1)
    })
  })

  it('an in-stream error event reaches the SDK as an error; one hit', async () => {
    await withRouter(fakes.openaiKeys, rel(), async (router) => {
      fakes.openaiUp.behaviour.text = TEXT
      fakes.openaiUp.behaviour.fault = 'error-event-mid-stream'
      fakes.openaiUp.behaviour.faultAfterChunks = 1
      const r = await drainChat(await openai(router).chat.completions.create({ ...CHAT, stream: true }))
      expect('one'.startsWith(r.text)).toBe(true)
      expect(r.error).toBeInstanceOf(OpenAI.APIError)
      expect(fakes.openaiUp.hits).toBe(1)
    })
    await withRouter(fakes.anthropicKeys, rel(), async (router) => {
      fakes.anthropicUp.behaviour.fault = 'error-event-mid-stream'
      const err = await failure(anthropic(router).messages.stream(MSG).finalMessage())
      expect(err).toBeInstanceOf(Anthropic.APIError)
      expect((err as Error).message).toMatch(/overloaded/i)
      expect(fakes.anthropicUp.hits).toBe(1)
    })
  })
})

describe('circuit breaker', () => {
  const BREAKER = { consecutiveFailures: 3, minimumCalls: 100, windowSize: 100, openMs: 300, maxOpenMs: 5000, halfOpenProbes: 2 }

  it('opens after the configured failures, fails fast without reaching the provider, half-opens, closes on recovery', async () => {
    // openMs long enough that the fail-fast calls below all land inside the open period, even on a busy machine.
    await withRouter(fakes.openaiKeys, rel({ breaker: { ...BREAKER, openMs: 1000 }, retry: { maxRetries: 0 } }), async (router) => {
      const events = circuitEvents(router)
      fakes.openaiUp.behaviour.fault = { status: 500 }
      fakes.openaiUp.behaviour.failTimes = 3
      const client = openai(router)
      for (let i = 0; i < 2; i++) expect(await failure(client.chat.completions.create(CHAT))).toBeInstanceOf(OpenAI.InternalServerError)
      expect(events).toEqual([])
      expect(await failure(client.chat.completions.create(CHAT))).toBeInstanceOf(OpenAI.InternalServerError)
      await expect.poll(() => events.length).toBe(1)
      const host = new URL(fakes.openaiUp.url).host
      expect(events[0]).toMatchObject({ type: 'circuit', provider: 'openai', state: 'open', reason: '3 consecutive failures' })
      expect(host).toContain(events[0]!.host)
      const openedAt = performance.now()
      expect(fakes.openaiUp.hits).toBe(3)

      // Open: fail fast, OpenAI shape 503, retry-after ≤ 60, provider untouched. Were a call to reach the
      // provider it would now take a whole second.
      fakes.openaiUp.behaviour.delayBeforeHeadersMs = 1000
      const took: number[] = []
      for (let i = 0; i < 7; i++) {
        const t0 = performance.now()
        const err = (await failure(client.chat.completions.create(CHAT))) as InstanceType<typeof OpenAI.APIError>
        took.push(performance.now() - t0)
        expect(err).toBeInstanceOf(OpenAI.APIError)
        expect(err.status).toBe(503)
        const retryAfter = Number(err.headers?.get('retry-after'))
        expect(retryAfter).toBeGreaterThanOrEqual(1)
        expect(retryAfter).toBeLessThanOrEqual(60)
        expect(err.code).toBe('circuit_open')
        expect(err.message).toMatch(/circuit breaker is open for openai at /)
        expect(err.message).toContain(events[0]!.host)
        expect(err.message).toMatch(/next probe is allowed in \d+ s/)
      }
      // The median, as the suite shares two cores with builds: one SDK round trip on loopback.
      expect(median(took)).toBeLessThan(50)
      expect(fakes.openaiUp.hits).toBe(3)
      expect(retries(router)).toBe(0)
      fakes.openaiUp.behaviour.delayBeforeHeadersMs = 0

      // After openMs the next call is a probe; the provider has recovered (failTimes used up).
      expect(performance.now() - openedAt).toBeLessThan(1000)
      await sleep(Math.max(0, 1000 - (performance.now() - openedAt)) + 30)
      await client.chat.completions.create(CHAT)
      // Events reach JS asynchronously, in batches.
      await expect.poll(() => events.map((e) => e.state)).toEqual(['open', 'half_open'])
      await client.chat.completions.create(CHAT)
      await expect.poll(() => events.map((e) => e.state)).toEqual(['open', 'half_open', 'closed'])
      expect(events[1]!.reason).toBe('open period of 1000 ms elapsed')
      expect(events[2]!.reason).toBe('2 probes succeeded')
      expect(fakes.openaiUp.hits).toBe(5)
      // Closed again: traffic flows.
      await client.chat.completions.create(CHAT)
      expect(fakes.openaiUp.hits).toBe(6)
    })
  })

  it('a failed probe reopens for twice as long (growing open time)', async () => {
    await withRouter(fakes.openaiKeys, rel({ breaker: { ...BREAKER, halfOpenProbes: 1 }, retry: { maxRetries: 0 } }), async (router) => {
      const events = circuitEvents(router)
      fakes.openaiUp.behaviour.fault = { status: 500 }
      const client = openai(router)
      for (let i = 0; i < 3; i++) await failure(client.chat.completions.create(CHAT))
      await expect.poll(() => events.length).toBe(1)
      await sleep(330)
      expect(await failure(client.chat.completions.create(CHAT))).toBeInstanceOf(OpenAI.InternalServerError)
      await expect.poll(() => events.map((e) => e.state)).toEqual(['open', 'half_open', 'open'])
      expect(events[2]!.reason).toBe('probe failed; open for 600 ms')
      expect(fakes.openaiUp.hits).toBe(4)
      // 330 ms later it would have half-opened at the first open time; now it is still open.
      await sleep(330)
      const err = (await failure(client.chat.completions.create(CHAT))) as InstanceType<typeof OpenAI.APIError>
      expect(err.status).toBe(503)
      expect(fakes.openaiUp.hits).toBe(4)
      fakes.openaiUp.behaviour.fault = undefined
      await sleep(300)
      await client.chat.completions.create(CHAT)
      await expect.poll(() => events.map((e) => e.state)).toEqual(['open', 'half_open', 'open', 'half_open', 'closed'])
      expect(fakes.openaiUp.hits).toBe(5)
    })
  })

  it('Anthropic shape: 529 overloaded_error with retry-after while open; a call, not each of its retries, counts once', async () => {
    await withRouter(fakes.anthropicKeys, rel({ breaker: { ...BREAKER, consecutiveFailures: 2, openMs: 5000, maxOpenMs: 5000 }, retry: { maxRetries: 2 } }), async (router) => {
      const events = circuitEvents(router)
      fakes.anthropicUp.behaviour.fault = { status: 500 }
      const client = anthropic(router)
      // Each call makes three attempts and gets the provider's 500; the second call's failure opens the breaker.
      for (const hits of [3, 6]) {
        const e = (await failure(client.messages.create(MSG))) as InstanceType<typeof Anthropic.APIError>
        expect(e).toBeInstanceOf(Anthropic.APIError)
        expect(e.status).toBe(500)
        expect(fakes.anthropicUp.hits).toBe(hits)
      }
      await expect.poll(() => events.length).toBe(1)
      fakes.anthropicUp.behaviour.delayBeforeHeadersMs = 1000
      const took: number[] = []
      for (let i = 0; i < 4; i++) {
        const t0 = performance.now()
        await failure(client.messages.create(MSG))
        took.push(performance.now() - t0)
      }
      expect(median(took)).toBeLessThan(50)
      const err = (await failure(client.messages.create(MSG))) as InstanceType<typeof Anthropic.APIError>
      expect(err).toBeInstanceOf(Anthropic.OverloadedError)
      expect(err.error).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } })
      expect(err.message).toMatch(/circuit breaker is open for anthropic/)
      const retryAfter = Number(err.headers?.get('retry-after'))
      expect(retryAfter).toBeGreaterThanOrEqual(1)
      expect(retryAfter).toBeLessThanOrEqual(60)
      expect(fakes.anthropicUp.hits).toBe(6)
    })
  })

  it('mid-stream failures (error events, idle timeouts) count towards opening it', async () => {
    await withRouter(fakes.openaiKeys, rel({ breaker: { ...BREAKER, consecutiveFailures: 2 }, timeouts: { idleMs: 200 } }), async (router) => {
      const events = circuitEvents(router)
      const client = openai(router)
      fakes.openaiUp.behaviour.fault = 'error-event-mid-stream'
      fakes.openaiUp.behaviour.failTimes = 1
      expect((await drainChat(await client.chat.completions.create({ ...CHAT, stream: true }))).error).toBeInstanceOf(OpenAI.APIError)
      fakes.openaiUp.behaviour.fault = 'hang-mid-stream'
      fakes.openaiUp.behaviour.failTimes = 1
      expect((await drainChat(await client.chat.completions.create({ ...CHAT, stream: true }))).error).toBeInstanceOf(OpenAI.APIError)
      await expect.poll(() => events.map((e) => e.state)).toEqual(['open'])
      expect(fakes.openaiUp.hits).toBe(2)
      expect(((await failure(client.chat.completions.create(CHAT))) as InstanceType<typeof OpenAI.APIError>).status).toBe(503)
      expect(fakes.openaiUp.hits).toBe(2)
    })
  })

  it('breaker.enabled false never fails fast', async () => {
    await withRouter(fakes.openaiKeys, rel({ breaker: { ...BREAKER, enabled: false }, retry: { maxRetries: 0 } }), async (router) => {
      const events = circuitEvents(router)
      fakes.openaiUp.behaviour.fault = { status: 500 }
      for (let i = 0; i < 6; i++) expect(await failure(openai(router).chat.completions.create(CHAT))).toBeInstanceOf(OpenAI.InternalServerError)
      expect(fakes.openaiUp.hits).toBe(6)
      expect(events).toEqual([])
    })
  })
})

describe('budget reservations of failed requests are released', () => {
  const budget = { budgetUsd: 1 }

  it('a retried 500 costs nothing and leaves nothing reserved', async () => {
    await withRouter(fakes.openaiKeys, rel(), async (router) => {
      fakes.openaiUp.behaviour.fault = { status: 500 }
      for (const stream of [false, true]) {
        expect(await failure(openai(router).chat.completions.create({ ...CHAT, stream }))).toBeInstanceOf(OpenAI.InternalServerError)
      }
      expect(fakes.openaiUp.hits).toBe(6)
      await expect.poll(() => router.budgetStatus.reservedUsd).toBe(0)
      expect(router.budgetStatus).toEqual({ spentUsd: 0, reservedUsd: 0, limitUsd: 1 })
    }, budget)
  })

  it('timeouts, resets and an open breaker leave nothing reserved', async () => {
    await withRouter(fakes.anthropicKeys, rel({ breaker: { consecutiveFailures: 2, openMs: 5000, maxOpenMs: 5000 }, retry: { maxRetries: 0 }, timeouts: { firstByteMs: 200 } }), async (router) => {
      const client = anthropic(router)
      fakes.anthropicUp.behaviour.fault = 'hang-before-headers'
      expect(((await failure(client.messages.create(MSG))) as InstanceType<typeof Anthropic.APIError>).status).toBe(504)
      expect(router.budgetStatus.reservedUsd).toBe(0)
      // The provider has that call and may be billing it: a whole answer is charged its hold,
      // and stats agree with the budget.
      const charged = router.budgetStatus.spentUsd
      expect(charged).toBeGreaterThan(0)
      expect(router.stats().costUsd).toBeCloseTo(charged, 6)
      fakes.anthropicUp.behaviour.fault = { status: 529 }
      expect(((await failure(client.messages.create(MSG))) as InstanceType<typeof Anthropic.APIError>).status).toBe(529)
      expect(fakes.anthropicUp.hits).toBe(2)
      // Open now: refused before the provider, and nothing is held for it.
      const err = (await failure(client.messages.create(MSG))) as InstanceType<typeof Anthropic.APIError>
      expect(err.status).toBe(529)
      expect(err.message).toMatch(/circuit breaker/)
      expect(fakes.anthropicUp.hits).toBe(2)
      await expect.poll(() => router.budgetStatus.reservedUsd).toBe(0)
      expect(router.budgetStatus.spentUsd).toBe(charged)
    }, budget)
  })
})
