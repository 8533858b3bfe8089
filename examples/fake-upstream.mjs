// Loopback fakes of the OpenAI and Anthropic APIs and of the Iron Cage key server (`GET /api/keys`).
// Tests, the offline demo and the benchmarks use them so nothing ever reaches the internet.
// Plain ESM JavaScript so it runs without a TypeScript build; types live in fake-upstream.d.mts.
// Run directly (`node examples/fake-upstream.mjs`) to serve both until Ctrl-C.
import http from 'node:http';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const DEFAULT_KEY = 'sk-test-real-key';
const DEFAULT_TEXT = 'Hello from the fake provider.';

// ---------------------------------------------------------------- shared plumbing

/** Listen on 127.0.0.1, track sockets so close() never waits on a hung or streaming connection. */
async function listen(handler, port = 0) {
  const sockets = new Set();
  const timers = new Set();
  const server = http.createServer((req, res) => {
    handler(req, res, timers).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const actualPort = server.address().port;
  let closing;
  const close = () => {
    closing ??= new Promise((resolve) => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    return closing;
  };
  return { port: actualPort, url: `http://127.0.0.1:${actualPort}`, close };
}

/** A sleep that close() cancels (the awaiting handler is then simply dropped). */
function sleep(ms, timers) {
  if (!(ms > 0)) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      timers.delete(t);
      resolve();
    }, ms);
    timers.add(t);
  });
}

const never = () => new Promise(() => {});

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

const data = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
const event = (name, obj) => `event: ${name}\ndata: ${JSON.stringify(obj)}\n\n`;

