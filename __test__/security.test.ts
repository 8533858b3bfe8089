// Security end to end through the JS API and the real SDKs: options that would send keys over plain http are refused,
// the local port refuses rebinding hosts and browser pages, a redirecting provider cannot pull the key (or the Iron Cage
// token) to another host, and no broken provider or key server answer stops the router from serving the next call.
// The Rust tests (crates/iron_runtime/tests/security_*.rs) cover the same limits byte by byte.
import http from 'node:http'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { IronCageError, LlmRouter, type LlmRouterOptions } from '../src-ts/index.js'
import { startFakeKeyServer, type FakeKeyServer } from './helpers/fake-key-server.js'
import { startFakeProvider, type FakeProvider } from './helpers/fake-provider.js'

const IC = 'ic_security_test_token_77d0'
const OPENAI_KEY = 'sk-proj-security-openai-real'
const ANTHROPIC_KEY = 'sk-ant-security-anthropic-real'
const CHAT = { model: 'gpt-4o-mini', max_tokens: 20, messages: [{ role: 'user' as const, content: 'Say hello.' }] }
const MSG = { model: 'claude-sonnet-4-5', max_tokens: 20, messages: [{ role: 'user' as const, content: 'Say hello.' }] }
const FAST = {
  retry: { maxRetries: 0 },
  breaker: { consecutiveFailures: 1000, minimumCalls: 1000 },
  timeouts: { connectMs: 1000, firstByteMs: 500, idleMs: 500, totalMs: 5000 },
}

let up: FakeProvider
let anthropicUp: FakeProvider
let elsewhere: FakeProvider
let keys: FakeKeyServer
let anthropicKeys: FakeKeyServer

beforeAll(async () => {
  up = await startFakeProvider({ expectedKey: OPENAI_KEY })
  anthropicUp = await startFakeProvider({ expectedKey: ANTHROPIC_KEY })
  elsewhere = await startFakeProvider({ expectedKey: 'nobody' })
  keys = await startFakeKeyServer({ icToken: IC, key: OPENAI_KEY, provider: 'openai', baseUrl: up.url })
  anthropicKeys = await startFakeKeyServer({ icToken: IC, key: ANTHROPIC_KEY, provider: 'anthropic', baseUrl: anthropicUp.url })
})

afterAll(async () => {
  await Promise.all([up.close(), anthropicUp.close(), elsewhere.close(), keys.close(), anthropicKeys.close()])
})

afterEach(() => {
  up.reset()
  anthropicUp.reset()
  elsewhere.reset()
})

async function withRouter<T>(opts: Partial<LlmRouterOptions>, fn: (r: LlmRouter) => Promise<T>): Promise<T> {
  const router = await LlmRouter.create({ apiKey: IC, serverUrl: keys.url, reliability: FAST, ...opts } as LlmRouterOptions)
  try {
    return await fn(router)
  } finally {
    const t = Date.now()
    await router.stop()
    expect(Date.now() - t).toBeLessThan(3000)
  }
}

