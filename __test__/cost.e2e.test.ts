// Exact cost through the real openai and @anthropic-ai/sdk clients: every call is priced from the usage the
// (fake) provider reports, streams included, and totalSpent() is the sum of the hand-computed costs.
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { LlmRouter } from '../src-ts/index.js'
import type { BlockedEvent, BudgetEvent, ResponseEvent } from '../src-ts/events.js'
import { useFakeUpstreams } from './helpers/upstreams.js'
import { type FakeProvider, type UsageFigures } from './helpers/fake-provider.js'

const IC = 'ic_cost_test_token_5be1'
const OPENAI_KEY = 'sk-proj-cost-test-openai'
const ANTHROPIC_KEY = 'sk-ant-cost-test-anthropic'

// Published list prices, USD per 1M tokens (openai.com/api/pricing, anthropic.com/pricing).
// OpenAI: gpt-4o lists no cache-write price, so a write is billed as plain input.
// Anthropic: 5-minute cache write 1.25× input, 1-hour write 2× input, cache read 0.1× input.
interface Rates {
  input: number
  cachedInput: number
  cacheWrite5m: number
  cacheWrite1h: number
  output: number
}
const GPT_4O: Rates = { input: 2.5, cachedInput: 1.25, cacheWrite5m: 2.5, cacheWrite1h: 5, output: 10 }
const O3: Rates = { input: 2, cachedInput: 0.5, cacheWrite5m: 2, cacheWrite1h: 4, output: 8 }
const TEXT_EMBEDDING_3_SMALL: Rates = { input: 0.02, cachedInput: 0.02, cacheWrite5m: 0.02, cacheWrite1h: 0.04, output: 0 }
const CLAUDE_SONNET_4_5: Rates = { input: 3, cachedInput: 0.3, cacheWrite5m: 3.75, cacheWrite1h: 6, output: 15 }
const CLAUDE_HAIKU_4_5: Rates = { input: 1, cachedInput: 0.1, cacheWrite5m: 1.25, cacheWrite1h: 2, output: 5 }

/** USD per 1M tokens → pico-USD per token (an exact integer for every price above). */
const pico = (usdPerMtok: number): number => Math.round(usdPerMtok * 1e6)

/**
 * Cost of one call in micro-USD, rounded up once per call as the router does. `uncachedInput` follows the
 * provider-neutral meaning (OpenAI's prompt_tokens minus cached and written; Anthropic's input_tokens as is).
 */
function costMicros(r: Rates, t: { uncachedInput: number; cacheRead?: number; write5m?: number; write1h?: number; output: number }): number {
  const total =
    t.uncachedInput * pico(r.input) +
    (t.cacheRead ?? 0) * pico(r.cachedInput) +
    (t.write5m ?? 0) * pico(r.cacheWrite5m) +
    (t.write1h ?? 0) * pico(r.cacheWrite1h) +
    t.output * pico(r.output)
  expect(Number.isSafeInteger(total)).toBe(true)
  return Math.ceil(total / 1e6)
}

/** Collects `response` events and waits for the n-th. */
function responses(router: LlmRouter): { list: ResponseEvent[]; next: () => Promise<ResponseEvent> } {
  const list: ResponseEvent[] = []
  let seen = 0
  router.on('response', (e) => list.push(e))
  return {
    list,
    async next() {
      const want = ++seen
      const deadline = Date.now() + 5000
      while (list.length < want) {
        if (Date.now() > deadline) throw new Error(`response event #${want} did not arrive (have ${list.length})`)
        await new Promise((r) => setTimeout(r, 5))
      }
      return list[want - 1]!
    },
  }
}

const fakes = useFakeUpstreams({ icToken: IC, openaiKey: OPENAI_KEY, anthropicKey: ANTHROPIC_KEY })

const useUsage = (up: FakeProvider, u: Partial<UsageFigures>): void => {
  up.behaviour.usage = u
}

