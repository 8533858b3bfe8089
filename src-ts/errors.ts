/** Stable error codes thrown by iron-cage (also sent in `x-iron-cage-error` by the router). */
export type IronCageErrorCode =
  | 'INVALID_OPTIONS'
  | 'BIND_FAILED'
  | 'NATIVE_BINDING_MISSING'
  | 'INVALID_API_KEY'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'PROVIDER_MISMATCH'
  | 'BODY_TOO_LARGE'
  | 'BODY_TIMEOUT'
  | 'METHOD_NOT_ALLOWED'
  | 'BAD_REQUEST_TARGET'
  | 'BAD_REQUEST_BODY'
  | 'KEY_SERVER_ERROR'
  | 'KEY_REFUSED'
  | 'UPSTREAM_UNREACHABLE'
  | 'UPSTREAM_TIMEOUT'
  | 'BUDGET_EXCEEDED'
  | 'UNKNOWN_MODEL_PRICE'
  | 'UNMETERED_CALL'
  | 'PII_BLOCKED'
  | 'CIRCUIT_OPEN'
  | 'ROUTER_STOPPED'
  | 'INTERNAL'
  | 'SPAWN_FAILED'
  | 'AGENT_NOT_FOUND'
  | 'AGENT_ID_IN_USE'
  | 'RUNTIME_SHUT_DOWN'
  | (string & {})

/** An error from iron-cage with a stable `code`. */
export class IronCageError extends Error {
  readonly code: IronCageErrorCode
  constructor(code: IronCageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'IronCageError'
    this.code = code
  }
}

/** Convert an error thrown by the native addon (which carries `code`) into an IronCageError. */
export function fromNative(err: unknown): IronCageError {
  if (err instanceof IronCageError) return err
  const e = err as { code?: unknown; message?: unknown }
  const code = typeof e?.code === 'string' ? e.code : 'INTERNAL'
  const message = typeof e?.message === 'string' ? e.message : String(err)
  return new IronCageError(code, message, { cause: err })
}
