// The LlmRouter end to end: the real openai and @anthropic-ai/sdk clients, through the router, to fake
// providers and a fake Iron Cage key server on loopback.
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { IronCageError, LlmRouter } from '../src-ts/index.js'
import { startFakeKeyServer, type FakeKeyServer } from './helpers/fake-key-server.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'

const IC = 'ic_test_token_0123456789'
const REAL_OPENAI = 'sk-proj-real-openai-key-canary'
const REAL_ANTHROPIC = 'sk-ant-real-anthropic-key-canary'

let openaiUp: FakeProvider
let anthropicUp: FakeProvider
let openaiKeys: FakeKeyServer
let anthropicKeys: FakeKeyServer

beforeAll(async () => {
  openaiUp = await startFakeProvider({ expectedKey: REAL_OPENAI })
  anthropicUp = await startFakeProvider({ expectedKey: REAL_ANTHROPIC })
  openaiKeys = await startFakeKeyServer({ icToken: IC, key: REAL_OPENAI, baseUrl: openaiUp.url })
  anthropicKeys = await startFakeKeyServer({ icToken: IC, key: REAL_ANTHROPIC, baseUrl: anthropicUp.url })
})

afterAll(async () => {
  await Promise.all([openaiUp.close(), anthropicUp.close(), openaiKeys.close(), anthropicKeys.close()])
})

afterEach(() => {
  openaiUp.reset()
  anthropicUp.reset()
})