describe('exact cost through the OpenAI SDK', () => {
  it('prices JSON and streamed chat, Responses and embeddings calls; totalSpent is their sum', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url })
    try {
      const events = responses(router)
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
      const expected: number[] = []

      // 1. gpt-4o, JSON, 1237 prompt tokens of which 1024 cached and 13 written to the cache, 333 out.
      useUsage(fakes.openaiUp, { inputTokens: 1237, cachedTokens: 1024, cacheWrite5mTokens: 13, outputTokens: 333 })
      await client.chat.completions.create({ model: 'gpt-4o-2024-08-06', messages: [{ role: 'user', content: 'Hello' }] })
      // 200 × 2.50 + 1024 × 1.25 + 13 × 2.50 + 333 × 10 = 500 + 1280 + 32.5 + 3330 = 5142.5 µ$ → 5143
      expected.push(costMicros(GPT_4O, { uncachedInput: 200, cacheRead: 1024, write5m: 13, output: 333 }))
      expect(expected[0]).toBe(5143)
      let e = await events.next()
      expect(e).toMatchObject({ model: 'gpt-4o-2024-08-06', status: 200, costMicros: 5143, estimated: false, outcome: 'complete' })
      expect(e.costUsd).toBeCloseTo(0.005143, 9)
      expect(e.tokens).toEqual({ input: 200, cacheRead: 1024, cacheWrite: 13, output: 333, reasoning: 0 })

      // 2. gpt-4o stream; the client did not ask for usage: the router asks, prices, and hides the usage chunk.
      useUsage(fakes.openaiUp, { inputTokens: 57, outputTokens: 19 })
      const s1 = await client.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'Hi' }] })
      let text = ''
      for await (const chunk of s1) {
        expect(chunk.usage ?? null).toBeNull()
        expect(chunk.choices.length).toBe(1)
        text += chunk.choices[0]?.delta.content ?? ''
      }
      expect(text).toBe('Hello from the fake provider.')
      expect(fakes.openaiUp.requests.at(-1)!.json.stream_options).toEqual({ include_usage: true })
      // 57 × 2.50 + 19 × 10 = 142.5 + 190 = 332.5 µ$ → 333
      expected.push(costMicros(GPT_4O, { uncachedInput: 57, output: 19 }))
      e = await events.next()
      expect(e).toMatchObject({ costMicros: expected[1], estimated: false, tokens: { input: 57, cacheRead: 0, cacheWrite: 0, output: 19, reasoning: 0 } })

      // 3. o3 stream with usage asked for: the client sees the usage chunk exactly once, with the provider's figures.
      useUsage(fakes.openaiUp, { inputTokens: 41, cachedTokens: 7, outputTokens: 1501, reasoningTokens: 1024 })
      const s2 = await client.chat.completions.create({
        model: 'o3',
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'Think' }],
      })
      const usages: OpenAI.CompletionUsage[] = []
      for await (const chunk of s2) if (chunk.usage) usages.push(chunk.usage)
      expect(usages).toHaveLength(1)
      expect(usages[0]).toMatchObject({ prompt_tokens: 41, completion_tokens: 1501, completion_tokens_details: { reasoning_tokens: 1024 } })
      // Reasoning tokens are inside completion_tokens and billed once: 34 × 2 + 7 × 0.50 + 1501 × 8 = 68 + 3.5 + 12008 → 12080
      expected.push(costMicros(O3, { uncachedInput: 34, cacheRead: 7, output: 1501 }))
      expect(expected[2]).toBe(12080)
      e = await events.next()
      expect(e).toMatchObject({ model: 'o3', costMicros: 12080, tokens: { input: 34, cacheRead: 7, cacheWrite: 0, output: 1501, reasoning: 1024 } })

      // 4. o3 non-streamed Responses API call with reasoning.
      useUsage(fakes.openaiUp, { inputTokens: 900, cachedTokens: 512, outputTokens: 2222, reasoningTokens: 2000 })
      await client.responses.create({ model: 'o3-2025-04-16', input: 'Plan a trip' })
      // 388 × 2 + 512 × 0.50 + 2222 × 8 = 776 + 256 + 17776 = 18808
      expected.push(costMicros(O3, { uncachedInput: 388, cacheRead: 512, output: 2222 }))
      e = await events.next()
      expect(e).toMatchObject({ costMicros: expected[3], tokens: { input: 388, cacheRead: 512, output: 2222, reasoning: 2000 } })

      // 5. gpt-4o streamed Responses API call: usage comes from response.completed.
      useUsage(fakes.openaiUp, { inputTokens: 3001, cachedTokens: 3000, outputTokens: 1 })
      const s3 = await client.responses.create({ model: 'gpt-4o', input: 'Again', stream: true })
      const kinds: string[] = []
      for await (const ev of s3) kinds.push(ev.type)
      expect(kinds.at(-1)).toBe('response.completed')
      // 1 × 2.50 + 3000 × 1.25 + 1 × 10 = 2.5 + 3750 + 10 = 3762.5 → 3763
      expected.push(costMicros(GPT_4O, { uncachedInput: 1, cacheRead: 3000, output: 1 }))
      e = await events.next()
      expect(e.costMicros).toBe(expected[4])

      // 6. Embeddings: 8 tokens × $0.02/M = 0.16 µ$, rounded up to 1 µ$ (a call is never free by rounding).
      useUsage(fakes.openaiUp, { inputTokens: 8 })
      await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello embeddings' })
      expected.push(costMicros(TEXT_EMBEDDING_3_SMALL, { uncachedInput: 8, output: 0 }))
      expect(expected[5]).toBe(1)
      e = await events.next()
      expect(e).toMatchObject({ costMicros: 1, tokens: { input: 8, output: 0 } })

      const sum = expected.reduce((a, b) => a + b, 0)
      expect(events.list.map((x) => x.costMicros)).toEqual(expected)
      expect(Math.abs(router.totalSpent() - sum / 1e6)).toBeLessThanOrEqual(1e-6)
      expect(Math.round(router.totalSpent() * 1e6)).toBe(sum)
      expect(router.budgetStatus).toEqual({ spentUsd: router.totalSpent(), reservedUsd: 0, limitUsd: null })
    } finally {
      await router.stop()
    }
  })

  it('a budget does not change the price: the same calls under a budget cost the same', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url, budgetUsd: 5 })
    try {
      const events = responses(router)
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
      useUsage(fakes.openaiUp, { inputTokens: 1237, cachedTokens: 1024, outputTokens: 333 })
      await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 400, messages: [{ role: 'user', content: 'Hello' }] })
      const s = await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 400, stream: true, messages: [{ role: 'user', content: 'Hello' }] })
      let usageChunks = 0
      for await (const c of s) if (c.usage) usageChunks++
      expect(usageChunks).toBe(0)
      await events.next()
      await events.next()
      // Each: 213 × 2.50 + 1024 × 1.25 + 333 × 10 = 532.5 + 1280 + 3330 = 5142.5 → 5143
      const each = costMicros(GPT_4O, { uncachedInput: 213, cacheRead: 1024, output: 333 })
      expect(Math.round(router.totalSpent() * 1e6)).toBe(2 * each)
      expect(router.budgetStatus).toEqual({ spentUsd: (2 * each) / 1e6, reservedUsd: 0, limitUsd: 5 })
    } finally {
      await router.stop()
    }
  })
})

