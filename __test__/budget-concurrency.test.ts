// The budget under load and under failure: 200 concurrent calls against a budget for about 20 never overshoot
// it at any sampled moment, and every way a call can end (complete, refused, client abort, upstream error)
// leaves nothing reserved.
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { LlmRouter } from '../src-ts/index.js'
import type { ResponseEvent } from '../src-ts/events.js'
import { startFakeKeyServer } from './helpers/fake-key-server.js'
import { useFakeUpstreams } from './helpers/upstreams.js'
import { startFakeProvider, type RecordedRequest } from './helpers/fake-provider.js'

const IC = 'ic_budget_test_token_77d0'
const OPENAI_KEY = 'sk-proj-budget-test-openai'
const ANTHROPIC_KEY = 'sk-ant-budget-test-anthropic'

// Published list prices in pico-USD per token (= USD per 1M tokens × 1e6).
// gpt-4o: $2.50 in, $10 out; it lists no cache-write price, so the worst input rate is the input rate.
const GPT_4O = { worstInput: 2_500_000, output: 10_000_000 }
// claude-sonnet-4-5: $3 in, $15 out, 1-hour cache write $6: the worst rate input can be billed at.
const SONNET = { worstInput: 6_000_000, output: 15_000_000 }

/**
 * The router's bound on input tokens (iron_cost::input_token_bound) for a body of text messages: one token per
 * UTF-8 byte of the JSON text of `messages` and `system` (each string + 3 for its quotes and comma, each key
 * + 3, each array or object + 2, a number 25, true/false/null 6); + 8 per message, + 16.
 */
function inputBoundTokens(json: { messages?: unknown[]; system?: unknown }): number {
  let bytes = 0
  const walk = (v: unknown): void => {
    if (typeof v === 'string') bytes += Buffer.byteLength(v) + 3
    else if (typeof v === 'number') bytes += 25
    else if (Array.isArray(v)) {
      bytes += 2
      v.forEach(walk)
    } else if (v && typeof v === 'object') {
      bytes += 2
      for (const [k, x] of Object.entries(v)) {
        bytes += Buffer.byteLength(k) + 3
        walk(x)
      }
    } else if (v !== undefined) bytes += 6
  }
  const messages = json.messages ?? []
  walk(messages)
  walk(json.system)
  return bytes + 8 * messages.length + 16
}

/** Worst case held for a call, in micro-USD, rounded up like the router. */
const holdMicros = (rates: { worstInput: number; output: number }, inputTokens: number, maxTokens: number): number =>
  Math.ceil((inputTokens * rates.worstInput + maxTokens * rates.output) / 1e6)

const micros = (usd: number): number => Math.round(usd * 1e6)

const fakes = useFakeUpstreams({ icToken: IC, openaiKey: OPENAI_KEY, anthropicKey: ANTHROPIC_KEY })

/** Collects response events. */
function collect(router: LlmRouter): ResponseEvent[] {
  const list: ResponseEvent[] = []
  router.on('response', (e) => list.push(e))
  return list
}

/** Samples budgetStatus every 2 ms; records every moment spent or spent + reserved was above the limit. */
function sampler(router: LlmRouter, limit: number) {
  const violations: string[] = []
  let samples = 0
  let maxReserved = 0
  const timer = setInterval(() => {
    const s = router.budgetStatus
    samples++
    const spent = micros(s.spentUsd)
    const reserved = micros(s.reservedUsd)
    maxReserved = Math.max(maxReserved, reserved)
    if (spent > limit || spent + reserved > limit) violations.push(`spent ${spent} + reserved ${reserved} > ${limit}`)
  }, 2)
  return {
    stop() {
      clearInterval(timer)
      return { violations, samples, maxReserved }
    },
  }
}

const PROMPT = 'Count to three, please.'
const MAX_TOKENS = 100
const N = 200

/** Runs N calls at once; returns how many succeeded and the errors of the rest. */
async function storm(router: LlmRouter, limit: number, call: () => Promise<unknown>) {
  const s = sampler(router, limit)
  const results = await Promise.allSettled(Array.from({ length: N }, () => call()))
  const stats = s.stop()
  const admitted = results.filter((r) => r.status === 'fulfilled').length
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))
  return { admitted, errors, ...stats }
}