function sendJson(res, status, headers, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

// ---------------------------------------------------------------- usage and text

/** UTF-16 length of the prompt text: string `content`/`text` fields in messages, system, instructions, prompt, input. */
export function promptChars(json) {
  const count = (v) => {
    if (typeof v === 'string') return v.length;
    if (Array.isArray(v)) return v.reduce((n, x) => n + count(x), 0);
    if (v && typeof v === 'object') return count(v.content) + count(v.text);
    return 0;
  };
  if (!json || typeof json !== 'object') return 0;
  return count(json.messages) + count(json.system) + count(json.instructions) + count(json.prompt) + count(json.input);
}

/** The usage figures for one request: behaviour.usage (object or function) over the documented defaults. */
function usageFor(behaviour, recorded) {
  const json = recorded.json ?? {};
  const u = (typeof behaviour.usage === 'function' ? behaviour.usage(recorded) : behaviour.usage) ?? {};
  const maxOut = [json.max_tokens, json.max_completion_tokens, json.max_output_tokens].find((v) => typeof v === 'number');
  return {
    inputTokens: u.inputTokens ?? 10 + Math.round(promptChars(json) / 4),
    cachedTokens: u.cachedTokens ?? 0,
    cacheWrite5mTokens: u.cacheWrite5mTokens ?? 0,
    cacheWrite1hTokens: u.cacheWrite1hTokens ?? 0,
    outputTokens: u.outputTokens ?? Math.min(maxOut || 50, 20),
    reasoningTokens: u.reasoningTokens ?? 0,
  };
}

/** The answer split into stream pieces: explicit array, N near-equal pieces, or one word (with its leading space) each. */
function splitText(text, chunks) {
  if (Array.isArray(chunks)) return chunks.map(String);
  if (text === '') return [];
  if (typeof chunks === 'number' && chunks >= 1) {
    const chars = Array.from(text);
    const n = Math.min(Math.floor(chunks), chars.length);
    const out = [];
    for (let i = 0; i < n; i++) out.push(chars.slice(Math.floor((i * chars.length) / n), Math.floor(((i + 1) * chars.length) / n)).join(''));
    return out;
  }
  return text.split(/(?=\s)/);
}

// ---------------------------------------------------------------- error shapes

const OPENAI_ERRORS = {
  400: ['invalid_request_error', null, 'Invalid request.'],
  401: ['invalid_request_error', 'invalid_api_key', 'Incorrect API key provided.'],
  403: ['invalid_request_error', 'unsupported_country_region_territory', 'Country, region, or territory not supported.'],
  404: ['invalid_request_error', 'unknown_url', 'Unknown request URL.'],
  429: ['requests', 'rate_limit_exceeded', 'Rate limit reached for requests.'],
  500: ['server_error', null, 'The server had an error while processing your request.'],
  503: ['server_error', 'server_is_overloaded', 'The server is overloaded or not ready yet.'],
};
const ANTHROPIC_ERRORS = {
  400: ['invalid_request_error', 'Invalid request.'],
  401: ['authentication_error', 'invalid x-api-key'],
  402: ['billing_error', 'Your credit balance is too low.'],
  403: ['permission_error', 'Your API key does not have permission to use the specified resource.'],
  404: ['not_found_error', 'Not found.'],
  413: ['request_too_large', 'Request exceeds the maximum allowed number of bytes.'],
  429: ['rate_limit_error', 'Number of requests has exceeded your rate limit.'],
  500: ['api_error', 'Internal server error'],
  504: ['timeout_error', 'Request timed out.'],
  529: ['overloaded_error', 'Overloaded'],
};

/** The provider's error body for a status; `over` may set type, code, message. */
function errorBody(flavour, status, over = {}, requestId) {
  if (flavour === 'anthropic') {
    const [type, message] = ANTHROPIC_ERRORS[status] ?? (status >= 500 ? ANTHROPIC_ERRORS[500] : ANTHROPIC_ERRORS[400]);
    return { type: 'error', error: { type: over.type ?? type, message: over.message ?? message }, request_id: requestId };
  }
  const [type, code, message] = OPENAI_ERRORS[status] ?? (status >= 500 ? OPENAI_ERRORS[500] : OPENAI_ERRORS[400]);
  return { error: { message: over.message ?? message, type: over.type ?? type, param: null, code: over.code ?? code } };
}

/** Like the real 401, echo a masked fragment of the key that was sent (lets tests check the proxy scrubs it). */
const maskKey = (k) => (k.length > 8 ? `${k.slice(0, 3)}${'*'.repeat(k.length - 7)}${k.slice(-4)}` : '***');

// ---------------------------------------------------------------- endpoint bodies
// Each builder returns { json } for a non-stream answer or a stream plan:
// { head: frames, pieces: frames (content), tail: frames, errorFrame(seq), brokenFrame }.

function openaiUsage(u) {
  const write = u.cacheWrite5mTokens + u.cacheWrite1hTokens;
  return {
    prompt_tokens: u.inputTokens,
    completion_tokens: u.outputTokens,
    total_tokens: u.inputTokens + u.outputTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens, audio_tokens: 0, ...(write ? { cache_write_tokens: write } : {}) },
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

const openaiErrorFrame = () => event('error', errorBody('openai', 500));

function chatCompletion(c) {
  const { id, created, model, text, usage, stream, json } = c;
  if (!stream) {
    const message = { role: 'assistant', content: text, refusal: null, annotations: [] };
    return { json: { id, object: 'chat.completion', created, model, choices: [{ index: 0, message, logprobs: null, finish_reason: 'stop' }], usage: openaiUsage(usage), system_fingerprint: 'fp_fake' } };
  }
  const withUsage = json.stream_options?.include_usage === true;
  const chunk = (choices, extra = withUsage ? { usage: null } : {}) => data({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices, ...extra });
  const choice = (delta, finish = null) => [{ index: 0, delta, logprobs: null, finish_reason: finish }];
  return {
    head: [chunk(choice({ role: 'assistant', content: '', refusal: null }))],
    pieces: c.pieces.map((p) => chunk(choice({ content: p }))),
    tail: [chunk(choice({}, 'stop')), ...(withUsage ? [chunk([], { usage: openaiUsage(usage) })] : []), 'data: [DONE]\n\n'],
    errorFrame: openaiErrorFrame,
    brokenFrame: `data: {"id":"${id}","object":"chat.completion.chunk","choices":[{"delta":{"content":\n\n`,
  };
}

function legacyCompletion(c) {
  const { id, created, model, text, usage, stream, json } = c;
  const base = { id, object: 'text_completion', created, model };
  const choice = (t, finish) => [{ text: t, index: 0, logprobs: null, finish_reason: finish }];
  if (!stream) return { json: { ...base, choices: choice(text, 'stop'), usage: openaiUsage(usage) } };
  const withUsage = json.stream_options?.include_usage === true;
  const chunk = (choices, extra = withUsage ? { usage: null } : {}) => data({ ...base, choices, ...extra });
  return {
    head: [],
    pieces: c.pieces.map((p) => chunk(choice(p, null))),
    tail: [chunk(choice('', 'stop')), ...(withUsage ? [chunk([], { usage: openaiUsage(usage) })] : []), 'data: [DONE]\n\n'],
    errorFrame: openaiErrorFrame,
    brokenFrame: `data: {"id":"${id}","choices":[{"text":\n\n`,
  };
}

function response(c) {
  const { id, created, model, text, usage: u, stream } = c;
  const write = u.cacheWrite5mTokens + u.cacheWrite1hTokens;
  const usage = {
    input_tokens: u.inputTokens,
    input_tokens_details: { cached_tokens: u.cachedTokens, ...(write ? { cache_write_tokens: write } : {}) },
    output_tokens: u.outputTokens,
    output_tokens_details: { reasoning_tokens: u.reasoningTokens },
    total_tokens: u.inputTokens + u.outputTokens,
  };
  const itemId = `msg_${id}`;
  const part = (t) => ({ type: 'output_text', text: t, annotations: [] });
  const item = (status, t) => ({ type: 'message', id: itemId, status, role: 'assistant', content: t === undefined ? [] : [part(t)] });
  const resp = (status, output, usageOrNull) => ({ id, object: 'response', created_at: created, status, model, output, usage: usageOrNull });
  if (!stream) return { json: resp('completed', [item('completed', text)], usage) };
  let seq = 0;
  const ev = (type, body) => event(type, { type, sequence_number: seq++, ...body });
  const at = { item_id: itemId, output_index: 0, content_index: 0 };
  const head = [
    ev('response.created', { response: resp('in_progress', [], null) }),
    ev('response.in_progress', { response: resp('in_progress', [], null) }),
    ev('response.output_item.added', { output_index: 0, item: item('in_progress') }),
    ev('response.content_part.added', { ...at, part: part('') }),
  ];
  const pieces = c.pieces.map((p) => ev('response.output_text.delta', { ...at, delta: p, logprobs: [] }));
  const tail = [
    ev('response.output_text.done', { ...at, text, logprobs: [] }),
    ev('response.content_part.done', { ...at, part: part(text) }),
    ev('response.output_item.done', { output_index: 0, item: item('completed', text) }),
    ev('response.completed', { response: resp('completed', [item('completed', text)], usage) }),
  ];
  const errorFrame = (n) => event('error', { type: 'error', code: 'server_error', message: 'The server had an error while processing your request.', param: null, sequence_number: n });
  return { head, pieces, tail, errorFrame, brokenFrame: `event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":\n\n` };
}

function embeddings(c) {
  const { json, model, usage } = c;
  const inputs = Array.isArray(json.input) && json.input.some((x) => typeof x !== 'number') ? json.input : [json.input];
  const dims = typeof json.dimensions === 'number' && json.dimensions > 0 ? Math.min(json.dimensions, 4096) : 8;
  // Deterministic, distinct per input; real vectors are not needed by anything that inspects traffic.
  const vector = (i) => Array.from({ length: dims }, (_, d) => Math.round(((((i + 1) * (d + 3)) % 17) / 17 - 0.5) * 1e6) / 1e6);
  return {
    json: {
      object: 'list',
      // openai-node asks for base64 (little-endian float32) unless the caller chose a format.
      data: inputs.map((_, i) => ({ object: 'embedding', index: i, embedding: json.encoding_format === 'base64' ? Buffer.from(new Float32Array(vector(i)).buffer).toString('base64') : vector(i) })),
      model,
      usage: { prompt_tokens: usage.inputTokens, total_tokens: usage.inputTokens },
    },
  };
}

function anthropicUsage(u, outputTokens) {
  return {
    input_tokens: u.inputTokens,
    cache_creation_input_tokens: u.cacheWrite5mTokens + u.cacheWrite1hTokens,
    cache_read_input_tokens: u.cachedTokens,
    cache_creation: { ephemeral_5m_input_tokens: u.cacheWrite5mTokens, ephemeral_1h_input_tokens: u.cacheWrite1hTokens },
    output_tokens: outputTokens,
    service_tier: 'standard',
  };
}

function message(c) {
  const { id, model, text, usage, stream, behaviour } = c;
  const msg = (content, stop, out) => ({ id, type: 'message', role: 'assistant', model, content, stop_reason: stop, stop_sequence: null, usage: anthropicUsage(usage, out) });
  if (!stream) return { json: msg([{ type: 'text', text }], 'end_turn', usage.outputTokens) };
  const ping = behaviour.pings ? [event('ping', { type: 'ping' })] : [];
  return {
    head: [
      event('message_start', { type: 'message_start', message: msg([], null, 1) }),
      event('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
      ...ping,
    ],
    pieces: c.pieces.map((p) => event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } })),
    tail: [
      event('content_block_stop', { type: 'content_block_stop', index: 0 }),
      ...ping,
      event('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.outputTokens } }),
      event('message_stop', { type: 'message_stop' }),
    ],
    errorFrame: () => event('error', errorBody('anthropic', 529)),
    brokenFrame: `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":\n\n`,
  };
}

const countTokens = (c) => ({ json: { input_tokens: c.usage.inputTokens } });

function models(c) {
  if (c.flavour === 'anthropic') {
    const d = [
      { id: 'claude-sonnet-4-5-20250929', type: 'model', display_name: 'Claude Sonnet 4.5', created_at: '2025-09-29T00:00:00Z' },
      { id: 'claude-haiku-4-5-20251001', type: 'model', display_name: 'Claude Haiku 4.5', created_at: '2025-10-01T00:00:00Z' },
    ];
    return { json: { data: d, has_more: false, first_id: d[0].id, last_id: d[1].id } };
  }
  const ids = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1', 'o3-mini', 'text-embedding-3-small'];
  return { json: { object: 'list', data: ids.map((id) => ({ id, object: 'model', created: 1700000000, owned_by: 'system' })) } };
}

const ROUTES = {
  'POST /v1/chat/completions': ['openai', chatCompletion, 'chatcmpl'],
  'POST /v1/completions': ['openai', legacyCompletion, 'cmpl'],
  'POST /v1/responses': ['openai', response, 'resp'],
  'POST /v1/embeddings': ['openai', embeddings, 'emb'],
  'GET /v1/models': [null, models, 'models'],
  'POST /v1/messages': ['anthropic', message, 'msg'],
  'POST /v1/messages/count_tokens': ['anthropic', countTokens, 'ct'],
};

// ---------------------------------------------------------------- the fake provider

function defaultBehaviour(opts) {
  return {
    expectedKey: opts.expectedKey ?? DEFAULT_KEY,
    text: opts.text ?? DEFAULT_TEXT,
    chunks: undefined,
    chunkDelayMs: 0,
    usage: undefined,
    fault: undefined,
    failTimes: undefined,
    faultAfterChunks: 1,
    hugeLineBytes: 4 * 1024 * 1024,
    delayBeforeHeadersMs: 0,
    pings: false,
    model: undefined,
    headers: {},
  };
}

/** The fault for this request, counting down failTimes (the fault is cleared when it reaches 0). */
function takeFault(b) {
  if (!b.fault) return undefined;
  if (b.failTimes === undefined || b.failTimes === null) return b.fault;
  if (!(b.failTimes > 0)) return undefined;
  const f = b.fault;
  b.failTimes -= 1;
  if (b.failTimes === 0) {
    b.fault = undefined;
    b.failTimes = undefined;
  }
  return f;
}

const bearer = (headers) => (headers.authorization?.startsWith('Bearer ') ? headers.authorization.slice(7) : headers.authorization);
const anthropicKey = (headers) => headers['x-api-key'] ?? bearer(headers);

/** The auth failure, if any, exactly as the real provider words it. */
function authError(flavour, headers, expected) {
  if (flavour === 'anthropic') {
    // @anthropic-ai/sdk 1.x sends API keys as `Authorization: Bearer`; older SDKs and curl use `x-api-key`.
    if (!headers['anthropic-version']) return [400, { message: 'anthropic-version: header is required' }];
    const key = anthropicKey(headers);
    if (!key) return [401, { message: 'x-api-key header is required' }];
    return key === expected ? undefined : [401, { message: 'invalid x-api-key' }];
  }
  const key = bearer(headers);
  if (!key) return [401, { message: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", code: null }];
  if (key === expected) return undefined;
  return [401, { message: `Incorrect API key provided: ${maskKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.` }];
}

/** Write a planned stream, applying a mid-stream fault after `faultAfterChunks` content pieces. */
async function writeStream(res, plan, fault, b, timers) {
  res.flushHeaders();
  const write = (f) => !res.destroyed && res.write(f);
  plan.head.forEach(write);
  const at = Math.min(Math.max(0, b.faultAfterChunks ?? 1), plan.pieces.length);
  for (let i = 0; i <= plan.pieces.length; i++) {
    if (fault && i === at) {
      if (fault === 'hang-mid-stream') return never();
      if (fault === 'reset-mid-stream') return void res.socket?.destroy();
      if (fault === 'error-event-mid-stream') return void res.end(plan.errorFrame(plan.head.length + at));
      if (fault === 'malformed-json') write(plan.brokenFrame);
    }
    if (i === plan.pieces.length) break;
    if (i > 0) await sleep(b.chunkDelayMs, timers);
    if (res.destroyed) return;
    write(plan.pieces[i]);
  }
  if (plan.pieces.length) await sleep(b.chunkDelayMs, timers);
  plan.tail.forEach(write);
  if (!res.destroyed) res.end();
}

/** Start a fake OpenAI + Anthropic API on 127.0.0.1 (port 0 unless opts.port). */
export async function startFakeProvider(opts = {}) {
  const behaviour = defaultBehaviour(opts);
  const requests = [];
  let hits = 0;
  let seq = 0;

  async function handle(req, res, timers) {
    const body = await readBody(req);
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const headers = { ...req.headers };
    const recorded = { method: req.method ?? 'GET', path: u.pathname, query: Object.fromEntries(u.searchParams), headers, body, json: undefined, apiKey: undefined, at: Date.now() };
    try {
      recorded.json = body ? JSON.parse(body) : undefined;
    } catch {
      // kept as text; answered with a 400 below
    }
    const route = ROUTES[`${recorded.method} ${u.pathname}`];
    const flavour = route?.[0] ?? (u.pathname.startsWith('/v1/messages') || headers['anthropic-version'] || headers['x-api-key'] ? 'anthropic' : 'openai');
    recorded.apiKey = flavour === 'anthropic' ? anthropicKey(headers) : bearer(headers);
    recorded.flavour = flavour;
    requests.push(recorded);
    hits += 1;
    const b = behaviour;
    const n = ++seq;
    const requestId = `req_fake_${n}`;
    const base = flavour === 'anthropic'
      ? { 'request-id': requestId, 'anthropic-ratelimit-requests-remaining': '999' }
      : { 'x-request-id': requestId, 'openai-processing-ms': '1', 'x-ratelimit-remaining-requests': '999' };
    const out = { ...base, ...b.headers };
    const fail = (status, over = {}, extra = {}) => sendJson(res, status, { ...out, ...extra }, errorBody(flavour, status, over, requestId));

    await sleep(b.delayBeforeHeadersMs, timers);
    if (!route) return fail(404, { message: `Unknown request URL: ${recorded.method} ${u.pathname}.` });
    const denied = authError(flavour, headers, b.expectedKey);
    if (denied) return fail(denied[0], denied[1]);
    if (body && recorded.json === undefined) return fail(400, { message: 'Could not parse the JSON body of your request.' });

    const fault = takeFault(b);
    if (fault && typeof fault === 'object') {
      const extra = { ...(fault.retryAfter !== undefined ? { 'retry-after': String(fault.retryAfter) } : {}), ...fault.headers };
      const status = fault.status ?? 500;
      if (fault.body === undefined) return fail(status, fault, extra);
      return sendJson(res, status, { ...out, ...extra }, fault.body);
    }
    if (fault === 'hang-before-headers') return never();

    const json = recorded.json && typeof recorded.json === 'object' ? recorded.json : {};
    const text = fault === 'huge-line' ? 'x'.repeat(b.hugeLineBytes) : String(b.text);
    const ctx = {
      id: `${route[2]}_fake_${n}`, created: Math.floor(Date.now() / 1000), model: b.model ?? (typeof json.model === 'string' ? json.model : 'fake-model'),
      text, pieces: fault === 'huge-line' ? [text] : splitText(text, b.chunks), usage: usageFor(b, recorded), stream: json.stream === true, json, flavour, behaviour: b,
    };
    const answer = route[1](ctx);
    if (answer.json) {
      const whole = JSON.stringify(answer.json);
      if (fault === 'malformed-json') return sendJson(res, 200, out, whole.slice(0, Math.floor(whole.length / 2)));
      if (fault === 'hang-mid-stream' || fault === 'reset-mid-stream') {
        res.writeHead(200, { ...out, 'content-type': 'application/json' });
        res.write(whole.slice(0, Math.floor(whole.length / 2)));
        return fault === 'hang-mid-stream' ? never() : void res.socket?.destroy();
      }
      return sendJson(res, 200, out, whole);
    }
    res.writeHead(200, { ...out, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    const streamFault = ['hang-mid-stream', 'reset-mid-stream', 'error-event-mid-stream', 'malformed-json'].includes(fault) ? fault : undefined;
    return writeStream(res, answer, streamFault, b, timers);
  }

  const server = await listen(handle, opts.port);
  return {
    url: server.url,
    port: server.port,
    close: server.close,
    requests,
    behaviour,
    get hits() {
      return hits;
    },
    reset() {
      requests.length = 0;
      hits = 0;
      for (const k of Object.keys(behaviour)) delete behaviour[k];
      Object.assign(behaviour, defaultBehaviour(opts));
    },
  };
}

// ---------------------------------------------------------------- the fake key server

/** Start a fake Iron Cage key server: `GET /api/keys` with `Authorization: Bearer <icToken>`. */
export async function startFakeKeyServer(opts) {
  const behaviour = {
    icToken: opts.icToken,
    key: opts.key ?? DEFAULT_KEY,
    provider: opts.provider,
    baseUrl: opts.baseUrl,
    status: undefined,
    error: undefined,
    delayMs: 0,
    down: false,
  };
  let fetches = 0;
  let lastAuth;

  async function handle(req, res, timers) {
    await readBody(req);
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    if (req.method !== 'GET' || path !== '/api/keys') return sendJson(res, 404, {}, { error: 'Not found' });
    fetches += 1;
    lastAuth = req.headers.authorization;
    const b = behaviour;
    if (b.down) return void req.socket.destroy();
    await sleep(b.delayMs, timers);
    if (lastAuth !== `Bearer ${b.icToken}`) return sendJson(res, 401, {}, { error: 'Invalid token' });
    if (b.status !== undefined || b.error !== undefined) {
      const status = b.status ?? 500;
      return sendJson(res, status, {}, { error: b.error ?? http.STATUS_CODES[status] ?? 'Error' });
    }
    return sendJson(res, 200, {}, { ...(b.provider ? { provider: b.provider } : {}), api_key: b.key, ...(b.baseUrl ? { base_url: b.baseUrl } : {}) });
  }

  const server = await listen(handle, opts.port);
  return {
    url: server.url,
    port: server.port,
    close: server.close,
    behaviour,
    get fetches() {
      return fetches;
    },
    get lastAuth() {
      return lastAuth;
    },
  };
}

// ---------------------------------------------------------------- run directly

async function main() {
  const env = process.env;
  const provider = env.FAKE_PROVIDER === 'anthropic' ? 'anthropic' : 'openai';
  const key = env.FAKE_PROVIDER_KEY ?? DEFAULT_KEY;
  const fake = await startFakeProvider({ port: Number(env.FAKE_PROVIDER_PORT ?? 0), expectedKey: key });
  fake.behaviour.chunkDelayMs = Number(env.FAKE_CHUNK_DELAY_MS ?? 0);
  const keys = await startFakeKeyServer({ port: Number(env.FAKE_KEY_SERVER_PORT ?? 0), icToken: env.IC_TOKEN ?? 'ic_demo_token_local_only', key, provider, baseUrl: fake.url });
  process.stdout.write(`FAKE_PROVIDER_URL=${fake.url}\nFAKE_KEY_SERVER_URL=${keys.url}\n`);
  const stop = () => Promise.all([fake.close(), keys.close()]).then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const invokedDirectly = (() => {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();
if (invokedDirectly) {
  main().catch((e) => {
    process.stderr.write(`fake-upstream: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
