// The SDKs agent builders use, pointed at the router, against fake providers: openai, @anthropic-ai/sdk, the Vercel AI
// SDK and LangChain JS. Each test checks the answer the SDK returns and what the provider saw (path, real key).
import { createAnthropic } from '@ai-sdk/anthropic'
import { createOpenAI } from '@ai-sdk/openai'
import Anthropic from '@anthropic-ai/sdk'
import { ChatAnthropic } from '@langchain/anthropic'
import { ChatOpenAI } from '@langchain/openai'
import { generateText, streamText } from 'ai'
import OpenAI from 'openai'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { LlmRouter } from '../src-ts/index.js'
import { startFakeKeyServer, type FakeKeyServer } from './helpers/fake-key-server.js'
import { startFakeProvider, type FakeProvider, type RecordedRequest } from './helpers/fake-provider.js'

const IC = 'ic_sdk_compat_token_0123456789'
const REAL_OPENAI = 'sk-proj-sdk-compat-openai-canary'
const REAL_ANTHROPIC = 'sk-ant-sdk-compat-anthropic-canary'
const ANSWER = 'Hello from the fake provider.'

let openaiUp: FakeProvider
let anthropicUp: FakeProvider
let keyServers: FakeKeyServer[] = []
let openaiRouter: LlmRouter
let anthropicRouter: LlmRouter

beforeAll(async () => {
  openaiUp = await startFakeProvider({ expectedKey: REAL_OPENAI })
  anthropicUp = await startFakeProvider({ expectedKey: REAL_ANTHROPIC })
  const openaiKeys = await startFakeKeyServer({ icToken: IC, key: REAL_OPENAI, baseUrl: openaiUp.url })
  const anthropicKeys = await startFakeKeyServer({ icToken: IC, key: REAL_ANTHROPIC, baseUrl: anthropicUp.url })
  keyServers = [openaiKeys, anthropicKeys]
  openaiRouter = await LlmRouter.create({ apiKey: IC, serverUrl: openaiKeys.url })
  anthropicRouter = await LlmRouter.create({ apiKey: IC, serverUrl: anthropicKeys.url })
})

afterAll(async () => {
  await Promise.all([openaiRouter?.stop(), anthropicRouter?.stop()])
  await Promise.all([openaiUp.close(), anthropicUp.close(), ...keyServers.map((k) => k.close())])
})

afterEach(() => {
  openaiUp.reset()
  anthropicUp.reset()
})

/** The one request the provider saw, with the real key and never the Iron Cage token. */
function onlyRequest(up: FakeProvider, path: string): RecordedRequest {
  expect(up.requests.map((r) => r.path)).toEqual([path])
  const seen = up.requests[0]!
  expect(seen.apiKey).toBe(up === openaiUp ? REAL_OPENAI : REAL_ANTHROPIC)
  expect(JSON.stringify(seen.headers)).not.toContain(IC)
  return seen
}