describe('exact cost through the Anthropic SDK', () => {
  it('prices JSON and streamed messages with cache reads and 5m / 1h writes; totalSpent is their sum', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.anthropicKeys.url })
    try {
      const events = responses(router)
      const client = new Anthropic({ ...router.anthropicClientOptions(), maxRetries: 0 })
      const expected: number[] = []

      // 1. JSON; Anthropic's input_tokens exclude cache reads and writes.
      useUsage(fakes.anthropicUp, { inputTokens: 121, cachedTokens: 10001, cacheWrite5mTokens: 1501, outputTokens: 351 })
      const m = await client.messages.create({ model: 'claude-sonnet-4-5-20250929', max_tokens: 1000, messages: [{ role: 'user', content: 'Hello' }] })
      expect(m.usage.cache_read_input_tokens).toBe(10001)
      // 121 × 3 + 10001 × 0.30 + 1501 × 3.75 + 351 × 15 = 363 + 3000.3 + 5628.75 + 5265 = 14257.05 → 14258
      expected.push(costMicros(CLAUDE_SONNET_4_5, { uncachedInput: 121, cacheRead: 10001, write5m: 1501, output: 351 }))
      expect(expected[0]).toBe(14258)
      let e = await events.next()
      expect(e).toMatchObject({ provider: 'anthropic', costMicros: 14258, estimated: false })
      expect(e.costUsd).toBeCloseTo(0.014258, 9)
      expect(e.tokens).toEqual({ input: 121, cacheRead: 10001, cacheWrite: 1501, output: 351, reasoning: 0 })

      // 2. messages.stream(): usage from message_start plus the final cumulative message_delta.
      useUsage(fakes.anthropicUp, { inputTokens: 33, cachedTokens: 5, cacheWrite1hTokens: 2048, outputTokens: 77 })
      const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 500, messages: [{ role: 'user', content: 'Hi' }] })
      const final = await stream.finalMessage()
      expect(final.usage.output_tokens).toBe(77)
      // 33 × 3 + 5 × 0.30 + 2048 × 6 + 77 × 15 = 99 + 1.5 + 12288 + 1155 = 13543.5 → 13544
      expected.push(costMicros(CLAUDE_SONNET_4_5, { uncachedInput: 33, cacheRead: 5, write1h: 2048, output: 77 }))
      expect(expected[1]).toBe(13544)
      e = await events.next()
      expect(e).toMatchObject({ costMicros: 13544, estimated: false, tokens: { input: 33, cacheRead: 5, cacheWrite: 2048, output: 77 } })

      // 3. create({ stream: true }) on a dated Haiku name with a 5m write.
      useUsage(fakes.anthropicUp, { inputTokens: 17, cacheWrite5mTokens: 3, outputTokens: 9 })
      const raw = await client.messages.create({ model: 'claude-haiku-4-5-20251001', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'Yo' }] })
      let deltas = 0
      for await (const ev of raw) if (ev.type === 'content_block_delta') deltas++
      expect(deltas).toBeGreaterThan(1)
      // 17 × 1 + 3 × 1.25 + 9 × 5 = 17 + 3.75 + 45 = 65.75 → 66
      expected.push(costMicros(CLAUDE_HAIKU_4_5, { uncachedInput: 17, write5m: 3, output: 9 }))
      expect(expected[2]).toBe(66)
      e = await events.next()
      expect(e.costMicros).toBe(66)

      const sum = expected.reduce((a, b) => a + b, 0)
      expect(events.list.map((x) => x.costMicros)).toEqual(expected)
      expect(Math.abs(router.totalSpent() - sum / 1e6)).toBeLessThanOrEqual(1e-6)
      expect(Math.round(router.totalSpent() * 1e6)).toBe(sum)
    } finally {
      await router.stop()
    }
  })
})