/** A raw HTTP request with exactly the given headers (fetch would not let us set Host). */
function rawRequest(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function healthy(router: LlmRouter): Promise<void> {
  const t = Date.now()
  const res = await fetch(`${router.anthropicBaseUrl}/`)
  expect(await res.text()).toBe('LlmRouter OK')
  expect(Date.now() - t).toBeLessThan(1000)
}

const openai = (r: LlmRouter) => new OpenAI({ ...r.openaiClientOptions(), maxRetries: 0, timeout: 10_000 })

describe('options that would expose keys are refused', () => {
  const refused = (opts: Record<string, unknown>, field: string) => {
    let err: unknown
    try {
      new LlmRouter(opts as unknown as LlmRouterOptions)
    } catch (e) {
      err = e
    }
    expect(err, JSON.stringify(opts)).toBeInstanceOf(IronCageError)
    expect((err as IronCageError).code).toBe('INVALID_OPTIONS')
    expect((err as IronCageError).message).toContain(field)
    expect((err as IronCageError).message).not.toContain('sk-should-not-echo')
  }

  it('plain http to a non-loopback host, other schemes and credentials in URLs', () => {
    refused({ apiKey: IC, serverUrl: 'http://keys.example.com' }, 'serverUrl')
    refused({ apiKey: IC, serverUrl: 'ftp://127.0.0.1' }, 'serverUrl')
    refused({ apiKey: IC, serverUrl: 'http://127.0.0.1.nip.io:8080' }, 'serverUrl')
    refused({ apiKey: IC, serverUrl: 'https://user:pw@keys.example.com' }, 'serverUrl')
    refused({ providerKey: 'sk-should-not-echo', providerBaseUrl: 'http://api.openai.com' }, 'providerBaseUrl')
    refused({ providerKey: 'sk-should-not-echo', providerBaseUrl: 'http://169.254.169.254' }, 'providerBaseUrl')
    refused({ apiKey: IC, serverUrl: keys.url, dashboardUrl: 'ws://dashboard.example.com' }, 'dashboardUrl')
  })

  it('https anywhere and plain http on loopback are accepted', async () => {
    for (const opts of [
      { apiKey: IC, serverUrl: 'https://keys.example.com' },
      { providerKey: 'sk-x', providerBaseUrl: 'https://api.openai.com' },
      { providerKey: 'sk-x', providerBaseUrl: 'http://localhost:9' },
      { providerKey: 'sk-x', providerBaseUrl: 'http://[::1]:9' },
    ]) {
      const r = new LlmRouter(opts as LlmRouterOptions)
      await r.stop()
    }
  })
})

describe('the local port', () => {
  it('refuses DNS-rebinding hosts before auth, and serves loopback names', async () => {
    await withRouter({}, async (router) => {
      const port = router.port
      for (const host of [`attacker.example:${port}`, `localhost.attacker.example:${port}`, `127.0.0.1:${port + 1}`]) {
        const res = await rawRequest(port, 'POST', '/v1/chat/completions', { host, authorization: `Bearer ${IC}`, 'content-type': 'application/json' }, JSON.stringify(CHAT))
        expect(res.status, host).toBe(403)
        expect(res.body).toContain('DNS rebinding')
      }
      expect(up.hits).toBe(0)
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`]) {
        expect((await rawRequest(port, 'GET', '/', { host })).status).toBe(200)
      }
    })
  })

  it('refuses pages from unlisted origins and answers the listed one without a wildcard', async () => {
    await withRouter({ allowedOrigins: ['http://localhost:5173'] }, async (router) => {
      const port = router.port
      const host = `127.0.0.1:${port}`
      const post = (extra: Record<string, string>) =>
        rawRequest(port, 'POST', '/v1/chat/completions', { host, authorization: `Bearer ${IC}`, 'content-type': 'application/json', ...extra }, JSON.stringify(CHAT))
      const evil = await post({ origin: 'https://evil.example' })
      expect(evil.status).toBe(403)
      expect(evil.body).toContain('allowedOrigins')
      expect(evil.headers['access-control-allow-origin']).toBeUndefined()
      expect((await post({ 'sec-fetch-site': 'cross-site' })).status).toBe(403)
      expect((await rawRequest(port, 'OPTIONS', '/v1/chat/completions', { host, origin: 'https://evil.example', 'access-control-request-method': 'POST' })).status).toBe(403)
      expect((await rawRequest(port, 'OPTIONS', '/v1/chat/completions', { host })).status).toBe(403)
      expect(up.hits).toBe(0)

      const pre = await rawRequest(port, 'OPTIONS', '/v1/chat/completions', { host, origin: 'http://localhost:5173', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' })
      expect(pre.status).toBe(204)
      expect(pre.headers['access-control-allow-origin']).toBe('http://localhost:5173')
      expect(up.hits).toBe(0)
      const ok = await post({ origin: 'http://localhost:5173' })
      expect(ok.status).toBe(200)
      expect(ok.headers['access-control-allow-origin']).toBe('http://localhost:5173')
      // The listed origin still needs the token.
      const noToken = await rawRequest(port, 'POST', '/v1/chat/completions', { host, origin: 'http://localhost:5173', 'content-type': 'application/json' }, JSON.stringify(CHAT))
      expect(noToken.status).toBe(401)
    })
  })

  it('rate-limits token guessing without slowing the right token', async () => {
    await withRouter({}, async (router) => {
      const guess = (i: number) => fetch(`${router.baseUrl}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ic_guess_${i}`, 'content-type': 'application/json' }, body: JSON.stringify(CHAT) })
      const statuses: number[] = []
      for (let i = 0; i < 22; i++) statuses.push((await guess(i)).status)
      expect(statuses.slice(0, 20).every((s) => s === 401)).toBe(true)
      expect(statuses.slice(20)).toEqual([429, 429])
      const res = await openai(router).chat.completions.create(CHAT)
      expect(res.choices[0]?.message.content).toBe('Hello from the fake provider.')
    })
  })
})

describe('a redirecting provider', () => {
  it('is not followed: the real key never reaches the other host', async () => {
    await withRouter({}, async (router) => {
      up.behaviour.fault = { status: 302, headers: { location: `${elsewhere.url}/v1/chat/completions` }, body: '' }
      const res = await fetch(`${router.baseUrl}/chat/completions`, { method: 'POST', redirect: 'manual', headers: { authorization: `Bearer ${IC}`, 'content-type': 'application/json' }, body: JSON.stringify(CHAT) })
      await res.arrayBuffer()
      expect(res.status).not.toBe(200)
      expect(up.hits).toBe(1)
      expect(elsewhere.hits).toBe(0)
    })
  })

  it('cannot make an SDK carry the Iron Cage token to the other host', async () => {
    // SDKs follow redirects themselves; a relayed Location would send the token (x-api-key survives cross-host
    // redirects in fetch) to whatever host the provider named.
    await withRouter({ serverUrl: anthropicKeys.url }, async (router) => {
      anthropicUp.behaviour.fault = { status: 307, headers: { location: `${elsewhere.url}/v1/messages` }, body: '' }
      const client = new Anthropic({ ...router.anthropicClientOptions(), maxRetries: 0, timeout: 5000 })
      await client.messages.create(MSG).catch(() => undefined)
      const leaked = elsewhere.requests.filter((r) => JSON.stringify(r.headers).includes(IC) || JSON.stringify(r.headers).includes(ANTHROPIC_KEY))
      expect(leaked.map((r) => r.path)).toEqual([])
    })
  })
})

describe('broken upstreams never stop the router', () => {
  const normalCallWorks = async (router: LlmRouter) => {
    up.reset()
    await healthy(router)
    const res = await openai(router).chat.completions.create(CHAT)
    expect(res.choices[0]?.message.content).toBe('Hello from the fake provider.')
    const stream = await openai(router).chat.completions.create({ ...CHAT, stream: true })
    let text = ''
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? ''
    expect(text).toBe('Hello from the fake provider.')
    expect(router.budgetStatus.reservedUsd).toBe(0)
  }

  it('malformed JSON, broken and huge SSE, resets, hangs and error statuses', async () => {
    await withRouter({ budgetUsd: 50 }, async (router) => {
      const cases: Array<{ what: string; stream: boolean; set: () => void }> = [
        { what: 'malformed JSON', stream: false, set: () => (up.behaviour.fault = 'malformed-json') },
        { what: 'malformed SSE', stream: true, set: () => (up.behaviour.fault = 'malformed-json') },
        { what: 'reset mid-stream', stream: true, set: () => (up.behaviour.fault = 'reset-mid-stream') },
        { what: 'reset mid-JSON', stream: false, set: () => (up.behaviour.fault = 'reset-mid-stream') },
        { what: 'hang mid-stream', stream: true, set: () => (up.behaviour.fault = 'hang-mid-stream') },
        { what: 'hang before headers', stream: false, set: () => (up.behaviour.fault = 'hang-before-headers') },
        { what: 'error event', stream: true, set: () => (up.behaviour.fault = 'error-event-mid-stream') },
        { what: '9 MiB SSE line', stream: true, set: () => { up.behaviour.fault = 'huge-line'; up.behaviour.hugeLineBytes = 9 * 1024 * 1024 } },
        { what: 'HTML error page', stream: false, set: () => (up.behaviour.fault = { status: 502, body: '<html>bad gateway</html>', headers: { 'content-type': 'text/html' } }) },
        { what: '500 garbage', stream: true, set: () => (up.behaviour.fault = { status: 500, body: '\u0000\u0001{{{' }) },
      ]
      for (const c of cases) {
        c.set()
        const client = openai(router)
        let outcome: string
        try {
          if (c.stream) {
            const s = await client.chat.completions.create({ ...CHAT, stream: true })
            let n = 0
            for await (const chunk of s) n += (chunk.choices[0]?.delta?.content ?? '').length
            outcome = `stream of ${n} chars`
          } else {
            const r = await client.chat.completions.create(CHAT)
            outcome = `json ${JSON.stringify(r).slice(0, 40)}`
          }
        } catch (e) {
          outcome = `error ${(e as Error).message}`
        }
        expect(outcome, c.what).not.toContain(OPENAI_KEY)
        await normalCallWorks(router)
      }
    })
  }, 60_000)

  it('a key server that is down, failing or slow gives a clear error, then calls work again', async () => {
    const ks = await startFakeKeyServer({ icToken: IC, key: OPENAI_KEY, provider: 'openai', baseUrl: up.url })
    try {
      ks.behaviour.down = true
      const router = new LlmRouter({ apiKey: IC, serverUrl: ks.url, cacheTtlSeconds: 0, keyStaleGraceSeconds: 0, reliability: FAST })
      try {
        for (const set of [() => (ks.behaviour.down = true), () => { ks.behaviour.down = false; ks.behaviour.status = 500; ks.behaviour.error = '\u0000boom' }, () => { ks.behaviour.status = undefined; ks.behaviour.error = undefined; ks.behaviour.baseUrl = 'http://evil.example' }]) {
          set()
          const err = await openai(router).chat.completions.create(CHAT).then(() => undefined, (e: unknown) => e as { status?: number; message?: string })
          expect(err?.status).toBeGreaterThanOrEqual(500)
          expect(err?.message).toContain('key server')
          expect(err?.message).not.toContain(IC)
          await healthy(router)
        }
        ks.behaviour.baseUrl = up.url
        const res = await openai(router).chat.completions.create(CHAT)
        expect(res.choices[0]?.message.content).toBe('Hello from the fake provider.')
      } finally {
        await router.stop()
      }
    } finally {
      await ks.close()
    }
  })
})