describe('openai SDK', () => {
  const client = () => new OpenAI({ ...openaiRouter.openaiClientOptions(), maxRetries: 0 })

  it('chat completion', async () => {
    const r = await client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello' }] })
    expect(r.choices[0]?.message.content).toBe(ANSWER)
    // 'Say hello' is 9 chars: 10 + round(9 / 4) = 12 prompt tokens; 20 completion tokens by default.
    expect(r.usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 20 })
    expect(onlyRequest(openaiUp, '/v1/chat/completions').headers['authorization']).toBe(`Bearer ${REAL_OPENAI}`)
  })

  it('streamed chat completion', async () => {
    const stream = await client().chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'Say hello' }] })
    const pieces: string[] = []
    for await (const chunk of stream) pieces.push(chunk.choices[0]?.delta.content ?? '')
    // The router may hold text back for its streaming PII scan, so only the joined text is exact.
    expect(pieces.join('')).toBe(ANSWER)
    onlyRequest(openaiUp, '/v1/chat/completions')
  })

  it('Responses API, JSON', async () => {
    const r = await client().responses.create({ model: 'gpt-4.1', input: 'Say hello' })
    expect(r.output_text).toBe(ANSWER)
    expect(r.usage).toMatchObject({ input_tokens: 12, output_tokens: 20, total_tokens: 32 })
    expect(onlyRequest(openaiUp, '/v1/responses').json).toMatchObject({ model: 'gpt-4.1', input: 'Say hello' })
  })

  it('Responses API, streamed', async () => {
    const stream = client().responses.stream({ model: 'gpt-4.1', input: 'Say hello' })
    const deltas: string[] = []
    stream.on('response.output_text.delta', (e) => deltas.push(e.delta))
    const final = await stream.finalResponse()
    expect(deltas.join('')).toBe(ANSWER)
    expect(final.output[0]).toMatchObject({ type: 'message', content: [{ type: 'output_text', text: ANSWER }] })
    expect(final.usage?.output_tokens).toBe(20)
    expect(onlyRequest(openaiUp, '/v1/responses').json.stream).toBe(true)
  })

  it('embeddings (the SDK asks for base64 and decodes float32)', async () => {
    const r = await client().embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'], dimensions: 4 })
    // The fake's vector: element d of input i is ((i + 1) * (d + 3) % 17) / 17 - 0.5.
    const expected = [
      [3 / 17 - 0.5, 4 / 17 - 0.5, 5 / 17 - 0.5, 6 / 17 - 0.5],
      [6 / 17 - 0.5, 8 / 17 - 0.5, 10 / 17 - 0.5, 12 / 17 - 0.5],
    ]
    expect(r.data).toHaveLength(2)
    r.data.forEach((d, i) => d.embedding.forEach((x, j) => expect(x).toBeCloseTo(expected[i]![j]!, 5)))
    expect(r.usage.prompt_tokens).toBe(11) // 'a' + 'b' = 2 chars: 10 + round(0.5)
    expect(onlyRequest(openaiUp, '/v1/embeddings').json.encoding_format).toBe('base64')
  })

  it('reads OPENAI_BASE_URL and OPENAI_API_KEY from router.env()', async () => {
    const saved = { ...process.env }
    Object.assign(process.env, openaiRouter.env())
    try {
      const r = await new OpenAI({ maxRetries: 0 }).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
      expect(r.choices[0]?.message.content).toBe(ANSWER)
    } finally {
      process.env = saved
    }
    onlyRequest(openaiUp, '/v1/chat/completions')
  })
})

describe('@anthropic-ai/sdk', () => {
  const client = () => new Anthropic({ ...anthropicRouter.anthropicClientOptions(), maxRetries: 0 })

  it('message', async () => {
    const m = await client().messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Say hello' }] })
    expect(m.content).toEqual([expect.objectContaining({ type: 'text', text: ANSWER })])
    expect(m.usage).toMatchObject({ input_tokens: 12, output_tokens: 20 })
    const seen = onlyRequest(anthropicUp, '/v1/messages')
    expect(seen.headers['x-api-key']).toBe(REAL_ANTHROPIC)
    expect(seen.headers['anthropic-version']).toMatch(/^\d{4}-\d{2}-\d{2}$/)
  })

  it('streamed message', async () => {
    const stream = client().messages.stream({ model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Say hello' }] })
    const pieces: string[] = []
    stream.on('text', (t) => pieces.push(t))
    const final = await stream.finalMessage()
    expect(pieces.join('')).toBe(ANSWER)
    expect(final.usage.output_tokens).toBe(20)
    expect(onlyRequest(anthropicUp, '/v1/messages').json.stream).toBe(true)
  })

  it('count_tokens', async () => {
    const r = await client().messages.countTokens({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'Say hello' }] })
    expect(r.input_tokens).toBe(12)
    onlyRequest(anthropicUp, '/v1/messages/count_tokens')
  })

  it('reads ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY from router.env()', async () => {
    const saved = { ...process.env }
    Object.assign(process.env, anthropicRouter.env())
    try {
      const m = await new Anthropic({ maxRetries: 0 }).messages.create({ model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })
      expect(m.content[0]).toMatchObject({ text: ANSWER })
    } finally {
      process.env = saved
    }
    onlyRequest(anthropicUp, '/v1/messages')
  })
})

