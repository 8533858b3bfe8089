// PII and secret policy end to end through the real openai and @anthropic-ai/sdk clients: secrets in prompts are
// refused before anything leaves the machine, redaction rewrites what the provider sees, streamed and JSON answers are
// redacted (values split down to one character per chunk), a blocked answer ends the stream with an SDK error, `pii`
// events carry SHA-256 digests only, and redaction does not hold a stream back.
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { createHash, createHmac } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { LlmRouter } from '../src-ts/index.js'
import type { BlockedEvent, PiiEvent } from '../src-ts/events.js'
import type { SafetyOptions } from '../src-ts/options.js'
import { startFakeKeyServer, type FakeKeyServer } from './helpers/fake-key-server.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'

const IC = 'ic_pii_e2e_token_7c3d'
const OPENAI_KEY = 'sk-test-pii-openai-upstream'
const ANTHROPIC_KEY = 'sk-test-pii-anthropic-upstream'

// Values the recognizers accept (checksums, issuer prefixes, randomness) and that appear nowhere else in the tests.
const AWS_KEY = 'AKIAZ7Q3M5R2T8W4X6Y9'
const GITHUB_TOKEN = 'ghp_8fK2mQ9xL4vT7nR1pZ6wB3yH5cJ0dA2sE4gU'
const OPENAI_PROJECT_KEY = 'sk-proj-Xa9dK2LmQ7vB3nR8tY1wZ5cF6gH0jP4sU2eV7iO'
const EMAIL = 'jane.doe@example.com'
const CARD = '4111 1111 1111 1111'
const CARD_DIGITS = '4111111111111111'

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex')
// Digests in pii events are HMAC-SHA256 under safety.digestKey (a random key per router without it).
const DIGEST_KEY = 'pii-e2e-digest-key-8b2f'
const digest = (s: string): string => createHmac('sha256', DIGEST_KEY).update(s, 'utf8').digest('hex')

let openaiUp: FakeProvider
let anthropicUp: FakeProvider
let openaiKeys: FakeKeyServer
let anthropicKeys: FakeKeyServer
const routers: LlmRouter[] = []

beforeAll(async () => {
  openaiUp = await startFakeProvider({ expectedKey: OPENAI_KEY })
  anthropicUp = await startFakeProvider({ expectedKey: ANTHROPIC_KEY })
  openaiKeys = await startFakeKeyServer({ icToken: IC, key: OPENAI_KEY, provider: 'openai', baseUrl: openaiUp.url })
  anthropicKeys = await startFakeKeyServer({ icToken: IC, key: ANTHROPIC_KEY, provider: 'anthropic', baseUrl: anthropicUp.url })
})

afterAll(async () => {
  await Promise.all([openaiUp.close(), anthropicUp.close(), openaiKeys.close(), anthropicKeys.close()])
})

afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.stop()))
  openaiUp.reset()
  anthropicUp.reset()
})

interface Setup {
  router: LlmRouter
  pii: PiiEvent[]
  blocked: BlockedEvent[]
  openai: OpenAI
  anthropic: Anthropic
}

/** A router for one provider with the given safety option, recording `pii` and `blocked` events. */
async function setup(provider: 'openai' | 'anthropic', safety?: SafetyOptions): Promise<Setup> {
  const keys = provider === 'openai' ? openaiKeys : anthropicKeys
  const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url, safety: { ...safety, digestKey: DIGEST_KEY } })
  routers.push(router)
  const pii: PiiEvent[] = []
  const blocked: BlockedEvent[] = []
  router.on('pii', (e) => pii.push(e))
  router.on('blocked', (e) => blocked.push(e))
  return {
    router,
    pii,
    blocked,
    openai: new OpenAI({ ...router.openaiClientOptions(), maxRetries: 0 }),
    anthropic: new Anthropic({ ...router.anthropicClientOptions(), maxRetries: 0 }),
  }
}