describe('unknown models and the pricing option', () => {
  it('with a budget, an unpriced model is refused with 400 naming the pricing option; nothing reaches the provider', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url, budgetUsd: 1 })
    try {
      const blocked: BlockedEvent[] = []
      router.on('blocked', (b) => blocked.push(b))
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
      const err = await client.chat.completions.create({ model: 'my-finetune-x', messages: [{ role: 'user', content: 'x' }] }).catch((x: unknown) => x)
      expect(err).toBeInstanceOf(OpenAI.BadRequestError)
      const msg = (err as Error).message
      expect(msg).toContain("cannot price model 'my-finetune-x'")
      expect(msg).toContain('pricing')
      expect(msg).toContain("unknownModel: 'block'")
      expect((err as InstanceType<typeof OpenAI.APIError>).headers?.get('x-should-retry')).toBe('false')
      expect(fakes.openaiUp.hits).toBe(0)
      await expect.poll(() => blocked.length).toBe(1)
      expect(blocked[0]).toMatchObject({ reason: 'budget', code: 'UNKNOWN_MODEL_PRICE' })
      expect(router.budgetStatus).toEqual({ spentUsd: 0, reservedUsd: 0, limitUsd: 1 })
    } finally {
      await router.stop()
    }
  })

  it("unknownModel { action: 'allow', costUsd } charges the flat cost per call", async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url, budgetUsd: 1, unknownModel: { action: 'allow', costUsd: 0.0125 } })
    try {
      const events = responses(router)
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
      useUsage(fakes.openaiUp, { inputTokens: 1000, outputTokens: 1000 })
      await client.chat.completions.create({ model: 'my-finetune-x', messages: [{ role: 'user', content: 'x' }] })
      await client.chat.completions.create({ model: 'my-finetune-x', messages: [{ role: 'user', content: 'y' }] })
      expect((await events.next()).costMicros).toBe(12_500)
      expect((await events.next()).costMicros).toBe(12_500)
      expect(router.budgetStatus).toEqual({ spentUsd: 0.025, reservedUsd: 0, limitUsd: 1 })
    } finally {
      await router.stop()
    }
  })

  it('a pricing override prices a custom model exactly, with and without a budget', async () => {
    for (const budgetUsd of [undefined, 2]) {
      const router = await LlmRouter.create({
        apiKey: IC,
        serverUrl: fakes.anthropicKeys.url,
        ...(budgetUsd === undefined ? {} : { budgetUsd }),
        pricing: { 'claude-house-model': { input: 4, output: 20, cachedInput: 0.4, cacheWrite5m: 5, provider: 'anthropic' } },
      })
      try {
        const events = responses(router)
        const client = new Anthropic({ ...router.anthropicClientOptions(), maxRetries: 0 })
        useUsage(fakes.anthropicUp, { inputTokens: 250, cachedTokens: 1000, cacheWrite5mTokens: 100, outputTokens: 123 })
        await client.messages.create({ model: 'claude-house-model', max_tokens: 200, messages: [{ role: 'user', content: 'x' }] })
        // 250 × 4 + 1000 × 0.40 + 100 × 5 + 123 × 20 = 1000 + 400 + 500 + 2460 = 4360 µ$
        const e = await events.next()
        expect(e.costMicros).toBe(4360)
        expect(Math.round(router.totalSpent() * 1e6)).toBe(4360)
        expect(router.budgetStatus.reservedUsd).toBe(0)
      } finally {
        await router.stop()
      }
    }
  })
})