describe('200 concurrent calls against a budget for about 20', () => {
  // The fake answers with exactly the worst case the router holds (input = the router's bound, output =
  // max_tokens), so settling releases nothing and the admitted count is exactly floor(limit / cost).
  const openaiUsage = (req: RecordedRequest) => ({ inputTokens: inputBoundTokens(req.json), outputTokens: req.json.max_tokens })

  const cases = [
    { name: 'OpenAI chat, JSON', stream: false },
    { name: 'OpenAI chat, streamed (usage injected by the router)', stream: true },
  ]
  for (const c of cases) {
    it(c.name, async () => {
      const body = { model: 'gpt-4o', max_tokens: MAX_TOKENS, messages: [{ role: 'user' as const, content: PROMPT }] }
      // [{"role":"user","content":PROMPT}] is 54 bytes of JSON text, + 8 + 16 = 78 tokens;
      // 78 × 2.50 + 100 × 10 = 195 + 1000 = 1195 µ$
      const each = holdMicros(GPT_4O, inputBoundTokens(body), MAX_TOKENS)
      expect(each).toBe(1195)
      const limit = Math.floor(20.5 * each)
      const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url, budgetUsd: limit / 1e6 })
      try {
        const events = collect(router)
        fakes.openaiUp.behaviour.usage = openaiUsage
        fakes.openaiUp.behaviour.delayBeforeHeadersMs = c.stream ? 0 : 30
        fakes.openaiUp.behaviour.chunkDelayMs = c.stream ? 5 : 0
        const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
        const call = async () => {
          if (!c.stream) return client.chat.completions.create(body)
          const s = await client.chat.completions.create({ ...body, stream: true })
          let text = ''
          for await (const chunk of s) {
            expect(chunk.usage ?? null).toBeNull()
            text += chunk.choices[0]?.delta.content ?? ''
          }
          expect(text).toBe('Hello from the fake provider.')
        }
        const r = await storm(router, limit, call)

        expect(r.violations).toEqual([])
        expect(r.samples).toBeGreaterThan(3)
        expect(r.maxReserved).toBeGreaterThan(0)
        expect(r.admitted).toBeGreaterThanOrEqual(18)
        expect(r.admitted).toBeLessThanOrEqual(20)
        expect(fakes.openaiUp.hits).toBe(r.admitted)
        expect(r.errors).toHaveLength(N - r.admitted)
        for (const e of r.errors) {
          expect(e).toBeInstanceOf(OpenAI.APIError)
          const err = e as InstanceType<typeof OpenAI.APIError>
          expect(err.status).toBe(402)
          expect(err.code).toBe('budget_exceeded')
          expect(err.headers?.get('x-should-retry')).toBe('false')
          expect(err.message).toMatch(/budget \$0\.\d+ would be exceeded: \$0\.\d+ spent, \$0\.\d+ reserved by requests in flight/)
          expect(err.message).toContain('raise the budget (budgetUsd; --budget for iron-cage run) or lower max_tokens')
        }
        await expect.poll(() => events.length).toBe(r.admitted)
        expect(events.every((e) => e.costMicros === each && !e.estimated)).toBe(true)
        const status = router.budgetStatus
        expect(status.reservedUsd).toBe(0)
        expect(micros(status.spentUsd)).toBe(r.admitted * each)
        expect(micros(status.spentUsd)).toBeLessThanOrEqual(limit)
        expect(router.stats().blockedByReason['budget']).toBe(N - r.admitted)
      } finally {
        await router.stop()
      }
    })
  }

  it('Anthropic messages, streamed', async () => {
    const body = { model: 'claude-sonnet-4-5', max_tokens: MAX_TOKENS, messages: [{ role: 'user' as const, content: PROMPT }] }
    // 78 tokens × $6 (1-hour write, the worst input rate) + 100 × $15 = 468 + 1500 = 1968 µ$
    const each = holdMicros(SONNET, inputBoundTokens(body), MAX_TOKENS)
    expect(each).toBe(1968)
    const limit = Math.floor(20.5 * each)
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.anthropicKeys.url, budgetUsd: limit / 1e6 })
    try {
      const events = collect(router)
      // All input written to the 1-hour cache: the one usage whose cost equals the worst case held.
      fakes.anthropicUp.behaviour.usage = (req) => ({ inputTokens: 0, cacheWrite1hTokens: inputBoundTokens(req.json), outputTokens: req.json.max_tokens })
      fakes.anthropicUp.behaviour.chunkDelayMs = 5
      const client = new Anthropic({ ...router.anthropicClientOptions(), maxRetries: 0 })
      const r = await storm(router, limit, async () => {
        const m = await client.messages.stream(body).finalMessage()
        expect(m.usage.output_tokens).toBe(MAX_TOKENS)
      })
      expect(r.violations).toEqual([])
      expect(r.maxReserved).toBeGreaterThan(0)
      expect(r.admitted).toBeGreaterThanOrEqual(18)
      expect(r.admitted).toBeLessThanOrEqual(20)
      expect(fakes.anthropicUp.hits).toBe(r.admitted)
      for (const e of r.errors) {
        expect(e).toBeInstanceOf(Anthropic.APIError)
        const err = e as InstanceType<typeof Anthropic.APIError>
        expect(err.status).toBe(402)
        expect(err.headers?.get('x-should-retry')).toBe('false')
        expect(err.message).toMatch(/would be exceeded/)
      }
      await expect.poll(() => events.length).toBe(r.admitted)
      expect(events.every((e) => e.costMicros === each)).toBe(true)
      expect(router.budgetStatus.reservedUsd).toBe(0)
      expect(micros(router.budgetStatus.spentUsd)).toBe(r.admitted * each)
      expect(micros(router.budgetStatus.spentUsd)).toBeLessThanOrEqual(limit)
    } finally {
      await router.stop()
    }
  })

  it('a mix of cheaper actual costs admits more, still never above the limit', async () => {
    // The fake reports 20 output tokens (its default) while 100 are held: each settle gives budget back.
    const body = { model: 'gpt-4o', max_tokens: MAX_TOKENS, messages: [{ role: 'user' as const, content: PROMPT }] }
    const each = holdMicros(GPT_4O, inputBoundTokens(body), MAX_TOKENS)
    const limit = Math.floor(20.5 * each)
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url, budgetUsd: limit / 1e6 })
    try {
      const events = collect(router)
      fakes.openaiUp.behaviour.chunkDelayMs = 3
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
      const r = await storm(router, limit, async () => {
        for await (const _ of await client.chat.completions.create({ ...body, stream: true })) void _
      })
      expect(r.violations).toEqual([])
      expect(r.admitted).toBeGreaterThanOrEqual(20)
      await expect.poll(() => events.length).toBe(r.admitted)
      const spent = events.reduce((a, e) => a + e.costMicros, 0)
      expect(router.budgetStatus.reservedUsd).toBe(0)
      expect(micros(router.budgetStatus.spentUsd)).toBe(spent)
      expect(spent).toBeLessThanOrEqual(limit)
    } finally {
      await router.stop()
    }
  })
})