/** Waits until `pred` holds (events arrive asynchronously from the native side). */
async function until(what: string, pred: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error & { status?: number }> {
  try {
    await p
  } catch (e) {
    return e as Error & { status?: number }
  }
  throw new Error('expected the call to be refused')
}

/** Every character of `s` as its own piece. */
const perChar = (s: string): string[] => Array.from(s)

describe('secrets in requests are blocked by default', () => {
  it('OpenAI SDK: an AWS key id in a chat message is refused with 400 naming type and count; nothing is forwarded', async () => {
    const s = await setup('openai')
    const err = await rejection(
      s.openai.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [
          { role: 'system', content: 'You are helpful.' },
          { role: 'user', content: `deploy with ${AWS_KEY} please` },
        ],
      }),
    )
    expect(err).toBeInstanceOf(OpenAI.BadRequestError)
    expect(err.status).toBe(400)
    expect(err.message).toContain('secret ×1 (AWS access key id)')
    expect(err.message).not.toContain(AWS_KEY)
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('pii_detected')
    expect(openaiUp.requests).toHaveLength(0)
    await until('blocked event', () => s.blocked.length === 1 && s.pii.length === 1)
    expect(s.blocked[0]).toMatchObject({ reason: 'pii', code: 'PII_BLOCKED' })
    expect(s.blocked[0]!.message).not.toContain(AWS_KEY)
    expect(s.pii[0]).toMatchObject({ direction: 'request', detections: [{ kind: 'secret', count: 1, action: 'block', sha256: [digest(AWS_KEY)] }] })
    expect(digest(AWS_KEY)).not.toBe(sha256(AWS_KEY))
    expect(JSON.stringify([s.pii, s.blocked])).not.toContain(AWS_KEY)
  })

  it('OpenAI SDK: a secret in a Responses input and in streamed chat is refused too; the provider sees nothing', async () => {
    const s = await setup('openai')
    const e1 = await rejection(s.openai.responses.create({ model: 'gpt-4o-mini', instructions: 'Be brief.', input: `token ${GITHUB_TOKEN}` }))
    expect(e1).toBeInstanceOf(OpenAI.BadRequestError)
    expect(e1.message).toContain('secret ×1 (GitHub token)')
    expect(e1.message).not.toContain(GITHUB_TOKEN)
    const e2 = await rejection(
      s.openai.chat.completions.create({
        model: 'gpt-4o-mini',
        stream: true,
        messages: [{ role: 'user', content: [{ type: 'text', text: `key=${OPENAI_PROJECT_KEY}` }] }],
      }),
    )
    expect(e2).toBeInstanceOf(OpenAI.BadRequestError)
    expect(e2.message).toContain('secret ×1 (OpenAI key)')
    expect(e2.message).not.toContain(OPENAI_PROJECT_KEY)
    expect(openaiUp.requests).toHaveLength(0)
  })

  it('Anthropic SDK: secrets in the system prompt and a tool result are refused with 400 naming both', async () => {
    const s = await setup('anthropic')
    const err = await rejection(
      s.anthropic.messages.create({
        model: 'claude-3-5-haiku-latest',
        max_tokens: 64,
        system: [{ type: 'text', text: `Use ${GITHUB_TOKEN} for the repo.` }],
        messages: [
          { role: 'user', content: 'read the env' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'env', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: `AWS=${AWS_KEY}` }] }] },
        ],
      }),
    )
    expect(err).toBeInstanceOf(Anthropic.BadRequestError)
    expect(err.status).toBe(400)
    expect(err.message).toContain('pii_detected')
    expect(err.message).toContain('secret ×2 (AWS access key id, GitHub token)')
    expect(err.message).not.toContain(GITHUB_TOKEN)
    expect(err.message).not.toContain(AWS_KEY)
    expect(anthropicUp.requests).toHaveLength(0)
    await until('pii event', () => s.pii.length === 1)
    expect(s.pii[0]!.detections).toEqual([{ kind: 'secret', count: 2, action: 'block', sha256: [digest(AWS_KEY), digest(GITHUB_TOKEN)].sort() }])
  })
})

