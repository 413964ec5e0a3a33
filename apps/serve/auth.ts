/**
 * Bearer-key check for the API routes: `Authorization: Bearer <key>`, compared in constant time.
 * Missing, malformed and wrong keys all get 401 `invalid_api_key` with the OpenAI envelope (hono's
 * `bearerAuth` answers a malformed header with a plain-text 400, which the `openai` client reports as a
 * BadRequestError), plus `WWW-Authenticate: Bearer`.
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors.ts";

const enc = new TextEncoder();

/** Constant-time string equality (length leaks, contents do not). */
export function safeEqual(a: string, b: string): boolean {
  const x = enc.encode(a), y = enc.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ (y[i % Math.max(y.length, 1)] ?? 0);
  return diff === 0;
}

/** Middleware requiring the key (a no-op when `key` is undefined). */
export function requireKey(key: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    if (key === undefined || c.req.method === "OPTIONS") return await next();
    const h = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    if (!m || !safeEqual(m[1], key)) {
      throw new ApiError(
        401,
        m
          ? "Incorrect API key provided."
          : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        { type: "invalid_request_error", code: "invalid_api_key", headers: { "www-authenticate": "Bearer" } },
      );
    }
    await next();
  };
}