describe('Vercel AI SDK', () => {
  const openai = () => createOpenAI({ baseURL: openaiRouter.baseUrl, apiKey: openaiRouter.apiKey })
  // @ai-sdk/anthropic's base URL includes /v1 (it appends /messages).
  const anthropic = () => createAnthropic({ baseURL: anthropicRouter.baseUrl, apiKey: anthropicRouter.apiKey })

  it('generateText with @ai-sdk/openai (Responses API, its default)', async () => {
    const r = await generateText({ model: openai()('gpt-4.1'), prompt: 'Say hello', maxRetries: 0 })
    expect(r.text).toBe(ANSWER)
    expect(r.usage.inputTokens).toBe(12)
    expect(r.usage.outputTokens).toBe(20)
    onlyRequest(openaiUp, '/v1/responses')
  })

  it('generateText with @ai-sdk/openai chat completions', async () => {
    const r = await generateText({ model: openai().chat('gpt-4o-mini'), prompt: 'Say hello', maxRetries: 0 })
    expect(r.text).toBe(ANSWER)
    onlyRequest(openaiUp, '/v1/chat/completions')
  })

  it('streamText with @ai-sdk/openai', async () => {
    const errors: unknown[] = []
    const r = streamText({ model: openai()('gpt-4.1'), prompt: 'Say hello', maxRetries: 0, onError: ({ error }) => void errors.push(error) })
    const pieces: string[] = []
    for await (const t of r.textStream) pieces.push(t)
    expect(errors).toEqual([])
    expect(pieces.join('')).toBe(ANSWER)
    expect((await r.usage).outputTokens).toBe(20)
    expect(onlyRequest(openaiUp, '/v1/responses').json.stream).toBe(true)
  })

  it('generateText with @ai-sdk/anthropic', async () => {
    const r = await generateText({ model: anthropic()('claude-sonnet-4-5'), prompt: 'Say hello', maxRetries: 0 })
    expect(r.text).toBe(ANSWER)
    expect(r.usage.outputTokens).toBe(20)
    expect(onlyRequest(anthropicUp, '/v1/messages').headers['x-api-key']).toBe(REAL_ANTHROPIC)
  })

  it('streamText with @ai-sdk/anthropic', async () => {
    const errors: unknown[] = []
    const r = streamText({ model: anthropic()('claude-haiku-4-5'), prompt: 'Say hello', maxRetries: 0, onError: ({ error }) => void errors.push(error) })
    const pieces: string[] = []
    for await (const t of r.textStream) pieces.push(t)
    expect(errors).toEqual([])
    expect(pieces.join('')).toBe(ANSWER)
    expect(onlyRequest(anthropicUp, '/v1/messages').json.stream).toBe(true)
  })
})

describe('LangChain JS', () => {
  const chatOpenAI = () =>
    new ChatOpenAI({ model: 'gpt-4o-mini', apiKey: openaiRouter.apiKey, configuration: { baseURL: openaiRouter.baseUrl }, maxRetries: 0 })
  const chatAnthropic = () =>
    new ChatAnthropic({ model: 'claude-sonnet-4-5', apiKey: anthropicRouter.apiKey, anthropicApiUrl: anthropicRouter.anthropicBaseUrl, maxRetries: 0 })

  it('ChatOpenAI invoke', async () => {
    const m = await chatOpenAI().invoke('Say hello')
    expect(m.content).toBe(ANSWER)
    expect(m.usage_metadata).toMatchObject({ input_tokens: 12, output_tokens: 20 })
    onlyRequest(openaiUp, '/v1/chat/completions')
  })

  it('ChatOpenAI stream', async () => {
    const pieces: string[] = []
    for await (const chunk of await chatOpenAI().stream('Say hello')) pieces.push(String(chunk.content))
    expect(pieces.join('')).toBe(ANSWER)
    expect(onlyRequest(openaiUp, '/v1/chat/completions').json.stream).toBe(true)
  })

  it('ChatAnthropic invoke', async () => {
    const m = await chatAnthropic().invoke('Say hello')
    expect(m.content).toBe(ANSWER)
    expect(m.usage_metadata).toMatchObject({ input_tokens: 12, output_tokens: 20 })
    expect(onlyRequest(anthropicUp, '/v1/messages').headers['x-api-key']).toBe(REAL_ANTHROPIC)
  })

  it('ChatAnthropic stream', async () => {
    const pieces: string[] = []
    for await (const chunk of await chatAnthropic().stream('Say hello')) {
      if (typeof chunk.content === 'string') pieces.push(chunk.content)
      else for (const part of chunk.content) if (part.type === 'text' || part.type === 'text_delta') pieces.push(String((part as { text?: string }).text ?? ''))
    }
    expect(pieces.join('')).toBe(ANSWER)
    expect(onlyRequest(anthropicUp, '/v1/messages').json.stream).toBe(true)
  })
})