describe('redaction in requests: the provider sees the placeholder', () => {
  it('OpenAI chat: system, user string and content parts; the email never reaches the provider', async () => {
    const s = await setup('openai', { request: { email: 'redact' } })
    const r = await s.openai.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: `Escalate to ${EMAIL}.` },
        { role: 'user', content: `I am ${EMAIL}` },
        { role: 'user', content: [{ type: 'text', text: `cc ${EMAIL}, thanks` }] },
      ],
    })
    expect(r.choices[0]?.message.content).toBe('Hello from the fake provider.')
    expect(openaiUp.requests).toHaveLength(1)
    const seen = openaiUp.requests[0]!
    expect(seen.json.messages).toEqual([
      { role: 'system', content: 'Escalate to [EMAIL].' },
      { role: 'user', content: 'I am [EMAIL]' },
      { role: 'user', content: [{ type: 'text', text: 'cc [EMAIL], thanks' }] },
    ])
    expect(seen.json.model).toBe('gpt-4o-mini')
    expect(seen.body).not.toContain(EMAIL)
    await until('pii event', () => s.pii.length === 1)
    expect(s.pii[0]).toMatchObject({ direction: 'request', detections: [{ kind: 'email', count: 3, action: 'redact', sha256: [digest(EMAIL)] }] })
  })

  it('OpenAI Responses: instructions and input items are redacted', async () => {
    const s = await setup('openai', { request: { email: 'redact' } })
    await s.openai.responses.create({
      model: 'gpt-4o-mini',
      instructions: `Reply to ${EMAIL}`,
      input: [{ role: 'user', content: [{ type: 'input_text', text: `from ${EMAIL}` }] }],
    })
    const seen = openaiUp.requests[0]!
    expect(seen.json.instructions).toBe('Reply to [EMAIL]')
    expect(seen.json.input).toEqual([{ role: 'user', content: [{ type: 'input_text', text: 'from [EMAIL]' }] }])
    expect(seen.body).not.toContain(EMAIL)
  })

  it('Anthropic: system prompt, text blocks, tool_use input and tool_result content are redacted; the rest is untouched', async () => {
    const s = await setup('anthropic', { request: { email: 'redact' } })
    await s.anthropic.messages.create({
      model: 'claude-3-5-haiku-latest',
      max_tokens: 64,
      system: `Support mailbox: ${EMAIL}`,
      messages: [
        { role: 'user', content: [{ type: 'text', text: `Write to ${EMAIL}` }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_9', name: 'send', input: { to: EMAIL, retries: 2 } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_9', content: `sent to ${EMAIL}` }] },
      ],
    })
    expect(anthropicUp.requests).toHaveLength(1)
    const seen = anthropicUp.requests[0]!
    expect(seen.json.system).toBe('Support mailbox: [EMAIL]')
    expect(seen.json.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Write to [EMAIL]' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_9', name: 'send', input: { to: '[EMAIL]', retries: 2 } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_9', content: 'sent to [EMAIL]' }] },
    ])
    expect(seen.json.max_tokens).toBe(64)
    expect(seen.body).not.toContain(EMAIL)
    await until('pii event', () => s.pii.length === 1)
    expect(s.pii[0]!.detections).toEqual([{ kind: 'email', count: 4, action: 'redact', sha256: [digest(EMAIL)] }])
  })

  it('with secret set to redact, the key is replaced and the request goes through', async () => {
    const s = await setup('openai', { request: { secret: 'redact' } })
    await s.openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `use ${OPENAI_PROJECT_KEY} now` }] })
    expect(openaiUp.requests[0]!.json.messages).toEqual([{ role: 'user', content: 'use [SECRET] now' }])
    expect(openaiUp.requests[0]!.body).not.toContain(OPENAI_PROJECT_KEY)
  })
})

// The answer used by the streaming tests and the splits applied to it.
const ANSWER = `Sure. Your card ${CARD} is linked to ${EMAIL} and will be charged today.`
const REDACTED = 'Sure. Your card [CREDIT_CARD] is linked to [EMAIL] and will be charged today.'
const SPLITS: Array<[string, number | string[]]> = [
  ['2 chunks', 2],
  ['3 chunks', 3],
  ['one character per chunk', perChar(ANSWER)],
  // Boundaries inside both values: "4111 11|11 1111 1|111", "jane.d|oe@exa|mple.com".
  ['cuts inside the values', ['Sure. Your card 4111 11', '11 1111 1', '111 is linked to jane.d', 'oe@exa', 'mple.com and will be charged today.']],
]
const REDACT_ANSWERS: SafetyOptions = { response: { creditCard: 'redact', email: 'redact' } }

function expectRedacted(text: string): void {
  expect(text).toBe(REDACTED)
  expect(text.replace(/\s/g, '')).not.toContain(CARD_DIGITS)
  expect(text).not.toContain(EMAIL)
}