describe('budget thresholds and setBudget', () => {
  it('warning and exceeded fire once each at the right spend; setBudget raises the limit and calls pass again', async () => {
    // Each call: 100 in × 2.50 + 100 out × 10 = 250 + 1000 = 1250 µ$. The hold (26 estimated input tokens,
    // 100 out) is 1065 µ$, so the 4th call fits in $0.005 and spend lands exactly on the limit.
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: fakes.openaiKeys.url, budgetUsd: 0.005, budgetWarningPercent: 50 })
    try {
      const budget: BudgetEvent[] = []
      const blocked: BlockedEvent[] = []
      router.on('budget', (b) => budget.push(b))
      router.on('blocked', (b) => blocked.push(b))
      const events = responses(router)
      const client = new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 })
      useUsage(fakes.openaiUp, { inputTokens: 100, outputTokens: 100 })
      const call = () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 100, messages: [{ role: 'user', content: 'go' }] })
      const each = costMicros(GPT_4O, { uncachedInput: 100, output: 100 })
      expect(each).toBe(1250)

      await call() // 1250 = 25 %
      await events.next()
      expect(budget).toEqual([])
      await call() // 2500 = 50 %: warning
      await events.next()
      await expect.poll(() => budget.length).toBe(1)
      expect(budget[0]).toMatchObject({ level: 'warning', spentUsd: 0.0025, limitUsd: 0.005, percent: 50 })
      await call() // 3750 = 75 %: nothing new
      await events.next()
      await call() // 5000 = 100 %: exceeded
      await events.next()
      await expect.poll(() => budget.length).toBe(2)
      expect(budget[1]).toMatchObject({ level: 'exceeded', spentUsd: 0.005, limitUsd: 0.005, percent: 100 })

      const err = await call().catch((x: unknown) => x)
      expect(err).toBeInstanceOf(OpenAI.APIError)
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(402)
      expect((err as Error).message).toMatch(/budget \$0\.005 would be exceeded: \$0\.005 spent, \$0\.00 reserved/)
      await expect.poll(() => blocked.length).toBe(1)
      expect(blocked[0]).toMatchObject({ reason: 'budget', code: 'BUDGET_EXCEEDED' })
      expect(fakes.openaiUp.hits).toBe(4)
      expect(budget).toHaveLength(2)

      // Raising the limit lets calls pass again. 5000 of 20000 is 25 %: the warning is re-armed, and fires
      // once more when spend reaches 50 % of the new limit (10000 µ$, 4 calls later).
      router.setBudget(0.02)
      expect(router.budget).toBe(0.02)
      for (let i = 0; i < 4; i++) {
        await call()
        await events.next()
      }
      expect(fakes.openaiUp.hits).toBe(8)
      await expect.poll(() => budget.length).toBe(3)
      expect(budget[2]).toMatchObject({ level: 'warning', spentUsd: 0.01, limitUsd: 0.02, percent: 50 })
      await new Promise((r) => setTimeout(r, 50))
      expect(budget.map((b) => b.level)).toEqual(['warning', 'exceeded', 'warning'])
      expect(router.budgetStatus).toEqual({ spentUsd: 0.01, reservedUsd: 0, limitUsd: 0.02 })

      router.setBudget(null)
      expect(router.budget).toBeNull()
      await call()
      await events.next()
      expect(Math.round(router.totalSpent() * 1e6)).toBe(9 * each)
    } finally {
      await router.stop()
    }
  })
})