describe('every ending releases its reservation', () => {
  // One attempt per call and no breaker: each failure below reaches settle exactly once.
  const ONE_SHOT = { reliability: { retry: { maxRetries: 0 }, breaker: { enabled: false } } } as const
  const LONG_TEXT = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ')

  it('a stream the client aborts is charged an estimate, marked estimated, and nothing stays reserved', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url, budgetUsd: 1 })
    try {
      const events = collect(router)
      fakes.openaiUp.behaviour.text = LONG_TEXT
      fakes.openaiUp.behaviour.chunkDelayMs = 100
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
      const body = { model: 'gpt-4o', max_tokens: 500, stream: true as const, messages: [{ role: 'user' as const, content: PROMPT }] }
      const hold = holdMicros(GPT_4O, inputBoundTokens(body), 500)
      const ac = new AbortController()
      const stream = await client.chat.completions.create(body, { signal: ac.signal })
      let chunks = 0
      // The SDK ends the iteration quietly (or with APIUserAbortError) once the signal fires.
      const err = await (async () => {
        for await (const _ of stream) {
          void _
          if (++chunks === 3) {
            expect(micros(router.budgetStatus.reservedUsd)).toBe(hold)
            ac.abort()
          }
        }
      })().catch((e: unknown) => e)
      if (err !== undefined) expect(err).toBeInstanceOf(OpenAI.APIUserAbortError)
      expect(chunks).toBe(3)

      await expect.poll(() => events.length, { timeout: 5000 }).toBe(1)
      const e = events[0]!
      expect(e.outcome).toBe('client_aborted')
      expect(e.estimated).toBe(true)
      expect(e.costMicros).toBeGreaterThan(0)
      expect(e.costMicros).toBeLessThanOrEqual(hold)
      // Output was estimated from what was produced: a handful of words, far below the 500 held.
      expect(e.tokens.output).toBeGreaterThan(0)
      expect(e.tokens.output).toBeLessThan(40)
      expect(router.budgetStatus.reservedUsd).toBe(0)
      expect(micros(router.budgetStatus.spentUsd)).toBe(e.costMicros)
    } finally {
      await router.stop()
    }
  })

  it('an Anthropic stream the client aborts releases its hold too', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.anthropicKeys.url, budgetUsd: 1 })
    try {
      const events = collect(router)
      fakes.anthropicUp.behaviour.text = LONG_TEXT
      fakes.anthropicUp.behaviour.chunkDelayMs = 100
      const client = new Anthropic({ ...router.anthropicClientOptions(), maxRetries: 0 })
      const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 500, messages: [{ role: 'user', content: PROMPT }] })
      let deltas = 0
      stream.on('text', () => {
        if (++deltas === 2) stream.abort()
      })
      await expect(stream.finalMessage()).rejects.toThrow()
      await expect.poll(() => events.length, { timeout: 5000 }).toBe(1)
      expect(events[0]).toMatchObject({ outcome: 'client_aborted', estimated: true })
      expect(events[0]!.costMicros).toBeGreaterThan(0)
      expect(router.budgetStatus.reservedUsd).toBe(0)
      expect(micros(router.budgetStatus.spentUsd)).toBe(events[0]!.costMicros)
    } finally {
      await router.stop()
    }
  })

  it('an upstream 500 costs nothing and releases the hold', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url, budgetUsd: 1, ...ONE_SHOT })
    try {
      const events = collect(router)
      fakes.openaiUp.behaviour.fault = { status: 500 }
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
      for (const stream of [false, true]) {
        const err = await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 500, stream, messages: [{ role: 'user', content: PROMPT }] }).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(OpenAI.InternalServerError)
      }
      await expect.poll(() => events.length).toBe(2)
      expect(events.map((e) => [e.status, e.costMicros])).toEqual([[500, 0], [500, 0]])
      expect(router.budgetStatus).toEqual({ spentUsd: 0, reservedUsd: 0, limitUsd: 1 })
    } finally {
      await router.stop()
    }
  })

  it('an Anthropic 529 costs nothing and releases the hold', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.anthropicKeys.url, budgetUsd: 1, ...ONE_SHOT })
    try {
      const events = collect(router)
      fakes.anthropicUp.behaviour.fault = { status: 529 }
      const client = new Anthropic({ ...router.anthropicClientOptions(), maxRetries: 0 })
      const err = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 500, messages: [{ role: 'user', content: PROMPT }] }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(Anthropic.APIError)
      expect((err as InstanceType<typeof Anthropic.APIError>).status).toBe(529)
      await expect.poll(() => events.length).toBe(1)
      expect(events[0]).toMatchObject({ status: 529, costMicros: 0 })
      expect(router.budgetStatus).toEqual({ spentUsd: 0, reservedUsd: 0, limitUsd: 1 })
    } finally {
      await router.stop()
    }
  })

  it('a stream reset mid-way is charged an estimate (marked estimated) and nothing stays reserved', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url, budgetUsd: 1, ...ONE_SHOT })
    try {
      const events = collect(router)
      fakes.openaiUp.behaviour.text = LONG_TEXT
      fakes.openaiUp.behaviour.fault = 'reset-mid-stream'
      fakes.openaiUp.behaviour.faultAfterChunks = 5
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
      const body = { model: 'gpt-4o', max_tokens: 500, stream: true as const, messages: [{ role: 'user' as const, content: PROMPT }] }
      const hold = holdMicros(GPT_4O, inputBoundTokens(body), 500)
      const err = await (async () => {
        for await (const _ of await client.chat.completions.create(body)) void _
      })().catch((e: unknown) => e)
      expect(err).toBeInstanceOf(OpenAI.APIError)
      await expect.poll(() => events.length).toBe(1)
      const e = events[0]!
      expect(e).toMatchObject({ status: 200, outcome: 'upstream_error', estimated: true })
      expect(e.costMicros).toBeGreaterThan(0)
      expect(e.costMicros).toBeLessThanOrEqual(hold)
      expect(router.budgetStatus.reservedUsd).toBe(0)
      expect(micros(router.budgetStatus.spentUsd)).toBe(e.costMicros)
    } finally {
      await router.stop()
    }
  })

  it('a connection reset after the request was sent is a 502, not sent again, charged its hold (the provider may bill it)', async () => {
    // The fake reads the request, queues the headers and half a JSON body, and resets the socket.
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url, budgetUsd: 1, ...ONE_SHOT })
    try {
      fakes.openaiUp.behaviour.fault = 'reset-mid-stream'
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 2 })
      const err = await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 500, messages: [{ role: 'user', content: PROMPT }] }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(OpenAI.APIError)
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502)
      // Neither the router nor the SDK (x-should-retry: false) sent it again.
      expect((err as InstanceType<typeof OpenAI.APIError>).headers?.get('x-should-retry')).toBe('false')
      expect(fakes.openaiUp.hits).toBe(1)
      const b = router.budgetStatus
      expect(b.reservedUsd).toBe(0)
      expect(b.spentUsd).toBeGreaterThan(0)
    } finally {
      await router.stop()
    }
  })

  it('an unreachable provider releases the hold and costs nothing', async () => {
    const dead = await startFakeProvider({ expectedKey: OPENAI_KEY })
    const url = dead.url
    await dead.close()
    const keys = await startFakeKeyServer({ icToken: IC, key: OPENAI_KEY, provider: 'openai', baseUrl: url })
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url, budgetUsd: 1 })
    try {
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
      const err = await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 500, messages: [{ role: 'user', content: PROMPT }] }).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(OpenAI.APIError)
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502)
      expect(router.budgetStatus).toEqual({ spentUsd: 0, reservedUsd: 0, limitUsd: 1 })
    } finally {
      await router.stop()
      await keys.close()
    }
  })
})