describe('redaction in streamed answers', () => {
  for (const [name, chunks] of SPLITS) {
    it(`OpenAI chat stream, ${name}`, async () => {
      const s = await setup('openai', REDACT_ANSWERS)
      openaiUp.behaviour.text = ANSWER
      openaiUp.behaviour.chunks = chunks
      const stream = await s.openai.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] })
      let text = ''
      let finish: string | null = null
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? ''
        finish = chunk.choices[0]?.finish_reason ?? finish
      }
      expectRedacted(text)
      expect(finish).toBe('stop')
      await until('pii event', () => s.pii.length === 1)
      expect(s.pii[0]).toMatchObject({ direction: 'response' })
      // One entry per kind, in the documented kind order (email, phone, creditCard, …).
      expect(s.pii[0]!.detections).toEqual([
        { kind: 'email', count: 1, action: 'redact', sha256: [digest(EMAIL)] },
        { kind: 'creditCard', count: 1, action: 'redact', sha256: [digest(CARD)] },
      ])
    })

    it(`OpenAI Responses stream, ${name}`, async () => {
      const s = await setup('openai', REDACT_ANSWERS)
      openaiUp.behaviour.text = ANSWER
      openaiUp.behaviour.chunks = chunks
      const stream = await s.openai.responses.create({ model: 'gpt-4o-mini', stream: true, input: 'hi' })
      let deltas = ''
      let done = ''
      let completed = ''
      for await (const ev of stream) {
        if (ev.type === 'response.output_text.delta') deltas += ev.delta
        if (ev.type === 'response.output_text.done') done = ev.text
        if (ev.type === 'response.completed') {
          for (const item of ev.response.output) if (item.type === 'message') for (const c of item.content) if (c.type === 'output_text') completed += c.text
        }
      }
      expectRedacted(deltas)
      expectRedacted(done)
      expectRedacted(completed)
    })

    it(`Anthropic stream, ${name}`, async () => {
      const s = await setup('anthropic', REDACT_ANSWERS)
      anthropicUp.behaviour.text = ANSWER
      anthropicUp.behaviour.chunks = chunks
      const stream = s.anthropic.messages.stream({ model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
      let text = ''
      stream.on('text', (t) => {
        text += t
      })
      const final = await stream.finalMessage()
      expectRedacted(text)
      expect(final.content.map((b) => (b.type === 'text' ? b.text : b.type))).toEqual([REDACTED])
      await until('pii event', () => s.pii.length === 1)
      expect(s.pii[0]!.detections.map((d) => [d.kind, d.count, d.action, d.sha256])).toEqual([
        ['email', 1, 'redact', [digest(EMAIL)]],
        ['creditCard', 1, 'redact', [digest(CARD)]],
      ])
    })
  }

  it('a secret in a streamed answer is redacted by default', async () => {
    const s = await setup('openai')
    openaiUp.behaviour.text = `Your key is ${OPENAI_PROJECT_KEY} keep it safe.`
    openaiUp.behaviour.chunks = 7
    const stream = await s.openai.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
    expect(text).toBe('Your key is [SECRET] keep it safe.')
  })
})

describe('block in streamed answers ends the stream with an SDK error', () => {
  const BLOCK_CARDS: SafetyOptions = { response: { creditCard: 'block' } }

  it('OpenAI chat stream: the SDK throws, the card was never delivered', async () => {
    const s = await setup('openai', BLOCK_CARDS)
    openaiUp.behaviour.text = ANSWER
    openaiUp.behaviour.chunks = perChar(ANSWER)
    const stream = await s.openai.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    let text = ''
    const err = await rejection(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
      })(),
    )
    expect(err).toBeInstanceOf(OpenAI.APIError)
    expect(err.message).toContain('creditCard ×1')
    expect(err.message).not.toContain(CARD)
    expect(text.startsWith('Sure. Your card')).toBe(true)
    expect(text.replace(/\s/g, '')).not.toMatch(/4111111/)
    await until('pii event', () => s.pii.length === 1)
    expect(s.pii[0]!.detections).toEqual([{ kind: 'creditCard', count: 1, action: 'block', sha256: [digest(CARD)] }])
  })

  it('Anthropic stream: the SDK throws, the card was never delivered', async () => {
    const s = await setup('anthropic', BLOCK_CARDS)
    anthropicUp.behaviour.text = ANSWER
    anthropicUp.behaviour.chunks = 3
    const stream = await s.anthropic.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi' }] })
    let text = ''
    const err = await rejection(
      (async () => {
        for await (const ev of stream) {
          if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text
        }
      })(),
    )
    expect(err).toBeInstanceOf(Anthropic.APIError)
    expect(err.message).toContain('pii_detected')
    expect(err.message).toContain('creditCard ×1')
    expect(err.message).not.toContain(CARD)
    expect(text.replace(/\s/g, '')).not.toMatch(/4111111/)
  })
})

