// Types for fake-upstream.mjs (the loopback fake providers and key server used by tests, demo and benchmarks).

/** One request the fake provider received, recorded before it answered. */
export interface RecordedRequest {
  method: string;
  /** Path without the query string, e.g. `/v1/chat/completions`. */
  path: string;
  query: Record<string, string>;
  /** Request headers, names lower-cased. */
  headers: Record<string, string | string[] | undefined>;
  /** The raw body as UTF-8 text ('' when empty). */
  body: string;
  /** The parsed body, or undefined when empty or not JSON. */
  json: any;
  /** The key the caller sent: the Bearer value, or for Anthropic routes `x-api-key` when present. */
  apiKey: string | undefined;
  /** Which provider's API the route belongs to. */
  flavour: 'openai' | 'anthropic';
  /** Date.now() when the body finished arriving. */
  at: number;
}

/** Token figures the fake reports; each defaults as documented on ProviderBehaviour.usage. */
export interface UsageFigures {
  /** OpenAI prompt_tokens / input_tokens (cached included); Anthropic input_tokens (cache excluded). */
  inputTokens: number;
  /** OpenAI cached_tokens; Anthropic cache_read_input_tokens. */
  cachedTokens: number;
  /** Anthropic cache_creation.ephemeral_5m_input_tokens (OpenAI cache_write_tokens = 5m + 1h when > 0). */
  cacheWrite5mTokens: number;
  /** Anthropic cache_creation.ephemeral_1h_input_tokens. */
  cacheWrite1hTokens: number;
  /** OpenAI completion_tokens / output_tokens (reasoning included); Anthropic output_tokens. */
  outputTokens: number;
  /** OpenAI reasoning_tokens (ignored for Anthropic). */
  reasoningTokens: number;
}

/** A status answered with the provider's error shape, or a transport-level misbehaviour. */
export type Fault =
  | {
      status: number;
      /** Sent as the `retry-after` header. */
      retryAfter?: string | number;
      /** Replaces the provider-shaped body (string sent raw, object as JSON). */
      body?: unknown;
      type?: string;
      code?: string | null;
      message?: string;
      headers?: Record<string, string>;
    }
  | 'hang-before-headers'
  | 'hang-mid-stream'
  | 'reset-mid-stream'
  | 'error-event-mid-stream'
  | 'malformed-json'
  | 'huge-line';

/** What the fake provider does; tests may change any field at any time. */
export interface ProviderBehaviour {
  /**
   * Key required in `Authorization: Bearer` (OpenAI) or in `x-api-key` or `Authorization: Bearer` (Anthropic, which also
   * needs `anthropic-version`). Default opts.expectedKey ?? 'sk-test-real-key'.
   */
  expectedKey: string;
  /** The answer text. Default 'Hello from the fake provider.' */
  text: string;
  /** Stream pieces: a count (near-equal split), explicit pieces, or undefined = one word (with its leading space) each. */
  chunks: number | string[] | undefined;
  /** Pause before each content chunk after the first, and before the closing frames. Default 0. */
  chunkDelayMs: number;
  /**
   * Usage overrides, fixed or per request. Defaults: inputTokens = 10 + Math.round(promptChars / 4) where promptChars is
   * the UTF-16 length of string `content`/`text` fields in messages, system, instructions, prompt and input;
   * outputTokens = Math.min(max_tokens ?? max_completion_tokens ?? max_output_tokens || 50, 20); others 0.
   */
  usage: Partial<UsageFigures> | ((req: RecordedRequest) => Partial<UsageFigures>) | undefined;
  fault: Fault | undefined;
  /** Apply `fault` to the next n authorised requests only, then clear both. Undefined = every request. */
  failTimes: number | undefined;
  /** Content chunks sent before a mid-stream fault. Default 1. */
  faultAfterChunks: number;
  /** Size of the 'huge-line' answer (one SSE line / one JSON body line of 'x'). Default 4 MiB. */
  hugeLineBytes: number;
  /** Wait before answering at all (before auth). Default 0. */
  delayBeforeHeadersMs: number;
  /** Anthropic streams: add `ping` events after content_block_start and before message_delta. Default false. */
  pings: boolean;
  /** Model name to report instead of echoing the request's `model`. */
  model: string | undefined;
  /** Extra response headers on every answer. */
  headers: Record<string, string>;
}

export interface FakeProviderOptions {
  expectedKey?: string;
  text?: string;
  /** Default 0 (any free port). */
  port?: number;
}

export interface FakeProvider {
  /** http://127.0.0.1:PORT (no /v1). */
  url: string;
  port: number;
  /** Stops listening and destroys open sockets (hung and streaming ones too). */
  close(): Promise<void>;
  requests: RecordedRequest[];
  readonly hits: number;
  behaviour: ProviderBehaviour;
  /** Clears requests and hits and restores the default behaviour (same object). */
  reset(): void;
}

/** Start a fake OpenAI + Anthropic API on 127.0.0.1. */
export function startFakeProvider(opts?: FakeProviderOptions): Promise<FakeProvider>;

export interface KeyServerBehaviour {
  /** The token required in `Authorization: Bearer`; else 401 {"error":"Invalid token"}. */
  icToken: string;
  /** `api_key` in the answer. Default 'sk-test-real-key'. */
  key: string;
  provider?: 'openai' | 'anthropic';
  baseUrl?: string;
  /** Answer this status with {"error": error ?? status text}. */
  status?: number;
  /** Error message; alone it means status 500. */
  error?: string;
  /** Wait before answering. Default 0. */
  delayMs?: number;
  /** Close the socket without an answer. */
  down?: boolean;
}

export interface FakeKeyServerOptions {
  icToken: string;
  key?: string;
  provider?: 'openai' | 'anthropic';
  baseUrl?: string;
  port?: number;
}

export interface FakeKeyServer {
  url: string;
  port: number;
  close(): Promise<void>;
  /** Requests to GET /api/keys so far. */
  readonly fetches: number;
  /** The Authorization header of the last GET /api/keys. */
  readonly lastAuth: string | undefined;
  behaviour: KeyServerBehaviour;
}

/** Start a fake Iron Cage key server (`GET /api/keys` → {provider?, api_key, base_url?}). */
export function startFakeKeyServer(opts: FakeKeyServerOptions): Promise<FakeKeyServer>;

/** UTF-16 length of the prompt text the default usage formula counts. */
export function promptChars(json: unknown): number;