describe('LlmRouter lifecycle', () => {
  it('starts on loopback, knows its provider, stops idempotently', async () => {
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: openaiKeys.url })
    expect(router.isRunning).toBe(true)
    expect(router.provider).toBe('openai')
    expect(router.baseUrl).toBe(`http://127.0.0.1:${router.port}/v1`)
    expect(router.anthropicBaseUrl).toBe(`http://127.0.0.1:${router.port}`)
    expect(router.port).toBeGreaterThan(1024)
    expect(router.apiKey).toBe(IC)
    const health = await fetch(`http://127.0.0.1:${router.port}/`)
    expect(await health.text()).toBe('LlmRouter OK')
    await router.stop()
    await router.stop()
    expect(router.isRunning).toBe(false)
    await expect(fetch(`http://127.0.0.1:${router.port}/`)).rejects.toThrow()
  })

  it('reports unknown when the key server is down, and still serves', async () => {
    const down = await startFakeKeyServer({ icToken: IC, key: REAL_OPENAI })
    const url = down.url
    await down.close()
    const router = await LlmRouter.create({ apiKey: IC, serverUrl: url })
    try {
      expect(router.provider).toBe('unknown')
      expect(router.providerError).toMatch(/could not reach the key server/)
      expect(await (await fetch(`http://127.0.0.1:${router.port}/`)).text()).toBe('LlmRouter OK')
    } finally {
      await router.stop()
    }
  })

  it('does not wait longer than keyServerTimeoutMs for a key server that never answers', async () => {
    // Accepts the connection, reads the request, never replies.
    const { createServer } = await import('node:net')
    const sockets: import('node:net').Socket[] = []
    const silent = createServer((s) => void sockets.push(s))
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    const port = (silent.address() as import('node:net').AddressInfo).port
    try {
      const started = Date.now()
      const router = await LlmRouter.create({ apiKey: IC, serverUrl: `http://127.0.0.1:${port}`, keyServerTimeoutMs: 300 })
      try {
        expect(Date.now() - started).toBeLessThan(5000)
        expect(router.provider).toBe('unknown')
        expect(router.providerError).toMatch(/no answer within 300 ms \(keyServerTimeoutMs\)/)
      } finally {
        await router.stop()
      }
      expect(() => new LlmRouter({ apiKey: IC, serverUrl: openaiKeys.url, keyServerTimeoutMs: 5 })).toThrow(/keyServerTimeoutMs/)
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((r) => silent.close(r))
    }
  })

  it('validates options with errors that name the field and carry a code', () => {
    expect(() => new LlmRouter({ apiKey: IC, serverUrl: 'http://example.com' })).toThrow(/serverUrl.*https/)
    try {
      new LlmRouter({ apiKey: IC, serverUrl: openaiKeys.url, cacheTtlSeconds: -5 })
      expect.unreachable()
    } catch (e) {
      expect(e).toBeInstanceOf(IronCageError)
      expect((e as IronCageError).code).toBe('INVALID_OPTIONS')
      expect((e as IronCageError).message).toMatch(/cacheTtlSeconds/)
    }
    expect(() => new LlmRouter({ apiKey: IC } as never)).toThrow(/serverUrl/)
    expect(() => new LlmRouter({ apiKey: IC, serverUrl: openaiKeys.url, bogus: 1 } as never)).toThrow(/bogus/)
  })

  it('refuses a budget or limit that is not a finite number instead of reading it as "not set"', () => {
    // JSON writes NaN and Infinity as null: `budgetUsd: Number(process.env.UNSET)` once meant no budget.
    for (const [options, name] of [
      [{ budgetUsd: Number(undefined) }, 'budgetUsd'],
      [{ budgetUsd: Infinity }, 'budgetUsd'],
      [{ budgetWarningPercent: NaN }, 'budgetWarningPercent'],
      [{ maxBodyBytes: -Infinity }, 'maxBodyBytes'],
      [{ reliability: { timeouts: { totalMs: NaN } } }, 'reliability.timeouts.totalMs'],
    ] as const) {
      let thrown: unknown
      try {
        new LlmRouter({ providerKey: 'sk-test-not-finite', ...options } as never).stop()
      } catch (e) {
        thrown = e
      }
      expect(thrown, name).toBeInstanceOf(IronCageError)
      expect((thrown as IronCageError).code).toBe('INVALID_OPTIONS')
      expect((thrown as Error).message).toContain(`invalid option ${name}: expected a finite number`)
    }
  })

  it('names the option and the expected type when a value has the wrong type', () => {
    const attempt = (options: object) => () => new LlmRouter({ providerKey: 'sk-test-wrong-type', ...options } as never)
    expect(attempt({ budgetUsd: '5' })).toThrow("invalid option budgetUsd: expected a number, got a string (write 5, not '5')")
    expect(attempt({ strictPersistence: 'yes' })).toThrow('invalid option strictPersistence: expected a boolean, got a string')
    expect(attempt({ maxConnections: true })).toThrow('invalid option maxConnections: expected a number, got a boolean')
    expect(attempt({ statePath: ['a'] })).toThrow('invalid option statePath: expected a string, got an array')
  })

  it('disposes with await using semantics (Symbol.asyncDispose)', async () => {
    let port = 0
    {
      const router = await LlmRouter.create({ apiKey: IC, serverUrl: openaiKeys.url })
      port = router.port
      await router[Symbol.asyncDispose]()
      expect(router.isRunning).toBe(false)
    }
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow()
  })

  it('runs many routers in one process on distinct ports', async () => {
    const routers = await Promise.all(Array.from({ length: 8 }, () => LlmRouter.create({ apiKey: IC, serverUrl: openaiKeys.url })))
    try {
      expect(new Set(routers.map((r) => r.port)).size).toBe(8)
      const answers = await Promise.all(
        routers.map((r) => new OpenAI(r.openaiClientOptions()).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })),
      )
      expect(answers.every((a) => a.choices[0]?.message.content === 'Hello from the fake provider.')).toBe(true)
    } finally {
      await Promise.all(routers.map((r) => r.stop()))
    }
  })
})