describe('redaction in non-streamed JSON answers', () => {
  it('OpenAI chat and Responses', async () => {
    const s = await setup('openai', REDACT_ANSWERS)
    openaiUp.behaviour.text = ANSWER
    const chat = await s.openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    expect(chat.choices[0]?.message.content).toBe(REDACTED)
    expect(chat.usage?.completion_tokens).toBe(20)
    const resp = await s.openai.responses.create({ model: 'gpt-4o-mini', input: 'hi' })
    expect(resp.output_text).toBe(REDACTED)
    await until('pii events', () => s.pii.length === 2)
    for (const e of s.pii) {
      expect(e.direction).toBe('response')
      expect(e.detections.map((d) => d.sha256[0])).toEqual([digest(EMAIL), digest(CARD)])
    }
    expect(JSON.stringify(s.pii)).not.toContain(EMAIL)
    expect(JSON.stringify(s.pii)).not.toContain(CARD)
  })

  it('Anthropic messages', async () => {
    const s = await setup('anthropic', REDACT_ANSWERS)
    anthropicUp.behaviour.text = ANSWER
    const msg = await s.anthropic.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
    expect(msg.content).toEqual([{ type: 'text', text: REDACTED }])
    expect(msg.usage.output_tokens).toBe(20)
  })

  it('block on a JSON answer refuses it with a provider-shaped error', async () => {
    const s = await setup('anthropic', { response: { email: 'block' } })
    anthropicUp.behaviour.text = ANSWER
    const err = await rejection(s.anthropic.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] }))
    expect(err).toBeInstanceOf(Anthropic.BadRequestError)
    expect(err.message).toContain('email ×1')
    expect(err.message).not.toContain(EMAIL)
    expect(anthropicUp.requests).toHaveLength(1)
  })
})

describe('redaction does not hold a stream back', () => {
  // Ten ordinary words, one per chunk, 100 ms apart: the stream lasts about a second upstream.
  const SLOW = 'The quick brown fox jumps over the lazy dog today.'

  it('OpenAI chat: the first words arrive long before the stream ends', async () => {
    const s = await setup('openai', { response: { default: 'redact' } })
    openaiUp.behaviour.text = SLOW
    openaiUp.behaviour.chunkDelayMs = 100
    const start = Date.now()
    const stream = await s.openai.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    const arrivals: Array<[number, string]> = []
    let text = ''
    for await (const chunk of stream) {
      const t = chunk.choices[0]?.delta.content ?? ''
      if (t) arrivals.push([Date.now() - start, t])
      text += t
    }
    const end = Date.now() - start
    expect(text).toBe(SLOW)
    const firstWord = arrivals.find(([, t]) => t.includes('quick'))!
    expect(firstWord).toBeDefined()
    // "quick" is the second chunk (sent ~100 ms in); it must not wait for the ~1 s stream to finish.
    expect(firstWord[0]).toBeLessThan(450)
    expect(end - firstWord[0]).toBeGreaterThan(500)
    expect(arrivals.length).toBeGreaterThanOrEqual(8)
  })

  it('Anthropic: the first words arrive long before the stream ends', async () => {
    const s = await setup('anthropic', { response: { default: 'redact' } })
    anthropicUp.behaviour.text = SLOW
    anthropicUp.behaviour.chunkDelayMs = 100
    const start = Date.now()
    const stream = await s.anthropic.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi' }] })
    const arrivals: Array<[number, string]> = []
    let text = ''
    for await (const ev of stream) {
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') {
        arrivals.push([Date.now() - start, ev.delta.text])
        text += ev.delta.text
      }
    }
    const end = Date.now() - start
    expect(text).toBe(SLOW)
    const firstWord = arrivals.find(([, t]) => t.includes('quick'))!
    expect(firstWord[0]).toBeLessThan(450)
    expect(end - firstWord[0]).toBeGreaterThan(500)
  })
})
