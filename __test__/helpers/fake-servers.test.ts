// The fakes the other suites rely on: wire shapes, usage figures, faults and the key server, checked with plain fetch.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeKeyServer, type FakeKeyServer } from './fake-key-server';
import { startFakeProvider, type FakeProvider } from './fake-provider';

const KEY = 'sk-test-real-key';
const openaiHeaders = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };
const anthropicHeaders = { 'x-api-key': KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };

interface SseEvent {
  event?: string;
  data: string;
}

function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const ev: SseEvent = { data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) ev.event = line.slice(7);
        if (line.startsWith('data: ')) ev.data += line.slice(6);
      }
      return ev;
    });
}

let fake: FakeProvider;
beforeAll(async () => {
  fake = await startFakeProvider();
});
afterAll(() => fake.close());
beforeEach(() => fake.reset());

const post = (path: string, body: unknown, headers: Record<string, string> = openaiHeaders, signal?: AbortSignal) =>
  fetch(`${fake.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body), signal });

describe('OpenAI chat completions', () => {
  it('answers JSON with the default usage formula and records the key', async () => {
    // 'Say hi please' = 13 chars, 'Be brief' = 8 → 10 + round(21 / 4) = 15 input; no max_tokens → 20 output.
    const res = await post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'Be brief' }, { role: 'user', content: [{ type: 'text', text: 'Say hi please' }] }] });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toMatch(/^req_fake_/);
    const body = await res.json();
    expect(body.choices[0].message.content).toBe('Hello from the fake provider.');
    expect(body.model).toBe('gpt-4o-mini');
    expect(body.usage).toMatchObject({ prompt_tokens: 15, completion_tokens: 20, total_tokens: 35, prompt_tokens_details: { cached_tokens: 0 } });
    expect(fake.hits).toBe(1);
    expect(fake.requests[0]).toMatchObject({ method: 'POST', path: '/v1/chat/completions', apiKey: KEY, flavour: 'openai' });
    expect(fake.requests[0].json.model).toBe('gpt-4o-mini');
  });

  it('caps default output tokens at max_tokens', async () => {
    const body = await (await post('/v1/chat/completions', { model: 'm', messages: [], max_completion_tokens: 7 })).json();
    expect(body.usage.completion_tokens).toBe(7);
  });

  it('streams one word per chunk and no usage chunk unless asked', async () => {
    const res = await post('/v1/chat/completions', { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const events = parseSse(await res.text());
    expect(events.at(-1)?.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    const deltas = chunks.map((c) => c.choices[0].delta.content).filter((c) => c);
    expect(deltas).toEqual(['Hello', ' from', ' the', ' fake', ' provider.']);
    expect(chunks.at(-1).choices[0].finish_reason).toBe('stop');
    expect(chunks.every((c) => !('usage' in c))).toBe(true);
  });

  it('adds the usage-only chunk before [DONE] when include_usage is set', async () => {
    fake.behaviour.usage = { inputTokens: 100, cachedTokens: 40, outputTokens: 9, reasoningTokens: 3 };
    fake.behaviour.chunks = 2;
    const res = await post('/v1/chat/completions', { model: 'o3-mini', stream: true, stream_options: { include_usage: true }, messages: [] });
    const events = parseSse(await res.text());
    expect(events.at(-1)?.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    const last = chunks.at(-1);
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: 100, completion_tokens: 9, total_tokens: 109, prompt_tokens_details: { cached_tokens: 40 }, completion_tokens_details: { reasoning_tokens: 3 } });
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta?.content).filter((c) => c)).toEqual(['Hello from the', ' fake provider.']) // 29 chars: 14 + 15;
  });
});

describe('other OpenAI endpoints', () => {
  it('streams Responses events with sequence numbers and final usage', async () => {
    fake.behaviour.usage = { cachedTokens: 2, reasoningTokens: 5 };
    const res = await post('/v1/responses', { model: 'gpt-5', stream: true, input: 'abcdefgh' });
    const events = parseSse(await res.text());
    const names = events.map((e) => e.event);
    expect(names.slice(0, 2)).toEqual(['response.created', 'response.in_progress']);
    expect(names.filter((n) => n === 'response.output_text.delta')).toHaveLength(5);
    expect(names.slice(-2)).toEqual(['response.output_item.done', 'response.completed']);
    const datas = events.map((e) => JSON.parse(e.data));
    expect(datas.map((d) => d.sequence_number)).toEqual(datas.map((_, i) => i));
    expect(datas.find((d) => d.type === 'response.output_text.done').text).toBe('Hello from the fake provider.');
    // 'abcdefgh' = 8 chars → 10 + 2 = 12 input.
    expect(datas.at(-1).response.usage).toEqual({ input_tokens: 12, input_tokens_details: { cached_tokens: 2 }, output_tokens: 20, output_tokens_details: { reasoning_tokens: 5 }, total_tokens: 32 });
  });

  it('answers embeddings, legacy completions and the model list', async () => {
    const emb = await (await post('/v1/embeddings', { model: 'text-embedding-3-small', input: ['a', 'b'], dimensions: 4 })).json();
    expect(emb.data).toHaveLength(2);
    expect(emb.data[1].embedding).toHaveLength(4);
    expect(emb.usage).toEqual({ prompt_tokens: 11, total_tokens: 11 }); // 2 chars → 10 + Math.round(0.5)
    const b64 = await (await post('/v1/embeddings', { model: 'm', input: 'a', dimensions: 3, encoding_format: 'base64' })).json();
    expect(Buffer.from(b64.data[0].embedding, 'base64').length).toBe(3 * 4); // float32 each, as openai-node decodes
    const cmpl = await (await post('/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'abcd', max_tokens: 3 })).json();
    expect(cmpl.choices[0].text).toBe('Hello from the fake provider.');
    expect(cmpl.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 3 });
    const models = await (await fetch(`${fake.url}/v1/models`, { headers: openaiHeaders })).json();
    expect(models.object).toBe('list');
    expect(models.data[0]).toMatchObject({ object: 'model' });
  });

  it('rejects a wrong key with a 401 that only echoes a masked fragment', async () => {
    const res = await post('/v1/chat/completions', { messages: [] }, { authorization: 'Bearer ic_local_token_123456' });
    expect(res.status).toBe(401);
    const body = await res.json();
    expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key', param: null });
    expect(body.error.message).not.toContain('ic_local_token_123456');
    expect(fake.requests[0].apiKey).toBe('ic_local_token_123456');
  });
});

describe('Anthropic messages', () => {
  it('streams message_start, text deltas, cumulative message_delta usage and pings', async () => {
    fake.behaviour.usage = { inputTokens: 30, cachedTokens: 1000, cacheWrite5mTokens: 200, cacheWrite1hTokens: 50, outputTokens: 12 };
    fake.behaviour.pings = true;
    const res = await post('/v1/messages', { model: 'claude-haiku-4-5', stream: true, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }, anthropicHeaders);
    expect(res.headers.get('request-id')).toMatch(/^req_fake_/);
    const events = parseSse(await res.text());
    expect(events.map((e) => e.event)).toEqual([
      'message_start', 'content_block_start', 'ping',
      'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_delta',
      'content_block_stop', 'ping', 'message_delta', 'message_stop',
    ]);
    const datas = events.map((e) => JSON.parse(e.data));
    expect(datas[0].message.usage).toEqual({
      input_tokens: 30, cache_creation_input_tokens: 250, cache_read_input_tokens: 1000,
      cache_creation: { ephemeral_5m_input_tokens: 200, ephemeral_1h_input_tokens: 50 }, output_tokens: 1, service_tier: 'standard',
    });
    expect(datas.filter((d) => d.type === 'content_block_delta').map((d) => d.delta.text).join('')).toBe('Hello from the fake provider.');
    // Cumulative: the final figure, not an increment over message_start's 1.
    expect(datas.find((d) => d.type === 'message_delta').usage).toEqual({ output_tokens: 12 });
  });

  it('answers JSON and count_tokens', async () => {
    const msg = await (await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 5, system: 'abcd', messages: [{ role: 'user', content: 'abcd' }] }, anthropicHeaders)).json();
    expect(msg).toMatchObject({ type: 'message', role: 'assistant', stop_reason: 'end_turn', content: [{ type: 'text', text: 'Hello from the fake provider.' }] });
    expect(msg.usage).toMatchObject({ input_tokens: 12, output_tokens: 5, cache_read_input_tokens: 0 });
    const ct = await (await post('/v1/messages/count_tokens', { model: 'x', messages: [{ role: 'user', content: 'abcdefgh' }] }, anthropicHeaders)).json();
    expect(ct).toEqual({ input_tokens: 12 });
  });

  it('takes the key from x-api-key or Bearer and requires anthropic-version', async () => {
    // @anthropic-ai/sdk 1.x sends its apiKey as Bearer; x-api-key wins when both are present.
    const bearer = await post('/v1/messages', { messages: [] }, { authorization: `Bearer ${KEY}`, 'anthropic-version': '2023-06-01' });
    expect(bearer.status).toBe(200);
    const wrong = await post('/v1/messages', {}, { 'x-api-key': 'sk-ant-wrong', authorization: `Bearer ${KEY}`, 'anthropic-version': '2023-06-01' });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    expect(fake.requests.map((r) => r.apiKey)).toEqual([KEY, 'sk-ant-wrong']);
    const noVersion = await post('/v1/messages', {}, { 'x-api-key': KEY });
    expect(noVersion.status).toBe(400);
    expect((await noVersion.json()).error.type).toBe('invalid_request_error');
  });
});

describe('faults', () => {
  it('answers a status fault in the provider shape, only failTimes times', async () => {
    fake.behaviour.fault = { status: 529, retryAfter: '3' };
    fake.behaviour.failTimes = 1;
    const first = await post('/v1/messages', { messages: [] }, anthropicHeaders);
    expect(first.status).toBe(529);
    expect(first.headers.get('retry-after')).toBe('3');
    expect(await first.json()).toMatchObject({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    const second = await post('/v1/messages', { messages: [] }, anthropicHeaders);
    expect(second.status).toBe(200);
    expect(fake.behaviour.fault).toBeUndefined();
  });

  it('answers an OpenAI 429 with type and code', async () => {
    fake.behaviour.fault = { status: 429, code: 'insufficient_quota', type: 'insufficient_quota' };
    const res = await post('/v1/chat/completions', { messages: [] });
    expect(res.status).toBe(429);
    expect(await res.json()).toMatchObject({ error: { type: 'insufficient_quota', code: 'insufficient_quota', param: null } });
  });

  it('resets the connection after the first chunk', async () => {
    fake.behaviour.fault = 'reset-mid-stream';
    const res = await post('/v1/chat/completions', { stream: true, messages: [] });
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
  });

  it('hangs before headers until the client gives up', async () => {
    fake.behaviour.fault = 'hang-before-headers';
    const started = Date.now();
    await expect(post('/v1/chat/completions', { messages: [] }, openaiHeaders, AbortSignal.timeout(150))).rejects.toThrow();
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('hangs mid-stream after the first content chunk', async () => {
    fake.behaviour.fault = 'hang-mid-stream';
    const ac = new AbortController();
    const res = await post('/v1/messages', { stream: true, messages: [] }, anthropicHeaders, ac.signal);
    const reader = res.body!.getReader();
    let seen = '';
    while (!seen.includes('content_block_delta')) seen += new TextDecoder().decode((await reader.read()).value);
    expect(seen).toContain('"text":"Hello"');
    const timer = setTimeout(() => ac.abort(), 100);
    await expect(reader.read()).rejects.toThrow();
    clearTimeout(timer);
    expect(seen).not.toContain('message_stop');
  });

  it('sends an error event mid-stream and ends without [DONE]', async () => {
    fake.behaviour.fault = 'error-event-mid-stream';
    fake.behaviour.faultAfterChunks = 2;
    const events = parseSse(await (await post('/v1/chat/completions', { stream: true, messages: [] })).text());
    const last = events.at(-1)!;
    expect(last.event).toBe('error');
    expect(JSON.parse(last.data).error.type).toBe('server_error');
    expect(events.filter((e) => e.data.includes('"content":"')).length).toBe(3); // role chunk + 2 words
    expect(events.some((e) => e.data === '[DONE]')).toBe(false);
  });

  it('sends malformed JSON and huge lines', async () => {
    fake.behaviour.fault = 'malformed-json';
    const broken = await (await post('/v1/chat/completions', { messages: [] })).text();
    expect(() => JSON.parse(broken)).toThrow();
    fake.behaviour.fault = 'huge-line';
    fake.behaviour.hugeLineBytes = 300_000;
    const text = await (await post('/v1/chat/completions', { stream: true, messages: [] })).text();
    expect(Math.max(...text.split('\n').map((l) => l.length))).toBeGreaterThan(300_000);
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  it('spaces chunks by chunkDelayMs and closes promptly with a hung client', async () => {
    const own = await startFakeProvider();
    own.behaviour.chunkDelayMs = 20;
    const started = Date.now();
    await (await fetch(`${own.url}/v1/chat/completions`, { method: 'POST', headers: openaiHeaders, body: JSON.stringify({ stream: true }) })).text();
    expect(Date.now() - started).toBeGreaterThanOrEqual(5 * 20 - 5); // 4 gaps between 5 words + 1 before the end
    own.behaviour.fault = 'hang-before-headers';
    const pending = fetch(`${own.url}/v1/chat/completions`, { method: 'POST', headers: openaiHeaders, body: '{}' }).catch((e: unknown) => e);
    while (own.hits < 2) await new Promise((r) => setTimeout(r, 5));
    const closing = Date.now();
    await own.close();
    expect(Date.now() - closing).toBeLessThan(500);
    expect(await pending).toBeInstanceOf(Error);
  });
});

describe('fake key server', () => {
  let keys: FakeKeyServer;
  beforeAll(async () => {
    keys = await startFakeKeyServer({ icToken: 'ic_test', key: 'sk-ant-real', provider: 'anthropic', baseUrl: 'http://127.0.0.1:9' });
  });
  afterAll(() => keys.close());
  const get = (token = 'ic_test') => fetch(`${keys.url}/api/keys`, { headers: { authorization: `Bearer ${token}` } });

  it('returns the key to the right token and 401 otherwise', async () => {
    expect(await (await get()).json()).toEqual({ provider: 'anthropic', api_key: 'sk-ant-real', base_url: 'http://127.0.0.1:9' });
    const bad = await get('ic_wrong');
    expect(bad.status).toBe(401);
    expect(await bad.json()).toEqual({ error: 'Invalid token' });
    expect(keys.fetches).toBe(2);
    expect(keys.lastAuth).toBe('Bearer ic_wrong');
  });

  it('answers configured errors, delays and refusals', async () => {
    keys.behaviour.status = 503;
    keys.behaviour.error = 'maintenance';
    const down = await get();
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ error: 'maintenance' });
    keys.behaviour.status = undefined;
    keys.behaviour.error = undefined;
    keys.behaviour.provider = undefined;
    keys.behaviour.delayMs = 50;
    const started = Date.now();
    expect(await (await get()).json()).toEqual({ api_key: 'sk-ant-real', base_url: 'http://127.0.0.1:9' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    keys.behaviour.down = true;
    await expect(get()).rejects.toThrow();
    keys.behaviour.down = false;
  });
});
