/**
 * The OpenAI error envelope, `{"error": {"message", "type", "param", "code"}}`, and the one exception
 * type the routes throw to produce it. Every rejection the server makes goes through `ApiError`, so the
 * status, the envelope and the retry headers stay consistent: 400 for anything the client must change
 * (never 501, which the `openai` client retries), 503 + `Retry-After` for load, and
 * `x-should-retry: false` on 500s that a retry cannot fix.
 * @module
 */

/** Status codes the server answers with. */
export type ErrorStatus = 400 | 401 | 404 | 405 | 413 | 500 | 503;

/** The body of every error response. */
export interface ErrorEnvelope {
  /** OpenAI's error object (plus optional extras such as `n_prompt_tokens`). */
  error: {
    message: string;
    type: string;
    param: string | null;
    code: string | number | null;
    [extra: string]: unknown;
  };
}

/** A request the server rejects: thrown by validation and admission, rendered by `app.onError`. */
export class ApiError extends Error {
  /** HTTP status. */
  readonly status: ErrorStatus;
  /** OpenAI error type (`invalid_request_error`, `server_error`, ...). */
  readonly type: string;
  /** The offending request field, if one. */
  readonly param: string | null;
  /** Machine-readable code (`context_length_exceeded`, `server_overloaded`, ...). */
  readonly code: string | null;
  /** Extra envelope fields (`n_prompt_tokens`, `n_ctx`). */
  readonly extra: Record<string, unknown>;
  /** Extra response headers (`Retry-After`). */
  readonly headers: Record<string, string>;

  constructor(
    status: ErrorStatus,
    message: string,
    opts: {
      type?: string;
      param?: string | null;
      code?: string | null;
      extra?: Record<string, unknown>;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = opts.type ?? defaultType(status);
    this.param = opts.param ?? null;
    this.code = opts.code ?? null;
    this.extra = opts.extra ?? {};
    this.headers = opts.headers ?? {};
  }

  /** The JSON envelope. */
  envelope(): ErrorEnvelope {
    return {
      error: { message: this.message, type: this.type, param: this.param, code: this.code, ...this.extra },
    };
  }

  /** The whole HTTP response. */
  toResponse(): Response {
    const headers: Record<string, string> = { "content-type": "application/json", ...this.headers };
    if (this.status === 500) headers["x-should-retry"] = "false";
    return new Response(JSON.stringify(this.envelope()), { status: this.status, headers });
  }
}

function defaultType(status: ErrorStatus): string {
  switch (status) {
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 503:
      return "unavailable_error";
    case 500:
      return "server_error";
    default:
      return "invalid_request_error";
  }
}

/** 400 `invalid_request_error` naming `param`. */
export function badRequest(message: string, param: string | null, code: string | null = null): ApiError {
  return new ApiError(400, message, { param, code });
}