describe('OpenAI SDK through the router', () => {
  let router: LlmRouter
  let client: OpenAI
  beforeAll(async () => {
    router = await LlmRouter.create({ apiKey: IC, serverUrl: openaiKeys.url })
    client = new OpenAI({ baseURL: router.baseUrl, apiKey: router.apiKey, maxRetries: 0 })
  })
  afterAll(() => router.stop())

  it('chat completion: the provider sees the real key, the client its answer', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Say hello' }] })
    expect(r.choices[0]?.message.content).toBe('Hello from the fake provider.')
    const seen = openaiUp.requests[0]!
    expect(seen.path).toBe('/v1/chat/completions')
    expect(seen.headers['authorization']).toBe(`Bearer ${REAL_OPENAI}`)
    expect(JSON.stringify(seen.headers)).not.toContain(IC)
  })

  it('streamed chat completion arrives chunk by chunk, without the injected usage chunk', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'Say hello' }] })
    let text = ''
    let chunks = 0
    for await (const chunk of stream) {
      chunks++
      expect(chunk.choices.length).toBeGreaterThan(0)
      text += chunk.choices[0]?.delta.content ?? ''
    }
    expect(text).toBe('Hello from the fake provider.')
    expect(chunks).toBeGreaterThan(3)
    expect(openaiUp.requests[0]!.json).toMatchObject({ stream_options: { include_usage: true } })
  })

  it('a client that asks for usage sees the usage chunk exactly once', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Say hello' }],
    })
    let usageChunks = 0
    for await (const chunk of stream) if (chunk.usage) usageChunks++
    expect(usageChunks).toBe(1)
  })

  it('a wrong token raises AuthenticationError with "Invalid API key"', async () => {
    const bad = new OpenAI({ baseURL: router.baseUrl, apiKey: 'ic_wrong', maxRetries: 0 })
    const err = await bad.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError)
    expect((err as Error).message).toContain('Invalid API key')
    expect(openaiUp.hits).toBe(0)
  })

  it('asking for a Claude model with an OpenAI key raises BadRequestError with the mismatch message', async () => {
    const err = await client.chat.completions.create({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.BadRequestError)
    expect((err as Error).message).toContain(
      "Provider mismatch: you requested 'anthropic' but your Iron Cage token has 'openai' key configured. Please configure a 'anthropic' provider key in your Iron Cage dashboard.",
    )
    expect(openaiUp.hits).toBe(0)
  })
})

describe('Anthropic SDK through the router', () => {
  let router: LlmRouter
  let client: Anthropic
  beforeAll(async () => {
    router = await LlmRouter.create({ apiKey: IC, serverUrl: anthropicKeys.url })
    client = new Anthropic({ baseURL: router.anthropicBaseUrl, apiKey: router.apiKey, maxRetries: 0 })
  })
  afterAll(() => router.stop())

  it('message: the provider sees x-api-key with the real key and anthropic-version', async () => {
    expect(router.provider).toBe('anthropic')
    const m = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 50, messages: [{ role: 'user', content: 'Say hello' }] })
    expect(m.content[0]).toMatchObject({ type: 'text', text: 'Hello from the fake provider.' })
    const seen = anthropicUp.requests[0]!
    expect(seen.path).toBe('/v1/messages')
    expect(seen.headers['x-api-key']).toBe(REAL_ANTHROPIC)
    expect(seen.headers['authorization']).toBeUndefined()
    expect(seen.headers['anthropic-version']).toBeTruthy()
    expect(JSON.stringify(seen.headers)).not.toContain(IC)
  })

  it('streamed message', async () => {
    const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 50, messages: [{ role: 'user', content: 'Say hello' }] })
    let text = ''
    stream.on('text', (t) => (text += t))
    const final = await stream.finalMessage()
    expect(text).toBe('Hello from the fake provider.')
    expect(final.usage.output_tokens).toBeGreaterThan(0)
  })

  it('works when the user gives the /v1 URL too (doubled /v1/v1 is normalised)', async () => {
    const c = new Anthropic({ baseURL: router.baseUrl, apiKey: router.apiKey, maxRetries: 0 })
    const m = await c.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] })
    expect(m.content.length).toBe(1)
    expect(anthropicUp.requests[0]!.path).toBe('/v1/messages')
  })

  it('a wrong token raises AuthenticationError', async () => {
    const bad = new Anthropic({ baseURL: router.anthropicBaseUrl, apiKey: 'ic_wrong', maxRetries: 0 })
    const err = await bad.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError)
    expect((err as Error).message).toContain('Invalid API key')
  })

  it('a GPT model on an Anthropic key raises BadRequestError with the mismatch message', async () => {
    const err = await client.messages.create({ model: 'gpt-4o', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Anthropic.BadRequestError)
    expect((err as Error).message).toContain("Provider mismatch: you requested 'openai' but your Iron Cage token has 'anthropic' key configured.")
  })
})
